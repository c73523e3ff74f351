"""`d4c scenario run`: a spec author's loop over the conformance suite."""

from __future__ import annotations

import subprocess
import sys

from suite_run import FIXTURES, REPO


def d4c(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "d4c", "scenario", "run", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_runs_one_file_with_pytest_outcomes_and_diffs(tmp_path) -> None:
    good = d4c(str(FIXTURES / "engine" / "fx-union.yaml"), "--target", "engine")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "1 passed" in good.stdout
    bad = d4c(str(FIXTURES / "engine" / "fx-union.yaml"), "--target", "engine", "--",
              "--engine-command", f"{sys.executable} {REPO}/tests/conformance/mutants/evaluate.py first-response-only")
    assert bad.returncode == 1
    assert "engine tier: 1 of" in bad.stdout and "actions: expected" in bad.stdout  # the suite's own diff


def test_missing_file_is_one_line_exit_2(tmp_path) -> None:
    done = d4c(str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert done.stderr == f"d4c scenario run: {tmp_path}/nope.yaml: no such file or directory\n"
