"""The reference evaluator (the oracle): which selectors match an operation, which responses
fire, with which actions (D10–D16, D22).

Every selector is compiled once, when the model is built: its conditions become a tuple of
small tests, each reading one attribute of the operation. A list condition with wildcards
becomes ONE regular expression (the alternation of its patterns), without wildcards a set
lookup. A section is compiled into bit masks (selector i = bit i) so that deciding which
responses fire is integer arithmetic. Nothing here is clever beyond that; the rules read as
the spec states them:

- a selector matches when the operation is of its section and one of its `operation`s (all
  when absent, D5), happens in a container (D15), and EVERY condition holds (D10);
- a list condition holds when ANY of its values matches, except `orchestratorResourceLabel`
  where EVERY entry must match (D10, D14);
- a response fires when one of its `match` selectors matched and none of its `exclude`
  selectors did; actions of fired responses are unioned (D22).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .model import ORCHESTRATOR_CONDITIONS, split_label
from .operation import Operation, parse_operation
from .patterns import compile_alternation, path_pattern_regex, string_pattern_regex

if TYPE_CHECKING:  # pragma: no cover
    from .model import Policy, Section, Selector

Test = Callable[[Operation], bool]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of evaluating one operation (cli-contract.md `d4c policy evaluate`)."""

    matched_selectors: tuple[str, ...] = ()  # D22: match selectors of fired responses, policy order
    actions: tuple[str, ...] = ()  # sorted, unique
    responses: tuple[int, ...] = ()  # indices of fired responses, ascending

    def to_json(self) -> dict[str, Any]:
        return {
            "matched_selectors": list(self.matched_selectors),
            "actions": list(self.actions),
            "responses": list(self.responses),
        }


NO_VERDICT = Verdict()


# --- selectors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledSelector:
    kind: str
    operations: frozenset[str]  # empty: every operation of the section (D5)
    tests: tuple[Test, ...]  # all must hold (D10)


def _any_value(values: tuple[str, ...], wildcards: str | None) -> Callable[[str | None], bool]:
    """A predicate on one attribute value: ANY of the condition's values matches (D10).

    `wildcards` is "path" (D11), "string" (D12) or None (exact values only).
    """
    if wildcards == "path":
        regex = compile_alternation(path_pattern_regex(v) for v in values)
    elif wildcards == "string" and any("*" in v for v in values):
        regex = compile_alternation(string_pattern_regex(v) for v in values)
    else:
        exact = frozenset(values)
        return lambda value: value in exact
    fullmatch = regex.fullmatch
    return lambda value: value is not None and fullmatch(value) is not None


def _all_labels(entries: tuple[str, ...]) -> Callable[[Mapping[str, str]], bool]:
    """ALL `key:value` entries must be present (D10, D14); values may use `*` (D12)."""
    wanted: list[tuple[str, re.Pattern[str]]] = []
    for entry in entries:
        key, value = split_label(entry)
        # `key:` = present with an empty value; `key:*` = present, any value (empty too).
        wanted.append((key, re.compile(string_pattern_regex(value), re.DOTALL)))

    def holds(labels: Mapping[str, str]) -> bool:
        for key, pattern in wanted:
            value = labels.get(key)
            if value is None or pattern.fullmatch(value) is None:
                return False
        return True

    return holds


