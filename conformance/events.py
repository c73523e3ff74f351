"""Event assertions: correlate, wait (bounded), match order-free, explain mismatches.

Rules (docs/scenarios.md): per data stream the number of events is exact; an expected entry
lists a subset of dotted ECS fields, each compared exactly (`event.type`/`event.category` as
sets; `$any` = present); streams not listed must get no events for the scenario's containers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from conformance.model import ANY, ExpectedEvent
from conformance.sinks import Event

SET_FIELDS = frozenset({"event.type", "event.category"})
_MISSING = object()
# Fields shown for an unexpected event, so a reader can tell what it was.
SUMMARY_FIELDS = (
    "event.action", "event.kind", "event.type", "file.path", "process.executable", "process.args",
    "cloud_defend.matched_selectors", "container.id",
)


def field(doc: dict[str, Any], name: str) -> Any:
    """A dotted ECS field from a nested and/or flattened document (`_MISSING` when absent)."""
    if name in doc:
        return doc[name]
    head, _, rest = name.partition(".")
    while rest:
        if head in doc and isinstance(doc[head], dict):
            value = field(doc[head], rest)
            if value is not _MISSING:
                return value
        more, _, rest = rest.partition(".")
        head = f"{head}.{more}"
    return _MISSING


def container_id(doc: dict[str, Any]) -> str | None:
    value = field(doc, "container.id")
    return value if isinstance(value, str) and value else None


def belongs_to(doc: dict[str, Any], ids: Iterable[str]) -> bool:
    """Correlation by container.id: the full Docker id, or a prefix of it of 12+ characters
    (agents commonly report the short id)."""
    cid = container_id(doc)
    return cid is not None and any(full == cid or (len(cid) >= 12 and full.startswith(cid)) for full in ids)


def value_matches(name: str, expected: Any, actual: Any) -> bool:
    if actual is _MISSING:
        return False
    if expected == ANY:
        return True
    if name in SET_FIELDS:
        as_set = lambda v: frozenset(v) if isinstance(v, list) else frozenset([v])  # noqa: E731
        return as_set(expected) == as_set(actual)
    return expected == actual and type(expected) is type(actual) or (
        isinstance(expected, (int, float)) and not isinstance(expected, bool)
        and isinstance(actual, (int, float)) and not isinstance(actual, bool) and expected == actual
    )


def mismatches(expected: ExpectedEvent, doc: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    wrong = []
    for name, want in expected.fields:
        got = field(doc, name)
        if not value_matches(name, want, got):
            wrong.append((name, want, got))
    return wrong


@dataclass(frozen=True)
class StreamResult:
    stream: str
    expected: tuple[ExpectedEvent, ...]
    actual: tuple[dict[str, Any], ...]
    pairs: tuple[tuple[int, int], ...]  # (expected index, actual index) that match fully
    unmatched_expected: tuple[int, ...]
    unexpected: tuple[int, ...]

    @property
    def ok(self) -> bool:
        return not self.unmatched_expected and not self.unexpected


def match_stream(stream: str, expected: tuple[ExpectedEvent, ...], actual: list[dict[str, Any]]) -> StreamResult:
    """Maximum bipartite matching (Kuhn's augmenting paths) of expected entries to events, so a
    loose entry cannot steal the only event a stricter entry could match."""
    fits = [[j for j, doc in enumerate(actual) if not mismatches(entry, doc)] for entry in expected]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expected)):
        augment(i, set())
    pairs = tuple(sorted((i, j) for j, i in owner.items()))
    matched_i = {i for i, _ in pairs}
    matched_j = {j for _, j in pairs}
    return StreamResult(
        stream,
        expected,
        tuple(actual),
        pairs,
        tuple(i for i in range(len(expected)) if i not in matched_i),
        tuple(j for j in range(len(actual)) if j not in matched_j),
    )


def compare(expected: dict[str, tuple[ExpectedEvent, ...]], events: list[Event]) -> list[StreamResult]:
    """One result per stream expected or seen; `events` are already correlated to the scenario."""
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for stream, doc in events:
        by_stream.setdefault(stream, []).append(doc)
    streams = list(expected) + sorted(s for s in by_stream if s not in expected)
    return [match_stream(s, expected.get(s, ()), by_stream.get(s, [])) for s in streams]


def satisfied(expected: dict[str, tuple[ExpectedEvent, ...]], events: list[Event]) -> bool:
    return all(result.ok for result in compare(expected, events))


def wait_for(
    expected: dict[str, tuple[ExpectedEvent, ...]],
    poll: Callable[[], list[Event]],
    timeout: float,
    settle: float,
    interval: float = 0.1,
) -> list[StreamResult]:
    """Poll until the expectation holds, then keep watching `settle` seconds for extra events
    (an exact count cannot be confirmed instantly); give up after `timeout`. Bounded either way."""
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    while True:
        results = compare(expected, poll())
        now = time.monotonic()
        if all(r.ok for r in results):
            if settle_until is None:
                settle_until = now + settle
            if now >= settle_until:
                return results
        else:
            settle_until = None
            if now >= deadline:
                return results
        time.sleep(interval)


def _show(value: Any) -> str:
    return "<absent>" if value is _MISSING else repr(value)


def explain(results: list[StreamResult]) -> str:
    """The readable diff: per stream, expected vs. actual per field, then unexpected events."""
    out: list[str] = []
    for r in results:
        if r.ok:
            continue
        out.append(f"stream {r.stream}: expected {len(r.expected)} event(s), got {len(r.actual)}"
                   f" ({len(r.pairs)} matched)")
        spare = list(r.unexpected)
        for i in r.unmatched_expected:
            entry = r.expected[i]
            out.append(f"  expected[{i}] ({entry.location}) has no matching event")
            if spare:
                # Pair it with the closest unexplained event: fewest wrong fields.
                best = min(spare, key=lambda j: len(mismatches(entry, r.actual[j])))
                spare.remove(best)
                out.append(f"    closest actual event #{best}:")
                for name, want, got in mismatches(entry, r.actual[best]):
                    out.append(f"      {name}: expected {want!r}, got {_show(got)}")
            else:
                out.append("    (no unexplained event left to compare with)")
        for j in spare:
            doc = r.actual[j]
            summary = ", ".join(f"{n}={field(doc, n)!r}" for n in SUMMARY_FIELDS if field(doc, n) is not _MISSING)
            out.append(f"  unexpected extra event #{j}: {summary or doc}")
    return "\n".join(out)
