"""What the VM tests that run `d4c agent run` against a container share: docker calls, a
busybox container, starting the agent and waiting for `.ready`, reading its NDJSON streams."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IMAGE = "busybox:latest"


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@contextmanager
def busybox(prefix: str, script: str) -> Iterator[str]:
    """A busybox container that has run `script` (and then sleeps); yields its full id."""
    if shutil.which("docker") is None or run("docker", "info", check=False).returncode != 0:
        pytest.skip("needs a running dockerd (d4c vm run starts one)")
    if run("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} is not available")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cid = run("docker", "run", "-d", "--name", name, IMAGE, "sh", "-c",
              f"{script} && touch /tmp/set-up && sleep 3600").stdout.strip()
    try:
        deadline = time.monotonic() + 120
        while run("docker", "exec", cid, "test", "-e", "/tmp/set-up", check=False).returncode != 0:
            assert time.monotonic() < deadline, f"container set-up did not finish: {script}"
            time.sleep(0.5)
        yield cid
    finally:
        run("docker", "rm", "-f", name, check=False)


def start_agent(tmp: Path, policy_yaml: str, config_yaml: str, events: Path) -> subprocess.Popen[str]:
    """`d4c agent run` with its own state dir, enforcing once `events/.ready` exists; its stderr
    goes to tmp/agent.log (a pipe nobody reads during the test could fill and stall it)."""
    policy, config = tmp / "policy.yaml", tmp / "agent.yaml"
    policy.write_text(policy_yaml)
    config.write_text(config_yaml + f"state_dir: {tmp / 'state'}\n")
    with open(tmp / "agent.log", "w") as log:
        agent = subprocess.Popen([sys.executable, "-m", "d4c", "agent", "run", "--policy", str(policy), "--config",
                                  str(config), "--output-dir", str(events)],
                                 stdout=subprocess.DEVNULL, stderr=log, text=True)
    agent.log = tmp / "agent.log"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 180
    while not (events / ".ready").exists():
        if agent.poll() is not None or time.monotonic() > deadline:
            agent.kill()
            agent.wait()
            pytest.fail(f"agent not enforcing: {(tmp / 'agent.log').read_text()}")
        time.sleep(0.2)
    return agent


def wait_until_quiet(path: Path, seconds: float = 300, every: float = 3) -> None:
    """Until `path` stops growing: the agent has written what the ring buffer held."""
    deadline, last = time.monotonic() + seconds, -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size == last:
            return
        last = size
        time.sleep(every)


def stop(agent: subprocess.Popen[str], timeout: float = 120) -> str:
    """SIGTERM, wait for the exit (it drains its ring buffers first); its stderr."""
    agent.terminate()
    try:
        agent.wait(timeout=timeout)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    stderr = agent.log.read_text()  # type: ignore[attr-defined]
    assert agent.returncode == 0, stderr
    return stderr


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def summary(stderr: str) -> str:
    [line] = [line for line in stderr.splitlines() if line.startswith("d4c agent: stopped: ")]
    return line
