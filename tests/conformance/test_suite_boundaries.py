"""The suite judges the reference agent like any implementation: only its adapter imports it."""

from __future__ import annotations

import ast
import subprocess
import sys

from suite_run import REPO

ALLOWED = REPO / "conformance" / "adapters" / "reference.py"


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_reference_adapter_imports_reference_agent() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "conformance").rglob("*.py"))
        if path != ALLOWED and any(m.split(".")[0] == "reference_agent" for m in imported_modules(path))
    ]
    assert offenders == []
    assert any(m.startswith("reference_agent") for m in imported_modules(ALLOWED))


def test_importing_the_suite_does_not_load_the_reference_agent() -> None:
    code = ("import sys, conformance, conformance.plugin, conformance.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('reference_agent')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr
