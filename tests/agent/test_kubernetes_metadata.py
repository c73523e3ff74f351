"""metadata/kubernetes.py: pod labels from the Kubernetes API reach the selector masks.

The API is served by tests/agent/kube_api.py (this project's own server speaking the real wire
format); the official `kubernetes` client is used unmodified, configured from a kubeconfig.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reference_agent.config import KubernetesConfig
from reference_agent.metadata.containers import (
    K8S_POD_NAME,
    K8S_POD_NAMESPACE,
    K8S_POD_UID,
    POD_LABELS_ANNOTATION,
    ContainerCache,
    cgroup_id_of,
)
from reference_agent.metadata.kubernetes import PodDirectory, pod_directory
from reference_agent.metadata.scoping import container_masks
from reference_agent.policy import load_policy_text

from .fakes import FakeDockerClient
from .kube_api import KubeApi, pod_json

CID = "c" * 64
UID = "0b6a1f2e-0000-4000-8000-000000000001"

POLICY = """file:
  selectors:
    - name: webPods
      operation: [createFile]
      orchestratorResourceLabel: ['app:web']
    - name: canary
      operation: [createFile]
      orchestratorResourceLabel: ['track:canary']
  responses:
    - match: [webPods, canary]
      actions: [alert, block]
"""


def policy():
    result = load_policy_text(POLICY, "p.yaml")
    assert result.valid, result.errors
    return result.policy


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Wait for a background thread's effect (not a timing assertion: the bound is generous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def api():
    server = KubeApi()
    url = server.start()
    server.url = url
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(api, tmp_path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig", api.url)


def free_port_url() -> str:
    """An address where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def node(tmp_path):
    """A fake cgroup tree + docker with one container of pod default/web-1 (no pod labels on it)."""
    cgroup = tmp_path / "cgroup"
    proc = tmp_path / "proc"
    (cgroup / "docker" / CID).mkdir(parents=True)
    proc.mkdir()
    client = FakeDockerClient()
    client.add(CID, "nginx:1.25", labels={K8S_POD_NAME: "web-1", K8S_POD_NAMESPACE: "default", K8S_POD_UID: UID})
    return client, cgroup, proc, cgroup_id_of(cgroup / "docker" / CID)


def directory(kubeconfig: Path, node_name: str | None = "node-1", cache_ttl: float = 60.0) -> PodDirectory:
    cfg = KubernetesConfig(api=str(kubeconfig), node_name=node_name, cache_ttl=cache_ttl)
    found = pod_directory(cfg, environ={}, retry_interval=0.2)
    assert found is not None
    return found


def masks(cache: ContainerCache) -> dict[int, frozenset[str]]:
    return container_masks(policy(), cache.containers())


def test_labels_from_the_api_reach_the_selector_masks(api, kubeconfig, node):
    client, cgroup, proc, cg = node
    api.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID, ip="10.1.2.3"))
    # Without the API the container carries no pod labels: no label selector applies.
    plain = ContainerCache(client, cgroup_root=cgroup, proc_root=proc)
    plain.refresh()
    assert masks(plain)[cg] == frozenset()

    pods = directory(kubeconfig)
    changes: list[int] = []
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods,
                           on_change=lambda: changes.append(1))
    cache.refresh()
    cache.start_events()
    try:
        wait_for(lambda: masks(cache)[cg] == {"webPods"}, "the API's labels in the masks")
        pod = cache.lookup(cg).pod
        assert (pod.name, pod.namespace, pod.uid, pod.ip) == ("web-1", "default", UID, "10.1.2.3")
        assert dict(pod.labels) == {"app": "web"}
        assert changes, "the agent was not told to re-apply its masks"
        # The node-scoped list+watch found it (no per-pod GET needed).
        assert ("list", "pods") in api.verbs()
        assert any("fieldSelector=spec.nodeName%3Dnode-1" in path for _v, _r, path in api.requests)
    finally:
        cache.close()


def test_watch_updates_a_label_change(api, kubeconfig, node):
    client, cgroup, proc, cg = node
    api.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID))
    changes: list[int] = []
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=directory(kubeconfig),
                           on_change=lambda: changes.append(1))
    cache.refresh()
    cache.start_events()
    try:
        wait_for(lambda: masks(cache)[cg] == {"webPods"}, "the first labels")
        wait_for(lambda: ("watch", "pods") in api.verbs(), "the watch to start")
        before = len(changes)
        gets_before = sum(1 for v, _r, _p in api.requests if v == "get")
        api.set_labels("default", "web-1", {"app": "api", "track": "canary"})
        wait_for(lambda: masks(cache)[cg] == {"canary"}, "the MODIFIED event in the masks")
        assert len(changes) > before
        # It came through the watch, not a re-fetch.
        assert sum(1 for v, _r, _p in api.requests if v == "get") == gets_before
    finally:
        cache.close()


