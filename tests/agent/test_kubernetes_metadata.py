"""metadata/kubernetes.py + containers.py with a pod source: a container is found by its
cgroup path (kubelet's pod cgroup names the pod uid), and everything about its pod and itself
(name, image, runtime, pod labels) comes from the API's pod object, not from a runtime.

The API is served by conformance/kube_api.py (the suite's own server, the real wire format);
the official `kubernetes` client is used unmodified, configured from a kubeconfig.
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
    GONE_GRACE_S,
    K8S_POD_NAME,
    K8S_POD_NAMESPACE,
    K8S_POD_UID,
    ContainerCache,
)
from reference_agent.system.cgroups import cgroup_id_of
from reference_agent.metadata.kubernetes import PodDirectory, pod_directory
from reference_agent.metadata.scoping import container_masks
from reference_agent.policy import load_policy_text

from .fakes import FakeDockerClient
from .kube_api import KubeApi, pod_json

CID = "c" * 64
PLAIN = "d" * 64  # a `docker run` container on the node, in no pod
UID = "0b6a1f2e-0000-4000-8000-000000000001"
# kubelet's systemd cgroup driver layout (the uid's dashes become underscores in slice names)
POD_SLICE = ("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
             + UID.replace("-", "_") + ".slice")


def web_pod(labels=None, *, image="docker.io/library/nginx:1.25", runtime="docker", ip=None):
    """default/web-1 as kubelet reports it once its container runs: containerStatuses[] names it."""
    return pod_json("default", "web-1", labels=labels if labels is not None else {"app": "web"}, uid=UID, ip=ip,
                    containers=[{"name": "nginx", "image": "nginx:1.25"}],
                    statuses=[{"name": "nginx", "image": image, "imageID": "sha256:" + "e" * 64,
                               "containerID": f"{runtime}://{CID}"}])

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
    """A fake cgroup tree with one container of pod default/web-1 in kubelet's layout, and a
    Docker that knows it (with the CRI labels, but no pod labels) and one plain container."""
    cgroup = tmp_path / "cgroup"
    proc = tmp_path / "proc"
    container_dir = cgroup / POD_SLICE / f"docker-{CID}.scope"
    container_dir.mkdir(parents=True)
    (container_dir / "cgroup.procs").write_text("4242\n4300\n")
    (cgroup / "system.slice" / f"docker-{PLAIN}.scope").mkdir(parents=True)
    proc.mkdir()
    (proc / "4242").mkdir()
    (proc / "4242" / "cgroup").write_text(f"0::/{POD_SLICE}/docker-{CID}.scope\n")
    client = FakeDockerClient()
    client.add(CID, "nginx:1.25", pid=4242, name="k8s_nginx_web-1_default",
               labels={K8S_POD_NAME: "web-1", K8S_POD_NAMESPACE: "default", K8S_POD_UID: UID})
    client.add(PLAIN, "busybox:1.36", name="plain")
    return client, cgroup, proc, cgroup_id_of(container_dir)


def directory(kubeconfig: Path, node_name: str | None = "node-1", cache_ttl: float = 60.0) -> PodDirectory:
    cfg = KubernetesConfig(api=str(kubeconfig), node_name=node_name, cache_ttl=cache_ttl)
    found = pod_directory(cfg, environ={}, retry_interval=0.2)
    assert found is not None
    return found


def masks(cache: ContainerCache) -> dict[int, frozenset[str]]:
    return container_masks(policy(), cache.containers())


def test_labels_from_the_api_reach_the_selector_masks(api, kubeconfig, node):
    client, cgroup, proc, cg = node
    api.put(web_pod(ip="10.1.2.3"))
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
        info = cache.lookup(cg)
        pod = info.pod
        assert (pod.name, pod.namespace, pod.uid, pod.ip) == ("web-1", "default", UID, "10.1.2.3")
        assert dict(pod.labels) == {"app": "web"}
        # The container's own facts are the pod status's (containerStatuses[]), by D13.
        assert (info.name, info.runtime, info.init_pid) == ("nginx", "docker", 4242)
        assert (info.image.name, info.image.tag, info.image.full_name) == \
            ("nginx", "1.25", "docker.io/library/nginx:1.25")
        assert CID not in client.asked, "Docker was asked about a container in a pod"
        assert changes, "the agent was not told to re-apply its masks"
        # The node-scoped list+watch found it (no per-pod GET needed).
        assert ("list", "pods") in api.verbs()
        assert any("fieldSelector=spec.nodeName%3Dnode-1" in path for _v, _r, path in api.requests)
    finally:
        cache.close()


def test_watch_updates_a_label_change(api, kubeconfig, node):
    client, cgroup, proc, cg = node
    api.put(web_pod())
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


def test_api_unreachable_is_a_pod_without_facts_and_logs_once(tmp_path, node, caplog):
    """No API: the container is still in a pod (its cgroup says so), with no pod labels or name
    invented from anywhere else; the outage is logged once, however often the cache looks."""
    client, cgroup, proc, cg = node
    kubeconfig = KubeApi().write_kubeconfig(tmp_path / "down.kubeconfig", free_port_url())
    pods = directory(kubeconfig)
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods)
    caplog.set_level(logging.WARNING, logger="reference_agent.metadata.kubernetes")
    cache.refresh()
    info = cache.lookup(cg)
    assert info.pod is not None and (info.pod.uid, info.pod.name, dict(info.pod.labels)) == (UID, None, {})
    assert masks(cache)[cg] == frozenset()
    cache.start_events()
    try:
        wait_for(lambda: pods.api_up is False, "the API to be found down")
        for _ in range(3):
            cache.refresh()
        unavailable = [r for r in caplog.records if "API unavailable" in r.getMessage()]
        assert len(unavailable) == 1, [r.getMessage() for r in caplog.records]
    finally:
        cache.close()


def test_api_going_down_keeps_its_last_answer_and_recovers(api, kubeconfig, node, caplog):
    client, cgroup, proc, cg = node
    api.put(web_pod())
    pods = directory(kubeconfig)
    caplog.set_level(logging.WARNING, logger="reference_agent.metadata.kubernetes")
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods)
    cache.start_events()
    try:
        wait_for(lambda: (cache.refresh(), masks(cache).get(cg))[1] == {"webPods"}, "labels from the API")
        port = int(api.url.rsplit(":", 1)[1])
        api.stop()
        wait_for(lambda: pods.api_up is False, "the API to be found down")
        cache.refresh()
        assert masks(cache)[cg] == {"webPods"}, "the API's last answer was dropped"
        # The API comes back (same address) with new labels: picked up, and said once.
        back = KubeApi()
        back.put(web_pod({"track": "canary"}))
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


def test_a_pod_scheduled_just_now_is_known_at_the_next_refresh(api, kubeconfig, node):
    """The race of every new pod: its container's cgroup exists before the watch has delivered
    the pod's status. A refresh (what the agent does before it confirms a policy) lists the
    node's pods itself, so the masks it computes already have the pod's labels."""
    client, cgroup, proc, cg = node
    pods = directory(kubeconfig)  # not started: no watch thread, only what refresh() does
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=pods)
    api.put(pod_json("default", "web-1", labels={"app": "web"}, uid=UID))  # scheduled, no status yet
    cache.refresh()
    assert cache.lookup(cg).name is None  # the API does not say which container it is (yet)
    api.put(web_pod())  # kubelet reports the container
    time.sleep(1.1)  # past the one-list-a-second bound
    cache.refresh()
    assert masks(cache)[cg] == {"webPods"} and cache.lookup(cg).name == "nginx"
    assert ("list", "pods") in api.verbs()


@pytest.mark.parametrize("leaf, runtime", [
    (f"cri-containerd-{CID}.scope", "containerd"),
    (f"crio-{CID}.scope", "cri-o"),
])
def test_containerd_and_cri_o_nodes_need_no_docker(api, kubeconfig, tmp_path, leaf, runtime):
    """No Docker daemon at all (the agent passes None): pod containers of any runtime are fully
    described by the API; the runtime is the containerID's scheme."""
    cgroup = tmp_path / "cgroup"
    container_dir = cgroup / POD_SLICE / leaf
    (container_dir / "sub").mkdir(parents=True)
    api.put(web_pod(runtime=runtime))
    cache = ContainerCache(None, cgroup_root=cgroup, proc_root=tmp_path, pods=directory(kubeconfig))
    cache.refresh()
    info = cache.lookup(cgroup_id_of(container_dir))
    assert (info.id, info.name, info.runtime, info.pod.name) == (CID, "nginx", runtime, "web-1")
    assert cache.lookup(cgroup_id_of(container_dir / "sub")).id == CID  # its sub-cgroups are its
    cache.start_events()  # no Docker events to follow: must not fail
    cache.close()


