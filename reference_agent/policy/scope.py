"""Which selectors can apply to a container at all: the one rule the agent and the kernel
compilers share.

A selector's image and orchestrator conditions (the common conditions, D12-D15) do not change
during a container's life, and the kernel can read neither image names nor pod labels. So they
are decided here, once per container and policy, and the kernel is handed a selector mask per
cgroup; it evaluates only the per-operation conditions (paths, operations, executables, users).

The decision is the evaluator's own: `selector_matches` on the selector reduced to its
container conditions, so the agent, the kernel masks and the oracle cannot disagree. That
includes its rule for facts that are unknown: no condition on them holds, not even `*`. A host
process (no container) gets no selector (D15); a container Kubernetes does not manage matches
no `orchestrator*` condition (D15), and one whose image the runtime cannot name
(operation.UNKNOWN_IMAGE) matches no image condition: an image condition cannot be shown to
hold for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .matcher import selector_matches
from . import vocabulary
from .model import OPERATIONS, Policy, Selector
from .operation import Container, FileTarget, Operation, Orchestrator, Process

# The conditions decided per container: the rest are per operation, for the kernel.
CONTAINER_CONDITIONS: frozenset[str] = frozenset(vocabulary.names(scope="container"))
# Selector fields that are no condition: who it is and where it was written.
_IDENTITY = frozenset({"name", "kind", "index", "line", "column"})
# Every other condition field at its "absent" default, so that it tests nothing.
_CLEARED = {
    f.name: f.default for f in dataclasses.fields(Selector)
    if f.name not in _IDENTITY and f.name not in CONTAINER_CONDITIONS
}


def container_only(selector: Selector) -> Selector:
    """The selector with every per-operation condition removed (operations included)."""
    return dataclasses.replace(selector, **_CLEARED)


def container_only_all(selectors: Sequence[Selector]) -> tuple[Selector, ...]:
    return tuple(container_only(s) for s in selectors)


def _probe(kind: str, container: Container, orchestrator: Orchestrator | None) -> Operation:
    """Some operation of the section by this container: which one does not matter, the
    reduced selectors test none of its per-operation facts."""
    if kind == "file":
        return Operation(kind="file", operation=OPERATIONS["file"][0], file=FileTarget(path="/", mount="root"),
                         container=container, orchestrator=orchestrator)
    return Operation(kind="process", operation=OPERATIONS["process"][0], container=container,
                     orchestrator=orchestrator, process=Process())


def container_mask(reduced: Sequence[Selector], container: Container | None,
                   orchestrator: Orchestrator | None = None) -> int:
    """Bit i set when `reduced[i]` (selectors of one section, reduced by container_only)
    holds for this container; 0 for a host process (D15)."""
    if container is None or not reduced:
        return 0
    probe = _probe(reduced[0].kind, container, orchestrator)
    mask = 0
    for bit, selector in enumerate(reduced):
        if selector_matches(selector, probe):
            mask |= 1 << bit
    return mask


def applicable_selectors(policy: Policy, container: Container | None,
                         orchestrator: Orchestrator | None = None) -> frozenset[str]:
    """Names of the selectors (both sections) whose container conditions this container meets."""
    names: set[str] = set()
    for section in policy.sections:
        mask = container_mask(container_only_all(section.selectors), container, orchestrator)
        names.update(s.name for bit, s in enumerate(section.selectors) if mask >> bit & 1)
    return frozenset(names)
