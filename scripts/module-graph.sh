#!/usr/bin/env bash
# Prints, for each top-level module under src/, the other top-level modules it
# uses (`crate::X`, `use crate::{X, ...}`; comments and `#[cfg(test)]` code
# left out), then checks the graph for cycles.
# Exits 1 (and prints the cycle) if one module reaches itself, 0 otherwise.
# Usage: scripts/module-graph.sh [SRC_DIR]   (default: src next to this script)
set -euo pipefail
src="${1:-$(cd "$(dirname "$0")/.." && pwd)/src}"
exec python3 - "$src" <<'PY'
import os, re, sys

src = sys.argv[1]
mods = sorted(
    n[:-3] if n.endswith(".rs") else n
    for n in os.listdir(src)
    if (os.path.isdir(os.path.join(src, n)) and os.path.exists(os.path.join(src, n, "mod.rs")))
    or (n.endswith(".rs") and n not in ("lib.rs", "main.rs"))
)
direct = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
grouped = re.compile(r"\bcrate::\{([^}]*)\}")

def files(m):
    d = os.path.join(src, m)
    if os.path.isdir(d):
        for root, _, names in os.walk(d):
            for n in names:
                if n.endswith(".rs"):
                    yield os.path.join(root, n)
    else:
        yield d + ".rs"

def strip_comments(text):
    # Unit tests (`#[cfg(test)]` to the end of the file, where this crate
    # keeps them) may use any module; doc and line comments mention modules
    # in prose and links. Neither is a dependency of the module.
    m = re.search(r"^#\[cfg\(test\)\]", text, flags=re.M)
    if m:
        text = text[: m.start()]
    return re.sub(r"//[^\n]*", "", text)

graph = {}
for m in mods:
    deps = set()
    for f in files(m):
        with open(f, encoding="utf-8") as fh:
            text = strip_comments(fh.read())
        deps.update(direct.findall(text))
        for g in grouped.findall(text):
            deps.update(re.findall(r"^\s*([a-z_][a-z0-9_]*)", p)[0] for p in g.split(",") if p.strip())
    graph[m] = sorted(d for d in deps if d in mods and d != m)

for m in mods:
    print(f"{m:10} -> {', '.join(graph[m]) or '(none)'}")

# Depth-first search for a cycle.
state, stack, cycles = {}, [], []
def visit(m):
    state[m] = "open"
    stack.append(m)
    for d in graph[m]:
        if state.get(d) == "open":
            cycles.append(stack[stack.index(d):] + [d])
        elif d not in state:
            visit(d)
    stack.pop()
    state[m] = "done"
for m in mods:
    if m not in state:
        visit(m)
if cycles:
    for c in cycles:
        print("cycle: " + " -> ".join(c))
    sys.exit(1)
print("no cycle among the top-level modules")
PY
