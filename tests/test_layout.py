"""The shape of the code, enforced: the library imports nothing outside itself, imports flow one way, and a domain's
parts are read in one place (``pbt.domain``), never looked up by name elsewhere."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pbt", "repro", "baselines", "experiments")
# who may import whom: experiments -> pbt, baselines -> pbt, the application -> everything
ALLOWED = {"pbt": {"pbt"}, "experiments": {"pbt", "experiments"}, "baselines": {"pbt", "baselines"},
           "repro": set(PACKAGES)}
LIBRARY_THIRD_PARTY = {"numpy", "scipy"}
# optional extras, imported only where used: Ray by its executor, scikit-learn (and its threadpoolctl) by PB2
OPTIONAL_LAZY = {("pbt/ray_executor.py", "ray"), ("pbt/pb2.py", "sklearn"), ("pbt/pb2.py", "threadpoolctl")}
DOMAIN_PARTS = {"METRIC", "PROFILES", "Config", "make_task", "prepare", "estimate", "extra_results", "LOCAL_DATA",
                "COMMANDS", "initial_hparams", "DOMAIN"}


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def imports(path: Path, top_level_only: bool = False, modules: set[str] = frozenset()) -> list[tuple[str, bool]]:
    """(module imported, whether at module level) for every import statement in ``path``; ``from package import
    submodule`` counts as importing the submodule when it is one of ``modules``."""
    tree = ast.parse(path.read_text())
    found = []
    module_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in module_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            names = subs if len(subs) == len(node.names) else [node.module, *subs]
            found += [(name, id(node) in module_level) for name in names]
    return [(name, top) for name, top in found if top or not top_level_only]


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


def test_no_import_cycles_between_modules() -> None:
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for package in PACKAGES for p in sources(package)}
    graph = {m: {n for n, top in imports(p, modules=set(modules)) if top and n in modules and n != m}
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path[path.index(n):] + [n] if n in path
                                                                     else path + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_domain_parts_are_read_only_by_the_domain_module() -> None:
    bad = []
    for package in (*PACKAGES, "bench"):
        for path in sources(package):
            if path == REPO / "pbt" / "domain.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                        and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                        and node.args[1].value in DOMAIN_PARTS):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} getattr(..., {node.args[1].value!r})")
    assert not bad, bad


def test_the_api_words_errors_without_rewriting_the_command_lines_text() -> None:
    """Library errors name settings, which each caller words once (``pbt.errors``): the API no longer turns the
    command line's flags into Python's words with regular expressions."""
    assert not [name for name, _ in imports(REPO / "repro" / "api.py") if name.split(".")[0] in ("re", "regex")]
