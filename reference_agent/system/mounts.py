"""Which of a container's mounts are Kubernetes configMap / secret / downwardAPI / projected
volumes: D19 makes every file on them class `file`, not `volume`.

Kubelet materialises such a volume on the node at
`<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~<configmap|secret|downward-api|projected>/<name>`
(secrets and projected tokens on a tmpfs mounted there, configMaps as a plain directory on the
kubelet's filesystem) and the runtime bind-mounts that directory into the container. Nothing in
the container's own view says so: its mountinfo line shows the mount's filesystem (major:minor)
and the mount's `root` *inside that filesystem* (`/` for the tmpfs, the directory's path for a
bind of a plain directory). So the host path is recovered by translating through the host's
mount table: the host mount of the same filesystem whose root is a prefix of the container
mount's root gives `host mount point + rest of root`. That works for any runtime (Docker,
containerd, CRI-O) and for both kinds of backing, and the kubelet root may be anywhere
(`/var/lib/kubelet`, microk8s' snap path, a test directory): the pattern is matched on the
`pods/<uid>/volumes/kubernetes.io~<kind>/<name>` tail.

The kernel classifies by mount id (`struct mount.mnt_id`, mountinfo's first field), which is
unique system-wide while the mount exists; FileEnforcer keeps the set in the `file_mounts` map.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reference_agent.system.cgroups import cgroup_id_of, cgroup_pids, cgroup_tree

log = logging.getLogger(__name__)

# D19's "file" volume types, as kubelet's volume plugins name their directories.
FILE_VOLUME_PLUGINS = (
    "kubernetes.io~configmap",
    "kubernetes.io~secret",
    "kubernetes.io~downward-api",
    "kubernetes.io~projected",
)
_KUBELET_FILE_VOLUME = re.compile(
    r"/pods/[^/]+/volumes/(" + "|".join(re.escape(p) for p in FILE_VOLUME_PLUGINS) + r")/[^/]+(/.*)?$"
)


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/<pid>/mountinfo (proc(5)), the fields used here."""

    mount_id: int
    parent_id: int
    dev: str  # "major:minor" of the filesystem
    root: str  # the mount's root within its filesystem
    mount_point: str  # relative to the reading process's root
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo text; malformed lines are skipped (and logged), never fatal."""
    out: list[MountInfo] = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            out.append(MountInfo(
                mount_id=int(fields[0]), parent_id=int(fields[1]), dev=fields[2],
                root=_unescape(fields[3]), mount_point=_unescape(fields[4]),
                fstype=fields[sep + 1], source=_unescape(fields[sep + 2]) if len(fields) > sep + 2 else "",
            ))
        except (ValueError, IndexError):
            log.debug("mountinfo: skipping malformed line %r", line)
    return out


def is_kubelet_file_volume(host_path: str) -> bool:
    """A host path inside a kubelet configMap/secret/downwardAPI/projected volume directory."""
    return _KUBELET_FILE_VOLUME.search(host_path) is not None


def _within(root: str, path: str) -> str | None:
    """`path` relative to `root` ("" when equal), or None when it is not below root."""
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    return None


def host_paths(mount: MountInfo, host: Iterable[MountInfo]) -> list[str]:
    """Where the root of a container's `mount` is visible in the host mount table: one path per
    host mount of the same filesystem whose root contains it."""
    paths = []
    for h in host:
        if h.dev != mount.dev:
            continue
        rest = _within(h.root, mount.root)
        if rest is None:
            continue
        paths.append(h.mount_point.rstrip("/") + "/" + rest if rest else h.mount_point)
    return paths


def kubelet_file_mount_ids(container: Iterable[MountInfo], host: Iterable[MountInfo]) -> frozenset[int]:
    """Mount ids of the container mounts whose root is a kubelet file-class volume (D19). A
    mount whose own root already names such a directory (a bind from the kubelet filesystem)
    counts even when the host table has no entry for its filesystem."""
    host = list(host)
    ids = set()
    for m in container:
        if is_kubelet_file_volume(m.root) or any(is_kubelet_file_volume(p) for p in host_paths(m, host)):
            ids.add(m.mount_id)
    return frozenset(ids)


class KubeletVolumeMounts:
    """cgroup v2 id -> mount ids of its kubelet file-class volumes, by reading the mountinfo of
    a process in that cgroup. Results are cached per cgroup id (a container's volume mounts are
    in place before its first process runs and stay until it ends); a cgroup with no process
    yet is not cached, so the next call tries again."""

    def __init__(self, cgroup_root: Path = Path("/sys/fs/cgroup"), proc_root: Path = Path("/proc"),
                 host_pid: int = 1) -> None:
        self._cgroup_root = cgroup_root
        self._proc_root = proc_root
        self._host_pid = host_pid  # whose mount table is the node's (pid 1; a DaemonSet needs hostPID)
        self._cache: dict[int, frozenset[int]] = {}
        self._dirs: dict[int, Path] = {}

    def _cgroup_dir(self, cgroup_id: int) -> Path | None:
        known = self._dirs.get(cgroup_id)
        if known is not None and _still(known, cgroup_id):
            return known
        for dirpath, ino in cgroup_tree(self._cgroup_root):
            self._dirs[ino] = Path(dirpath)
        return self._dirs.get(cgroup_id)

    def _a_pid(self, cgroup_id: int) -> int | None:
        d = self._cgroup_dir(cgroup_id)
        pids = cgroup_pids(d) if d is not None else []
        return pids[0] if pids else None

    def mount_ids(self, cgroup_ids: Iterable[int]) -> dict[int, frozenset[int]]:
        """cgroup id -> its kubelet file-class volume mount ids (empty when it has none or has
        no process to read them from); forgets cgroups not asked for."""
        wanted = set(cgroup_ids)
        for gone in set(self._cache) - wanted:
            del self._cache[gone]
        host: list[MountInfo] | None = None
        out: dict[int, frozenset[int]] = {}
        for cgid in wanted:
            if cgid in self._cache:
                out[cgid] = self._cache[cgid]
                continue
            pid = self._a_pid(cgid)
            if pid is None:
                out[cgid] = frozenset()
                continue
            try:
                mine = parse_mountinfo((self._proc_root / str(pid) / "mountinfo").read_text())
                if host is None:
                    host = parse_mountinfo((self._proc_root / str(self._host_pid) / "mountinfo").read_text())
            except OSError as exc:  # the process ended meanwhile: try again next time
                log.debug("mountinfo of pid %d (cgroup %d): %s", pid, cgid, exc)
                out[cgid] = frozenset()
                continue
            ids = kubelet_file_mount_ids(mine, host)
            self._cache[cgid] = out[cgid] = ids
        return out


def _still(path: Path, cgroup_id: int) -> bool:
    """Whether the directory remembered for a cgroup id is still that cgroup (ids are inodes,
    reused once a cgroup is removed)."""
    try:
        return cgroup_id_of(path) == cgroup_id
    except OSError:
        return False
