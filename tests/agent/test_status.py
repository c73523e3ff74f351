"""The agent's own streams: heartbeat (policy in force, block enabled) and metrics (written and
lost per period), the loss log line and the exit summary; every document passes the checker."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import signal

import pytest

from conformance.fields.check import check_document
from reference_agent.activity import FileActivity
from reference_agent.agent import Agent, run_agent
from reference_agent.config import ConfigError, parse_config
from reference_agent.ecs import BootClock
from reference_agent.ecs.common import EventContext
from reference_agent.metadata.containers import ContainerCache
from reference_agent.system.cgroups import cgroup_id_of
from reference_agent.metadata.host import AgentFacts
from reference_agent.status import StatusReporter

from .fakes import FakeDockerClient, FakeKernelBackend
from .test_agent import CID, HOST, POLICY_V1, SEC, task

HEARTBEAT = "metrics-cloud_defend.heartbeat-default"
METRICS = "metrics-cloud_defend.metrics-default"
NO_BLOCK = POLICY_V1.replace("actions: [alert, block]", "actions: [alert]")


def _lines(out, stream):
    path = out / f"{stream}.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def node(tmp_path):
    cgroup = tmp_path / "cgroup"
    (cgroup / "docker" / CID).mkdir(parents=True)
    client = FakeDockerClient()
    client.add(CID, "nginx")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=tmp_path / "proc")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_V1)
    config = parse_config(f"output_dir: {tmp_path / 'out'}\nstate_dir: {tmp_path / 'state'}\n"
                          "package_policy_id: 4c9cbba0-1\npackage_policy_version: 3\n")
    backend = FakeKernelBackend()
    backend.kernel_counters = {"file": {"ringbuf_full": 40, "events": 900, "blocks": 5},
                               "process": {"ringbuf_full": 2, "events": 100}}  # an earlier agent's
    agent = Agent(config, policy, backend, containers=cache, host=HOST,
                  clock=BootClock(boot_wall_ns=1_700_000_000 * SEC, btime_s=1_700_000_000),
                  watch_interval=3600, process_table=False)
    yield agent, backend, policy, tmp_path / "out", cgroup_id_of(cgroup / "docker" / CID)
    agent.close()


def _file_write(cg):
    return FileActivity(operation="createFile", event_action="creation", path="/usr/bin/x", mount="root",
                        selectors=("binDir",),
                        actions=frozenset({"alert", "block"}), blocked=True, task=task(cg), timestamp_ns=SEC,
                        trace_point="lsm__path_mknod")


def test_heartbeat_names_the_policy_in_force_and_passes_the_checker(node):
    agent, backend, policy, out, _cg = node
    agent.start()
    agent.step(0.01)
    [beat] = _lines(out, HEARTBEAT)
    assert beat["cloud_defend"]["block_action_enabled"] is True
    assert beat["d4c"]["policy"]["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert beat["d4c"]["policy"]["generation"] == 1
    assert beat["d4c"]["policy"]["file"] == {"selectors": 1, "responses": 1}
    assert beat["d4c"]["policy"]["process"] == {"selectors": 1, "responses": 1}
    assert beat["cloud_defend"]["package_policy_revision"] == 3
    assert beat["host"]["os"]["kernel"] == "6.1" and beat["agent"]["id"]
    assert beat["event"]["kind"] == "metric" and beat["data_stream"] == {
        "type": "metrics", "dataset": "cloud_defend.heartbeat", "namespace": "default"}
    assert check_document(beat, HEARTBEAT) == []
    agent.step(0.01)
    assert len(_lines(out, HEARTBEAT)) == 1  # the next one is an interval away


def test_a_reload_is_in_the_next_heartbeat(node):
    agent, backend, policy, out, _cg = node
    agent.start()
    agent.step(0.01)
    policy.write_text(NO_BLOCK)
    assert agent.policy.reload().accepted
    agent.step(0.01)
    beats = _lines(out, HEARTBEAT)
    assert [b["d4c"]["policy"]["generation"] for b in beats] == [1, 2]
    assert beats[-1]["cloud_defend"]["block_action_enabled"] is False
    assert beats[-1]["d4c"]["policy"]["sha256"] == hashlib.sha256(NO_BLOCK.encode()).hexdigest()


def test_stopping_writes_a_last_metrics_document_and_the_summary_counts_what_was_lost(node):
    agent, backend, policy, out, cg = node
    agent.start()
    backend.queue.put(_file_write(cg))
    agent.step(0.5)
    backend.kernel_counters["file"].update(ringbuf_full=40 + 7, events=900 + 3, blocks=5 + 1)
    backend.queue.put(_file_write(cg))  # still in the ring buffer at stop: written by close()
    agent.close()
    [metrics] = _lines(out, METRICS)
    d4c = metrics["d4c"]
    assert d4c["events"]["alerts"]["written"] == 2 and d4c["events"]["written"] == 2
    assert d4c["ring_buffer"]["file"] == {"dropped": 7, "records": 3}  # since this agent's start
    assert d4c["ring_buffer"]["process"] == {"dropped": 0, "records": 0}
    assert d4c["events"]["dropped"] == 7 and d4c["kernel"]["blocked"] == 1
    assert metrics["event"]["duration"] >= 0 and metrics["event"]["start"] <= metrics["event"]["end"]
    assert check_document(metrics, METRICS) == []
    assert agent.exit_summary == ("2 event documents written (file 0, process 0, alerts 2), 7 events lost "
                                  "(ring buffer full: file 7, process 0; not written: 0)")


def test_documents_the_disk_refused_are_counted_as_lost(node):
    agent, backend, policy, out, cg = node
    agent.start()
    writes = agent.writer.write

    def full(stream, doc):
        if stream.startswith("logs-"):
            raise OSError(28, "No space left on device")
        writes(stream, doc)

    agent.writer.write = full
    backend.queue.put(_file_write(cg))
    agent.step(0.5)
    agent.close()
    [metrics] = _lines(out, METRICS)
    assert metrics["d4c"]["events"]["not_written"] == 1 and metrics["d4c"]["events"]["dropped"] == 1
    assert "1 events lost (ring buffer full: file 0, process 0; not written: 1)" in agent.exit_summary


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reporter(backend, clock, **kwargs):
    ctx = EventContext(host=HOST, agent=AgentFacts(id="a1", version="0.1.0"), clock=BootClock(0, 0))
    return StatusReporter(ctx, backend.counters, monotonic=clock, **kwargs)


def test_each_metrics_document_counts_its_own_period():
    backend, clock = FakeKernelBackend(), _Clock()
    reporter = _reporter(backend, clock, metrics_interval=30)
    clock.now += 29
    assert reporter.tick() == []  # no policy yet: no heartbeat; metrics not due
    backend.kernel_counters["process"]["ringbuf_full"] = 5
    clock.now += 1
    [first] = reporter.tick()
    backend.kernel_counters["process"]["ringbuf_full"] = 6
    clock.now += 30
    [second] = reporter.tick()
    assert first.fields["d4c.ring_buffer.process.dropped"] == 5
    assert second.fields["d4c.ring_buffer.process.dropped"] == 1
    assert reporter.totals().dropped == 6


def test_losses_are_logged_when_there_are_some_and_only_then(caplog):
    backend, clock = FakeKernelBackend(), _Clock()
    reporter = _reporter(backend, clock, loss_check_interval=10)
    caplog.set_level(logging.WARNING, logger="reference_agent.status")
    clock.now += 10
    reporter.tick()
    assert caplog.records == []
    backend.kernel_counters["file"]["ringbuf_full"] = 1200
    clock.now += 10
    reporter.tick()
    clock.now += 10
    reporter.tick()  # nothing new: nothing logged
    assert [r.getMessage() for r in caplog.records] == [
        "1200 events lost since the last report (ring buffer full: file 1200, process 0; not written: 0); "
        "1200 since start"]


def test_runs_the_kernel_skipped_are_reported_per_program(caplog):
    # A tracing program the kernel did not run (its recursion guard): nothing lost silently.
    backend, clock = FakeKernelBackend(), _Clock()
    backend.kernel_counters["process"].update({"skipped": 0, "skipped.d4c_sched_process_exit": 0})
    reporter = _reporter(backend, clock, metrics_interval=30, loss_check_interval=10)
    caplog.set_level(logging.WARNING, logger="reference_agent.status")
    backend.kernel_counters["process"].update({"skipped": 1103, "skipped.d4c_sched_process_exit": 1103})
    clock.now += 30
    docs = reporter.tick()
    [metrics] = [d for d in docs if d.fields["data_stream.dataset"] == "cloud_defend.metrics"]
    assert (metrics.fields["d4c.kernel.skipped"], metrics.fields["d4c.kernel.process.skipped"],
            metrics.fields["d4c.kernel.file.skipped"]) == (1103, 1103, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "1103 BPF program runs skipped by the kernel since the last report (d4c_sched_process_exit 1103); "
        "1103 since start"]
    assert reporter.summary().endswith(
        "; 1103 BPF program runs skipped by the kernel (d4c_sched_process_exit 1103)")


def test_the_exit_summary_is_printed_when_the_agent_stops(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_V1)
    backend = FakeKernelBackend()
    polls = backend.poll

    def poll_then_stop(timeout):
        backend.kernel_counters["file"]["ringbuf_full"] = 3
        signal.raise_signal(signal.SIGTERM)
        return polls(0.01)

    backend.poll = poll_then_stop
    cache = ContainerCache(FakeDockerClient(), cgroup_root=tmp_path, proc_root=tmp_path)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    err = io.StringIO()
    config = tmp_path / "agent.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    try:
        code = run_agent(config, policy, lambda c: backend, output_dir=tmp_path / "events", err=err,
                         containers=cache, host=HOST)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    assert code == 0
    assert err.getvalue().splitlines()[-1] == (
        "d4c agent: stopped: 0 event documents written (file 0, process 0, alerts 0), 3 events lost "
        "(ring buffer full: file 3, process 0; not written: 0)")


def test_intervals_are_configurable_and_bad_ones_are_located():
    config = parse_config("heartbeat_interval: 5\nmetrics_interval: 3600\n", "agent.yaml")
    assert (config.heartbeat_interval, config.metrics_interval) == (5.0, 3600.0)
    for text, where in (("heartbeat_interval: 0\n", "agent.yaml:1:21"), ("metrics_interval: .inf\n", "agent.yaml:1:19"),
                        ("metrics_interval: [1]\n", "agent.yaml:1:19"), ("heartbeat_interval: yes\n", "agent.yaml:1:21")):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "agent.yaml")
        assert str(caught.value).startswith(where + ": ")
    assert dataclasses.asdict(parse_config("")).get("heartbeat_interval") == 60.0
