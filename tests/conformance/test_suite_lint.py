"""`d4c scenario lint`: every problem at file:line:column, exit codes, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from suite_run import FIXTURES, REPO

LINT = FIXTURES / "lint"


def lint(*paths: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "d4c", "scenario", "lint", *map(str, paths)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, expected", [
    # the policy validator's findings, at the scenario file's own lines
    ("bad-policy.yaml", ["bad-policy.yaml:8:33: policy.file.selectors[0].operation[1]:",
                         "[unknown-operation]",
                         "bad-policy.yaml:11:19: policy.file.responses[0].actions[0]:",
                         "[block-requires-alert]"]),
    # the operation parser's finding, at the offending field's line
    ("bad-operation.yaml", ["bad-operation.yaml:15:14: operations[0].input.file.path: must be an absolute path",
                            "bad-operation.yaml:20:34: operations[1].expect.matched_selectors[0]: the policy has no "
                            "file selector named 'binz'"]),
    ("bad-structure.yaml", ["bad-structure.yaml:1:1: (scenario): 'title' is a required property",
                            "bad-structure.yaml:1:1: id: 'not-the-stem' must equal the file name stem",
                            "bad-structure.yaml:2:8: spec[0]: 'D99x' is neither a decision id",
                            "bad-structure.yaml:7:54: operations[0].expect.verdict: unknown key",
                            "bad-structure.yaml:8:1: surprise: unknown key"]),
    ("bad-yaml.yaml", ["bad-yaml.yaml:3:1: YAML syntax:"]),
    ("bad-references.yaml", ["bad-references.yaml:4:1: policy_file: policy file not found",
                             "bad-references.yaml:7:6: containers[1].name: duplicate container name 'web'",
                             "bad-references.yaml:9:6: steps[0].container: no container named 'db'",
                             "bad-references.yaml:12:8: expect.files[0].container: no container named 'cache'"]),
    ("bad-event-selector.yaml", ["bad-event-selector.yaml:12:72: expect.events.logs-cloud_defend.process-default[0]"
                                 ".cloud_defend.matched_selectors[1]: the policy has no selector named 'nosuch'"]),
    ("policy-file-invalid.yaml", ["policy-file-invalid.yaml:4:1: policy_file: ",
                                  "policies/invalid.yaml:3:13: file.selectors[0].name:", "[bad-name]"]),
])
def test_each_problem_is_reported_at_its_line(name: str, expected: list[str]) -> None:
    done = lint(LINT / name)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    for text in expected:
        assert text in done.stdout, f"{text!r} not in:\n{done.stdout}"


def test_unknown_catalog_tag_is_only_a_warning() -> None:
    done = lint(LINT / "policy-file-invalid.yaml")
    assert "warning: spec[1]: 'seed.made.up' is not in the clause catalog" in done.stdout


def test_policy_directories_are_not_scenarios() -> None:
    done = lint(LINT)
    assert "policies/invalid.yaml:1:1" not in done.stdout
    assert "7 scenario file(s)" in done.stderr


def test_valid_fixtures_pass_and_missing_path_is_a_usage_error() -> None:
    done = lint(FIXTURES / "engine", FIXTURES / "kernel")
    assert done.returncode == 0, done.stdout
    assert done.stdout == ""
    missing = lint(FIXTURES / "nope")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_the_scenario_library_lints_clean() -> None:
    done = lint(REPO / "scenarios")
    assert done.returncode == 0, done.stdout


def test_unquoted_mode_and_user_get_a_hint(tmp_path) -> None:
    scenario = tmp_path / "m.yaml"
    scenario.write_text(
        "id: m\ntitle: t\nspec: [D1]\n"
        "policy: {file: {selectors: [{name: a, operation: [createFile]}], responses: [{match: [a], actions: [log]}]}}\n"
        "containers: [{name: c, image: busybox, user: 1000}]\n"
        "steps: [{container: c, run: 'true'}]\n"
        "expect:\n  files: [{container: c, path: /x, state: present, mode: 0644}]\n")
    done = lint(scenario)
    assert done.returncode == 1
    assert "m.yaml:5:40: containers[0].user: must be a quoted string" in done.stdout
    assert "m.yaml:8:52: expect.files[0].mode: must be a quoted string, e.g. \"0644\"" in done.stdout
    assert "(YAML read 420)" in done.stdout
