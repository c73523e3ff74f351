"""The reference evaluator (the oracle): which selectors match an operation, which responses
fire, with which actions (D10–D16, D22).

A policy is compiled once (`compile_policy`; `evaluate` and `selector_matches` remember the
compiled form of each model object they see, for as long as that object lives): a selector's
conditions become a tuple of small tests, each reading one attribute of the operation. A list condition with wildcards
becomes ONE regular expression (the alternation of its patterns), without wildcards a set
lookup. A section is compiled into bit masks (selector i = bit i) so that deciding which
responses fire is integer arithmetic. Nothing here is clever beyond that; the rules read as
the spec states them:

- a selector matches when the operation is of its section and one of its `operation`s (all
  when absent, D5; `exec` includes `execMemFd`, D32), happens in a container (D15), and EVERY condition holds (D10);
- a list condition holds when ANY of its values matches, except `orchestratorResourceLabel`
  where EVERY entry must match (D10, D14);
- a response fires when one of its `match` selectors matched and none of its `exclude`
  selectors did; actions of fired responses are unioned (D22).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import vocabulary
from .model import ACTIONS, OPERATIONS, Policy, Section, Selector, selects_operation, split_label
from .operation import SLOT, Operation, parse_operation
from .patterns import compile_alternation, path_pattern_regex, string_pattern_regex

M = TypeVar("M")
C = TypeVar("C")


class _ByIdentity(Generic[M, C]):
    """Compiled forms of model objects, keyed by identity: hashing a frozen policy (every
    selector's every condition) on each evaluation would cost more than evaluating. An entry
    goes when its object does, so an id is never reused for a stale entry."""

    def __init__(self, build: Callable[[M], C]) -> None:
        self._build = build
        self._compiled: dict[int, C] = {}

    def __call__(self, obj: M) -> C:
        key = id(obj)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._build(obj)
            self._compiled[key] = compiled
            weakref.finalize(obj, self._compiled.pop, key, None)
        return compiled


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

# A test is (slot, predicate): the predicate applied to `operation.facts[slot]` (operation.py
# FACT_SLOTS). Predicates are plain callables, mostly C-level ones (`frozenset.__contains__`,
# `Pattern.fullmatch`), which is what makes the evaluator fast enough for the benchmark.
Check = tuple[int, Callable[[Any], Any]]


@dataclass(frozen=True, slots=True)
class CompiledSelector:
    kind: str
    operations: frozenset[str]  # empty: every operation of the section (D5)
    needs: int  # bit mask of the fact slots the checks read: all must be known
    checks: tuple[Check, ...]  # all must hold (D10)


def _any_value(values: tuple[str, ...], wildcards: str | None) -> Callable[[str], Any]:
    """A predicate on one attribute value: ANY of the condition's values matches (D10).

    `wildcards` is "path" (D11), "string" (D12) or None (exact values only).
    """
    if wildcards == "path":
        return compile_alternation(path_pattern_regex(v) for v in values).fullmatch
    if wildcards == "string" and any("*" in v for v in values):
        return compile_alternation(string_pattern_regex(v) for v in values).fullmatch
    return frozenset(values).__contains__


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


_WILDCARDS: dict[str, str | None] = {"path": "path", "string": "string", "exact": None, "name": None}
_ANY_VALUE_CONDITIONS = tuple(c for c in vocabulary.CONDITIONS if c.values in _WILDCARDS and c.fact is not None)


def _cost(predicate: Callable[[Any], Any]) -> int:
    owner = getattr(predicate, "__self__", None)
    if isinstance(owner, (frozenset, str)):
        return 0
    if isinstance(owner, re.Pattern):
        return 1
    return 2


def compile_selector(selector: Selector) -> CompiledSelector:
    checks: list[Check] = []

    def add(slot: str, predicate: Callable[[Any], Any]) -> None:
        checks.append((SLOT[slot], predicate))

    def add_values(slot: str, values: tuple[str, ...], wildcards: str | None) -> None:
        if values:
            add(slot, _any_value(values, wildcards))

    if selector.kind == "file":
        if selector.ignoreVolumeMounts:  # D19: skips `volume` and `file` mounts
            add("file.mount", "root".__eq__)
        if selector.ignoreVolumeFiles:  # D19: skips `file` mounts only
            add("file.mount", "file".__ne__)
    elif selector.sessionLeaderInteractive is not None:  # D16
        add("process.session_leader_interactive", frozenset({selector.sessionLeaderInteractive}).__contains__)

    # Every condition whose values each name one fact: ANY of them matches (D10), by the
    # wildcard rule of its kind of values (vocabulary.py). A condition of the other section is
    # the empty tuple here, and adds nothing.
    for condition in _ANY_VALUE_CONDITIONS:
        add_values(condition.fact, getattr(selector, condition.name), _WILDCARDS[condition.values])
    if selector.orchestratorResourceLabel:
        add("orchestrator.label_map", _all_labels(selector.orchestratorResourceLabel))

    # Cheap checks first (set lookups and comparisons before regular expressions, the label
    # closure last): the order is irrelevant to the outcome (AND), not to speed.
    checks.sort(key=lambda check: _cost(check[1]))

    # A check on an unknown fact fails: e.g. D15, a container not managed by Kubernetes (no
    # orchestrator facts) matches no selector with an orchestrator* condition.
    needs = 0
    for slot, _ in checks:
        needs |= 1 << slot
    return CompiledSelector(
        kind=selector.kind, operations=selector.operations, needs=needs, checks=tuple(checks)
    )


def _checks_hold(needs: int, checks: tuple[Check, ...], operation: Operation) -> bool:
    if needs & ~operation.known:
        return False
    facts = operation.facts
    for slot, predicate in checks:
        if not predicate(facts[slot]):
            return False
    return True


_compiled_selector: _ByIdentity[Selector, CompiledSelector] = _ByIdentity(compile_selector)


def selector_matches(selector: Selector, operation: Operation) -> bool:
    """Whether one selector matches one operation (D5, D10–D16)."""
    compiled = _compiled_selector(selector)
    if operation.kind != compiled.kind or operation.container is None:
        return False
    if not selects_operation(compiled.operations, operation.operation):
        return False
    return _checks_hold(compiled.needs, compiled.checks, operation)


# --- sections and responses -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledResponse:
    index: int
    match_mask: int  # selector bits of `match`
    exclude_mask: int  # selector bits of `exclude`
    action_bits: int  # bit j = ACTIONS[j]


@dataclass(frozen=True, slots=True)
class CompiledSection:
    kind: str
    names: tuple[str, ...]  # selector names by bit position (= policy order)
    # operation name -> the selectors that can match it (D5), as _candidate tuples
    candidates: dict[str, tuple[tuple[int, int, int, Callable[[Any], Any], tuple[Check, ...]], ...]]
    responses: tuple[_CompiledResponse, ...]
    # selector bit i -> bit mask of the responses whose `match` names selector i
    responses_of: tuple[int, ...]


# Every union of actions, as the sorted tuple a verdict carries, indexed by its bit mask.
_ACTION_TUPLES: tuple[tuple[str, ...], ...] = tuple(
    tuple(sorted(a for j, a in enumerate(ACTIONS) if bits >> j & 1)) for bits in range(1 << len(ACTIONS))
)


def compile_section(section: Section) -> CompiledSection:
    bit_of = {s.name: 1 << i for i, s in enumerate(section.selectors)}
    candidates = {
        op: tuple(
            _candidate(1 << i, _compiled_selector(s))
            for i, s in enumerate(section.selectors)
            if selects_operation(s.operations, op)
        )
        for op in OPERATIONS[section.kind]
    }
    responses = tuple(
        _CompiledResponse(
            index=r.index,
            match_mask=_mask(bit_of, r.match),
            exclude_mask=_mask(bit_of, r.exclude),
            action_bits=sum(1 << j for j, a in enumerate(ACTIONS) if a in r.actions),
        )
        for r in section.responses
    )
    responses_of = tuple(
        sum(1 << k for k, r in enumerate(responses) if r.match_mask >> i & 1)
        for i in range(len(section.selectors))
    )
    return CompiledSection(
        kind=section.kind,
        names=tuple(s.name for s in section.selectors),
        candidates=candidates,
        responses=responses,
        responses_of=responses_of,
    )


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    file: CompiledSection | None
    process: CompiledSection | None

    def section(self, kind: str) -> CompiledSection | None:
        return self.file if kind == "file" else self.process


def _compile_policy(policy: Policy) -> CompiledPolicy:
    return CompiledPolicy(
        file=None if policy.file is None else compile_section(policy.file),
        process=None if policy.process is None else compile_section(policy.process),
    )


_compiled_policy: _ByIdentity[Policy, CompiledPolicy] = _ByIdentity(_compile_policy)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """The matcher's form of a (valid) policy: bit masks and per-operation candidate lists,
    built once per policy object."""
    return _compiled_policy(policy)


def _always(_value: Any) -> bool:
    return True


def _candidate(bit: int, compiled: CompiledSelector) -> tuple[int, int, int, Callable[[Any], Any], tuple[Check, ...]]:
    """(bit, needs, first slot, first predicate, other checks): the first check is unpacked so
    the common case, a selector failing its first check, costs no inner loop."""
    if not compiled.checks:
        return (bit, compiled.needs, 0, _always, ())
    (slot, predicate), *rest = compiled.checks
    return (bit, compiled.needs, slot, predicate, tuple(rest))


def _mask(bit_of: Mapping[str, int], names: tuple[str, ...]) -> int:
    mask = 0
    for name in names:
        mask |= bit_of.get(name, 0)  # unknown names cannot occur in a validated policy
    return mask


def _bits(mask: int) -> Iterator[int]:
    """Positions of the set bits, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def matched_mask(compiled: CompiledSection, operation: Operation) -> int:
    """Bit i set when selector i of the section matches the operation."""
    unknown = ~operation.known
    facts = operation.facts
    mask = 0
    # The body of _checks_hold, inlined: this loop is the evaluator's hot path.
    for bit, needs, slot, predicate, rest in compiled.candidates.get(operation.operation, ()):
        if needs & unknown or not predicate(facts[slot]):
            continue
        for other_slot, other_predicate in rest:
            if not other_predicate(facts[other_slot]):
                break
        else:
            mask |= bit
    return mask


def evaluate(policy: Policy, operation: Operation | Mapping[str, Any]) -> Verdict:
    """Evaluate one operation against a (valid) policy, by D22."""
    if not isinstance(operation, Operation):
        operation = parse_operation(operation)
    compiled = compile_policy(policy).section(operation.kind)
    if compiled is None or operation.container is None:  # D15: host processes never match
        return NO_VERDICT
    matched = matched_mask(compiled, operation)
    if not matched:
        return NO_VERDICT
    # Only responses whose `match` names a matched selector can fire.
    # (Bit loops are written out: a generator here costs a fifth of the evaluator's time.)
    responses_of = compiled.responses_of
    candidates = 0
    rest = matched
    while rest:
        low = rest & -rest
        candidates |= responses_of[low.bit_length() - 1]
        rest ^= low
    fired: list[int] = []
    shown = 0  # `match` selectors that matched, in fired responses (D22)
    action_bits = 0
    responses = compiled.responses
    while candidates:
        low = candidates & -candidates
        candidates ^= low
        response = responses[low.bit_length() - 1]
        if not response.exclude_mask & matched:
            fired.append(response.index)
            shown |= response.match_mask & matched
            action_bits |= response.action_bits
    if not fired:
        return NO_VERDICT
    names = tuple(compiled.names[i] for i in _bits(shown))
    return Verdict(matched_selectors=names, actions=_ACTION_TUPLES[action_bits], responses=tuple(fired))
