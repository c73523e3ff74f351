"""`pytest conformance/` as users run it: targets, selection, invalid scenarios, xdist, report."""

from __future__ import annotations

import re
import subprocess
import sys

from conformance import catalog
from suite_run import FIXTURES, REPO

ENGINE = str(FIXTURES / "engine")
KERNEL = str(FIXTURES / "kernel")
ENGINE_IDS = {p.stem for p in (FIXTURES / "engine").glob("*.yaml")}


def test_engine_target_runs_engine_tier_and_skips_kernel_with_reason(run_suite) -> None:
    run = run_suite("--target", "engine", "--scenarios", ENGINE, "--scenarios", KERNEL, "-rs")
    assert run.ids("passed", "engine") == ENGINE_IDS
    assert run.ids("skipped", "kernel") == {"fx-kernel-exec-events"}
    assert "--target engine runs the engine tier only" in run.output
    assert run.returncode == 0


def test_reference_target_in_process(run_suite) -> None:
    run = run_suite("--target", "reference", "--scenarios", ENGINE, "--scenarios", KERNEL, "-rs")
    assert run.ids("passed", "engine") == ENGINE_IDS
    assert run.ids("skipped", "kernel") == {"fx-kernel-exec-events"}
    # on a host without BPF LSM (or without the agent) the reason says which is missing
    assert re.search(r"`d4c agent run` does not exist in this installation|no BPF-LSM kernel", run.output)


def test_select_by_marker_tier_and_keyword(run_suite) -> None:
    assert set(run_suite("--target", "engine", "--scenarios", ENGINE, "-m", "D10").outcomes) == \
        {"fx-labels-all-required[engine]"}
    assert set(run_suite("--target", "engine", "--scenarios", ENGINE, "-m", "D22 and not seed.responses").outcomes) \
        == {"fx-union[engine]"}
    assert set(run_suite("--target", "engine", "--scenarios", ENGINE, "--scenarios", KERNEL, "-m", "kernel",
                         ).outcomes) == {"fx-kernel-exec-events[kernel]"}
    assert set(run_suite("--target", "engine", "--scenarios", ENGINE, "-k", "star").outcomes) == \
        {"fx-star-direct-child[engine]"}
    # a seed condition the policy uses is a marker too (derived, not tagged by hand)
    assert set(run_suite("--target", "engine", "--scenarios", ENGINE, "-m",
                         "seed.conditions.common.orchestratorResourceLabel").outcomes) == {"fx-labels-all-required[engine]"}


def test_invalid_scenario_fails_alone_with_its_lint_message(run_suite) -> None:
    run = run_suite("--target", "engine", "--scenarios", ENGINE, "--scenarios", str(FIXTURES / "lint" / "bad-structure.yaml"))
    assert run.ids("passed") == ENGINE_IDS
    assert "bad-structure.yaml:8:1: surprise: unknown key" in run.output
    assert "invalid scenario" in run.output and run.returncode == 1


def test_wrong_verdict_report_names_operation_and_fields(run_suite) -> None:
    mutant = f"{sys.executable} {FIXTURES.parent / 'mutants' / 'evaluate.py'} ignore-exclude"
    run = run_suite("--target", "engine", "--engine-command", mutant, "--scenarios", ENGINE, "-k", "exclude")
    assert run.ids("failed") == {"fx-exclude-wins"}
    assert "engine tier: 1 of 2 operation(s) got a wrong verdict" in run.output
    assert "fx-exclude-wins.yaml:12:5: operation 'excluded path'" in run.output
    assert "matched_selectors: expected [], got ['binWrites']" in run.output
    assert "actions: expected [], got ['alert', 'block']" in run.output


def test_usage_errors_are_one_line_without_traceback(run_suite, tmp_path) -> None:
    run = run_suite("--target", "command", "--scenarios", ENGINE)
    assert run.returncode == 4 and "--target command needs --adapter FILE" in run.output
    bad = tmp_path / "adapter.yaml"
    bad.write_text("name: x\nagent:\n  start: [x]\n  stop: {signal: NOPE}\nevents: {ndjson: '{events_dir}/{data_stream}'}\n")
    run = run_suite("--target", "command", "--adapter", str(bad), "--scenarios", ENGINE)
    assert run.returncode == 4 and f"{bad}:4:10: agent.stop.signal: unknown signal 'NOPE'" in run.output
    assert "Traceback" not in run.output
    run = run_suite("--target", "engine", "--engine-command", "/nonexistent/d4c", "--scenarios", ENGINE, "-k", "union")
    assert run.ids("failed") == {"fx-union"} and "command not found: /nonexistent/d4c" in run.output


