"""The suite's pods (conformance/pods.py, kernel.py): pod facts reach an implementation only
through the suite's Kubernetes API server; the containers carry kubelet's CRI labels and a
kubelet pod cgroup parent, and no pod label of any kind. No Docker daemon needed: the Docker
SDK surface the runner uses is faked, the API server and the official client are real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest

from conformance.kernel import Containers
from conformance.kube_api import KubeApi
from conformance.loader import load
from conformance.pods import ScenarioPods, node_name

from suite_run import FIXTURES

SCENARIO = FIXTURES / "kernel" / "fx-kernel-exec-events.yaml"  # pod shop/web-pod-1 {app: web, owner: drohan}


class FakeContainer:
    def __init__(self, cid: str, kwargs: dict[str, Any]) -> None:
        self.id = cid
        self.kwargs = kwargs
        self.status = "running"
        self.attrs = {"Id": cid, "Image": "sha256:" + "9" * 64}
        self.removed = False

    def reload(self) -> None:
        pass

    def remove(self, **_kwargs: Any) -> None:
        self.removed = True


class FakeVolume:
    name = "vol"

    def remove(self, **_kwargs: Any) -> None:
        pass


class FakeDocker:
    def __init__(self, api: KubeApi) -> None:
        self.created: list[FakeContainer] = []
        self.pods_seen_at_create: list[set[str]] = []
        self._api = api
        docker = self

        class Containers:
            def run(self, image: str, **kwargs: Any) -> FakeContainer:
                # What the API says when the container is created: its pod must already be there.
                docker.pods_seen_at_create.append({p["metadata"]["name"] for p in docker._api_pods()})
                container = FakeContainer(f"{len(docker.created) + 1:064x}", {"image": image, **kwargs})
                docker.created.append(container)
                return container

        class Volumes:
            def create(self, **_kwargs: Any) -> FakeVolume:
                return FakeVolume()

        self.containers = Containers()
        self.volumes = Volumes()

    def _api_pods(self) -> list[dict[str, Any]]:
        return [p for p in (self._api.get("pods", "shop", "web-pod-1"),) if p is not None]


@pytest.fixture
def api():
    server = KubeApi()
    server.url = server.start()
    yield server
    server.stop()


def core_v1(api: KubeApi, tmp_path: Path) -> kubernetes.client.CoreV1Api:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(api.write_kubeconfig(tmp_path / "kc", api.url)),
                                       client_configuration=configuration, persist_config=False)
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


@pytest.mark.parametrize("driver, parent", [
    ("systemd", "kubepods-besteffort-pod{uid_}.slice"),
    ("cgroupfs", "/kubepods/besteffort/pod{uid}"),
])
def test_pod_facts_only_through_the_api_server(api, tmp_path, driver, parent):
    scenario = load(SCENARIO)
    docker = FakeDocker(api)
    with Containers(docker, scenario, ScenarioPods(api, scenario, "docker"), driver) as containers:
        web, idle = docker.created
        # No pod label (key or value) on any container: only kubelet's CRI labels and the suite's own.
        for container in docker.created:
            labels = container.kwargs["labels"]
            assert not [k for k in labels if k.startswith("annotation.") or k in ("app", "owner")]
            assert "drohan" not in json.dumps(labels)
        uid = web.kwargs["labels"]["io.kubernetes.pod.uid"]
        assert web.kwargs["labels"] == {
            "d4c.conformance/scenario": scenario.id, "io.kubernetes.pod.name": "web-pod-1",
            "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": uid,
            "io.kubernetes.container.name": "web"}
        assert web.kwargs["cgroup_parent"] == parent.format(uid=uid, uid_=uid.replace("-", "_"))
        assert idle.kwargs["cgroup_parent"] is None  # in no pod
        assert set(idle.kwargs["labels"]) == {"d4c.conformance/scenario"}
        assert docker.pods_seen_at_create[0] == {"web-pod-1"}  # scheduled before its container starts

        # The API, read with the official client: the pod, its labels, the container's status.
        v1 = core_v1(api, tmp_path)
        pods = v1.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node_name()}").items
        assert [(p.metadata.namespace, p.metadata.name, p.metadata.uid) for p in pods] == [("shop", "web-pod-1", uid)]
        assert pods[0].metadata.labels == {"app": "web", "owner": "drohan"}
        [status] = pods[0].status.container_statuses
        assert (status.name, status.image, status.container_id) == ("web", "busybox:latest", f"docker://{web.id}")
        assert status.image_id == "sha256:" + "9" * 64
        assert v1.read_namespace("kube-system").metadata.uid
        assert v1.read_namespace("shop").metadata.name == "shop"
        assert containers.ids == {"web": web.id, "idle": idle.id}
    assert all(c.removed for c in docker.created)
    assert api.get("pods", "shop", "web-pod-1") is None  # deleted with its containers
    assert api.get("namespaces", "", "shop") is None and api.get("namespaces", "", "kube-system") is not None


def test_the_watch_reports_the_pods_life(api, tmp_path):
    """A watching implementation sees ADDED (scheduled), MODIFIED (running), DELETED."""
    scenario = load(SCENARIO)
    v1 = core_v1(api, tmp_path)
    start = v1.list_pod_for_all_namespaces().metadata.resource_version
    with Containers(FakeDocker(api), scenario, ScenarioPods(api, scenario, "docker"), "systemd"):
        pass
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(v1.list_pod_for_all_namespaces, resource_version=start, timeout_seconds=1):
        seen.append((event["type"], bool(event["object"].status.container_statuses)))
    assert seen == [("ADDED", False), ("MODIFIED", True), ("DELETED", True)]


def test_agent_environment_and_placeholders(tmp_path):
    from conformance.adapters.command import AgentSpec, agent_env

    spec = AgentSpec(start=("x",), env=(("KC_COPY", "{kubeconfig}"),))
    env = agent_env(spec, {"kubeconfig": "/k/kubeconfig-1", "node_name": "node-a"})
    assert (env["KUBECONFIG"], env["NODE_NAME"], env["KC_COPY"]) == ("/k/kubeconfig-1", "node-a", "/k/kubeconfig-1")


def test_agent_dir_keeps_the_api_servers_address_for_the_adopted_agent(tmp_path):
    """`--agent-dir`: the next run's server takes the same port and kubeconfig path, so the agent
    the last run left behind (adopted when its KUBECONFIG matches) reaches it again, and its
    resourceVersions are newer than the last server's (a resumed watch misses nothing)."""
    from conformance.runner import KernelSession, Options

    first = KernelSession(Options(agent_dir=tmp_path / "agent"))
    path = first.kubernetes()
    old = first.kube
    version = int(old.get("namespaces", "", "kube-system")["metadata"]["resourceVersion"])
    first.close()
    second = KernelSession(Options(agent_dir=tmp_path / "agent"))
    try:
        assert second.kubernetes() == path and second.kube.port == old.port
        assert int(second.kube.get("namespaces", "", "kube-system")["metadata"]["resourceVersion"]) > version
    finally:
        second.close()
