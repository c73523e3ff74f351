"""agent.py with an in-memory kernel backend: activities become ECS lines in the right files,
reloads swap the policy atomically, invalid reloads keep the old one."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import threading
import time

import pytest

from reference_agent.activity import (
    Ancestry,
    FileActivity,
    ProcessActivity,
    ProcessSnapshot,
    TaskInfo,
)
from reference_agent.agent import Agent, run_agent
from reference_agent.config import AgentConfig
from reference_agent.control import request_reload
from reference_agent.ecs import BootClock
from reference_agent.metadata.containers import POD_LABEL_PREFIX, ContainerCache
from reference_agent.system.cgroups import cgroup_id_of
from reference_agent.metadata.host import HostFacts

from .fakes import FakeDockerClient, FakeKernelBackend

CID = "e" * 64
CID2 = "f" * 64
POLICY_V1 = """file:
  selectors:
    - name: binDir
      operation: [createFile, createExecutable]
      targetFilePath: [/usr/bin/**]
  responses:
    - match: [binDir]
      actions: [alert, block]
process:
  selectors:
    - name: nginxExec
      operation: [exec]
      containerImageName: [nginx]
  responses:
    - match: [nginxExec]
      actions: [log]
"""
POLICY_V2 = POLICY_V1.replace("binDir", "etcDir").replace("/usr/bin/**", "/etc/**")
INVALID = POLICY_V1.replace("actions: [alert, block]", "actions: [block]")  # D8
HOST = HostFacts(architecture="amd64", hostname="node", name="node", os_kernel="6.1", os_name="Linux", os_type="linux")
SEC = 10**9


@pytest.fixture
def env(tmp_path):
    cgroup = tmp_path / "cgroup"
    (cgroup / "docker" / CID).mkdir(parents=True)
    client = FakeDockerClient()
    client.add(CID, "nginx", labels={"io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "prod",
                                     POD_LABEL_PREFIX + "app": "web"})
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=tmp_path / "proc")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_V1)
    config = AgentConfig(output_dir=tmp_path / "out", state_dir=tmp_path / "state", namespace="default",
                         cluster_name="staging")
    backend = FakeKernelBackend()
    agent = Agent(config, policy, backend, containers=cache, host=HOST,
                  clock=BootClock(boot_wall_ns=1_700_000_000 * SEC, btime_s=1_700_000_000), watch_interval=3600,
                  process_table=False, ancestry=backend.ancestry)  # the process table: test_agent_processes.py
    yield agent, backend, client, policy, cgroup, tmp_path / "out"
    agent.close()


def task(cgroup_id: int, pid: int = 321) -> TaskInfo:
    return TaskInfo(pid=pid, tid=pid, ppid=1, uid=0, gid=0, cgroup_id=cgroup_id, comm="sh", executable="/bin/sh",
                    start_time_ns=5 * SEC, tty=False)


def lines(out, stream):
    path = out / f"{stream}.ndjson"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_activities_become_ecs_lines_in_the_right_files(env):
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    cg = cgroup_id_of(cgroup / "docker" / CID)
    applied_policy, masks = backend.applied[-1]
    assert masks == {cg: frozenset({"binDir", "nginxExec"})}
    backend.queue.put(FileActivity(operation="createFile", event_action="creation", path="/usr/bin/evil",
                                   mount="root", trace_point="lsm__file_open", selectors=("binDir",),
                                   actions=frozenset({"alert", "block"}), blocked=True, task=task(cg),
                                   timestamp_ns=10 * SEC))
    backend.queue.put(ProcessActivity(operation="exec", selectors=("nginxExec",), actions=frozenset({"log"}),
                                      blocked=False, task=task(cg), timestamp_ns=11 * SEC, args=("sh", "-c", "x")))
    backend.ancestries[321] = Ancestry(parent=ProcessSnapshot(pid=1, start_time_ns=SEC, executable="/sbin/init"))
    assert agent.step(1.0) == 2
    alerts = lines(out, "logs-cloud_defend.alerts-default")
    processes = lines(out, "logs-cloud_defend.process-default")
    assert lines(out, "logs-cloud_defend.file-default") == []
    assert len(alerts) == 1 and len(processes) == 1
    alert = alerts[0]
    assert alert["event"]["kind"] == "alert" and alert["event"]["type"] == ["creation", "denied"]
    assert alert["file"]["path"] == "/usr/bin/evil"
    assert alert["container"]["id"] == CID and alert["container"]["image"]["name"] == "nginx"
    assert alert["orchestrator"]["namespace"] == "prod" and alert["orchestrator"]["cluster"]["name"] == "staging"
    assert alert["orchestrator"]["resource"]["label"] == {"app": "web"}
    assert alert["@timestamp"] == "2023-11-14T22:13:30.000Z"
    assert processes[0]["process"]["args"] == ["sh", "-c", "x"]
    assert processes[0]["process"]["parent"]["executable"] == "/sbin/init"  # from the backend's table
    assert processes[0]["agent"]["id"] == alert["agent"]["id"]


def test_reload_swaps_the_policy_atomically(env):
    agent, backend, client, policy, cgroup, out = env
    first = agent.start()
    policy.write_text(POLICY_V2)
    outcome = agent.policy.poll()
    assert outcome.accepted and outcome.changed
    new_policy, masks = backend.applied[-1]
    assert [s.name for s in new_policy.file.selectors] == ["etcDir"]
    assert set(masks.values()) == {frozenset({"etcDir", "nginxExec"})}
    assert agent.policy.current.policy is new_policy and agent.policy.current.generation == first.generation + 1


def test_ready_file_shows_each_accepted_policy(env):
    # What `d4c agent reload` and the conformance suite wait for: the enforcing policy's digest.
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    policy.write_text(POLICY_V2)
    assert agent.policy.poll().accepted
    _pid, generation, digest, _path = (out / ".ready").read_text().split()
    assert digest == hashlib.sha256(POLICY_V2.encode()).hexdigest() and int(generation) == 2
    policy.write_text(INVALID)
    assert not agent.policy.poll().accepted
    assert (out / ".ready").read_text().split()[2] == digest  # a rejected policy is not confirmed


def test_reload_covers_a_container_whose_start_event_has_not_arrived(env):
    # A policy asked for right after a container started must enforce there, even before the
    # Docker event stream tells the agent about that container.
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    client.add(CID2, "busybox")
    (cgroup / "docker" / CID2).mkdir()
    policy.write_text(POLICY_V2)
    assert agent.policy.poll().accepted
    new_policy, masks = backend.applied[-1]
    assert [s.name for s in new_policy.file.selectors] == ["etcDir"]
    assert masks[cgroup_id_of(cgroup / "docker" / CID2)] == {"etcDir"}


def test_reload_command_makes_the_running_agent_enforce_another_policy(env, tmp_path):
    # `d4c agent reload --output-dir DIR POLICY`: the agent's file gets POLICY's bytes, SIGHUP
    # wakes its watcher, and the command returns once DIR/.ready shows POLICY's digest.
    agent, backend, client, policy, cgroup, out = env
    previous = signal.getsignal(signal.SIGHUP)
    try:
        agent.start()
        agent.install_signal_handlers()
        other = tmp_path / "other.yaml"
        other.write_text(POLICY_V2)
        assert request_reload(out, other, wait=10)
        assert policy.read_text() == POLICY_V2 and agent.policy.current.generation == 2
        assert [s.name for s in backend.applied[-1][0].file.selectors] == ["etcDir"]
        other.write_text(INVALID)
        assert not request_reload(out, other, wait=0.5)  # rejected: never confirmed
        assert agent.policy.current.generation == 2
    finally:
        signal.signal(signal.SIGHUP, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_reload_command_without_wait_exits_0_and_the_ready_file_confirms_later(env, tmp_path):
    # The conformance suite's `load_policy` runs `d4c agent reload DIR POLICY` (no --wait) and
    # confirms by the digest in DIR/.ready itself: the command must succeed once it has asked.
    from d4c.cli import main

    agent, backend, client, policy, cgroup, out = env
    previous = signal.getsignal(signal.SIGHUP)
    try:
        agent.start()
        agent.install_signal_handlers()
        other = tmp_path / "other.yaml"
        other.write_text(POLICY_V2)
        assert main(["agent", "reload", "--output-dir", str(out), str(other)]) == 0
        want = hashlib.sha256(POLICY_V2.encode()).hexdigest()
        deadline = time.monotonic() + 10
        while (out / ".ready").read_text().split()[2] != want and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (out / ".ready").read_text().split()[2] == want
        assert [s.name for s in backend.applied[-1][0].file.selectors] == ["etcDir"]
    finally:
        signal.signal(signal.SIGHUP, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_reload_command_without_an_agent_is_one_line_exit_1(tmp_path, capsys):
    from d4c.cli import main

    assert main(["agent", "reload", "--output-dir", str(tmp_path), str(tmp_path / "p.yaml")]) == 1
    err = capsys.readouterr().err
    assert err == f"d4c agent reload: {tmp_path}/.ready: no agent is running there (no ready file)\n"


def test_invalid_reload_keeps_the_old_policy(env, caplog):
    agent, backend, client, policy, cgroup, out = env
    first = agent.start()
    applied = list(backend.applied)
    policy.write_text(INVALID)
    outcome = agent.policy.poll()
    assert not outcome.accepted
    assert any("block-requires-alert" in m for m in outcome.messages)
    assert backend.applied == applied and agent.policy.current is first
    # ...and the agent goes on writing events for the old policy's selectors.
    cg = cgroup_id_of(cgroup / "docker" / CID)
    backend.queue.put(FileActivity(operation="createFile", event_action="creation", path="/usr/bin/x", mount="root",
                                   trace_point="lsm__file_open", selectors=("binDir",), actions=frozenset({"alert"}),
                                   blocked=False, task=task(cg), timestamp_ns=SEC))
    assert agent.step(1.0) == 1


def test_kernel_refusal_keeps_the_old_policy(env):
    agent, backend, client, policy, cgroup, out = env
    first = agent.start()
    backend.fail_next_apply = OSError("bpf_map_update_elem: E2BIG")
    policy.write_text(POLICY_V2)
    assert not agent.policy.poll().accepted
    assert agent.policy.current is first


def test_new_container_reapplies_masks(env):
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    before = len(backend.applied)
    client.add(CID2, "busybox")
    (cgroup / "docker" / CID2).mkdir()
    agent.containers.handle_event({"Type": "container", "Action": "start", "id": CID2})
    policy_obj, masks = backend.applied[-1]
    assert len(backend.applied) == before + 1 and policy_obj is agent.policy.current.policy
    assert masks[cgroup_id_of(cgroup / "docker" / CID2)] == {"binDir"}  # not nginx: no nginxExec


def test_unknown_cgroup_still_reports_without_container_facts(env):
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    backend.queue.put(FileActivity(operation="createFile", event_action="creation", path="/usr/bin/x", mount="root",
                                   trace_point="lsm__file_open", selectors=("binDir",), actions=frozenset({"alert"}),
                                   blocked=False, task=task(999_999), timestamp_ns=SEC))
    agent.step(1.0)
    (alert,) = lines(out, "logs-cloud_defend.alerts-default")
    assert "container" not in alert


def test_run_loop_until_stopped(env):
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    cg = cgroup_id_of(cgroup / "docker" / CID)
    thread = threading.Thread(target=agent.run, kwargs={"poll_timeout": 0.05})
    thread.start()
    backend.queue.put(ProcessActivity(operation="fork", selectors=("nginxExec",), actions=frozenset({"log"}),
                                      blocked=False, task=task(cg), timestamp_ns=SEC))
    deadline = time.monotonic() + 5
    while not lines(out, "logs-cloud_defend.process-default") and time.monotonic() < deadline:
        time.sleep(0.01)
    agent.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert len(lines(out, "logs-cloud_defend.process-default")) == 1


def test_run_agent_bad_config_exit_2(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("namespace: Bad-Name\n")
    err = io.StringIO()
    code = run_agent(cfg, tmp_path / "p.yaml", lambda c: FakeKernelBackend(), err=err)
    assert code == 2
    assert err.getvalue() == f"{cfg}:1:12: namespace: must be lowercase\n"


def test_run_agent_invalid_policy_exit_1(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"output_dir: {tmp_path}/out\nstate_dir: {tmp_path}/state\n")
    pol = tmp_path / "p.yaml"
    pol.write_text(INVALID)
    err = io.StringIO()
    backend = FakeKernelBackend()
    cache = ContainerCache(FakeDockerClient(), cgroup_root=tmp_path, proc_root=tmp_path)
    code = run_agent(cfg, pol, lambda c: backend, err=err, install_signals=False, containers=cache, host=HOST)
    assert code == 1
    assert err.getvalue().startswith(f"{pol}:8:17: file.responses[0].actions[0]:") and "block-requires-alert" in err.getvalue()
    assert backend.applied == [] and backend.closed


def test_ready_file_once_enforcing(env):
    agent, backend, client, policy, cgroup, out = env
    assert not (out / ".ready").exists()
    loaded = agent.start()
    pid, generation, digest, path = (out / ".ready").read_text().split()
    assert int(generation) == loaded.generation and digest == loaded.digest and backend.applied
    assert int(pid) == os.getpid() and path == str(policy.resolve())
    agent.close()
    assert not (out / ".ready").exists()


def test_run_agent_output_dir_override(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"output_dir: {tmp_path}/configured\nstate_dir: {tmp_path}/state\n")
    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY_V1)
    backend = FakeKernelBackend()
    original_poll = backend.poll

    def poll_then_stop(timeout):
        # Once the agent is up, SIGTERM it the way a harness would.
        assert (tmp_path / "events" / ".ready").exists()
        import os
        import signal
        os.kill(os.getpid(), signal.SIGTERM)
        return original_poll(0.01)

    backend.poll = poll_then_stop
    cache = ContainerCache(FakeDockerClient(), cgroup_root=tmp_path, proc_root=tmp_path)
    import signal as _signal
    saved = {s: _signal.getsignal(s) for s in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)}
    try:
        code = run_agent(cfg, pol, lambda c: backend, output_dir=tmp_path / "events", err=io.StringIO(),
                         containers=cache, host=HOST)
    finally:
        for s, h in saved.items():
            _signal.signal(s, h)
    assert code == 0 and backend.closed and len(backend.applied) == 1
    assert not (tmp_path / "events" / ".ready").exists()
    assert not (tmp_path / "configured").exists() and (tmp_path / "state" / "agent-id").exists()


def test_sigterm_the_moment_ready_appears_drains_and_summarises(tmp_path):
    # A harness stops the agent as soon as .ready is there: that SIGTERM must already be the
    # agent's (exit 0, the stop summary), not the default one that kills the process unsummarised.
    import signal as _signal

    pol = tmp_path / "p.yaml"
    pol.write_text(POLICY_V1)
    backend = FakeKernelBackend()
    cache = ContainerCache(FakeDockerClient(), cgroup_root=tmp_path, proc_root=tmp_path)
    err = io.StringIO()

    def killed(*_):
        raise SystemExit("SIGTERM reached the default disposition: the agent would have died")

    def stop_when_ready(_loaded):
        assert (tmp_path / "events" / ".ready").exists()
        os.kill(os.getpid(), _signal.SIGTERM)

    saved = {s: _signal.getsignal(s) for s in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)}
    _signal.signal(_signal.SIGTERM, killed)
    try:
        code = run_agent(None, pol, lambda c: backend, output_dir=tmp_path / "events", err=err,
                         containers=cache, host=HOST, on_started=stop_when_ready)
    finally:
        for s, h in saved.items():
            _signal.signal(s, h)
    assert code == 0 and backend.closed
    assert "d4c agent: stopped: " in err.getvalue()


def test_write_failure_is_counted_not_fatal(env):
    agent, backend, client, policy, cgroup, out = env
    agent.start()

    def full(stream, doc):
        raise OSError(28, "No space left on device")

    agent.writer.write = full
    cg = cgroup_id_of(cgroup / "docker" / CID)
    backend.queue.put(ProcessActivity(operation="fork", selectors=("nginxExec",), actions=frozenset({"log", "alert"}),
                                      blocked=False, task=task(cg), timestamp_ns=SEC))
    assert agent.step(1.0) == 0
    assert agent.documents_dropped == 2


def test_a_document_the_writer_refuses_is_counted_and_the_agent_goes_on(env, caplog):
    """Not only a full disk: any document the writer cannot take (a bug in encoding one value)
    is dropped and counted; the next one is written, the agent keeps running."""
    agent, backend, client, policy, cgroup, out = env
    agent.start()
    real = agent.writer.write
    refused = []

    def refuse_first(stream, doc):
        if not refused:
            refused.append(stream)
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
        real(stream, doc)

    agent.writer.write = refuse_first
    cg = cgroup_id_of(cgroup / "docker" / CID)
    for n in (1, 2):
        backend.queue.put(ProcessActivity(operation="fork", selectors=("nginxExec",), actions=frozenset({"log"}),
                                          blocked=False, task=task(cg), timestamp_ns=n * SEC))
    written = agent.step(1.0) + agent.step(1.0)
    assert written == 1 and agent.documents_dropped == 1
    assert "cannot write a logs-cloud_defend.process-default document" in caplog.text
