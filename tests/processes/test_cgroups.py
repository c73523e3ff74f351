from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_agent.processes.cgroups import (
    CgroupIndex,
    container_id_from_cgroup_path,
    container_resolver,
    find_cgroup2_mount,
)

A, B = "a" * 64, "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "path, expected",
    [
        (f"/system.slice/docker-{A}.scope", A),
        (f"/docker/{A}", A),
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{B}.scope", B),
        (f"/kubepods/besteffort/pod1234/{B}", B),
        (f"/machine.slice/libpod-{A}.scope/container", A),  # nested cgroup inside the container's
        (f"/kubepods.slice/crio-{B}.scope", B),
        (f"/kubepods.slice/crio-conmon-{B}.scope", None),  # CRI-O's monitor, not the container
        ("/system.slice/ssh.service", None),
        ("/user.slice/user-0.slice/session-3.scope", None),
        ("/", None),
        (None, None),
        (f"/docker/{A[:63]}", None),
    ],
)
def test_container_id_from_cgroup_path(path: str | None, expected: str | None) -> None:
    assert container_id_from_cgroup_path(path) == expected


def test_index_maps_ids_and_paths_both_ways(tmp_path: Path) -> None:
    leaf = tmp_path / "system.slice" / f"docker-{A}.scope"
    leaf.mkdir(parents=True)
    index = CgroupIndex(str(tmp_path))
    other = CgroupIndex(str(tmp_path))  # a fresh index must find the id by walking
    cid = index.id_of(f"/system.slice/docker-{A}.scope")
    assert cid == os.stat(leaf).st_ino
    assert other.path_of(cid) == f"/system.slice/docker-{A}.scope"
    assert other.path_of(123456789) is None
    resolve = container_resolver(other)
    assert resolve(cid) == A
    assert resolve(other.root_id) is None and resolve(0) is None
    assert CgroupIndex(None).id_of("/x") == 0


def test_find_cgroup2_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    assert find_cgroup2_mount(str(mounts)) == "/sys/fs/cgroup/unified"
    mounts.write_text("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n")
    assert find_cgroup2_mount(str(mounts)) is None
