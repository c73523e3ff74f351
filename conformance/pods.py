"""A scenario's pods as a kubelet would leave them: API objects, cgroup parents, CRI labels.

What an implementation may rely on (docs/scenarios.md, "Kubernetes"), and nothing more:
- the suite's API server (conformance/kube_api.py) serves each pod of the running scenario,
  first as scheduled to this node (`spec.nodeName` = this host's name, kubelet's default
  node name; `spec.containers[]` with name and image), then, once its containers run, with
  `status.containerStatuses[]` (`name`, `image`, `imageID`, `containerID` =
  `<runtime>://<64-hex id>`), and deletes it after the scenario's containers are removed;
- each container of a pod runs in a cgroup below a kubelet pod cgroup of the runtime's cgroup
  driver (systemd: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid with
  _>.slice/docker-<id>.scope`; cgroupfs: `/kubepods/besteffort/pod<uid>/<id>`);
- each such container carries the labels kubelet's CRI sets (`io.kubernetes.pod.name`,
  `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`, `io.kubernetes.container.name`),
  and no pod labels: those are only in the API, as on a real node.
Containers without a `pod:` are in no pod: neither in the API nor below a pod cgroup.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from typing import Any

from conformance.kube_api import KubeApi, pod_json
from conformance.model import ContainerSpec, Pod, Scenario

SCENARIO_LABEL = "d4c.conformance/scenario"  # lets a crashed run's leftovers be found
QOS = "besteffort"  # scenario containers ask for no resources: kubelet's BestEffort class


def node_name() -> str:
    """This node's name as kubelet would register it by default (the host name, lowercased)."""
    return socket.gethostname().lower()


def pod_uid(scenario_id: str, pod: Pod) -> str:
    """The scenario's uid, or a stable one per scenario and pod (containers of a pod share it)."""
    return pod.uid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"d4c-conformance/{scenario_id}/{pod.namespace}/{pod.name}"))


def cgroup_parent(driver: str, uid: str) -> str:
    """Docker's `--cgroup-parent` that puts a container where kubelet puts a pod's containers."""
    if driver == "systemd":
        # systemd nests `a-b-c.slice` as a.slice/a-b.slice/a-b-c.slice, as kubelet's slices are.
        return f"kubepods-{QOS}-pod{uid.replace('-', '_')}.slice"
    return f"/kubepods/{QOS}/pod{uid}"


def container_labels(spec: ContainerSpec, scenario_id: str) -> dict[str, str]:
    labels = {SCENARIO_LABEL: scenario_id}
    if spec.pod is not None:
        labels.update({
            "io.kubernetes.pod.name": spec.pod.name,
            "io.kubernetes.pod.namespace": spec.pod.namespace,
            "io.kubernetes.pod.uid": pod_uid(scenario_id, spec.pod),
            "io.kubernetes.container.name": spec.name,
        })
    return labels


class ScenarioPods:
    """The scenario's pods in the suite's API server, over their life: announce() before the
    containers are created, running() once they are, remove() after they are gone."""

    def __init__(self, api: KubeApi, scenario: Scenario, runtime: str) -> None:
        self._api = api
        self._runtime = runtime
        self._node = node_name()
        self._pods: dict[tuple[str, str], tuple[Pod, list[ContainerSpec]]] = {}
        self._scenario_id = scenario.id
        for spec in scenario.containers:
            if spec.pod is not None:
                key = (spec.pod.namespace, spec.pod.name)
                self._pods.setdefault(key, (spec.pod, []))[1].append(spec)

    def _object(self, pod: Pod, specs: list[ContainerSpec], statuses: list[dict[str, Any]] | None) -> dict[str, Any]:
        return pod_json(pod.namespace, pod.name, labels=dict(pod.labels), node=self._node,
                        uid=pod_uid(self._scenario_id, pod),
                        containers=[{"name": s.name, "image": s.image} for s in specs], statuses=statuses)

    def announce(self) -> None:
        for pod, specs in self._pods.values():
            self._api.put(self._object(pod, specs, None))

    def running(self, created: Mapping[str, tuple[str, str]]) -> None:
        """created: container name -> (container id, image id)."""
        for pod, specs in self._pods.values():
            statuses = [{"name": s.name, "image": s.image, "imageID": created[s.name][1],
                         "containerID": f"{self._runtime}://{created[s.name][0]}"} for s in specs if s.name in created]
            self._api.put(self._object(pod, specs, statuses))

    def remove(self) -> None:
        for namespace, name in self._pods:
            self._api.delete(namespace, name)
        self._pods.clear()