def test_cgroupfs_driver_layout(api, kubeconfig, tmp_path):
    cgroup = tmp_path / "cgroup"
    container_dir = cgroup / "kubepods" / "burstable" / f"pod{UID}" / CID
    container_dir.mkdir(parents=True)
    api.put(web_pod(runtime="containerd"))
    cache = ContainerCache(None, cgroup_root=cgroup, proc_root=tmp_path, pods=directory(kubeconfig))
    cache.refresh()
    assert cache.lookup(cgroup_id_of(container_dir)).pod.name == "web-1"


def test_a_container_in_no_pod_is_asked_of_docker_once(api, kubeconfig, node):
    client, cgroup, proc, _cg = node
    api.put(web_pod())
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=directory(kubeconfig))
    cache.refresh()
    cache.refresh()
    plain = cache.get(PLAIN)
    assert plain is not None and plain.pod is None and plain.name == "plain" and plain.image.tag == "1.36"
    assert client.asked == [PLAIN]  # once, and never about the pod's container
    assert client.list_calls == 0


def test_a_removed_container_is_forgotten_after_its_grace(api, kubeconfig, node):
    client, cgroup, proc, cg = node
    now = [1000.0]
    api.put(web_pod())
    cache = ContainerCache(client, cgroup_root=cgroup, proc_root=proc, pods=directory(kubeconfig),
                           clock=lambda: now[0])
    cache.refresh()
    (cgroup / POD_SLICE / f"docker-{CID}.scope" / "cgroup.procs").unlink()
    (cgroup / POD_SLICE / f"docker-{CID}.scope").rmdir()
    cache.refresh()
    assert cache.get(CID) is not None  # late ring-buffer records still resolve
    now[0] += GONE_GRACE_S
    cache.refresh()
    assert cache.get(CID) is None and cg not in cache.containers()


