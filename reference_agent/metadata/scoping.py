"""Which selectors can apply to a container at all (its image and pod facts), per cgroup id.

The kernel cannot read image names or pod labels, so userspace decides, once per container and
policy, which selectors' container/orchestrator conditions hold (D12–D15) and hands the kernel
side `container_masks`: cgroup id -> the names of those selectors. The kernel then evaluates
only the per-operation conditions (paths, operations, executables, users...). A cgroup absent
from the masks is the host: nothing applies (D15).

The decision is made by the reference evaluator itself (reference_agent.policy's
selector_matches) on a copy of each selector reduced to its container conditions, so the agent
and the oracle cannot disagree on D12–D15.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from reference_agent.metadata.containers import ContainerInfo
from reference_agent.policy import (
    Container,
    FileTarget,
    Operation,
    Orchestrator,
    Policy,
    Process,
    Selector,
    selector_matches,
)

CONTAINER_CONDITIONS = (
    "containerImageName", "containerImageTag", "fullContainerImageName",
    "orchestratorClusterId", "orchestratorClusterName", "orchestratorNamespace",
    "orchestratorResourceName", "orchestratorResourceLabel", "orchestratorType",
)
_IMAGE_CONDITIONS = ("containerImageName", "containerImageTag", "fullContainerImageName")
_CLEARED = {
    "operations": frozenset(), "targetFilePath": (), "ignoreVolumeMounts": None, "ignoreVolumeFiles": None,
    "processExecutable": (), "processName": (), "processUserName": (), "processUserId": (),
    "sessionLeaderInteractive": None, "sessionLeaderExecutable": (),
    "sessionLeaderName": (),
}


def container_only(selector: Selector) -> Selector:
    """The selector with every non-container condition removed."""
    return dataclasses.replace(selector, **_CLEARED)


def policy_facts(info: ContainerInfo, cluster_id: str | None = None,
                 cluster_name: str | None = None) -> tuple[Container, Orchestrator | None]:
    """The container as the policy engine describes it (reference_agent.policy.Container and
    Orchestrator), e.g. for the kernel side's `FileEnforcer.add_container(cgroup_id, *facts)`.
    An unknown image is empty strings (matches no image condition except a bare `*`)."""
    image = info.image
    container = Container(image=image.reference, name=image.name, tag=image.tag, full=image.full_name) if image \
        else Container(image="", name="", tag="", full="")
    orchestrator = None
    if info.pod is not None:
        orchestrator = Orchestrator(
            type="kubernetes", cluster_id=cluster_id, cluster_name=cluster_name, namespace=info.pod.namespace,
            resource_name=info.pod.name, labels=tuple(sorted(info.pod.labels.items())))
    return container, orchestrator


def _operation(kind: str, info: ContainerInfo, cluster_id: str | None, cluster_name: str | None) -> Operation:
    container, orchestrator = policy_facts(info, cluster_id, cluster_name)
    if kind == "file":
        return Operation(kind="file", operation="createFile", file=FileTarget(path="/", mount="root"),
                         container=container, orchestrator=orchestrator)
    return Operation(kind="process", operation="exec", container=container, orchestrator=orchestrator,
                     process=Process())


def container_selectors(policy: Policy, info: ContainerInfo, cluster_id: str | None = None,
                        cluster_name: str | None = None) -> frozenset[str]:
    """Names of the selectors whose container/orchestrator conditions this container meets."""
    names: set[str] = set()
    for section in policy.sections:
        operation = _operation(section.kind, info, cluster_id, cluster_name)
        for selector in section.selectors:
            if info.image is None and any(getattr(selector, c) for c in _IMAGE_CONDITIONS):
                continue  # image unknown: an image condition cannot be shown to hold
            if selector_matches(container_only(selector), operation):
                names.add(selector.name)
    return frozenset(names)


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
