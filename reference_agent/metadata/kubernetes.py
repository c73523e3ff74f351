"""Pod facts from the Kubernetes API, with the official `kubernetes` Python client.

On a Kubernetes node a container's cgroup path names its pod's uid (system/cgroups.py); the
pod object then says everything else: name, namespace, labels, IP, and per container
(`status.containerStatuses[]`: `containerID` = `<runtime>://<id>`, `name`, `image`) which
container of the pod it is and its image. When the agent's config has a `kubernetes:` section
(config.py; or `$KUBECONFIG`), `PodDirectory` answers "which pod has uid U?" (and, for
containers found through a runtime, "what does the API say about pod NAMESPACE/NAME?"), and the
container cache takes those facts instead of asking a container runtime.

How it stays current without ever blocking enforcement:
- with the node's name (`kubernetes.node_name`, else `$NODE_NAME` from the downward API, else
  the host name, which is kubelet's default node name), one
  thread lists the pods scheduled to this node (`fieldSelector=spec.nodeName=NODE`) and then
  watches that list; a pod is normally known before kubelet starts its containers, and a label
  change arrives as a MODIFIED event. An expired watch (410 Gone) is re-listed.
- a pod the watch has not delivered (no node name, or a race) is fetched with one GET by
  namespace/name on a second thread; the answer is trusted for `cache_ttl` seconds when there
  is no watch to keep it current.
- `lookup()` only reads the in-memory cache: a miss queues a fetch and returns None (the caller
  keeps the container labels' facts); `on_change` is called once the API's answer arrives, and
  the container cache then re-derives its containers (and the agent re-applies the masks).
- API down or refusing: logged once (and once when it answers again); pods never seen keep the
  container labels' facts; pods already seen keep the API's last answer (it is more accurate
  than container labels, which carry no pod labels at all). Retries every `retry_interval`.

- a container whose pod (or whose status in its pod) the cache does not have yet is the normal
  race of a pod just scheduled: `ensure()` lists the node's pods once, synchronously (bounded by
  `request_timeout`, at most once a second, once per `retry_interval` while the API is known
  down, so an API back up is used at once rather than at the watch thread's next retry); the
  agent calls it before it confirms a policy, so a policy covers the pods of the containers it
  sees.

Calls made (and nothing else; deploy/rbac.yaml grants exactly these, tests/deploy checks it):
`GET /api/v1/namespaces/{ns}/pods/{name}` (get pods), `GET /api/v1/pods?fieldSelector=...`
(list pods), the same with `watch=true` (watch pods), and `GET /api/v1/namespaces/kube-system`
(get namespaces).

Cluster facts: the API has no object naming "this cluster". orchestrator.cluster.id is the
config's `cluster_id`, else the `kube-system` namespace's uid (`cluster_uid()`): it is created
with the cluster and never deleted, so it identifies the cluster for as long as it exists, the
convention of other cluster-aware tools. orchestrator.cluster.name only ever comes from the config.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
from kubernetes.client.rest import ApiException

import d4c_yaml

from reference_agent.config import IN_CLUSTER, ConfigError, KubernetesConfig

log = logging.getLogger(__name__)

NODE_NAME_ENV = "NODE_NAME"
HTTP_NOT_FOUND = 404
HTTP_GONE = 410
CLUSTER_NAMESPACE = "kube-system"
ENSURE_INTERVAL_S = 1.0  # at most one synchronous list a second (ensure())


@dataclass(frozen=True)
class ApiContainer:
    """One `status.containerStatuses[]` entry (also init and ephemeral containers')."""

    name: str
    image: str  # the runtime's reference, e.g. docker.io/library/nginx:1.25 (D13 normalises it)
    runtime: str  # the containerID scheme: docker, containerd, cri-o


@dataclass(frozen=True)
class ApiPod:
    """What the API says about one pod (the facts policies can scope on)."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    node_name: str | None = None
    containers: Mapping[str, ApiContainer] = field(default_factory=dict)  # by container id


def _statuses(status: Any) -> dict[str, ApiContainer]:
    found: dict[str, ApiContainer] = {}
    if status is None:
        return found
    for group in (status.init_container_statuses, status.container_statuses, status.ephemeral_container_statuses):
        for entry in group or ():
            runtime, sep, cid = (entry.container_id or "").partition("://")
            if sep and cid:  # no id yet: the container is still being created
                found[cid] = ApiContainer(name=entry.name, image=entry.image or "", runtime=runtime)
    return found


def pod_from_model(pod: kubernetes.client.V1Pod) -> ApiPod:
    meta = pod.metadata
    status = pod.status
    return ApiPod(namespace=meta.namespace, name=meta.name, uid=meta.uid, labels=dict(meta.labels or {}),
                  ip=(status.pod_ip if status is not None else None) or None,
                  node_name=pod.spec.node_name if pod.spec is not None else None,
                  containers=_statuses(status))


def _check_kubeconfig(cfg: KubernetesConfig) -> None:
    """Read the kubeconfig with the hardened loader first: the client's own yaml.safe_load
    would accept an alias bomb, 1,000 nested lists or `!!int abc` and fail far from the file."""
    try:
        d4c_yaml.load(d4c_yaml.decode(Path(cfg.api).read_bytes()))
    except OSError as exc:
        raise ConfigError(cfg.file, cfg.line, "kubernetes.api", f"kubeconfig {cfg.api}: {exc.strerror or exc}", cfg.column) from None
    except d4c_yaml.YamlError as exc:
        raise ConfigError(cfg.file, cfg.line, "kubernetes.api", f"kubeconfig {cfg.api}:{exc.line}:{exc.column}: {exc.message}", cfg.column) from None


def client_configuration(cfg: KubernetesConfig) -> kubernetes.client.Configuration:
    """The client's Configuration for `cfg` (reads the kubeconfig or the service account; no
    request is made). An unusable one is a ConfigError at the `api` line."""
    configuration = kubernetes.client.Configuration()
    try:
        if cfg.api == IN_CLUSTER:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        else:
            if not os.path.isfile(cfg.api):
                raise ConfigError(cfg.file, cfg.line, "kubernetes.api", f"kubeconfig {cfg.api}: no such file", cfg.column)
            _check_kubeconfig(cfg)
            kubernetes.config.load_kube_config(config_file=cfg.api, client_configuration=configuration,
                                               persist_config=False)
    except ConfigError:
        raise
    except Exception as exc:  # ConfigException, YAML errors, bad certificates: all one line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "in-cluster service account" if cfg.api == IN_CLUSTER else f"kubeconfig {cfg.api}"
        raise ConfigError(cfg.file, cfg.line, "kubernetes.api", f"{where}: {message}", cfg.column) from None
    # The agent retries on its own schedule; urllib3's own retries would only stretch a
    # connection failure (and a blocked lookup thread) over several attempts.
    configuration.retries = False
    return configuration


def core_v1(cfg: KubernetesConfig) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(client_configuration(cfg)))


@dataclass
class _Entry:
    pod: ApiPod
    fetched_at: float
    watched: bool  # kept current by the watch (no TTL while the watch runs)


class PodDirectory:
    """(namespace, name) -> ApiPod from the API; see the module docstring for the rules."""

    def __init__(self, api: kubernetes.client.CoreV1Api, *, node_name: str | None, cache_ttl: float = 60.0,
                 request_timeout: float = 5.0, watch_timeout: int = 300, retry_interval: float = 5.0,
                 max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self.node_name = node_name
        self._ttl = cache_ttl
        self._timeout = request_timeout
        self._watch_timeout = watch_timeout
        self._retry = retry_interval
        self._max = max_entries
        self._clock = clock
        self.on_change: Callable[[], None] | None = None  # public: the container cache subscribes
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], _Entry] = {}
        self._missing: dict[tuple[str, str], float] = {}  # 404s, remembered for cache_ttl
        self._wanted: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._watching = False
        self._api_up: bool | None = None  # None: not asked yet
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch: kubernetes.watch.Watch | None = None
        self._last_ensure: float | None = None

    # -- queries -------------------------------------------------------------------------------

    @property
    def api_up(self) -> bool | None:
        return self._api_up

    def lookup(self, namespace: str | None, name: str | None, uid: str | None = None) -> ApiPod | None:
        """The API's facts for this pod from the cache, or None (a fetch is then queued).
        Never waits on the network."""
        with self._lock:
            if (not namespace or not name) and uid:
                # Only the uid is known: the watch's pods are the only ones findable by uid.
                return next((e.pod for e in self._pods.values() if e.pod.uid == uid), None)
            if not namespace or not name:
                return None
            key = (namespace, name)
            entry = self._pods.get(key)
            now = self._clock()
            if entry is not None and (uid is None or entry.pod.uid == uid):
                fresh = (entry.watched and self._watching) or now - entry.fetched_at < self._ttl
                if not fresh:
                    self._queue(key)
                return entry.pod  # stale while refetching: still the API's last word on it
            missed = self._missing.get(key)
            if entry is None and missed is not None and now - missed < self._ttl:
                return None
            self._queue(key)  # unknown, or the name now belongs to a newer pod (uid differs)
            return None

    def by_uid(self, uid: str) -> ApiPod | None:
        """The pod with this uid from the cache (what a cgroup path names); never waits."""
        with self._lock:
            return next((e.pod for e in self._pods.values() if e.pod.uid == uid), None)

    def pods(self) -> dict[tuple[str, str], ApiPod]:
        with self._lock:
            return {k: e.pod for k, e in self._pods.items()}

    def ensure(self, wanted: Iterable[tuple[str, str]]) -> None:
        """Make the cache know these (pod uid, container id) pairs, the container's status
        included, listing this node's pods once now if it does not; see the module docstring."""
        if not self.node_name:
            return
        with self._lock:
            known = {e.pod.uid: e.pod for e in self._pods.values()}
            if all(uid in known and cid in known[uid].containers for uid, cid in wanted):
                return
            now = self._clock()
            # Down: no more often than the watch thread retries (a blackholed API costs
            # request_timeout per try); up: at most once a second.
            interval = self._retry if self._api_up is False else ENSURE_INTERVAL_S
            if self._last_ensure is not None and now - self._last_ensure < interval:
                return
            self._last_ensure = now
        try:
            self._relist(notify=False)  # the caller re-derives its containers itself
        except Exception as exc:  # unreachable: the watch thread's retries take it from here
            self._unreachable(exc)

    def cluster_uid(self) -> str | None:
        """The kube-system namespace's uid (orchestrator.cluster.id's default), or None when the
        API does not answer (logged)."""
        try:
            namespace = self._api.read_namespace(CLUSTER_NAMESPACE, _request_timeout=self._timeout)
        except Exception as exc:  # 403 without the RBAC rule, API down: no cluster id, never a made-up one
            log.warning("kubernetes: cannot read namespace %s for orchestrator.cluster.id: %s", CLUSTER_NAMESPACE,
                        f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else exc)
            return None
        self._reachable()
        return namespace.metadata.uid or None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the fetch thread, and the node's list+watch when the node name is known."""
        self._threads.append(threading.Thread(target=self._fetch_loop, name="k8s-pod-get", daemon=True))
        if self.node_name:
            self._threads.append(threading.Thread(target=self._watch_loop, name="k8s-pod-watch", daemon=True))
        else:
            log.info("kubernetes: no node name (%s unset): pods fetched one by one, cached %.0fs",
                     NODE_NAME_ENV, self._ttl)
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._wanted.put(None)
        watch = self._watch
        if watch is not None:
            watch.stop()  # shuts the streaming socket down, so the watch thread returns
        for thread in self._threads:
            thread.join(timeout=2)

    # -- one-off GETs --------------------------------------------------------------------------

    def _queue(self, key: tuple[str, str]) -> None:
        # Called with the lock held.
        if key not in self._queued:
            self._queued.add(key)
            self._wanted.put(key)

    def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
            key = self._wanted.get()
            if key is None:
                return
            try:
                self.fetch(*key)
            finally:
                with self._lock:
                    self._queued.discard(key)
            if self._api_up is False:
                self._stopping.wait(self._retry)  # down: do not hammer it with the queue's backlog

    def fetch(self, namespace: str, name: str) -> ApiPod | None:
        """GET one pod now (the fetch thread's work; tests call it directly)."""
        try:
            model = self._api.read_namespaced_pod(name, namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:
                self._reachable()
                changed = False
                with self._lock:
                    changed = self._pods.pop((namespace, name), None) is not None
                    self._missing[(namespace, name)] = self._clock()
                if changed:
                    self._notify()
                return None
            self._unreachable(exc)
            return None
        except Exception as exc:  # connection refused, timeout, TLS: the API is unreachable
            self._unreachable(exc)
            return None
        self._reachable()
        pod = pod_from_model(model)
        if self._store(pod, watched=False):
            self._notify()
        return pod

    # -- list + watch of this node's pods ------------------------------------------------------

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch_once(resource_version)
            except ApiException as exc:
                if exc.status == HTTP_GONE:  # the watch's resourceVersion expired: list again
                    resource_version = None
                    continue
                self._lost_watch(exc)
                resource_version = None
            except Exception as exc:  # connection refused/reset, timeout
                if self._stopping.is_set():
                    return
                self._lost_watch(exc)
                resource_version = None

    def _selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    def _relist(self, notify: bool = True) -> str:
        listed = self._api.list_pod_for_all_namespaces(field_selector=self._selector(),
                                                       _request_timeout=self._timeout)
        self._reachable()
        pods = {(p.namespace, p.name): p for p in (pod_from_model(m) for m in listed.items)}
        now = self._clock()
        changed = False
        with self._lock:
            for key, entry in list(self._pods.items()):
                if entry.watched and key not in pods:
                    del self._pods[key]
                    changed = True
            for key, pod in pods.items():
                old = self._pods.get(key)
                changed |= old is None or old.pod != pod
                self._pods[key] = _Entry(pod, now, watched=True)
                self._missing.pop(key, None)
            self._watching = True
        if changed and notify:
            self._notify()
        return listed.metadata.resource_version

    def _watch_once(self, resource_version: str) -> str:
        """Follow the watch until the server ends it (timeoutSeconds); the last resourceVersion."""
        watch = kubernetes.watch.Watch()
        self._watch = watch
        try:
            for event in watch.stream(self._api.list_pod_for_all_namespaces, field_selector=self._selector(),
                                      resource_version=resource_version, timeout_seconds=self._watch_timeout,
                                      allow_watch_bookmarks=True,
                                      _request_timeout=(self._timeout, self._watch_timeout + self._timeout)):
                if self._stopping.is_set():
                    break
                kind = event["type"]
                if kind in ("ADDED", "MODIFIED"):
                    if self._store(pod_from_model(event["object"]), watched=True):
                        self._notify()
                elif kind == "DELETED":
                    pod = pod_from_model(event["object"])
                    with self._lock:
                        gone = self._pods.pop((pod.namespace, pod.name), None)
                    if gone is not None:
                        self._notify()
        finally:
            self._watch = None
        return watch.resource_version or resource_version

    def _lost_watch(self, exc: BaseException) -> None:
        with self._lock:
            self._watching = False  # the watched entries are now only as good as their TTL
        self._unreachable(exc)
        self._stopping.wait(self._retry)

    # -- shared --------------------------------------------------------------------------------

    def _store(self, pod: ApiPod, *, watched: bool) -> bool:
        key = (pod.namespace, pod.name)
        with self._lock:
            old = self._pods.get(key)
            self._pods[key] = _Entry(pod, self._clock(), watched=watched or (old is not None and old.watched))
            self._missing.pop(key, None)
            if len(self._pods) > self._max:
                # Bounded: drop the longest-unrefreshed pod fetched by GET (watched pods are
                # this node's, bounded by kubelet's max-pods).
                fetched = [(e.fetched_at, k) for k, e in self._pods.items() if not e.watched and k != key]
                if fetched:
                    del self._pods[min(fetched)[1]]
            return old is None or old.pod != pod

    def _notify(self) -> None:
        callback = self.on_change
        if callback is not None:
            try:
                callback()
            except Exception:  # a subscriber's failure must not kill the watch
                log.exception("kubernetes: pod change callback failed")

    def _reachable(self) -> None:
        if self._api_up is False:
            log.warning("kubernetes: API reachable again; pod labels from the API")
        self._api_up = True

    def _unreachable(self, exc: BaseException) -> None:
        if self._api_up is not False:  # log the transition once, not every retry
            reason = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else \
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("kubernetes: API unavailable (%s); pod facts from container labels (and the "
                        "API's last answer) until it answers; retrying every %.0fs", reason, self._retry)
        self._api_up = False


def pod_directory(cfg: KubernetesConfig | None, *, environ: Mapping[str, str] = os.environ,
                  **kwargs: Any) -> PodDirectory | None:
    """The agent's PodDirectory for its config (None when `kubernetes:` is not configured)."""
    if cfg is None:
        return None
    # Kubelet names its node after the host unless told otherwise (--hostname-override), so the
    # host name is the best guess when neither the config nor the downward API says.
    node_name = cfg.node_name or environ.get(NODE_NAME_ENV) or socket.gethostname().lower() or None
    return PodDirectory(core_v1(cfg), node_name=node_name, cache_ttl=cfg.cache_ttl,
                        request_timeout=cfg.request_timeout, **kwargs)
