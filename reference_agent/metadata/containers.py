"""Which container (and which Kubernetes pod) a cgroup v2 id belongs to.

The kernel side reports a task's cgroup v2 id (`TaskInfo.cgroup_id`): the inode number of the
task's cgroup directory under /sys/fs/cgroup. Two ways to know the containers, by whether the
agent reads pods from the Kubernetes API (config `kubernetes:` or `$KUBECONFIG`, a PodSource):

WITH THE API (a Kubernetes node, any runtime). The cgroup tree is the authority: every runtime
names a container's cgroup after its id, and kubelet puts it below a cgroup named after its
pod's uid (system/cgroups.py `identity_from_cgroup_path`, every cgroupfs and systemd layout).
A walk of the tree gives each container's id, pod uid and cgroup ids (the container's own
sub-cgroups included). A container in a pod takes everything from the pod object
(metadata/kubernetes.py): pod name, namespace, labels, IP, and from the pod's
`status.containerStatuses[]` entry whose `containerID` is `<runtime>://<id>`, the container's
name, image and runtime. No container runtime is asked about it, so a containerd or CRI-O node
needs no Docker socket. Only a container in no pod (a plain `docker run` on the node) is asked
of the runtime: Docker through its SDK, when there is a Docker daemon; otherwise it is known by
its id (and the runtime its cgroup name tells) only. A container whose cgroup went away is kept
for GONE_GRACE_S (its last ring-buffer records still resolve), then forgotten.

WITHOUT THE API (a plain Docker host). Docker is the authority: the cache lists containers,
reads each one's cgroup from its init pid's `/proc/<pid>/cgroup` (falling back to the two Docker
layouts `/system.slice/docker-<id>.scope` and `/docker/<id>`), indexes the sub-cgroups below it,
and follows Docker's start/destroy events. Pod facts, when a container has them, come from the
labels kubelet's CRI puts on containers (`io.kubernetes.pod.name`, `.pod.namespace`,
`.pod.uid`; one without `io.kubernetes.pod.name` is not Kubernetes-managed, D15), pod labels
from a cri-dockerd sandbox container's labels or per-label container labels
`d4c.pod.label/KEY = VALUE` (everything after the fixed prefix, `/` included, is the key), and
`d4c.pod.ip` gives orchestrator.resource.ip when the container has no network of its own.

A cgroup id that is no container's is the host (D15). Container facts from Docker use the SDK's
`docker.DockerClient` surface (`containers.list`, `containers.get`, `images.get`, `events`);
tests pass a fake object with that surface. Image references are normalised by D13
(`registry/path/name:tag`, `latest` when the reference has no tag, short Docker Hub names
`nginx`, `user/app` become `docker.io/library/nginx:latest`, `docker.io/user/app:latest`) by the
policy engine's `image_parts`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reference_agent.policy.operation import image_parts
from reference_agent.system import procfs
from reference_agent.system.cgroups import (
    cgroup_id_of,
    cgroup_pids,
    cgroup_tree,
    find_cgroup2_mount,
    identity_from_cgroup_path,
)

log = logging.getLogger(__name__)

POD_LABEL_PREFIX = "d4c.pod.label/"
POD_IP_LABEL = "d4c.pod.ip"
K8S_POD_NAME = "io.kubernetes.pod.name"
K8S_POD_NAMESPACE = "io.kubernetes.pod.namespace"
K8S_POD_UID = "io.kubernetes.pod.uid"
K8S_SANDBOX_ID = "io.kubernetes.sandbox.id"

_DIGEST_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
GONE_GRACE_S = 30.0
# The runtime a cgroup name tells (`<prefix>-<id>.scope`), as ECS container.runtime names it.
_RUNTIME_OF_PREFIX = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o", "libpod": "podman"}


class ApiContainerFacts(Protocol):
    """One container of an ApiPodFacts (metadata/kubernetes.py's ApiContainer)."""

    name: str
    image: str
    runtime: str


class ApiPodFacts(Protocol):
    """What a PodSource answers (metadata/kubernetes.py's ApiPod)."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    ip: str | None
    containers: Mapping[str, ApiContainerFacts]


class PodSource(Protocol):
    """Pod facts from the Kubernetes API; by_uid() must never wait on the network."""

    on_change: Callable[[], None] | None

    def by_uid(self, uid: str) -> ApiPodFacts | None: ...

    def ensure(self, wanted: Iterable[tuple[str, str]]) -> None: ...

    def cluster_uid(self) -> str | None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ImageRef:
    """A container's image reference with its D13 parts."""

    reference: str  # as Docker reports it (Config.Image), e.g. "nginx"
    name: str  # last path component: containerImageName / container.image.name
    tag: str  # "latest" when the reference has none: containerImageTag / container.image.tag
    full_name: str  # registry/path/name:tag: fullContainerImageName


def parse_image_reference(reference: str) -> ImageRef:
    """Normalise by D13 with the policy engine's own `image_parts`: one implementation of
    the rule, so the agent's scoping and the reference evaluator cannot disagree."""
    name, tag, full = image_parts(reference.strip())
    return ImageRef(reference=reference, name=name, tag=tag, full_name=full)


@dataclass(frozen=True)
class PodInfo:
    name: str | None  # None: a pod the API has not described (yet)
    namespace: str | None
    uid: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str | None
    image: ImageRef | None  # None only when Docker knows no reference for it (bare image id)
    pod: PodInfo | None  # None: not managed by Kubernetes (D15)
    init_pid: int | None = None  # host pid of the container's first process (its root fs)
    runtime: str = "docker"


def container_info_from_attrs(attrs: Mapping[str, Any], resolve_image_id: Callable[[str], str | None] | None = None,
                              sandbox_labels: Callable[[str], Mapping[str, str] | None] | None = None) -> ContainerInfo:
    """Build ContainerInfo from `docker inspect` attributes (the SDK's `Container.attrs`)."""
    config = attrs.get("Config") or {}
    labels: Mapping[str, str] = config.get("Labels") or {}
    reference = config.get("Image") or ""
    if (not reference or _DIGEST_ID.match(reference)) and resolve_image_id is not None:
        # Started from a bare image id: use a tag Docker has for that image, if any.
        reference = resolve_image_id(attrs.get("Image") or reference) or ""
    image = None
    if reference and not _DIGEST_ID.match(reference):
        try:
            image = parse_image_reference(reference)
        except ValueError:
            log.warning("container %s: unparseable image reference %r", attrs.get("Id"), reference)
    state = attrs.get("State") or {}
    pid = state.get("Pid") or None
    return ContainerInfo(
        id=attrs["Id"],
        name=(attrs.get("Name") or "").lstrip("/") or None,
        image=image,
        pod=_pod_from_labels(labels, attrs, sandbox_labels),
        init_pid=pid,
    )


def _pod_from_labels(labels: Mapping[str, str], attrs: Mapping[str, Any],
                     sandbox_labels: Callable[[str], Mapping[str, str] | None] | None) -> PodInfo | None:
    pod_name = labels.get(K8S_POD_NAME)
    if not pod_name:
        return None
    pod_labels: dict[str, str] = {}
    sandbox_id = labels.get(K8S_SANDBOX_ID)
    if sandbox_id and sandbox_labels is not None:
        sandbox = sandbox_labels(sandbox_id) or {}
        pod_labels.update({k: v for k, v in sandbox.items()
                           if not k.startswith(("io.kubernetes.", "annotation.", POD_LABEL_PREFIX))})
    pod_labels.update(iter_pod_labels(labels))
    ip = labels.get(POD_IP_LABEL) or _first_ip(attrs)
    namespace, uid = labels.get(K8S_POD_NAMESPACE), labels.get(K8S_POD_UID)
    return PodInfo(name=pod_name, namespace=namespace, uid=uid, labels=pod_labels, ip=ip)


def _first_ip(attrs: Mapping[str, Any]) -> str | None:
    settings = attrs.get("NetworkSettings") or {}
    if settings.get("IPAddress"):
        return settings["IPAddress"]
    for net in (settings.get("Networks") or {}).values():
        if net and net.get("IPAddress"):
            return net["IPAddress"]
    return None


@dataclass
class _Found:
    """A container found in the cgroup tree."""

    pod_uid: str | None
    prefix: str  # of its cgroup name: docker, cri-containerd, crio, ... ("" for a bare id)
    top: Path  # its own cgroup directory (the sub-cgroups are below)
    ids: set[int] = field(default_factory=set)


def image_or_none(reference: str, container_id: str) -> ImageRef | None:
    if not reference or _DIGEST_ID.match(reference):
        return None
    try:
        return parse_image_reference(reference)
    except ValueError:
        log.warning("container %s: unparseable image reference %r", container_id[:12], reference)
        return None


def first_pid(cgroup_dir: Path) -> int | None:
    """The lowest pid in a cgroup (its container's init, normally): the container's root fs."""
    pids = cgroup_pids(cgroup_dir)
    return min(pids) if pids else None


class ContainerCache:
    """cgroup id -> ContainerInfo, from the cgroup tree and the Kubernetes API when there is a
    pod source, else from Docker (list at start, events while running); module docstring.

    `lookup(cgroup_id)` never blocks on Docker for a cgroup it has recently found unknown:
    misses are remembered for `negative_ttl` seconds so host activity cannot make the agent
    hammer the daemon; a container `start` event clears them.
    """

    def __init__(self, docker_client: Any, *, cgroup_root: Path | None = None,
                 proc_root: Path = Path("/proc"), negative_ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[], None] | None = None, pods: PodSource | None = None) -> None:
        self._docker = docker_client
        self._pods = pods
        if pods is not None:
            # A pod's labels changed (or the API answered for the first time): re-derive.
            pods.on_change = self.refresh
        if cgroup_root is None:
            # The cgroup2 mount: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts.
            cgroup_root = Path(find_cgroup2_mount() or "/sys/fs/cgroup")
        self._cgroup_root = cgroup_root
        self._proc_root = proc_root
        self._negative_ttl = negative_ttl
        self._clock = clock
        self.on_change = on_change  # public: the agent subscribes after construction
        self._lock = threading.Lock()
        self._by_cgroup: dict[int, str] = {}
        self._containers: dict[str, ContainerInfo] = {}
        self._cgroups_of: dict[str, set[int]] = {}
        self._misses: dict[int, float] = {}
        self._gone_at: dict[str, float] = {}  # container id -> when its cgroup was last missed
        self._events_thread: threading.Thread | None = None
        self._events_stream: Any = None
        self._stopping = threading.Event()

    # -- queries -----------------------------------------------------------------------------

    def lookup(self, cgroup_id: int) -> ContainerInfo | None:
        """The container of this cgroup, or None for the host (D15)."""
        with self._lock:
            cid = self._by_cgroup.get(cgroup_id)
            if cid is not None:
                return self._containers.get(cid)
            missed_at = self._misses.get(cgroup_id)
        if missed_at is not None and self._clock() - missed_at < self._negative_ttl:
            return None
        # Unknown: the container may have started after the last refresh and before its
        # `start` event reached us. One synchronous refresh settles it.
        self.refresh()
        with self._lock:
            cid = self._by_cgroup.get(cgroup_id)
            if cid is None:
                self._misses[cgroup_id] = self._clock()
                return None
            return self._containers.get(cid)

    def containers(self) -> dict[int, ContainerInfo]:
        """Every known cgroup id with its container (for per-container policy masks)."""
        with self._lock:
            return {cg: self._containers[cid] for cg, cid in self._by_cgroup.items() if cid in self._containers}

    def get(self, container_id: str) -> ContainerInfo | None:
        with self._lock:
            return self._containers.get(container_id)

    # -- refresh -----------------------------------------------------------------------------

    def cluster_uid(self) -> str | None:
        """orchestrator.cluster.id from the API (kube-system's uid), None without one."""
        return self._pods.cluster_uid() if self._pods is not None else None

    def refresh(self) -> None:
        """Re-find running containers and re-index their cgroups."""
        if self._pods is not None:
            self._refresh_from_cgroups()
            return
        try:
            listed = self._docker.containers.list()
        except Exception as exc:  # daemon down: keep what we know, report once per refresh
            log.warning("docker: cannot list containers: %s", exc)
            return
        changed = False
        seen = set()
        for container in listed:
            seen.add(container.id)
            changed |= self._index(self._info(container.attrs))
        with self._lock:
            gone = [cid for cid in self._containers if cid not in seen]
        for cid in gone:
            changed |= self._forget(cid)
        if changed and self.on_change is not None:
            self.on_change()

    def handle_event(self, event: Mapping[str, Any]) -> None:
        """Apply one Docker event (the decoded dict `DockerClient.events(decode=True)` yields)."""
        if event.get("Type", "container") != "container":
            return
        action = event.get("Action") or event.get("status") or ""
        cid = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not cid:
            return
        if self._pods is not None:  # the cgroup tree is the authority: the event only says when to look
            if action == "start":
                with self._lock:
                    self._misses.clear()
                self.refresh()
            return
        changed = False
        if action == "start":
            try:
                container = self._docker.containers.get(cid)
            except Exception as exc:  # gone again already, or daemon hiccup
                log.info("docker: container %s started but cannot be inspected: %s", cid[:12], exc)
                return
            changed = self._index(self._info(container.attrs))
            with self._lock:
                self._misses.clear()
        elif action == "destroy":
            # Not on `die`: activity of a dying container may still be in the ring buffer.
            changed = self._forget(cid)
        if changed and self.on_change is not None:
            self.on_change()

    def start_events(self) -> None:
        """Follow Docker events (and the pod source, if any) in daemon threads until close()."""
        if self._pods is not None:
            self._pods.start()
        if self._docker is None:  # no Docker on this node: pod watch and cgroup walks only
            return
        filters = {"type": "container", "event": ["start", "destroy"]}
        self._events_stream = self._docker.events(decode=True, filters=filters)

        def follow() -> None:
            try:
                for event in self._events_stream:
                    if self._stopping.is_set():
                        break
                    self.handle_event(event)
            except Exception as exc:  # stream closed by close(), or daemon gone
                if not self._stopping.is_set():
                    log.warning("docker: event stream ended: %s", exc)

        self._events_thread = threading.Thread(target=follow, name="docker-events", daemon=True)
        self._events_thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._pods is not None:
            self._pods.close()
        stream = self._events_stream
        if stream is not None and hasattr(stream, "close"):
            try:
                stream.close()
            except Exception:  # closing a dead stream is not an error worth reporting
                pass
        if self._events_thread is not None:
            self._events_thread.join(timeout=2)

    # -- from the cgroup tree (with a pod source) ---------------------------------------------

    def _refresh_from_cgroups(self) -> None:
        found = self._walk()
        assert self._pods is not None
        self._pods.ensure((f.pod_uid, cid) for cid, f in found.items() if f.pod_uid)
        changed = False
        for cid, f in found.items():
            info = self._from_pod(cid, f) if f.pod_uid else self._from_runtime(cid, f)
            changed |= self._index(info, f.ids)
        now = self._clock()
        with self._lock:
            for cid in found:
                self._gone_at.pop(cid, None)
            missing = [cid for cid in self._containers if cid not in found]
            for cid in missing:
                self._gone_at.setdefault(cid, now)
            expired = [cid for cid in missing if now - self._gone_at[cid] >= GONE_GRACE_S]
        for cid in expired:
            changed |= self._forget(cid)
            self._gone_at.pop(cid, None)
        if changed and self.on_change is not None:
            self.on_change()

    def _walk(self) -> dict[str, _Found]:
        found: dict[str, _Found] = {}
        root = str(self._cgroup_root)
        for dirpath, _dirs, _files in os.walk(root):
            identity = identity_from_cgroup_path(dirpath[len(root):])
            if identity is None:
                continue
            try:
                ino = cgroup_id_of(dirpath)
            except OSError:
                continue  # removed while walking
            entry = found.get(identity.container_id)
            if entry is None:  # os.walk is top-down: the first directory is the container's own
                name = os.path.basename(dirpath)
                prefix = name[: name.index(identity.container_id)].rstrip("-")
                entry = found[identity.container_id] = _Found(identity.pod_uid, prefix, Path(dirpath))
            entry.ids.add(ino)
        return found

    def _from_pod(self, cid: str, found: _Found) -> ContainerInfo:
        assert self._pods is not None and found.pod_uid is not None
        api = self._pods.by_uid(found.pod_uid)
        status = api.containers.get(cid) if api is not None else None
        runtime = status.runtime if status is not None and status.runtime else \
            _RUNTIME_OF_PREFIX.get(found.prefix, "unknown")
        pod = PodInfo(name=api.name, namespace=api.namespace, uid=api.uid, labels=dict(api.labels), ip=api.ip) \
            if api is not None else PodInfo(name=None, namespace=None, uid=found.pod_uid)
        return ContainerInfo(id=cid, name=status.name if status is not None else None,
                             image=image_or_none(status.image, cid) if status is not None else None,
                             pod=pod, init_pid=first_pid(found.top), runtime=runtime)

    def _from_runtime(self, cid: str, found: _Found) -> ContainerInfo:
        with self._lock:
            old = self._containers.get(cid)
        if old is not None and old.pod is None and (old.name is not None or old.image is not None):
            return old  # asked once; a container's name and image do not change
        bare = ContainerInfo(id=cid, name=None, image=None, pod=None, init_pid=first_pid(found.top),
                             runtime=_RUNTIME_OF_PREFIX.get(found.prefix, "unknown"))
        if self._docker is None or found.prefix not in ("docker", ""):
            return bare
        try:
            attrs = self._docker.containers.get(cid).attrs
        except Exception as exc:  # not Docker's (another runtime), or the daemon is down
            log.debug("docker: container %s: %s", cid[:12], exc)
            return bare
        info = container_info_from_attrs(attrs, self._image_tag)
        # Its cgroup names no pod: whatever its labels say, it is in none (the cgroup is the authority).
        return ContainerInfo(id=info.id, name=info.name, image=info.image, pod=None,
                             init_pid=info.init_pid or bare.init_pid, runtime="docker")

    # -- internals ---------------------------------------------------------------------------

    def _info(self, attrs: Mapping[str, Any]) -> ContainerInfo:
        return container_info_from_attrs(attrs, self._image_tag, self._sandbox_labels)

    def _image_tag(self, image_id: str) -> str | None:
        try:
            tags = self._docker.images.get(image_id).tags
        except Exception:
            return None
        return tags[0] if tags else None

    def _sandbox_labels(self, sandbox_id: str) -> Mapping[str, str] | None:
        try:
            return (self._docker.containers.get(sandbox_id).attrs.get("Config") or {}).get("Labels") or {}
        except Exception:
            return None

    def _index(self, info: ContainerInfo, cgroups: set[int] | None = None) -> bool:
        if cgroups is None:
            cgroups = self._cgroup_ids_for(info)
        with self._lock:
            before = (self._containers.get(info.id), self._cgroups_of.get(info.id))
            for cg in self._cgroups_of.get(info.id, set()) - cgroups:
                self._by_cgroup.pop(cg, None)
            self._containers[info.id] = info
            self._cgroups_of[info.id] = cgroups
            for cg in cgroups:
                self._by_cgroup[cg] = info.id
                self._misses.pop(cg, None)
            return before != (info, cgroups)

    def _forget(self, container_id: str) -> bool:
        with self._lock:
            if container_id not in self._containers:
                return False
            del self._containers[container_id]
            for cg in self._cgroups_of.pop(container_id, set()):
                if self._by_cgroup.get(cg) == container_id:
                    del self._by_cgroup[cg]
            return True

    def _cgroup_dirs_for(self, info: ContainerInfo) -> list[Path]:
        dirs: list[Path] = []
        if info.init_pid:
            path = procfs.read_cgroup_path(str(self._proc_root), info.init_pid)
            if path is not None:
                dirs.append(self._cgroup_root / path.lstrip("/"))
        dirs.append(self._cgroup_root / "system.slice" / f"docker-{info.id}.scope")
        dirs.append(self._cgroup_root / "docker" / info.id)
        return dirs

    def _cgroup_ids_for(self, info: ContainerInfo) -> set[int]:
        ids: set[int] = set()
        for top in self._cgroup_dirs_for(info):
            if not top.is_dir() or top == self._cgroup_root:
                continue  # never map the root cgroup (that is the host) to a container
            ids.update(ino for _dir, ino in cgroup_tree(top))
        return ids


def iter_pod_labels(labels: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """The container labels that carry pod labels (POD_LABEL_PREFIX convention), prefix removed."""
    for key, value in labels.items():
        if key.startswith(POD_LABEL_PREFIX) and len(key) > len(POD_LABEL_PREFIX):
            yield key[len(POD_LABEL_PREFIX):], value