def test_cluster_id_is_the_kube_system_namespaces_uid(api, kubeconfig):
    pods = directory(kubeconfig)
    assert pods.cluster_uid() == api.get("namespaces", "", "kube-system")["metadata"]["uid"]
    assert ("get", "namespaces") in api.verbs()


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
    # Neither: kubelet's default node name, the host name.
    assert pod_directory(cfg, environ={}).node_name == socket.gethostname().lower()
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
    api.put(web_pod())
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
        # No cluster_id in the config: kube-system's uid (the API's only stable cluster identity).
        assert agent.cluster_id == api.get("namespaces", "", "kube-system")["metadata"]["uid"]
        assert agent.ctx.cluster_id == agent.cluster_id
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


def test_kubeconfig_from_the_environment(kubeconfig, tmp_path):
    """No `kubernetes:` section: $KUBECONFIG, as every Kubernetes client reads it (the
    conformance suite hands its API server over that way); the config's section wins."""
    from reference_agent.agent import load_agent_config
    from reference_agent.config import AgentConfig, ConfigError, kubernetes_from_environment

    assert kubernetes_from_environment(AgentConfig(), {}).kubernetes is None
    assert kubernetes_from_environment(AgentConfig(), {"KUBECONFIG": str(kubeconfig)}).kubernetes.api == str(kubeconfig)
    own = AgentConfig(kubernetes=KubernetesConfig(api="in-cluster"))
    assert kubernetes_from_environment(own, {"KUBECONFIG": str(kubeconfig)}) is own
    with pytest.raises(ConfigError) as bad:
        load_agent_config(None, {"KUBECONFIG": str(tmp_path / "nope")})
    assert str(bad.value).startswith("$KUBECONFIG: kubernetes.api: kubeconfig ") and "no such file" in str(bad.value)