def test_xdist_gives_the_same_outcomes(run_suite) -> None:
    mutant = f"{sys.executable} {FIXTURES.parent / 'mutants' / 'evaluate.py'} labels-or"
    args = ("--target", "engine", "--engine-command", mutant, "--scenarios", ENGINE, "--scenarios", KERNEL)
    serial = run_suite(*args)
    parallel = run_suite(*args, "-n", "2")
    assert parallel.outcomes == serial.outcomes and len(serial.outcomes) == len(ENGINE_IDS) + 1
    assert serial.ids("failed") == {"fx-labels-all-required"}


def test_report_lists_every_clause_with_pinning_scenarios(run_suite, tmp_path) -> None:
    run = run_suite("--target", "engine", "--scenarios", ENGINE, "--scenarios", KERNEL)
    report_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("report-"))
    md = (report_dir / "conformance.md").read_text()
    html = (report_dir / "conformance.html").read_text()
    for number in range(1, 28):
        assert re.search(rf"^\| D{number} \|", md, re.M), f"D{number} missing"
        assert f"<td>D{number}</td>" in html
    for group, names in catalog.SEED_CONDITIONS.items():
        for name in names:
            assert f"| seed.conditions.{group}.{name} |" in md
    assert re.search(r"^\| D10 \| .* \| fx-labels-all-required \| pass 1 \|$", md, re.M)
    assert re.search(r"^\| D20 \| .* \| fx-kernel-exec-events \| skip 1 \|$", md, re.M)
    assert re.search(r"^\| D2 \| .* \| \*\*UNPINNED\*\* \| — \|$", md, re.M)
    assert "Clauses pinned by no scenario: D1, D2," in md
    assert run.returncode == 0


def test_plain_pytest_at_the_repo_root_collects_both_trees() -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tests/conformance/test_suite_events.py::" in done.stdout
    assert re.search(r"^scenarios/\S+\.yaml::\S+\[engine\]$", done.stdout, re.M)


def test_allure_labels_feature_is_spec_section_story_is_d_id(run_suite, tmp_path) -> None:
    import json

    allure_dir = tmp_path / "allure"
    run_suite("--target", "engine", "--scenarios", ENGINE, "-k", "union", "--alluredir", str(allure_dir))
    results = [json.loads(p.read_text()) for p in allure_dir.glob("*-result.json")]
    assert [r["name"] for r in results] == ["fx-union[engine]"]
    labels = {(label["name"], label["value"]) for label in results[0]["labels"]}
    assert ("story", "D22") in labels
    assert ("feature", "Decisions: Responses and events") in labels
    assert ("tag", "engine") in labels


def test_xdist_runs_all_kernel_items_on_one_worker(run_suite) -> None:
    # One node, one enforcing agent: kernel items are grouped (--dist loadgroup is switched on).
    run = run_suite("--target", "engine", "--scenarios", ENGINE, "--scenarios", KERNEL,
                    "--scenarios", str(FIXTURES / "kernel-reload"), "-n", "2", "-vv")
    workers = set(re.findall(r"^\[(gw\d+)\] .*\[kernel\]@d4c-kernel", run.output, re.M))
    assert len(workers) == 1, run.output
    assert len(re.findall(r"\[kernel\]@d4c-kernel", run.output)) >= 3
    assert run.ids("skipped", "kernel") == {"fx-kernel-exec-events", "fx-reload-log", "fx-reload-alert"}


def test_scenarios_add_to_the_shipped_library_and_library_none_drops_it() -> None:
    def collected(*args: str) -> set[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "conformance/", "--collect-only", "-q",
                               "-p", "no:cacheprovider", "--target", "engine", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return {line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line}

    library = collected()
    both = collected("--scenarios", ENGINE)
    alone = collected("--library", "none", "--scenarios", ENGINE)
    assert "file-create-file[engine]" in library and alone and not alone & library
    assert both == library | alone
