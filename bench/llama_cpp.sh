#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench`, `llama-simple` and `llama-server` from the
# sources vendored in the PyPI sdist of llama-cpp-python, in a cache directory
# outside the git tree. Idempotent: does nothing if the binaries are already
# built (and builds only the missing ones otherwise: a cache made before
# `llama-server` was added gains it without rebuilding the others).
#
#   bash bench/llama_cpp.sh          # prints the bin directory on stdout (last line)
#
# Env: ONLABEL_BENCH_CACHE (default ~/.cache/onlabel-bench),
#      LLAMA_CPP_PYTHON_VERSION (default: the newest sdist pip finds),
#      BUILD_JOBS (default 2).
# It never touches the crate's build (no cargo, no target dir).
set -euo pipefail

CACHE="${ONLABEL_BENCH_CACHE:-$HOME/.cache/onlabel-bench}"
JOBS="${BUILD_JOBS:-2}"
SPEC="llama-cpp-python${LLAMA_CPP_PYTHON_VERSION:+==$LLAMA_CPP_PYTHON_VERSION}"
mkdir -p "$CACHE/sdist"

log() { echo "[llama_cpp.sh] $*" >&2; }

BIN="$CACHE/llama.cpp-build/bin"
TARGETS=(llama-bench llama-simple llama-server)
MISSING=()
for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || MISSING+=("$t"); done
if [[ ${#MISSING[@]} -eq 0 ]]; then
  log "already built: $BIN"
  echo "$BIN"
  exit 0
fi

# 1. The sdist (source only, no wheel, no dependencies).
SDIST=$(ls "$CACHE"/sdist/llama_cpp_python-*.tar.gz 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z "$SDIST" ]]; then
  log "downloading the $SPEC sdist"
  # `--no-binary llama-cpp-python` rather than `:all:`: pip prepares the
  # sdist's metadata in an isolated build env, and `:all:` would make it
  # compile that env's own requirements (cmake itself) from source.
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python --dest "$CACHE/sdist" "$SPEC" >&2
  SDIST=$(ls "$CACHE"/sdist/llama_cpp_python-*.tar.gz | sort -V | tail -n1)
fi
log "sdist: $SDIST"

# 2. Unpack vendor/llama.cpp only.
SRC="$CACHE/llama.cpp-src"
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  rm -rf "$SRC" "$CACHE/unpack"
  mkdir -p "$CACHE/unpack"
  top=$(basename "$SDIST" .tar.gz)
  tar -xzf "$SDIST" -C "$CACHE/unpack" "$top/vendor/llama.cpp"
  mv "$CACHE/unpack/$top/vendor/llama.cpp" "$SRC"
  rm -rf "$CACHE/unpack"
fi

# 3. cmake (from pip if the system has none).
if ! command -v cmake >/dev/null 2>&1; then
  if [[ ! -x "$CACHE/venv/bin/cmake" ]]; then
    log "installing cmake with pip into $CACHE/venv"
    python3 -m venv "$CACHE/venv" >&2
    "$CACHE/venv/bin/pip" install --quiet cmake >&2
  fi
  export PATH="$CACHE/venv/bin:$PATH"
fi

# 4. Configure and build only the missing targets. The server is built
# without OpenSSL (it only listens on loopback for bench/load.sh) and
# without its web UI's extras; `-DLLAMA_BUILD_SERVER=ON` is what makes the
# `llama-server` target exist at all.
BUILD="$CACHE/llama.cpp-build"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_OPENSSL=OFF \
  -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$BUILD/bin" >&2
log "building: ${MISSING[*]}"
cmake --build "$BUILD" --config Release -j "$JOBS" --target "${MISSING[@]}" >&2
log "built: $BIN"
echo "$BIN"
