"""The shape of the code, enforced: the library imports nothing outside itself, imports flow one way (between the
packages, and between modules: no cycles, counting the imports inside functions), and a domain's parts are read in one
place (``pbt.domain``), never looked up by name elsewhere."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pbt", "repro", "baselines", "experiments")
# who may import whom: experiments -> pbt, baselines -> pbt, the application -> everything
ALLOWED = {
    "pbt": {"pbt"},
    "experiments": {"pbt", "experiments"},
    "baselines": {"pbt", "baselines"},
    "repro": set(PACKAGES),
}
LIBRARY_THIRD_PARTY = {"numpy", "scipy"}
# optional extras, imported only where used: Ray by its executor, scikit-learn (and its threadpoolctl) by PB2, pandas
# by the results' DataFrames, and torch by a function task reading back the tensors of a task module that imported it
OPTIONAL_LAZY = {
    ("pbt/ray_executor.py", "ray"),
    ("pbt/pb2.py", "sklearn"),
    ("pbt/pb2.py", "threadpoolctl"),
    ("pbt/results.py", "pandas"),
    ("pbt/function_task.py", "torch"),
}
# Import cycles that are being removed on another branch: delete an entry once its cycle is gone.
DOMAIN_PARTS = {
    "METRIC",
    "PROFILES",
    "Config",
    "make_task",
    "prepare",
    "estimate",
    "extra_results",
    "LOCAL_DATA",
    "COMMANDS",
    "initial_hparams",
    "DOMAIN",
}


def sources(package: str, root: Path = REPO) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def module_name(path: Path, root: Path = REPO) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imports(
    path: Path, top_level_only: bool = False, modules: set[str] = frozenset(), root: Path = REPO
) -> list[tuple[str, bool]]:
    """(module imported, whether at module level) for every import statement in ``path``, those inside functions too;
    a relative import is resolved against ``path``'s package, and ``from package import submodule`` counts as
    importing the submodule when it is one of ``modules``."""
    tree = ast.parse(path.read_text())
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    module_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in module_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..y import z: counted from path's own package
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            names = subs if len(subs) == len(node.names) else [base, *subs]
            found += [(name, id(node) in module_level) for name in names]
    return [(name, top) for name, top in found if top or not top_level_only]


def import_graph(packages: tuple[str, ...], root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports, wherever in it the import stands."""
    paths = {module_name(p, root): p for package in packages for p in sources(package, root)}
    return {
        m: {n for n, _ in imports(p, modules=set(paths), root=root) if n in paths and n != m} for m, p in paths.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The modules of ``graph`` that import each other in a loop: its strongly connected components of two modules or
    more (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        for n in sorted(graph[m]):
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = set(stack[stack.index(m) :])
            del stack[stack.index(m) :]
            if len(component) > 1:
                components.append(component)

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return components


def shortest_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path within ``component`` from its first module back to itself (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    for m in queue:
        for n in sorted(graph[m] & component):
            if n == start:
                return paths[m] + [start]
            if n not in paths:
                paths[n] = paths[m] + [n]
                queue.append(n)
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_the_library_imports_only_itself_the_standard_library_numpy_and_scipy() -> None:
    bad = []
    for path in sources("pbt"):
        rel = str(path.relative_to(REPO))
        for name, top in imports(path):
            root = name.split(".")[0]
            if root == "pbt" or root in sys.stdlib_module_names or root in LIBRARY_THIRD_PARTY or root == "__future__":
                continue
            if (rel, root) in OPTIONAL_LAZY and not top:
                continue
            bad.append(f"{rel} imports {name}")
    assert not bad, bad


def test_imports_flow_one_way_between_the_packages() -> None:
    bad = []
    for package in PACKAGES:
        for path in sources(package):
            for name, _ in imports(path):
                root = name.split(".")[0]
                if root in PACKAGES and root not in ALLOWED[package]:
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, bad


def test_no_import_cycles_between_modules_counting_imports_inside_functions() -> None:
    graph = import_graph(PACKAGES)
    found = import_cycles(graph)
    assert not found, "import cycles: " + "; ".join(
        f"{', '.join(sorted(c))} (one loop: {' -> '.join(shortest_cycle(graph, c))})" for c in found
    )


def test_the_cycle_check_reads_imports_inside_functions_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "app"
    (package / "commands").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "commands" / "__init__.py").write_text("")
    (package / "cli.py").write_text("from app.commands import study\n")
    (package / "commands" / "study.py").write_text("def main():\n    from ..cli import PROG\n")
    (package / "flags.py").write_text("from . import cli\n")
    graph = import_graph(("app",), root=tmp_path)
    assert graph["app.commands.study"] == {"app.cli"} and graph["app.flags"] == {"app.cli"}
    assert import_cycles(graph) == [{"app.cli", "app.commands.study"}]
    assert shortest_cycle(graph, {"app.cli", "app.commands.study"}) == ["app.cli", "app.commands.study", "app.cli"]


def test_domain_parts_are_read_only_by_the_domain_module() -> None:
    bad = []
    for package in (*PACKAGES, "bench"):
        for path in sources(package):
            if path == REPO / "pbt" / "domain.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "getattr"
                    and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in DOMAIN_PARTS
                ):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} getattr(..., {node.args[1].value!r})")
    assert not bad, bad


def test_the_api_words_errors_without_rewriting_the_command_lines_text() -> None:
    """Library errors name settings, which each caller words once (``pbt.errors``): the API no longer turns the
    command line's flags into Python's words with regular expressions."""
    assert not [name for name, _ in imports(REPO / "repro" / "api.py") if name.split(".")[0] in ("re", "regex")]
