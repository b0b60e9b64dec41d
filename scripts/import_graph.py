"""The project's import graph: package arrows, layering rules, module cycles and lines per package.

``python scripts/import_graph.py [--dot FILE]`` prints the package graph (every import,
lazy ones inside functions included), the lines of Python per package and every
violation of the layering the folders promise; exit status 1 when there is one.

The layering (docs/verification.md, "Layout"): ``contract`` <- ``protocol`` <- ``hw`` <-
``sim`` <- ``host``, ``golden`` on the side importing ``contract`` only. torch belongs to
the training side (``golden``) alone, Amaranth to the RTL and its simulation (``hw``,
``sim``), cocotb to ``sim``. No module imports itself back through a cycle of module-level
imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Project packages in flow order, and which project packages each may import.
ALLOWED: dict[str, frozenset[str]] = {
    "contract": frozenset({"contract"}),
    "golden": frozenset({"golden", "contract"}),
    "protocol": frozenset({"protocol", "contract"}),
    "hw": frozenset({"hw", "protocol", "contract"}),
    "sim": frozenset({"sim", "hw", "protocol", "contract"}),
    "host": frozenset({"host", "sim", "protocol", "contract"}),
}
PACKAGES = tuple(ALLOWED)

#: Third-party packages confined to some project packages.
CONFINED: dict[str, frozenset[str]] = {
    "torch": frozenset({"golden"}),
    "torchvision": frozenset({"golden"}),
    "amaranth": frozenset({"hw", "sim"}),
    "cocotb": frozenset({"sim"}),
    "cocotb_tools": frozenset({"sim"}),
    "cocotbext": frozenset({"sim"}),
}


@dataclass(frozen=True)
class Import:
    """One import statement: ``source`` module imports ``target`` (a module or package)."""

    source: str
    target: str
    line: int
    top_level: bool  # runs when ``source`` is imported (not in a function, TYPE_CHECKING or __main__)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _not_at_import(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":`` bodies do not run on import."""
    test = ast.unparse(node.test)
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING", "__name__ == '__main__'")


def _walk(node: ast.AST, top_level: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _not_at_import(child):
            yield from _walk(child, False)
        else:
            yield child, top_level
            yield from _walk(child, top_level)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import in the module ``name`` (file ``path``), relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, top_level in _walk(ast.parse(path.read_text(), str(path)), True):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno, top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from pkg import mod`` imports the submodule too.
            targets = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]
            found += [Import(name, t, node.lineno, top_level) for t in targets or [module]]
    return found


def all_imports(root: Path = ROOT) -> list[Import]:
    known = modules(root)
    return [imp for name, path in known.items() for imp in imports_of(name, path, known)]


def violations(imports: list[Import]) -> list[str]:
    """Layering and confinement breaches, then module-level import cycles, as messages."""
    problems = []
    for imp in imports:
        source, target = imp.source.split(".")[0], imp.target.split(".")[0]
        where = f"{imp.source} (line {imp.line}) imports {imp.target}"
        if target in ALLOWED and target not in ALLOWED[source]:
            problems.append(f"{where}: {source}/ may import only {', '.join(sorted(ALLOWED[source]))}")
        if target in CONFINED and source not in CONFINED[target]:
            problems.append(f"{where}: {target} belongs to {', '.join(sorted(CONFINED[target]))} only")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(imports)]
    return problems


def cycles(imports: list[Import]) -> list[list[str]]:
    """Cycles of module-level imports between project modules (one per strongly connected set)."""
    graph: dict[str, set[str]] = defaultdict(set)
    names = {imp.source for imp in imports}
    for imp in imports:
        if imp.top_level and imp.target in names and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(names):
        if node not in index:
            visit(node)
    return found


def package_edges(imports: list[Import]) -> dict[tuple[str, str], int]:
    """``(importer, imported)`` project package -> number of import statements."""
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for imp in imports:
        source, target = imp.source.split(".")[0], imp.target.split(".")[0]
        if target in ALLOWED and source != target:
            edges[source, target] += 1
    return dict(edges)


def lines_per_package(root: Path = ROOT) -> dict[str, int]:
    counts = {p: sum(len(f.read_text().splitlines()) for f in (root / p).rglob("*.py")) for p in PACKAGES}
    for extra in ("tests", "scripts"):
        counts[extra] = sum(len(f.read_text().splitlines()) for f in (root / extra).rglob("*.py"))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", type=Path, help="also write the package graph as Graphviz dot")
    args = parser.parse_args(argv)
    imports = all_imports()
    edges = package_edges(imports)
    print("package imports (importer -> imported: statements)")
    for (source, target), count in sorted(edges.items(), key=lambda e: (PACKAGES.index(e[0][0]), e[0][1])):
        print(f"  {source:9s} -> {target:9s} {count}")
    print("lines of Python per package")
    for package, count in lines_per_package().items():
        print(f"  {package:9s} {count}")
    if args.dot is not None:
        body = "".join(f'  "{s}" -> "{t}" [label={n}];\n' for (s, t), n in sorted(edges.items()))
        args.dot.write_text(f"digraph imports {{\n  rankdir=RL;\n{body}}}\n")
    problems = violations(imports)
    for problem in problems:
        print(f"violation: {problem}")
    print(f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
