"""Which selectors can apply to each container cgroup: the agent's container metadata turned
into the policy engine's facts, and the rule of policy/scope.py applied to them.

The kernel cannot read image names or pod labels, so userspace hands the kernel side
`container_masks`: cgroup id -> the names of the selectors whose container/orchestrator
conditions hold (D12-D15). A cgroup absent from the masks is the host: nothing applies (D15).
"""

from __future__ import annotations

from collections.abc import Mapping

from reference_agent.metadata.containers import ContainerInfo
from reference_agent.policy import Container, Orchestrator, Policy
from reference_agent.policy.operation import UNKNOWN_IMAGE
from reference_agent.policy.scope import applicable_selectors


def policy_facts(info: ContainerInfo, cluster_id: str | None = None,
                 cluster_name: str | None = None) -> tuple[Container, Orchestrator | None]:
    """The container as the policy engine describes it (reference_agent.policy.Container and
    Orchestrator), e.g. for the kernel side's `FileEnforcer.add_container(cgroup_id, *facts)`.
    An image Docker cannot name is UNKNOWN_IMAGE: it matches no image condition."""
    image = info.image
    container = Container(image=image.reference, name=image.name, tag=image.tag, full=image.full_name) if image \
        else UNKNOWN_IMAGE
    orchestrator = None
    if info.pod is not None:
        orchestrator = Orchestrator(
            type="kubernetes", cluster_id=cluster_id, cluster_name=cluster_name, namespace=info.pod.namespace,
            resource_name=info.pod.name, labels=tuple(sorted(info.pod.labels.items())))
    return container, orchestrator


def container_selectors(policy: Policy, info: ContainerInfo, cluster_id: str | None = None,
                        cluster_name: str | None = None) -> frozenset[str]:
    """Names of the selectors whose container/orchestrator conditions this container meets."""
    return applicable_selectors(policy, *policy_facts(info, cluster_id, cluster_name))


def container_masks(policy: Policy, containers: Mapping[int, ContainerInfo], cluster_id: str | None = None,
                    cluster_name: str | None = None) -> dict[int, frozenset[str]]:
    """cgroup id -> applicable selector names, for every known container cgroup."""
    per_container: dict[str, frozenset[str]] = {}
    masks: dict[int, frozenset[str]] = {}
    for cgroup_id, info in containers.items():
        if info.id not in per_container:
            per_container[info.id] = container_selectors(policy, info, cluster_id, cluster_name)
        masks[cgroup_id] = per_container[info.id]
    return masks
