"""D19 on Kubernetes: which container mounts are configMap / secret / downwardAPI / projected
volumes (system/mounts.py), from mountinfo text shaped like a kubelet node's. Runs anywhere;
the kernel half is tests/kernel/test_file_kubelet_volumes.py (VM, real Docker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_agent.system.mounts import (
    KubeletVolumeMounts,
    host_paths,
    is_kubelet_file_volume,
    kubelet_file_mount_ids,
    parse_mountinfo,
)

UID = "0b7f3a52-6c1e-4c1e-9d7a-1f2e3d4c5b6a"
K = f"/var/lib/kubelet/pods/{UID}/volumes"

HOST = f"""\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:45 / {K}/kubernetes.io~secret/db-creds rw,relatime shared:20 - tmpfs tmpfs rw,size=1024k
41 22 0:46 / {K}/kubernetes.io~projected/kube-api-access-x7 rw,relatime shared:21 - tmpfs tmpfs rw
42 22 0:47 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw
43 22 0:48 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""

# The container's view: overlay root, an emptyDir and a configMap (plain directories on the
# node's ext4, so their root is the directory's path), the tmpfs secret and token (root /),
# a subPath of the configMap, Docker's /etc/hosts, and /proc.
CONTAINER = f"""\
100 99 0:47 / / rw,relatime - overlay overlay rw
101 100 0:49 / /proc rw - proc proc rw
102 100 8:1 {K}/kubernetes.io~empty-dir/cache /cache rw - ext4 /dev/sda1 rw
103 100 8:1 {K}/kubernetes.io~configmap/app-config /etc/app rw - ext4 /dev/sda1 rw
104 100 0:45 / /var/run/secrets/db rw - tmpfs tmpfs rw
105 100 0:46 / /var/run/secrets/kubernetes.io/serviceaccount ro - tmpfs tmpfs rw
106 100 8:1 {K}/kubernetes.io~configmap/app-config/..2024_01_01/app.yaml /etc/app.yaml rw - ext4 /dev/sda1 rw
107 100 8:1 /var/lib/docker/containers/abc/hosts /etc/hosts rw - ext4 /dev/sda1 rw
108 100 0:50 {K}/kubernetes.io~downward-api/podinfo /etc/podinfo rw - ext4 /dev/sdb1 rw
"""


def test_parse_mountinfo_fields_and_octal_escapes():
    mounts = {m.mount_id: m for m in parse_mountinfo(HOST + "garbage line\n")}
    assert set(mounts) == {22, 40, 41, 42, 43}
    assert mounts[40].dev == "0:45" and mounts[40].root == "/" and mounts[40].fstype == "tmpfs"
    assert mounts[43].mount_point == "/mnt/with space"


@pytest.mark.parametrize(("path", "expected"), [
    (f"{K}/kubernetes.io~configmap/app-config", True),
    (f"{K}/kubernetes.io~secret/s/key", True),
    (f"{K}/kubernetes.io~downward-api/podinfo", True),
    (f"{K}/kubernetes.io~projected/token", True),
    (f"/var/snap/microk8s/common/var/lib/kubelet/pods/{UID}/volumes/kubernetes.io~configmap/c", True),
    (f"{K}/kubernetes.io~empty-dir/cache", False),
    (f"{K}/kubernetes.io~host-path/h", False),
    (f"{K}/kubernetes.io~configmap", False),  # the plugin directory itself, no volume
    ("/var/lib/docker/volumes/x/_data", False),
])
def test_kubelet_file_volume_paths(path, expected):
    assert is_kubelet_file_volume(path) is expected


def test_tmpfs_volume_found_through_the_host_mount_table():
    host = parse_mountinfo(HOST)
    secret = next(m for m in parse_mountinfo(CONTAINER) if m.mount_id == 104)
    assert host_paths(secret, host) == [f"{K}/kubernetes.io~secret/db-creds"]


def test_container_file_volume_mount_ids():
    ids = kubelet_file_mount_ids(parse_mountinfo(CONTAINER), parse_mountinfo(HOST))
    # configMap, secret, projected token, subPath of the configMap, downwardAPI (own root);
    # not the root, /proc, the emptyDir or Docker's /etc/hosts.
    assert ids == {103, 104, 105, 106, 108}


def test_no_host_table_entry_for_an_unrelated_tmpfs():
    container = parse_mountinfo("200 100 0:77 / /run/x rw - tmpfs tmpfs rw\n")
    assert kubelet_file_mount_ids(container, parse_mountinfo(HOST)) == frozenset()


def test_cgroup_to_mount_ids_with_cache(tmp_path):
    """The cgroup is found by its inode (the cgroup v2 id), a process in it gives the mountinfo;
    the answer is cached per cgroup and forgotten when the cgroup is no longer asked for."""
    cgroup_root = tmp_path / "cgroup"
    cg = cgroup_root / "system.slice" / "docker-abc.scope"
    cg.mkdir(parents=True)
    (cg / "cgroup.procs").write_text("4242\n")
    empty = cgroup_root / "empty"
    empty.mkdir()
    (empty / "cgroup.procs").write_text("")
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "4242" / "mountinfo").write_text(CONTAINER)
    (proc / "1" / "mountinfo").write_text(HOST)
    source = KubeletVolumeMounts(cgroup_root=cgroup_root, proc_root=proc)
    cgid, empty_id = os.stat(cg).st_ino, os.stat(empty).st_ino
    assert source.mount_ids([cgid, empty_id, 999_999_999]) == {
        cgid: {103, 104, 105, 106, 108}, empty_id: frozenset(), 999_999_999: frozenset()}
    (proc / "4242" / "mountinfo").write_text("")  # cached: not read again
    assert source.mount_ids([cgid]) == {cgid: {103, 104, 105, 106, 108}}
    source.mount_ids([])  # forgotten
    assert source.mount_ids([cgid]) == {cgid: frozenset()}


def test_reads_real_proc_without_error():
    """On any Linux machine: our own cgroup and mount table parse (no kubelet volumes here)."""
    line = next((l for l in Path("/proc/self/cgroup").read_text().splitlines() if l.startswith("0::")), None)
    root = Path("/sys/fs/cgroup")
    if line is None or not (root / "cgroup.procs").exists():
        pytest.skip("no cgroup v2")
    cgid = os.stat(root / line[3:].lstrip("/")).st_ino
    assert parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    assert cgid in KubeletVolumeMounts().mount_ids([cgid])