def test_api_unreachable_falls_back_to_container_labels_and_logs_once(tmp_path, node, caplog):
    client, cgroup, proc, cg = node
    client.running[CID]["Config"]["Labels"][POD_LABELS_ANNOTATION] = '{"app": "web"}'
    kubeconfig = KubeApi().write_kubeconfig(tmp_path / "down.kubeconfig", free_port_url())
    pods = directory(kubeconfig)
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods)
    caplog.set_level(logging.WARNING, logger="reference_agent.metadata.kubernetes")
    cache.refresh()
    # lookup() never waited for the API: the container labels' facts are there at once.
    assert masks(cache)[cg] == {"webPods"}
    cache.start_events()
    try:
        wait_for(lambda: pods.api_up is False, "the API to be found down")
        for _ in range(3):
            cache.refresh()
            pods.fetch("default", "web-1")
        assert masks(cache)[cg] == {"webPods"}
        unavailable = [r for r in caplog.records if "API unavailable" in r.getMessage()]
        assert len(unavailable) == 1, [r.getMessage() for r in caplog.records]
    finally:
        cache.close()


def test_api_going_down_keeps_its_last_answer_and_recovers(api, kubeconfig, node, caplog):
    client, cgroup, proc, cg = node
    api.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID))
    pods = directory(kubeconfig, node_name=None, cache_ttl=0.05)  # GET per pod, short trust
    caplog.set_level(logging.WARNING, logger="reference_agent.metadata.kubernetes")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods)
    cache.refresh()
    cache.start_events()
    try:
        wait_for(lambda: masks(cache)[cg] == {"webPods"}, "labels by GET")
        assert ("get", "pods") in api.verbs() and ("list", "pods") not in api.verbs()
        port = int(api.url.rsplit(":", 1)[1])
        api.stop()
        time.sleep(0.1)  # past the TTL: the next lookups refetch, and fail
        cache.refresh()
        wait_for(lambda: pods.api_up is False, "the API to be found down")
        cache.refresh()
        assert masks(cache)[cg] == {"webPods"}, "the API's last answer was dropped"
        # The API comes back (same address) with new labels: picked up, and said once.
        back = KubeApi()
        back.put(pod_json("default", "web-1", labels={"track": "canary"}, uid=UID))
        back.start(port)
        try:
            def refreshed() -> bool:
                cache.refresh()
                return masks(cache)[cg] == {"canary"}
            wait_for(refreshed, "the API's new answer after it came back")
            assert pods.api_up is True
            messages = [r.getMessage() for r in caplog.records]
            assert sum("API unavailable" in m for m in messages) == 1, messages
            assert sum("reachable again" in m for m in messages) == 1, messages
        finally:
            back.stop()
    finally:
        cache.close()


def test_pod_recreated_under_the_same_name_is_refetched(api, kubeconfig):
    pods = directory(kubeconfig, node_name=None, cache_ttl=3600)
    api.put(pod_json("default", "web-1", labels={"v": "1"}, uid="uid-old"))
    assert pods.fetch("default", "web-1").labels == {"v": "1"}
    assert pods.lookup("default", "web-1", "uid-old").labels == {"v": "1"}
    api.delete("default", "web-1")
    api.put(pod_json("default", "web-1", labels={"v": "2"}, uid="uid-new"))
    # Fresh by TTL, but a container of the new pod names another uid: not the old pod's labels.
    assert pods.lookup("default", "web-1", "uid-new") is None
    assert pods.fetch("default", "web-1").labels == {"v": "2"}
    assert pods.lookup("default", "web-1", "uid-new").labels == {"v": "2"}


def test_missing_pod_is_remembered_not_hammered(api, kubeconfig):
    pods = directory(kubeconfig, node_name=None, cache_ttl=3600)
    assert pods.fetch("default", "ghost") is None
    assert pods.api_up is True  # a 404 is an answer, not an outage
    gets = len(api.requests)
    for _ in range(5):
        assert pods.lookup("default", "ghost", None) is None
    assert pods._wanted.qsize() == 0 and len(api.requests) == gets


def test_expired_watch_relists(api, kubeconfig):
    api.put(pod_json("default", "web-1", labels={"app": "web"}))
    pods = PodDirectory(directory(kubeconfig)._api, node_name="node-1", watch_timeout=1,
                        retry_interval=0.2)
    pods.start()
    try:
        wait_for(lambda: ("watch", "pods") in api.verbs(), "the first watch")
        api.put(pod_json("default", "web-2", labels={"app": "other"}))
        wait_for(lambda: ("default", "web-2") in pods.pods(), "web-2 by the watch")
        lists = sum(1 for v, _r, _p in api.requests if v == "list")
        api.expire_history()  # compaction: the watch's resourceVersion is now too old
        # The running watch ends at timeoutSeconds (1 s), re-watches from its last rv, gets an
        # ERROR event with 410 Gone, and must list again (and keep watching after that).
        wait_for(lambda: sum(1 for v, _r, _p in api.requests if v == "list") > lists, "a re-list after 410")
        api.set_labels("default", "web-2", {"app": "changed"})
        wait_for(lambda: pods.pods()[("default", "web-2")].labels == {"app": "changed"}, "watching after the re-list")
    finally:
        pods.close()


