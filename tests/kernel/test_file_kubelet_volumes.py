"""D19 with kubelet-shaped volumes in a real Docker container (VM): files on configMap, secret,
downwardAPI and projected volumes are class `file`, so `ignoreVolumeFiles` ignores them, while
an emptyDir-like directory stays `volume`. The host side is laid out as kubelet does it: a
configMap as a plain directory under /var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~configmap/,
a secret as a tmpfs mounted under .../kubernetes.io~secret/ (so the container's mountinfo shows
only `/` of a tmpfs and the host mount table has to tell where it came from)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id
from reference_agent.policy.operation import Container

from .policies import file_policy

IMAGE = "busybox:latest"
PATHS = ("/etc/config/**", "/var/run/secrets/db/**", "/data/**")
POLICY = file_policy(
    [
        {"name": "volumes-not-file-mounts", "ignoreVolumeFiles": True, "targetFilePath": PATHS},
        {"name": "everywhere", "targetFilePath": PATHS},
    ],
    [
        {"match": ["volumes-not-file-mounts"], "actions": ["block", "alert"]},
        {"match": ["everywhere"], "actions": ["log"]},
    ],
)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)


def _require_docker() -> None:
    if shutil.which("docker") is None or _run("docker", "info", check=False).returncode != 0:
        pytest.skip("needs a running dockerd (d4c vm run starts one)")
    if _run("docker", "image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} is not available")


@pytest.fixture
def kubelet_pod_dirs(tmp_path):
    """(configMap dir, tmpfs secret dir, emptyDir-like dir) laid out as kubelet does."""
    _require_docker()
    pod = Path("/var/lib/kubelet/pods") / str(uuid.uuid4()) / "volumes"
    config = pod / "kubernetes.io~configmap" / "app-config"
    secret = pod / "kubernetes.io~secret" / "db-creds"
    config.mkdir(parents=True)
    secret.mkdir(parents=True)
    (config / "app.yaml").write_text("a: 1\n")
    data = tmp_path / "empty-dir"
    data.mkdir()
    mounted = False
    try:
        _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(secret))
        mounted = True
        (secret / "password").write_text("s3cret\n")
        yield config, secret, data
    finally:
        if mounted:
            _run("umount", str(secret), check=False)
        shutil.rmtree(pod.parent, ignore_errors=True)


@pytest.fixture
def kubelet_pod(kubelet_pod_dirs):
    config, secret, data = kubelet_pod_dirs
    name = f"d4c-kubelet-{uuid.uuid4().hex[:8]}"
    try:
        _run("docker", "run", "-d", "--name", name, "-v", f"{config}:/etc/config", "-v", f"{secret}:/var/run/secrets/db",
             "-v", f"{data}:/data", IMAGE, "sleep", "600")
        pid = int(_run("docker", "inspect", "-f", "{{.State.Pid}}", name).stdout)
        line = next(l for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if l.startswith("0::"))
        yield name, cgroup_id(CGROUP2_ROOT / line[3:].lstrip("/"))
    finally:
        _run("docker", "rm", "-f", name, check=False)


def test_configmap_and_secret_volumes_are_file_mounts(bpf_lsm, kubelet_pod):
    name, cgid = kubelet_pod
    container = Container(image=IMAGE, name="busybox", tag="latest", full="docker.io/library/busybox:latest")
    results = {}
    with FileEnforcer(compile_file_section(POLICY)) as enforcer:
        enforcer.add_container(cgid, container)
        assert len(enforcer.file_mount_ids()) == 2  # the configMap and the secret, not /data
        for path in ("/etc/config/app.yaml", "/var/run/secrets/db/password", "/data/f"):
            done = _run("docker", "exec", name, "sh", "-c", f"echo x >> {path}", check=False)
            results[path] = (done.returncode == 0, [(a.operation, a.path, a.mount, a.selectors, a.blocked)
                                               for a in enforcer.drain()])
    assert results == {
        # file class: ignoreVolumeFiles ignores them; the plain selector still logs them
        "/etc/config/app.yaml": (True, [("modifyFile", "/etc/config/app.yaml", "file", ("everywhere",), False)]),
        "/var/run/secrets/db/password": (
            True, [("modifyFile", "/var/run/secrets/db/password", "file", ("everywhere",), False)]),
        # an emptyDir-like directory is a volume: blocked
        "/data/f": (False, [("createFile", "/data/f", "volume", ("volumes-not-file-mounts", "everywhere"), True)]),
    }


def test_file_mounts_follow_the_containers(bpf_lsm, kubelet_pod):
    """The map holds the mount ids of registered containers only: removing the container
    removes them (a freed mount id may be reused by an unrelated mount)."""
    _name, cgid = kubelet_pod
    container = Container(image=IMAGE, name="busybox", tag="latest", full="docker.io/library/busybox:latest")
    with FileEnforcer(compile_file_section(POLICY)) as enforcer:
        enforcer.add_container(cgid, container)
        ids = enforcer.file_mount_ids()
        kernel = {int.from_bytes(k, "little") for k in enforcer.obj.map("file_mounts").keys()}  # noqa: SIM118
        enforcer.remove_container(cgid)
        after = (enforcer.file_mount_ids(), enforcer.obj.map("file_mounts").keys())
    assert len(ids) == 2 and kernel == set(ids)
    assert after == (frozenset(), [])


POLICY_YAML = """\
file:
  selectors:
    - name: volumes-not-file-mounts
      ignoreVolumeFiles: true
      targetFilePath: [/etc/config/**, /var/run/secrets/db/**, /data/**]
  responses:
    - match: [volumes-not-file-mounts]
      actions: [block, alert]
"""


def test_agent_classifies_a_container_started_after_it(bpf_lsm, kubelet_pod_dirs, tmp_path):
    """`d4c agent run` end to end: the container starts while the agent runs; its docker
    `start` event makes the agent re-apply the policy, which fills file_mounts."""
    config, secret, data = kubelet_pod_dirs
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    events = tmp_path / "events"
    agent = subprocess.Popen([sys.executable, "-m", "d4c", "agent", "run", "--policy", str(policy),
                              "--output-dir", str(events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = f"d4c-kubelet-{uuid.uuid4().hex[:8]}"
    try:
        deadline = time.monotonic() + 120
        while not (events / ".ready").exists():
            assert agent.poll() is None, agent.communicate()[1]
            assert time.monotonic() < deadline, "agent not ready in 120 s"
            time.sleep(0.2)
        _run("docker", "run", "-d", "--name", name, "-v", f"{config}:/etc/config", "-v", f"{secret}:/var/run/secrets/db",
             "-v", f"{data}:/data", IMAGE, "sleep", "600")
        # Wait until the agent enforces in the new container: the emptyDir-like volume is blocked.
        deadline = time.monotonic() + 60
        while _run("docker", "exec", name, "sh", "-c", "echo x > /data/probe", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the agent never enforced in the new container"
            time.sleep(0.5)
        configmap = _run("docker", "exec", name, "sh", "-c", "echo x >> /etc/config/app.yaml", check=False)
        secret_write = _run("docker", "exec", name, "sh", "-c", "echo x >> /var/run/secrets/db/password", check=False)
    finally:
        _run("docker", "rm", "-f", name, check=False)
        agent.terminate()
        agent.wait(timeout=30)
    assert (configmap.returncode, configmap.stderr) == (0, "")
    assert (secret_write.returncode, secret_write.stderr) == (0, "")