def compile_selector(selector: Selector) -> CompiledSelector:
    tests: list[Test] = []

    # D15: a container that is not managed by Kubernetes matches no selector with an
    # orchestrator* condition (each test below also fails on a missing attribute).
    if any(getattr(selector, name) for name in ORCHESTRATOR_CONDITIONS):
        tests.append(lambda op: op.orchestrator is not None)

    # Cheap, selective tests first: the order is irrelevant to the outcome (AND), not to speed.
    if selector.kind == "file":
        if selector.ignoreVolumeMounts:  # D19: skips `volume` and `file` mounts
            tests.append(lambda op: op.file.mount == "root")
        if selector.ignoreVolumeFiles:  # D19: skips `file` mounts only
            tests.append(lambda op: op.file.mount != "file")
    else:
        if selector.sessionLeaderInteractive is not None:  # D16
            wanted = selector.sessionLeaderInteractive
            tests.append(
                lambda op: op.process is not None
                and op.process.session_leader_interactive is wanted
            )

    def add(values: tuple[str, ...], wildcards: str | None, get: Callable[[Operation], Any]) -> None:
        if values:
            pred = _any_value(values, wildcards)
            tests.append(lambda op: pred(get(op)))

    add(selector.orchestratorType, None, lambda op: op.orchestrator.type)
    add(selector.orchestratorClusterId, None, lambda op: op.orchestrator.cluster_id)
    add(selector.orchestratorClusterName, None, lambda op: op.orchestrator.cluster_name)
    add(selector.orchestratorNamespace, "string", lambda op: op.orchestrator.namespace)
    add(selector.orchestratorResourceName, "string", lambda op: op.orchestrator.resource_name)
    add(selector.containerImageName, "string", lambda op: op.container.name)
    add(selector.containerImageTag, "string", lambda op: op.container.tag)
    add(selector.fullContainerImageName, "string", lambda op: op.container.full)
    if selector.orchestratorResourceLabel:
        labels_hold = _all_labels(selector.orchestratorResourceLabel)
        tests.append(lambda op: labels_hold(op.orchestrator.label_map))

    if selector.kind == "file":
        add(selector.targetFilePath, "path", lambda op: op.file.path)
    else:
        add(selector.processName, None, lambda op: op.process and op.process.name)
        add(selector.processUserId, None, lambda op: op.process and op.process.user_id)
        add(selector.processUserName, None, lambda op: op.process and op.process.user_name)
        add(selector.processExecutable, "path", lambda op: op.process and op.process.executable)
        add(
            selector.sessionLeaderExecutable,
            "path",
            lambda op: op.process and op.process.session_leader_executable,
        )

    return CompiledSelector(kind=selector.kind, operations=selector.operations, tests=tuple(tests))


def selector_matches(selector: Selector, operation: Operation) -> bool:
    """Whether one selector matches one operation (D5, D10–D16)."""
    compiled: CompiledSelector = selector._compiled
    if operation.kind != compiled.kind or operation.container is None:
        return False
    if compiled.operations and operation.operation not in compiled.operations:
        return False
    for test in compiled.tests:
        if not test(operation):
            return False
    return True


# --- sections and responses -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledResponse:
    index: int
    match_mask: int
    exclude_mask: int
    actions: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledSection:
    kind: str
    names: tuple[str, ...]  # selector names by bit position (= policy order)
    # operation name -> the (bit, tests) of the selectors that can match it (D5)
    candidates: dict[str, tuple[tuple[int, tuple[Test, ...]], ...]]
    responses: tuple[_CompiledResponse, ...]


def compile_section(section: Section) -> CompiledSection:
    from .model import OPERATIONS

    bit_of = {s.name: 1 << i for i, s in enumerate(section.selectors)}
    candidates = {
        op: tuple(
            (1 << i, s._compiled.tests)
            for i, s in enumerate(section.selectors)
            if not s.operations or op in s.operations
        )
        for op in OPERATIONS[section.kind]
    }
    responses = tuple(
        _CompiledResponse(
            index=r.index,
            match_mask=_mask(bit_of, r.match),
            exclude_mask=_mask(bit_of, r.exclude),
            actions=r.actions,
        )
        for r in section.responses
    )
    return CompiledSection(
        kind=section.kind,
        names=tuple(s.name for s in section.selectors),
        candidates=candidates,
        responses=responses,
    )


def _mask(bit_of: Mapping[str, int], names: tuple[str, ...]) -> int:
    mask = 0
    for name in names:
        mask |= bit_of.get(name, 0)  # unknown names cannot occur in a validated policy
    return mask


def matched_mask(section: Section, operation: Operation) -> int:
    """Bit i set when selector i of the section matches the operation."""
    compiled: CompiledSection = section._compiled
    mask = 0
    for bit, tests in compiled.candidates.get(operation.operation, ()):
        for test in tests:
            if not test(operation):
                break
        else:
            mask |= bit
    return mask


def evaluate(policy: Policy, operation: Operation | Mapping[str, Any]) -> Verdict:
    """Evaluate one operation against a (valid) policy, by D22."""
    if not isinstance(operation, Operation):
        operation = parse_operation(operation)
    section = policy.file if operation.kind == "file" else policy.process
    if section is None or operation.container is None:  # D15: host processes never match
        return NO_VERDICT
    compiled: CompiledSection = section._compiled
    matched = matched_mask(section, operation)
    if not matched:
        return NO_VERDICT
    fired: list[int] = []
    shown = 0  # match selectors that matched, in fired responses
    actions: set[str] = set()
    for response in compiled.responses:
        hit = response.match_mask & matched
        if hit and not response.exclude_mask & matched:
            fired.append(response.index)
            shown |= hit
            actions |= response.actions
    if not fired:
        return NO_VERDICT
    names = tuple(name for i, name in enumerate(compiled.names) if shown >> i & 1)
    return Verdict(matched_selectors=names, actions=tuple(sorted(actions)), responses=tuple(fired))
