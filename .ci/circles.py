#!/usr/bin/env python3
"""Import circles between the files of a crate's `src`: every `crate::` or
`super::` path in code (not in comments; `pub use` re-exports are not
imports), resolved to the file defining what it names. Prints each circle
and exits non-zero if there is one.

    python3 .ci/circles.py stackholm/src
"""
import re, sys, pathlib
src = pathlib.Path(sys.argv[1])
files = {}
for p in src.rglob("*.rs"):
    rel = p.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    files["::".join(parts)] = p
# item -> defining module
defs = {}
for mod, p in files.items():
    t = p.read_text()
    t = t.split("#[cfg(test)]\nmod tests")[0]
    for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const fn|fn|struct|enum|trait|type|const|static|macro_rules!)\s+(\w+)", t, re.M):
        defs.setdefault(m.group(1), mod)
def resolve(base, segs):
    # walk module path as far as files exist; then item name
    cur = base
    for i, s in enumerate(segs):
        nxt = (cur + "::" + s) if cur else s
        if nxt in files:
            cur = nxt
            continue
        if s in defs:
            return defs[s]
        return cur
    return cur
edges = set()
for mod, p in files.items():
    t = p.read_text().split("#[cfg(test)]\nmod tests")[0]
    t = re.sub(r"//.*", "", t)
    parent = "::".join(mod.split("::")[:-1]) if mod else ""
    # strip pub use lines
    body = re.sub(r"^\s*pub(?:\([^)]*\))? use [^;]*;", "", t, flags=re.M)
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)(?:::\{([^}]*)\})?", body):
        kind, path, group = m.groups()
        segs = [s for s in path.split("::") if s]
        base = "" if kind == "crate" else parent
        names = [g.strip().split(" as ")[0].split("::") for g in group.split(",")] if group else [[]]
        for extra in names:
            extra = [e for e in extra if e and e != "self"]
            tgt = resolve(base, segs + extra)
            if tgt != mod and tgt in files:
                edges.add((mod or "lib", tgt or "lib"))
# drop edges into lib (crate root re-exports)
graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)
if "-v" in sys.argv:
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
seen = set(); cycles = []
def dfs(n, stack):
    for m in sorted(graph.get(n, ())):
        if m in stack:
            cyc = stack[stack.index(m):] + [m]
            key = frozenset(cyc)
            if key not in seen:
                seen.add(key); cycles.append(cyc)
        elif len(stack) < 12:
            dfs(m, stack + [m])
for n in sorted(graph):
    dfs(n, [n])
for c in cycles:
    print("CYCLE:", " -> ".join(c))
print(f"{src}: {len(cycles)} import circle(s)")
sys.exit(1 if cycles else 0)
