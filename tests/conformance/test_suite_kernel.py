"""The kernel-tier runner against a fake agent (tests/conformance/fakes/fake_agent.py), on any
host with a Docker daemon and a `busybox:latest` image (skipped otherwise; see
docs/scenarios.md for the two-command setup)."""

from __future__ import annotations

import pytest

from suite_run import FIXTURES


def _docker_ready() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get("busybox:latest")
    except Exception as error:  # noqa: BLE001 - any failure means: no usable Docker here
        return f"needs a Docker daemon with busybox:latest ({type(error).__name__})"
    return None


REASON = _docker_ready()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
ADAPTERS = FIXTURES / "adapters"


@pytest.mark.parametrize("adapter", ["fake-ndjson.yaml", "fake-es.yaml"])
def test_kernel_scenario_passes_against_a_conforming_fake(run_suite, adapter: str) -> None:
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / adapter),
                    "--scenarios", str(FIXTURES / "kernel"))
    assert run.outcomes == {"fx-kernel-exec-events[kernel]": "passed"}, run.output
    assert run.returncode == 0


def test_kernel_failure_is_a_readable_diff(run_suite) -> None:
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-ndjson.yaml"),
                    "--scenarios", str(FIXTURES / "kernel-bad"), "--event-timeout", "3")
    assert run.outcomes == {"fx-kernel-wrong[kernel]": "failed"}, run.output
    out = run.output
    # steps: exit code and "blocked" judged; located at the step's line
    assert "fx-kernel-wrong.yaml:15:5: `echo two` in web: expected exit 3, got 0" in out
    assert "fx-kernel-wrong.yaml:16:5: `echo three` in web: expected the command to be blocked" in out
    # events: per-field expected vs actual, the extra event, the missing stream
    assert "stream logs-cloud_defend.process-default: expected 2 event(s), got 3 (1 matched)" in out
    assert "event.action: expected 'fork', got 'exec'" in out
    assert "unexpected extra event #2:" in out and "'echo three'" in out
    assert "stream logs-cloud_defend.alerts-default: expected 1 event(s), got 0" in out
    # files: state checks
    assert "web:/bin/sh: expected absent, but it exists" in out
    assert "web:/nonexistent: expected present, but it does not exist" in out


def test_command_adapter_engine_tier_and_kernel_tier_together(run_suite) -> None:
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-ndjson.yaml"),
                    "--scenarios", str(FIXTURES / "kernel"), "--scenarios", str(FIXTURES / "engine"))
    assert set(run.outcomes.values()) == {"passed"}, run.output
    assert len(run.outcomes) == 8


def test_leaves_no_containers_or_volumes_behind(run_suite) -> None:
    import docker

    client = docker.from_env()
    label = "d4c.conformance/scenario"
    before = ({c.id for c in client.containers.list(all=True, filters={"label": label})},
              {v.id for v in client.volumes.list(filters={"label": label})})
    run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-ndjson.yaml"),
              "--scenarios", str(FIXTURES / "kernel-bad"), "--event-timeout", "1")
    after = ({c.id for c in client.containers.list(all=True, filters={"label": label})},
             {v.id for v in client.volumes.list(filters={"label": label})})
    assert after == before


def test_load_policy_adapter_keeps_one_agent_and_swaps_policies(run_suite) -> None:
    # fx-reload-log expects the process stream only, fx-reload-alert the alerts stream only:
    # both pass only if each scenario's policy was loaded into the one running agent.
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-reload.yaml"),
                    "--scenarios", str(FIXTURES / "kernel-reload"), "--scenarios", str(FIXTURES / "kernel"))
    assert run.outcomes == {"fx-reload-alert[kernel]": "passed", "fx-reload-log[kernel]": "passed",
                            "fx-kernel-exec-events[kernel]": "passed"}, run.output


def test_confirmed_loads_keep_one_agent(run_suite) -> None:
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-confirm.yaml"),
                    "--scenarios", str(FIXTURES / "kernel-reload"), "--scenarios", str(FIXTURES / "kernel"))
    assert set(run.outcomes.values()) == {"passed"} and len(run.outcomes) == 3, run.output
    assert "the agent was restarted" not in run.output


def test_agent_dir_keeps_the_agent_for_the_next_run(run_suite, tmp_path) -> None:
    # `d4c scenario run`'s loop: the second run adopts the agent the first one left running.
    import os

    agent_dir = tmp_path / "agent"
    args = ("--target", "command", "--adapter", str(ADAPTERS / "fake-confirm.yaml"), "--agent-dir", str(agent_dir))
    first = run_suite(*args, "--scenarios", str(FIXTURES / "kernel-reload" / "fx-reload-log.yaml"))
    assert first.outcomes == {"fx-reload-log[kernel]": "passed"}, first.output
    pid = int((agent_dir / "agent.pid").read_text())
    try:
        os.kill(pid, 0)  # still running after the run
        second = run_suite(*args, "--scenarios", str(FIXTURES / "kernel-reload" / "fx-reload-alert.yaml"))
        assert second.outcomes == {"fx-reload-alert[kernel]": "passed"}, second.output
        assert int((agent_dir / "agent.pid").read_text()) == pid  # the same agent, not a new one
    finally:
        os.kill(pid, 15)


def test_unconfirmed_loads_fall_back_to_an_agent_per_scenario(run_suite) -> None:
    # The per-worker agent never confirms a load: each scenario gets an agent started with its
    # policy instead (fx-reload-* pass only if their own policy enforced), and the summary says so.
    run = run_suite("--target", "command", "--adapter", str(ADAPTERS / "fake-unconfirmed.yaml"),
                    "--scenarios", str(FIXTURES / "kernel-reload"))
    assert run.outcomes == {"fx-reload-alert[kernel]": "passed", "fx-reload-log[kernel]": "passed"}, run.output
    assert "kernel tier: the agent was restarted for" in run.output
    assert "fx-reload-log: policy not confirmed" in run.output


def test_agent_that_dies_at_startup_fails_the_item_with_its_log(run_suite, tmp_path) -> None:
    adapter = tmp_path / "dying.yaml"
    adapter.write_text(
        "name: dying\n"
        "agent:\n"
        "  start: [sh, -c, 'echo cannot attach BPF program; exit 3']\n"
        "  ready: {path: '{workdir}/ready', timeout: 20}\n"
        "  requires_bpf_lsm: false\n"
        "events: {ndjson: '{events_dir}/{data_stream}.ndjson'}\n")
    run = run_suite("--target", "command", "--adapter", str(adapter), "--scenarios", str(FIXTURES / "kernel"))
    assert run.outcomes == {"fx-kernel-exec-events[kernel]": "failed"}
    assert "the agent could not be started: agent exited with 3 during startup" in run.output
    assert "cannot attach BPF program" in run.output
