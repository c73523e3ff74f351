"""The package structure holds: no module of the agent or the suite imports one that imports it
back (directly or round a loop), and each of them imports in a fresh interpreter on its own and
in any order. The graph counts every import statement wherever it stands (inside a function, or
under TYPE_CHECKING), so moving an import into a function cannot hide a cycle."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("reference_agent", "conformance", "d4c", "d4c_yaml")
# Importing a `__main__` runs its command line: it is a program, not a module.
PROGRAMS = {"__main__"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of PACKAGES."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] in PROGRAMS:
                continue
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may load (a `from m import n` may load m.n)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules its import statements execute. Importing `a.b.c`
    executes `a` and `a.b` too; a module's own parent packages are left out, since importing
    the module has run them already (a package that imports its submodules is no cycle)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(module, is_package, node):
                parts = target.split(".")
                for end in range(1, len(parts) + 1):
                    name = ".".join(parts[:end])
                    if name in files and name != module and not module.startswith(name + "."):
                        deps.add(name)
        graph[module] = deps
    return graph


def test_the_graph_sees_function_level_and_type_checking_imports(tmp_path, monkeypatch):
    """The walk would miss a cycle hidden in a function or under TYPE_CHECKING, if it did not
    read those imports: shown on a small package built for it."""
    package = tmp_path / "reference_agent"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from reference_agent import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("reference_agent",))
    graph = import_graph()
    assert graph["reference_agent.a"] == {"reference_agent.b"}
    assert graph["reference_agent.b"] == {"reference_agent.a"}
    with pytest.raises(CycleError):
        TopologicalSorter(graph).prepare()


def test_no_import_cycles():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))


def _imports_of(package: str) -> dict[str, list[str]]:
    return {module: sorted(deps) for module, deps in import_graph().items()
            if module == package or module.startswith(package + ".")}


def test_the_kernel_side_reads_neither_metadata_nor_the_process_table():
    """The kernel side loads programs, fills maps and decodes records; what it needs of the
    node it reads through reference_agent.system, like every other layer."""
    offenders = {module: [d for d in deps if d.startswith(("reference_agent.metadata", "reference_agent.processes"))]
                 for module, deps in _imports_of("reference_agent.kernel").items()}
    assert {module: deps for module, deps in offenders.items() if deps} == {}


def test_the_system_readers_import_nothing_else_of_the_agent():
    offenders = {module: [d for d in deps if not d.startswith("reference_agent.system")]
                 for module, deps in _imports_of("reference_agent.system").items()}
    assert {module: deps for module, deps in offenders.items() if deps} == {}


def _import_in_fresh_interpreter(modules: list[str]) -> subprocess.CompletedProcess[str]:
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    return subprocess.run([sys.executable, "-c", code, *modules], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_every_module_imports_on_its_own():
    failed = {}
    for module in module_files():
        done = _import_in_fresh_interpreter([module])
        if done.returncode != 0:
            failed[module] = done.stderr.strip().splitlines()[-1:]
    assert failed == {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_all_modules_import_in_a_shuffled_order(seed):
    modules = sorted(module_files())
    random.Random(seed).shuffle(modules)
    done = _import_in_fresh_interpreter(modules)
    assert done.returncode == 0, f"order {modules}:\n{done.stderr}"
