"""Elasticsearch down, then back: the agent keeps writing while nothing listens at the configured
URL, and once the suite's _bulk endpoint (conformance/sinks.py) answers on that port again,
every event document arrives exactly once. Figures are printed (pytest -s)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from conformance.sinks import BulkServer
from reference_agent.activity import FileActivity
from reference_agent.agent import Agent
from reference_agent.config import AgentConfig
from reference_agent.ecs import BootClock
from reference_agent.metadata.containers import ContainerCache
from reference_agent.system.cgroups import cgroup_id_of

from .fakes import FakeDockerClient, FakeKernelBackend
from .test_agent import CID, HOST, POLICY_V1, SEC, task

EVENTS = 3000
FILE_STREAM = "logs-cloud_defend.file-default"
LOG_POLICY = POLICY_V1.replace("actions: [alert, block]", "actions: [log]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_nothing_is_lost_while_elasticsearch_is_down(tmp_path):
    pytest.importorskip("elasticsearch")
    port = _free_port()
    cgroup = tmp_path / "cgroup"
    (cgroup / "docker" / CID).mkdir(parents=True)
    client = FakeDockerClient()
    client.add(CID, "nginx")
    policy = tmp_path / "policy.yaml"
    policy.write_text(LOG_POLICY)
    config = AgentConfig(output_dir=tmp_path / "out", state_dir=tmp_path / "state",
                         elasticsearch_url=f"http://127.0.0.1:{port}")
    backend = FakeKernelBackend()
    agent = Agent(config, policy, backend, containers=ContainerCache(client, cgroup_root=cgroup, proc_root=tmp_path),
                  host=HOST, clock=BootClock(boot_wall_ns=1_700_000_000 * SEC, btime_s=1_700_000_000),
                  watch_interval=3600, process_table=False)
    cg = cgroup_id_of(cgroup / "docker" / CID)
    server = None
    try:
        agent.start()
        for n in range(EVENTS):
            backend.queue.put(FileActivity(operation="createFile", event_action="creation", path=f"/usr/bin/f{n}",
                                           mount="root", selectors=("binDir",), actions=frozenset({"log"}),
                                           blocked=False, task=task(cg), timestamp_ns=SEC + n,
                                           trace_point="lsm__path_mknod"))
        while agent.documents_written < EVENTS:
            agent.step(0.1)
        time.sleep(3)  # the shipper tries, finds nobody listening, backs off
        spooled = [json.loads(line) for line in (tmp_path / "out" / f"{FILE_STREAM}.ndjson").read_text().splitlines()]
        down_for = time.monotonic()
        server = BulkServer(port=port).start()  # back, on the same port
        caught_up = _wait(lambda: sum(1 for s, _ in server.since(0) if s == FILE_STREAM) >= EVENTS, 60)
        took = time.monotonic() - down_for
        assert caught_up, "the shipper did not deliver the spool within 60 s of Elasticsearch coming back"
    finally:
        agent.close()  # drains the shipper: the last metrics document goes too
    arrived = [doc for stream, doc in server.since(0) if stream == FILE_STREAM]
    server.stop()
    print(f"elasticsearch outage: {EVENTS} events written while down, all {len(arrived)} delivered "
          f"{took:.1f} s after it came back")
    assert len(spooled) == EVENTS
    assert sorted(d["event"]["id"] for d in arrived) == sorted(d["event"]["id"] for d in spooled)  # once each
