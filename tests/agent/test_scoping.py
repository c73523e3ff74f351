"""metadata/scoping.py: per-container selector masks (D12-D15), decided by the reference matcher."""

from __future__ import annotations

from reference_agent.metadata.containers import (
    ContainerInfo,
    PodInfo,
    parse_image_reference,
)
from reference_agent.metadata.scoping import container_masks, container_selectors
from reference_agent.policy import load_policy_text

POLICY = """file:
  selectors:
    - name: anyWrite
      operation: [createFile]
      targetFilePath: [/usr/bin/**]
    - name: nginxOnly
      containerImageName: [nginx]
      ignoreVolumeMounts: true
    - name: prodPods
      orchestratorNamespace: [prod*]
      orchestratorResourceLabel: ['app:web', 'tier:*']
    - name: inCluster
      orchestratorClusterName: [staging]
    - name: taggedFull
      fullContainerImageName: [docker.io/library/busybox:1.*]
  responses:
    - match: [anyWrite, nginxOnly, prodPods, inCluster, taggedFull]
      actions: [log]
process:
  selectors:
    - name: shells
      processName: [bash]
      containerImageTag: [latest]
  responses:
    - match: [shells]
      actions: [alert]
"""


def policy():
    result = load_policy_text(POLICY, "p.yaml")
    assert result.valid, result.errors
    return result.policy


NGINX = ContainerInfo(id="n", name="n", image=parse_image_reference("nginx"), pod=None)
BUSYBOX = ContainerInfo(id="b", name="b", image=parse_image_reference("busybox:1.36"), pod=None)
POD = ContainerInfo(id="p", name="p", image=parse_image_reference("registry.local/web:2"),
                    pod=PodInfo(name="web-1", namespace="prod-eu", uid="u", labels={"app": "web", "tier": ""}))
UNKNOWN_IMAGE = ContainerInfo(id="u", name="u", image=None, pod=None)


def test_image_conditions():
    assert container_selectors(policy(), NGINX) == {"anyWrite", "nginxOnly", "shells"}
    assert container_selectors(policy(), BUSYBOX) == {"anyWrite", "taggedFull"}


def test_orchestrator_conditions_need_a_pod_d15():
    assert container_selectors(policy(), POD) == {"anyWrite", "prodPods"}
    assert container_selectors(policy(), POD, cluster_name="staging") == {"anyWrite", "prodPods", "inCluster"}
    assert "inCluster" not in container_selectors(policy(), NGINX, cluster_name="staging")


def test_unknown_image_matches_no_image_condition():
    assert container_selectors(policy(), UNKNOWN_IMAGE) == {"anyWrite"}


def test_masks_per_cgroup():
    masks = container_masks(policy(), {10: NGINX, 11: NGINX, 20: POD})
    assert masks == {10: masks[11], 11: {"anyWrite", "nginxOnly", "shells"}, 20: {"anyWrite", "prodPods"}}


def test_policy_facts_for_the_kernel_compiler():
    from reference_agent.metadata.scoping import policy_facts

    container, orchestrator = policy_facts(POD, cluster_id="c-1")
    assert (container.name, container.tag, container.full) == ("web", "2", "registry.local/web:2")
    assert orchestrator.namespace == "prod-eu" and orchestrator.cluster_id == "c-1"
    assert orchestrator.label_map == {"app": "web", "tier": ""}
    assert policy_facts(NGINX)[1] is None
