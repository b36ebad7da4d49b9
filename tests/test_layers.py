"""The package's layering, checked from the source (as test_cold_imports checks start-up cost).

    cli, commands/*  →  core (gate, checklist, suite, channels, manifest, replay, report, …)  →  edges
                                                                                   (engines, GitHub client)

- no import cycles between modules (a package's __init__ re-exporting a submodule counts);
- no command imports `releasectl.cli` or another command, and nothing below imports a command;
- an edge imports only the foundation (errors, the manifest, contracts, fsutil, safeio, retry,
  console) and its own package.
Imports are read with `ast`, including those inside functions (the lazy ones are still edges).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "releasectl"
EDGES = ("releasectl.replay.engines", "releasectl.github")
FOUNDATION = (
    "releasectl.errors",
    "releasectl.fsutil",
    "releasectl.safeio",
    "releasectl.retry",
    "releasectl.console",
    "releasectl.manifest",  # the pins an edge maps: models, loading, digests, local artifacts
    "releasectl.contracts",
    "releasectl.report.limits",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from pkg import sub` depends on the module pkg.sub; `from pkg import name`, on pkg.
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in files]
                candidates = subs if len(subs) == len(node.names) else [mod, *subs]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in files and c != name}
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_commands_import_neither_the_cli_nor_each_other():
    graph = import_graph()
    bad = {
        name: sorted(
            t
            for t in targets
            if t == "releasectl.cli" or (within(t, ("releasectl.commands",)) and t != "releasectl.commands")
        )
        for name, targets in graph.items()
        if within(name, ("releasectl.commands",))
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_nothing_below_the_commands_imports_them():
    graph = import_graph()
    bad = {
        name: sorted(t for t in targets if within(t, ("releasectl.commands", "releasectl.cli")))
        for name, targets in graph.items()
        if not within(name, ("releasectl.commands", "releasectl.cli", "releasectl.__main__"))
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_edges_import_only_the_foundation_and_themselves():
    graph = import_graph()
    bad = {}
    for name, targets in graph.items():
        edge = next((e for e in EDGES if within(name, (e,))), None)
        if edge is None:
            continue
        # `releasectl` itself (its __init__: the version) is foundation too.
        wrong = sorted(t for t in targets if t != "releasectl" and not within(t, (edge, *FOUNDATION)))
        if wrong:
            bad[name] = wrong
    assert bad == {}
