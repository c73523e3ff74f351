"""`requires.kernel`: a scenario whose steps need a newer Linux than the node's is skipped with
the reason, not failed; a malformed requirement is a lint error at its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance import loader, runner
from conformance.probe import kernel_too_old
from conformance.targets import Target
from suite_run import REPO

SCENARIO = """\
id: {id}
title: t
spec: [D29]
policy: {{file: {{selectors: [{{name: a, operation: [createFile]}}], responses: [{{match: [a], actions: [log]}}]}}}}
{requires}
containers: [{{name: c, image: busybox}}]
steps: [{{container: c, run: 'true'}}]
"""


def write(tmp_path: Path, name: str, requires: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(id=name, requires=requires))
    return path


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "d4c", "scenario", "lint", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("release, required, skipped", [
    ("5.10.0-32-amd64", (5, 19), True),
    ("5.19.0", (5, 19), False),
    ("6.1.0-40-amd64", (5, 19), False),
    ("7.2.13+deb14-amd64", (7, 10), True),
    ("10.0.1", (7, 10), False),  # compared as numbers, not as text
    ("5.10.0", None, False),
])
def test_the_node_kernel_is_compared_by_number(release: str, required, skipped: bool) -> None:
    reason = kernel_too_old(required, release)
    assert (reason is not None) is skipped
    if skipped:
        assert f"{required[0]}.{required[1]} or later" in reason and release in reason


def test_a_scenario_needing_a_newer_kernel_is_skipped_before_any_container(tmp_path: Path) -> None:
    scenario = loader.load(write(tmp_path, "needs-future", 'requires: {kernel: "99.0"}'))
    assert scenario.min_kernel == (99, 0)

    class ReadyTarget(Target):  # a kernel tier that is available: only the requirement can skip
        name = "ready"

        def evaluate(self, policy_text, policy_file, operations):
            raise AssertionError("not the engine tier")

    # The session is never touched: no Docker, no agent, no container for a skipped scenario.
    with pytest.raises(runner.Skip, match=r"needs Linux 99\.0 or later \(requires\.kernel\); this node runs "):
        runner.run_kernel(scenario, ReadyTarget(), session=None)  # type: ignore[arg-type]


def test_a_met_requirement_does_not_skip(tmp_path: Path) -> None:
    scenario = loader.load(write(tmp_path, "needs-old", 'requires: {kernel: "2.6"}'))
    assert kernel_too_old(scenario.min_kernel) is None


@pytest.mark.parametrize("requires, expected", [
    ("requires: {kernel: 5.19}", "requires.kernel: 5.19 is not of type 'string'"),
    ('requires: {kernel: "5"}', "requires.kernel: '5' does not match"),
    ('requires: {kernal: "5.19"}', "requires.kernal: unknown key"),
])
def test_a_malformed_requirement_is_a_lint_error_at_its_line(tmp_path: Path, requires: str, expected: str) -> None:
    done = lint(write(tmp_path, "bad-requires", requires))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "bad-requires.yaml:5:" in done.stdout and expected in done.stdout, done.stdout


def test_the_library_marks_io_uring_setxattr_as_a_5_19_mechanism() -> None:
    scenario = loader.load(REPO / "scenarios/evasion/evasion-xattr-acl-io-uring.yaml")
    assert scenario.min_kernel == (5, 19)
