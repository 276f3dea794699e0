#!/usr/bin/env python3
"""Finds import cycles between the modules of each crate in the workspace.

A module is a source file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`; the crate root is
`crate`). A module depends on another when its code (inline `#[cfg(test)] mod tests` blocks
excluded) names a path into it: `crate::a::b::Item`, `super::x`, `self::x`, or a child module
it declares and uses. A path is charged to the longest module it starts with, so using an
item through a re-export depends on the re-exporting module. Prints each cycle found and
exits 1 if there is any.

    scripts/module-cycles.py [CRATE_SRC_DIR...]   (default: every crates/*/src)
"""
import pathlib
import re
import sys


def module_of(src: pathlib.Path, f: pathlib.Path) -> tuple:
    parts = list(f.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod name { ... }` blocks (brace matched) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def paths_in(text: str):
    """Yields each path expression (with `use` groups expanded one level)."""
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        tree = re.sub(r"\s+", "", m.group(1))
        g = re.match(r"^(.*?)::\{(.*)\}$", tree)
        if g:
            depth, cur, items = 0, "", []
            for c in g.group(2):
                if c == "," and depth == 0:
                    items.append(cur)
                    cur = ""
                    continue
                depth += {"{": 1, "}": -1}.get(c, 0)
                cur += c
            items.append(cur)
            for it in items:
                if it and it != "self":
                    yield g.group(1) + "::" + it.split("::{")[0]
                else:
                    yield g.group(1)
        else:
            yield tree
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        yield m.group(1)
    # Child modules declared here and named in code (`child::item`).
    for child in re.findall(r"\bmod\s+(\w+)\s*;", text):
        for m in re.finditer(r"(?<![\w:])(" + child + r"(?:::\w+)+)", text):
            yield m.group(1)


def resolve(path: str, here: tuple, modules: set):
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    else:
        base, rest = here, segs  # a child module used by name
    best = None
    for n in range(len(rest) + 1):
        cand = base + tuple(rest[:n])
        if cand in modules:
            best = cand
    if best is None or best == here:
        return None
    # A name not starting with crate/super/self counts only when it is a child module.
    if segs and segs[0] not in ("crate", "super", "self") and best == base:
        return None
    return best


def cycles(graph: dict):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    srcs = [pathlib.Path(a) for a in sys.argv[1:]] or sorted(root.glob("crates/*/src"))
    bad = 0
    for src in srcs:
        files = sorted(src.rglob("*.rs"))
        mods = {module_of(src, f): f for f in files}
        graph = {}
        for m, f in mods.items():
            text = strip_tests(f.read_text())
            deps = graph.setdefault(m, set())
            for p in paths_in(text):
                d = resolve(p, m, set(mods))
                if d is not None:
                    deps.add(d)
        found = cycles(graph)
        name = src.parent.name
        for comp in found:
            bad += 1
            shown = ", ".join("::".join(("crate",) + c) for c in sorted(comp))
            print(f"{name}: cycle among {shown}")
        print(f"{name}: {len(mods)} modules, {sum(len(d) for d in graph.values())} dependencies, {len(found)} cycles")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
