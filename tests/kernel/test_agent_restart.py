"""D33 in the VM: enforcement outlives the agent. A container tries to create a file under /srv
every 20 ms while `d4c agent run --pin-dir` is killed (SIGKILL) and restarted, then stopped
(SIGTERM) and restarted; the policy blocks creates under /srv, so no file may appear. Then
`d4c agent remove-enforcement` ends enforcement: the next create goes through."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

IMAGE = "busybox:latest"
POLICY_YAML = """\
file:
  selectors:
    - name: srv-creates
      operation: [createFile]
      targetFilePath: [/srv/**]
  responses:
    - match: [srv-creates]
      actions: [block, alert]
"""
# Each attempt: one create; the count of attempts is kept in /tmp/n, the loop ends at /tmp/stop.
LOOP = ("i=0; while [ ! -e /tmp/stop ]; do touch /srv/c$i 2>/dev/null; i=$((i+1)); "
        "echo $i > /tmp/n; usleep 20000; done")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)


def _d4c(*args: str) -> list[str]:
    return [sys.executable, "-m", "d4c", *args]


@pytest.fixture
def container():
    if shutil.which("docker") is None or _run("docker", "info", check=False).returncode != 0:
        pytest.skip("needs a running dockerd (d4c vm run starts one)")
    if _run("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} is not available")
    name = f"d4c-restart-{uuid.uuid4().hex[:8]}"
    _run("docker", "run", "-d", "--name", name, IMAGE, "sh", "-c", "mkdir -p /srv && sleep 900")
    try:
        yield name
    finally:
        _run("docker", "rm", "-f", name, check=False)


@pytest.fixture
def pin_dir():
    path = Path("/sys/fs/bpf") / f"d4c-test-{uuid.uuid4().hex[:8]}"
    try:
        yield path
    finally:
        _run(*_d4c("agent", "remove-enforcement", "--pin-dir", str(path)), check=False)


class Agents:
    """Starts `d4c agent run --pin-dir` agents one after the other, each with its own output."""

    def __init__(self, tmp: Path, pin_dir: Path) -> None:
        self.tmp, self.pin_dir, self.count = tmp, pin_dir, 0
        self.policy = tmp / "policy.yaml"
        self.policy.write_text(POLICY_YAML)

    def start(self) -> subprocess.Popen[str]:
        self.count += 1
        events = self.tmp / f"events{self.count}"
        agent = subprocess.Popen(_d4c("agent", "run", "--policy", str(self.policy), "--output-dir", str(events),
                                      "--pin-dir", str(self.pin_dir)),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while not (events / ".ready").exists():
            assert agent.poll() is None, agent.communicate()[1]
            assert time.monotonic() < deadline, "agent not ready in 180 s"
            time.sleep(0.2)
        return agent


def _attempts(name: str) -> int:
    out = _run("docker", "exec", name, "cat", "/tmp/n", check=False).stdout.strip()
    return int(out) if out else 0


def _wait_for_attempts(name: str, more_than: int) -> int:
    deadline = time.monotonic() + 60
    while (n := _attempts(name)) <= more_than:
        assert time.monotonic() < deadline, "the create loop stopped making attempts"
        time.sleep(0.2)
    return n


def test_no_create_goes_through_sigkill_and_sigterm_restarts(bpf_lsm, container, pin_dir, tmp_path):
    agents = Agents(tmp_path, pin_dir)
    first = agents.start()
    _run("docker", "exec", "-d", container, "sh", "-c", LOOP)
    before_kill = _wait_for_attempts(container, 5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # No agent at all for a while: only the pinned programs stand between the loop and /srv.
    unattended = _wait_for_attempts(container, before_kill + 25)
    second = agents.start()
    took_over_at = _attempts(container)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0
    after_term = _wait_for_attempts(container, _attempts(container) + 25)
    third = agents.start()
    try:
        final = _wait_for_attempts(container, _attempts(container) + 25)
        _run("docker", "exec", container, "touch", "/tmp/stop")
        through = _run("docker", "exec", container, "sh", "-c", "ls /srv | wc -l").stdout.strip()
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(timeout=60)
    print(f"attempts: {final} (before SIGKILL {before_kill}, no agent until {unattended}, "
          f"second agent enforcing at {took_over_at}, after SIGTERM {after_term}); through: {through}")
    assert unattended > before_kill and after_term > took_over_at
    assert through == "0", f"{through} of {final} blocked creates went through"

    # The documented way to stop enforcing: afterwards the same create succeeds.
    removed = _run(*_d4c("agent", "remove-enforcement", "--pin-dir", str(pin_dir)))
    assert "file_hooks" in removed.stdout and not pin_dir.exists()
    created = _run("docker", "exec", container, "touch", "/srv/after-removal", check=False)
    assert created.returncode == 0, created.stderr


def test_without_pinning_a_stopped_agent_stops_enforcing(bpf_lsm, container, tmp_path):
    """The control: the same loop with an agent that does not pin lets creates through once
    it is stopped (so the test above would see them)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    events = tmp_path / "events"
    agent = subprocess.Popen(_d4c("agent", "run", "--policy", str(policy), "--output-dir", str(events)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (events / ".ready").exists():
        assert agent.poll() is None, agent.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    blocked = _run("docker", "exec", container, "touch", "/srv/while-running", check=False)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=60) == 0
    created = _run("docker", "exec", container, "touch", "/srv/after-stop", check=False)
    assert blocked.returncode != 0 and created.returncode == 0
