"""cgroup v2 ids and the container a cgroup belongs to.

The kernel side reports `cgroup_id` (bpf_get_current_cgroup_id: the kernfs id, which is the
inode number of the cgroup's directory on the cgroup2 filesystem); /proc/<pid>/cgroup gives a
path. `CgroupIndex` maps one to the other, so processes seeded from /proc and processes
reported by the kernel carry the same kind of id.

Which container a cgroup is: the runtimes name the container's cgroup after its 64-hex id
(docker: `docker-<id>.scope` or `/docker/<id>`; containerd/CRI: `cri-containerd-<id>.scope`,
`/kubepods/.../<id>`; CRI-O: `crio-<id>.scope`; podman: `libpod-<id>.scope`).
`container_id_from_cgroup_path` reads that id; a process without one is a host process (D15).
Kubelet puts a pod's containers below a pod cgroup named after the pod's uid, in either driver:
cgroupfs `/kubepods[/<qos>]/pod<uid>/<id>`, systemd
`kubepods.slice/kubepods[-<qos>].slice/kubepods[-<qos>]-pod<uid, - as _>.slice/<runtime>-<id>.scope`;
`identity_from_cgroup_path` reads both (container id, pod uid), which is all a node agent needs
to find the container's pod in the Kubernetes API. `identity_from_proc_cgroup` does it for a
/proc/<pid>/cgroup file of either cgroup version (v1: one line per hierarchy).
The metadata layer, which talks to the runtimes, may pass the table its own resolver instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reference_agent.system import procfs

# A container runtime's cgroup leaf: optional "<runtime>-" prefix, 64 hex, optional ".scope".
_CONTAINER_COMPONENT = re.compile(r"^(?:(?P<prefix>[a-z][a-z0-9-]*)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?$")
# conmon (CRI-O's monitor) and similar helpers sit in a cgroup named after the container but
# are not in it.
_NOT_A_CONTAINER_PREFIXES = ("crio-conmon", "conmon", "libpod-conmon")

# Cgroup trees on a node are small (hundreds of directories); a full walk to find an unknown
# id is cheap, but an id that is nowhere (a cgroup removed since) must not trigger a walk per
# event: negative answers are remembered, up to this many.
_MAX_UNKNOWN_IDS = 4096
_MAX_KNOWN_IDS = 65536


def cgroup_id_of(path: str | os.PathLike[str]) -> int:
    """A cgroup v2 id is the inode number of its directory (what bpf_get_current_cgroup_id
    returns). Raises OSError when the cgroup is gone."""
    return os.stat(path).st_ino


def cgroup_tree(top: str | os.PathLike[str]) -> Iterator[tuple[str, int]]:
    """(directory, cgroup id) of `top` and every cgroup below it, top-down; a cgroup removed
    while walking is skipped."""
    for dirpath, _dirs, _files in os.walk(top):
        try:
            yield dirpath, cgroup_id_of(dirpath)
        except OSError:
            continue


def cgroup_pids(cgroup_dir: str | os.PathLike[str]) -> list[int]:
    """The pids in a cgroup (its cgroup.procs, in the kernel's order); empty when unreadable."""
    try:
        return [int(line) for line in Path(cgroup_dir, "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def cgroup_id_of_pid(pid: int, proc_root: str = "/proc", cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int | None:
    """The cgroup v2 id of a process, None when it has no v2 cgroup or cannot be read."""
    path = procfs.read_cgroup_path(proc_root, pid)
    if path is None:
        return None
    try:
        return cgroup_id_of(f"{os.fspath(cgroup_root)}{path}")
    except OSError:
        return None


def container_id_from_cgroup_path(path: str | None) -> str | None:
    """The container id named by a cgroup v2 path, or None for a host cgroup."""
    if not path:
        return None
    # The innermost container-looking component wins (nested cgroups under the container's).
    for component in reversed(path.strip("/").split("/")):
        m = _CONTAINER_COMPONENT.match(component)
        if m and (m.group("prefix") or "") not in _NOT_A_CONTAINER_PREFIXES:
            return m.group("id")
    return None


# A kubelet pod cgroup: cgroupfs "pod<uid>", systemd "kubepods[-<qos>]-pod<uid with _>.slice".
_POD_COMPONENT = re.compile(
    r"^(?:pod(?P<uid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|kubepods(?:-[a-z]+)?-pod(?P<suid>[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice)$")


@dataclass(frozen=True)
class CgroupIdentity:
    container_id: str
    pod_uid: str | None  # None: a container in no Kubernetes pod (plain docker run, ctr run)


def identity_from_cgroup_path(path: str | None) -> CgroupIdentity | None:
    """Container id and pod uid named by a cgroup path (v1 or v2), or None for a host cgroup.
    The pod uid is only read from a component above the container's: a container that names its
    own sub-cgroups "pod..." cannot claim a pod."""
    container_id = container_id_from_cgroup_path(path)
    if container_id is None or path is None:
        return None
    components = path.strip("/").split("/")
    leaf = max(i for i, c in enumerate(components) if container_id in c)
    for component in reversed(components[:leaf]):
        m = _POD_COMPONENT.match(component)
        if m:
            uid = m.group("uid") or m.group("suid").replace("_", "-")
            return CgroupIdentity(container_id, uid)
    return CgroupIdentity(container_id, None)


def identity_from_proc_cgroup(text: str) -> CgroupIdentity | None:
    """The identity from a /proc/<pid>/cgroup file: the v2 line (`0::/path`) when there is one,
    else the first v1 hierarchy line whose path names a container (`4:memory:/kubepods/...`)."""
    lines = [line.split(":", 2) for line in text.splitlines() if line.count(":") >= 2]
    for hierarchy, controllers, path in lines:
        if hierarchy == "0" and controllers == "":
            found = identity_from_cgroup_path(path)
            if found is not None:
                return found
    for _hierarchy, _controllers, path in lines:
        found = identity_from_cgroup_path(path)
        if found is not None:
            return found
    return None


def find_cgroup2_mount(mounts_file: str = "/proc/self/mounts") -> str | None:
    """Where the unified (v2) hierarchy is mounted: /sys/fs/cgroup, or .../unified on hybrid hosts."""
    try:
        with open(mounts_file) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        return None
    return None


class CgroupIndex:
    """cgroup v2 path <-> id, under the mount point `root` (None: no cgroup v2, every id is 0)."""

    def __init__(self, root: str | None) -> None:
        self.root = root.rstrip("/") if root else None
        self._path_of: dict[int, str] = {}
        self._unknown: set[int] = set()
        self.root_id = self.id_of("/")

    def id_of(self, path: str | None) -> int:
        """The id of the cgroup at `path` (as /proc/<pid>/cgroup writes it); 0 if unknown."""
        if self.root is None or path is None:
            return 0
        rel = "/" + path.strip("/")
        try:
            ino = cgroup_id_of(self.root + rel.rstrip("/"))
        except OSError:
            return 0
        self._remember(ino, rel)
        return ino

    def _remember(self, cgroup_id: int, rel: str) -> None:
        # Containers come and go and each leaves a dead id behind; start over rather than grow.
        if len(self._path_of) >= _MAX_KNOWN_IDS:
            self._path_of.clear()
        self._path_of[cgroup_id] = rel
        self._unknown.discard(cgroup_id)

    def path_of(self, cgroup_id: int) -> str | None:
        """The path of a cgroup id, walking the hierarchy once if the id is new."""
        if self.root is None or cgroup_id == 0:
            return None
        path = self._path_of.get(cgroup_id)
        if path is not None or cgroup_id in self._unknown:
            return path
        for dirpath, ino in cgroup_tree(self.root):
            self._remember(ino, dirpath[len(self.root) :] or "/")
        path = self._path_of.get(cgroup_id)
        if path is None:
            if len(self._unknown) >= _MAX_UNKNOWN_IDS:
                self._unknown.clear()
            self._unknown.add(cgroup_id)
        return path


def container_resolver(index: CgroupIndex) -> Callable[[int], str | None]:
    """The default cgroup id -> container id function of the process table."""

    def resolve(cgroup_id: int) -> str | None:
        if cgroup_id == 0 or cgroup_id == index.root_id:
            return None
        return container_id_from_cgroup_path(index.path_of(cgroup_id))

    return resolve
