"""Fixtures of the conformance suite's own tests (this directory has no __init__.py on purpose:
as a package it would be named `conformance` and shadow the real one)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suite_run import REPO, SuiteRun, collect, suite_command


@pytest.fixture
def run_suite(tmp_path: Path):
    def run(*args: str, timeout: float = 600) -> SuiteRun:
        report = tmp_path / f"report-{len(list(tmp_path.iterdir()))}"
        done = subprocess.run(suite_command(report, *args), cwd=REPO, capture_output=True, text=True, timeout=timeout)
        return collect(done, report)

    return run
