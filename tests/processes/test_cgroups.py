from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_agent.system.cgroups import (
    CgroupIndex,
    cgroup_id_of,
    cgroup_id_of_pid,
    cgroup_pids,
    cgroup_tree,
    container_id_from_cgroup_path,
    container_resolver,
    find_cgroup2_mount,
    identity_from_cgroup_path,
    identity_from_proc_cgroup,
)
from reference_agent.system.procfs import parse_cgroup_v2_path, read_cgroup_path

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


UID = "5f0b8c2e-1a2b-4c3d-9e8f-0123456789ab"
SUID = UID.replace("-", "_")


@pytest.mark.parametrize(
    "path, container, pod",
    [
        # cgroupfs driver: containerd, CRI-O, cri-dockerd name the leaf by the bare id
        (f"/kubepods/burstable/pod{UID}/{B}", B, UID),
        (f"/kubepods/besteffort/pod{UID}/{B}", B, UID),
        (f"/kubepods/pod{UID}/{B}", B, UID),  # Guaranteed QoS: no qos level
        # systemd driver, each runtime's scope
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SUID}.slice/cri-containerd-{B}.scope",
         B, UID),
        (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SUID}.slice/crio-{B}.scope", B, UID),
        (f"/kubepods.slice/kubepods-pod{SUID}.slice/docker-{B}.scope", B, UID),
        # a sub-cgroup the container made for itself
        (f"/kubepods.slice/kubepods-pod{SUID}.slice/cri-containerd-{B}.scope/init.scope", B, UID),
        # the container's own "pod..." sub-cgroup claims no pod
        (f"/system.slice/docker-{A}.scope/pod{UID}", A, None),
        # containers in no pod
        (f"/system.slice/docker-{A}.scope", A, None),
        (f"/docker/{A}", A, None),
        (f"/default/{A}", A, None),  # ctr run (cgroupfs, namespace "default")
        # pod cgroup, no container (the pod's own cgroup; conmon)
        (f"/kubepods/burstable/pod{UID}", None, None),
        (f"/kubepods.slice/kubepods-pod{SUID}.slice/crio-conmon-{B}.scope", None, None),
    ],
)
def test_identity_from_cgroup_path_every_kubelet_layout(path: str, container: str | None, pod: str | None) -> None:
    found = identity_from_cgroup_path(path)
    assert ((found.container_id, found.pod_uid) if found else (None, None)) == (container, pod)


def test_identity_from_proc_cgroup_v2_and_v1() -> None:
    v2 = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SUID}.slice/cri-containerd-{B}.scope\n"
    v1 = (f"12:pids:/kubepods/burstable/pod{UID}/{B}\n"
          f"4:memory:/kubepods/burstable/pod{UID}/{B}\n"
          "1:name=systemd:/system.slice/containerd.service\n")
    hybrid = f"1:name=systemd:/kubepods/pod{UID}/{B}\n0::/\n"  # v2 line is the root: v1 tells
    host = "0::/system.slice/ssh.service\n"
    for text in (v2, v1, hybrid):
        found = identity_from_proc_cgroup(text)
        assert found is not None and (found.container_id, found.pod_uid) == (B, UID), text
    assert identity_from_proc_cgroup(host) is None
    assert identity_from_proc_cgroup("") is None


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


def test_one_reader_of_proc_pid_cgroup(tmp_path):
    """The process table, the container cache and the kernel side read /proc/<pid>/cgroup
    through one reader, so they agree: the v2 line's path; none without a v2 line; and an
    empty `0::` names no cgroup at all (reading it as the root cgroup would make every host
    process a container's)."""
    (tmp_path / "7").mkdir()
    cgroup = tmp_path / "7" / "cgroup"
    cgroup.write_text("12:cpu:/legacy\n0::/system.slice/x.scope\n")
    assert read_cgroup_path(str(tmp_path), 7) == "/system.slice/x.scope"
    assert read_cgroup_path(str(tmp_path), 8) is None  # the process is gone
    cgroup.write_text("0::\n")
    assert read_cgroup_path(str(tmp_path), 7) is None
    assert parse_cgroup_v2_path("0::/\n") == "/"
    cgroup.unlink()
    cgroup.mkdir()  # unreadable as a file (EISDIR): no cgroup, not an error
    assert read_cgroup_path(str(tmp_path), 7) is None
    assert parse_cgroup_v2_path("4:memory:/docker/x\n") is None


def test_cgroup_ids_pids_and_tree(tmp_path):
    root = tmp_path / "cgroup"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "cgroup.procs").write_text("30\n10\n")
    proc = tmp_path / "proc"
    (proc / "5").mkdir(parents=True)
    (proc / "5" / "cgroup").write_text("0::/a/b\n")
    assert cgroup_id_of_pid(5, str(proc), root) == cgroup_id_of(root / "a" / "b") == os.stat(root / "a" / "b").st_ino
    assert cgroup_id_of_pid(6, str(proc), root) is None  # no such process
    (proc / "5" / "cgroup").write_text("0::/gone\n")
    assert cgroup_id_of_pid(5, str(proc), root) is None  # its cgroup was removed
    assert [d for d, _ in cgroup_tree(root / "a")] == [str(root / "a"), str(root / "a" / "b")]
    assert dict(cgroup_tree(root / "a"))[str(root / "a" / "b")] == cgroup_id_of(root / "a" / "b")
    assert cgroup_pids(root / "a") == [30, 10]
    assert cgroup_pids(root / "a" / "b") == []  # no cgroup.procs to read
