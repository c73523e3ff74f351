"""The suite tests itself: evaluators with one rule broken must fail exactly the scenarios
that pin that rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance import loader
from suite_run import FIXTURES, MUTANT, REPO, collect, suite_command

# mutant -> the fixture scenarios (tests/conformance/fixtures/engine) that pin the broken rule
EXPECTED_FIXTURE_FAILURES = {
    "none": set(),
    "labels-or": {"fx-labels-all-required"},
    "ignore-exclude": {"fx-exclude-wins"},
    "star-crosses-slash": {"fx-star-direct-child"},
    "volumes-not-ignored": {"fx-volume-ignored"},
    "host-processes-match": {"fx-host-never"},
    "first-response-only": {"fx-union"},
}

# mutant -> spec clauses of the broken rule: a library scenario that fails must pin one of them
RULE_TAGS = {
    "labels-or": {"D10", "D14", "seed.conditions.common.orchestratorResourceLabel"},
    "ignore-exclude": {"D22", "D7", "seed.responses"},
    "star-crosses-slash": {"D11", "seed.conditions.file.targetFilePath", "seed.conditions.process.processExecutable",
                           "seed.conditions.process.sessionLeaderExecutable"},
    "volumes-not-ignored": {"D19", "seed.conditions.file.ignoreVolumeMounts", "seed.conditions.file.ignoreVolumeFiles"},
    "host-processes-match": {"D15"},
    "first-response-only": {"D22", "seed.responses"},
}


def run_mutants(tmp: Path, scenarios: Path, mutants: list[str]) -> dict[str, object]:
    """All mutants at once (each run is a separate `pytest conformance/` process)."""
    running = {}
    for mutant in mutants:
        report = tmp / mutant
        command = suite_command(report, "--target", "engine", "-m", "engine", "--scenarios", str(scenarios),
                                "--engine-command", f"{sys.executable} {MUTANT} {mutant}")
        running[mutant] = (subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True), report)
    runs = {}
    for mutant, (process, report) in running.items():
        output, _ = process.communicate(timeout=900)
        runs[mutant] = collect(subprocess.CompletedProcess(process.args, process.returncode, output, ""), report)
    return runs


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory: pytest.TempPathFactory):
    return run_mutants(tmp_path_factory.mktemp("fixtures"), FIXTURES / "engine", list(EXPECTED_FIXTURE_FAILURES))


@pytest.fixture(scope="module")
def library_runs(tmp_path_factory: pytest.TempPathFactory):
    return run_mutants(tmp_path_factory.mktemp("library"), REPO / "scenarios", list(RULE_TAGS))


@pytest.mark.parametrize("mutant", sorted(EXPECTED_FIXTURE_FAILURES))
def test_mutant_fails_exactly_the_scenarios_pinning_its_rule(fixture_runs, mutant: str) -> None:
    run = fixture_runs[mutant]
    assert run.outcomes, run.output
    assert run.ids("failed") == EXPECTED_FIXTURE_FAILURES[mutant], run.output
    assert run.ids("skipped") == set(), run.output
    assert (run.returncode == 0) == (not EXPECTED_FIXTURE_FAILURES[mutant]), run.output


@pytest.mark.parametrize("mutant", sorted(RULE_TAGS))
def test_library_catches_mutant_only_through_scenarios_of_its_rule(library_runs, mutant: str) -> None:
    run = library_runs[mutant]
    failed = run.ids("failed")
    assert failed, f"no scenario in scenarios/ catches the {mutant} mutant (rule {sorted(RULE_TAGS[mutant])})"
    tags = {}
    for path in loader.discover([REPO / "scenarios"]):
        try:
            scenario = loader.load(path)
        except loader.ScenarioError:
            continue
        tags[scenario.id] = set(loader.all_tags(scenario))
    strays = {sid for sid in failed if not tags.get(sid, set()) & RULE_TAGS[mutant]}
    assert not strays, f"{mutant}: these failing scenarios do not pin {sorted(RULE_TAGS[mutant])}: {sorted(strays)}"
