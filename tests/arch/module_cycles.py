#!/usr/bin/env python3
"""Reports import cycles between the server's top-level modules (src/<module>/ or src/<module>.rs).

A module depends on another when any of its non-test files names `crate::<other>` (in a `use` or
a path). Prints each strongly connected component of more than one module, with its edges;
exits 1 if there is any. Step 0 of tests/run-all.sh.

    tests/arch/module_cycles.py            # from the repository root
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def graph() -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for path in SRC.rglob("*.rs"):
        if path.parent == SRC and path.name in ("lib.rs", "main.rs", "testing.rs"):
            continue
        if path.name == "tests.rs":
            continue  # unit tests may reach anywhere
        me = module_of(path)
        text = path.read_text()
        text = text.split("#[cfg(test)]\nmod tests", 1)[0]
        text = re.sub(r"//[^\n]*", "", text)
        deps.setdefault(me, set())
        for other in set(REF.findall(text)):
            is_module = (SRC / other).is_dir() or (SRC / f"{other}.rs").exists()
            if other != me and is_module:
                deps[me].add(other)
    return deps


def components(deps: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    deps = graph()
    cycles = components(deps)
    for comp in cycles:
        edges = [f"{a} -> {b}" for a in comp for b in sorted(deps[a]) if b in comp]
        print(f"module cycle: {', '.join(comp)}")
        for e in edges:
            print(f"    {e}")
    if not cycles:
        print(f"module_cycles: no cycle among {len(deps)} top-level modules")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