def test_only_this_nodes_pods_are_watched(api, kubeconfig):
    api.put(pod_json("default", "here", node="node-1"))
    api.put(pod_json("default", "elsewhere", node="node-2"))
    pods = directory(kubeconfig)
    pods.start()
    try:
        wait_for(lambda: ("default", "here") in pods.pods(), "this node's pod")
        api.delete("default", "here")
        wait_for(lambda: ("default", "here") not in pods.pods(), "the DELETED event")
        assert ("default", "elsewhere") not in pods.pods()
    finally:
        pods.close()


def test_node_name_from_the_downward_api_env(kubeconfig):
    cfg = KubernetesConfig(api=str(kubeconfig))
    assert pod_directory(cfg, environ={"NODE_NAME": "node-7"}).node_name == "node-7"
    assert pod_directory(cfg, environ={}).node_name is None
    assert pod_directory(KubernetesConfig(api=str(kubeconfig), node_name="n-1"),
                         environ={"NODE_NAME": "node-7"}).node_name == "n-1"
    assert pod_directory(None) is None


def test_unauthenticated_requests_are_refused_by_the_test_server(api, tmp_path):
    """The server checks the bearer token, so the client really sent the kubeconfig's."""
    bad = tmp_path / "bad"
    bad.write_text(kubeconfig_text(api.url, "wrong-token"))
    pods = directory(bad, node_name=None)
    api.put(pod_json("default", "web-1"))
    assert pods.fetch("default", "web-1") is None
    assert pods.api_up is False


def kubeconfig_text(url: str, token: str) -> str:
    return (f"apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n"
            f"    server: {url}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: t\n"
            f"  context:\n    cluster: t\n    user: u\n")


def test_agent_with_a_kubernetes_config_applies_the_apis_labels(api, kubeconfig, node, tmp_path, monkeypatch):
    """The Agent wiring (agent.py builds the PodDirectory from config.kubernetes): the kernel
    backend is re-sent masks once the API's labels arrive. Only the cache's filesystem roots are
    redirected to the fake cgroup tree; the Agent builds the cache and its pod source itself."""
    import reference_agent.agent as agent_module
    from reference_agent.agent import Agent
    from reference_agent.config import AgentConfig
    from reference_agent.metadata.host import HostFacts

    from .fakes import FakeKernelBackend

    client, cgroup, proc, cg = node
    built: list[ContainerCache] = []

    class RootedCache(ContainerCache):
        def __init__(self, docker_client, **kwargs):
            super().__init__(docker_client, cgroup_root=cgroup, proc_root=proc, **kwargs)
            built.append(self)

    monkeypatch.setattr(agent_module, "ContainerCache", RootedCache)
    api.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    config = AgentConfig(output_dir=tmp_path / "out", state_dir=tmp_path / "state",
                         kubernetes=KubernetesConfig(api=str(kubeconfig), node_name="node-1"))
    backend = FakeKernelBackend()
    host = HostFacts(architecture="amd64", hostname="node", name="node", os_kernel="6.1", os_name="Linux",
                     os_type="linux")
    agent = Agent(config, policy_file, backend, docker_client=client, host=host, watch_interval=3600,
                  process_table=False)
    try:
        assert built, "the Agent did not build its container cache"
        agent.start()
        wait_for(lambda: backend.applied and backend.applied[-1][1].get(cg) == {"webPods"},
                 "masks with the API's labels applied")
    finally:
        agent.close()


def test_in_cluster_service_account_reaches_the_api_over_tls(tmp_path, monkeypatch):
    """`api: in-cluster` as in a pod: KUBERNETES_SERVICE_HOST/PORT, the service account's token
    and CA certificate (their paths redirected to files of this test), HTTPS."""
    import kubernetes.config.incluster_config as incluster

    from reference_agent.config import IN_CLUSTER

    from .kube_api import TOKEN, self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    server = KubeApi()
    url = server.start(tls=(cert, key))
    try:
        server.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID))
        token = tmp_path / "token"
        token.write_text(TOKEN)
        monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(token))
        monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(cert))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", url.rsplit(":", 1)[1])
        pods = pod_directory(KubernetesConfig(api=IN_CLUSTER), environ={})
        found = pods.fetch("default", "web-1")
        assert found is not None and found.labels == {"app": "web"} and pods.api_up is True
        assert server.verbs() == {("get", "pods")}
    finally:
        server.stop()


def test_the_apis_labels_replace_the_container_labels(node):
    """The API is the authority: labels the container claims (here the conformance annotation)
    do not survive once the API has answered for the pod."""
    from reference_agent.metadata.kubernetes import ApiPod

    client, cgroup, proc, cg = node
    client.running[CID]["Config"]["Labels"][POD_LABELS_ANNOTATION] = '{"track": "canary"}'

    class Answering:
        on_change = None

        def lookup(self, namespace, name, uid=None):
            assert (namespace, name, uid) == ("default", "web-1", UID)
            return ApiPod(namespace=namespace, name=name, uid=UID, labels={"app": "web"}, ip="10.9.9.9")

        def start(self):
            pass

        def close(self):
            pass

    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=Answering())
    cache.refresh()
    assert masks(cache)[cg] == {"webPods"}
    assert cache.lookup(cg).pod.ip == "10.9.9.9"
