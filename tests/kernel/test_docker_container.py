"""file_hooks with a real Docker container (the VM's dockerd and busybox image): its cgroup v2
id, paths relative to its pivot_root'ed root, Docker's single-file bind mounts (/etc/hosts) as
`file` mounts and a -v volume as `volume` (D19); outcomes compared with the reference evaluator."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.operation import (
    Container,
    FileTarget,
    Operation,
    image_parts,
)

from .policies import file_policy

IMAGE = "busybox:latest"
POLICY = file_policy(
    [
        {"name": "etc-create", "operations": ["createFile"], "targetFilePath": ("/etc/**",)},
        {"name": "data", "targetFilePath": ("/data/**",)},
        {"name": "hosts", "targetFilePath": ("/etc/hosts", "/etc/resolv.conf")},
        {"name": "hosts-not-file-mounts", "ignoreVolumeFiles": True, "targetFilePath": ("/etc/hosts",)},
        {"name": "other-image", "containerImageName": ("nginx",), "targetFilePath": ("/**",)},
        {"name": "drift", "operations": ["createFile", "modifyFile", "createExecutable", "modifyExecutable"],
         "targetFilePath": ("/tmp/**", "/etc/group", "/etc/passwd")},
    ],
    [
        {"match": ["etc-create"], "actions": ["block", "alert"]},
        {"match": ["data"], "actions": ["log"]},
        {"match": ["hosts", "hosts-not-file-mounts"], "actions": ["alert"]},
        {"match": ["other-image"], "actions": ["block", "alert"]},
        {"match": ["drift"], "actions": ["log"]},
    ],
)
# (shell command in the container, the operations it amounts to: (operation, path, mount))
CASES = (
    ("echo x > /etc/new", (("createFile", "/etc/new", "root"),)),
    ("echo y > /data/f", (("createFile", "/data/f", "volume"),)),
    ("echo z >> /data/f", (("modifyFile", "/data/f", "volume"),)),
    ("echo 127.0.0.2 z >> /etc/hosts", (("modifyFile", "/etc/hosts", "file"),)),
    ("rm /data/f", (("deleteFile", "/data/f", "volume"),)),
    ("cat /etc/hosts > /dev/null", ()),
    # D17 on the container's overlayfs root: one syscall, one event (no modify for the
    # creating open, none for overlayfs' own opens of the upper file and of the copy-up).
    ("echo x > /tmp/x", (("createFile", "/tmp/x", "root"),)),
    ("echo y >> /tmp/x", (("modifyFile", "/tmp/x", "root"),)),
    ("echo z > /tmp/x", (("modifyFile", "/tmp/x", "root"),)),
    ("echo g: >> /etc/group", (("modifyFile", "/etc/group", "root"),)),  # image file: copy-up
    ("chmod 600 /etc/passwd", (("modifyFile", "/etc/passwd", "root"),)),
    ("chmod +x /tmp/x", (("createExecutable", "/tmp/x", "root"),)),
)


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture
def busybox_container(tmp_path):
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    if _docker("info", check=False).returncode != 0:
        pytest.skip("dockerd is not running (d4c vm run without --no-docker starts it)")
    if _docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip(f"image {IMAGE} is not available")
    volume = tmp_path / "volume"
    volume.mkdir()
    name = f"d4c-kernel-{uuid.uuid4().hex[:8]}"
    _docker("run", "-d", "--name", name, "-v", f"{volume}:/data", IMAGE, "sleep", "600")
    try:
        pid = int(_docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
        line = next(l for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if l.startswith("0::"))
        yield name, CGROUP2_ROOT / line[3:].lstrip("/")
    finally:
        _docker("rm", "-f", name, check=False)


def test_docker_container_agrees_with_reference_evaluator(bpf_lsm, busybox_container):
    name, cgroup_dir = busybox_container
    image_name, tag, full = image_parts(IMAGE)
    container = Container(image=IMAGE, name=image_name, tag=tag, full=full)
    cgid = cgroup_id(cgroup_dir)
    mismatches = []
    with FileEnforcer(compile_file_section(POLICY)) as enforcer:
        enforcer.add_container(cgid, container)
        for command, operations in CASES:
            done = _docker("exec", name, "sh", "-c", command, check=False)
            got = [(a.operation, a.path, a.mount, a.selectors, a.actions, a.blocked, a.task.cgroup_id)
                   for a in enforcer.drain()]
            verdicts = [(o, evaluate(POLICY, Operation(kind="file", operation=o[0], file=FileTarget(o[1], o[2]),
                                                       container=container))) for o in operations]
            blocked = any("block" in v.actions for _, v in verdicts)
            want = [(*o, v.matched_selectors, frozenset(v.actions), blocked, cgid) for o, v in verdicts if v.actions]
            denied = "Operation not permitted" in done.stderr
            if got != want or denied != blocked or (done.returncode == 0) == blocked:
                mismatches.append(f"{command}: rc={done.returncode} stderr={done.stderr.strip()!r}\n"
                                  f"    kernel {got}\n    reference {want}")
    assert not mismatches, "\n".join(mismatches)


def test_docker_exec_survives_a_policy_that_blocks_every_change(bpf_lsm, busybox_container):
    """D19: runc writes /proc/<pid>/attr/apparmor/exec (and cgroup files) for every `docker
    exec`: pseudo-fs files are not container files, so a block-everything policy leaves exec
    working while it still blocks a real change."""
    name, cgroup_dir = busybox_container
    ops = ["createFile", "modifyFile", "createExecutable", "modifyExecutable", "deleteFile"]
    policy = file_policy([{"name": "all", "operations": ops}], [{"match": ["all"], "actions": ["block", "alert"]}])
    with FileEnforcer(compile_file_section(policy)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup_dir), Container(image=IMAGE, name="busybox", tag="latest",
                                                                full="docker.io/library/busybox:latest"))
        ok = _docker("exec", name, "sh", "-c", "echo d4c > /proc/self/comm", check=False)
        ok_events = [(a.operation, a.path) for a in enforcer.drain()]
        denied = _docker("exec", name, "sh", "-c", "echo x > /tmp/blocked", check=False)
        denied_events = [(a.operation, a.path, a.blocked) for a in enforcer.drain()]
    assert (ok.returncode, ok.stderr, ok_events) == (0, "", [])
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    assert denied_events == [("createFile", "/tmp/blocked", True)]
