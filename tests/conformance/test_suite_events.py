"""Event assertions: field lookup, value rules, order-free exact matching, the diff, the wait."""

from __future__ import annotations

import time
from pathlib import Path

from conformance import events as ev
from conformance.model import ANY, ExpectedEvent, Location

HERE = Location(Path("s.yaml"), 7)


def entry(**fields) -> ExpectedEvent:
    return ExpectedEvent(tuple((k.replace("__", "."), v) for k, v in fields.items()), HERE)


def test_field_reads_nested_flattened_and_mixed_documents() -> None:
    doc = {"event": {"action": "exec"}, "process.pid": 4, "container": {"image.name": "nginx"}}
    assert ev.field(doc, "event.action") == "exec"
    assert ev.field(doc, "process.pid") == 4
    assert ev.field(doc, "container.image.name") == "nginx"
    assert ev.field(doc, "event.kind") is ev._MISSING


def test_value_rules() -> None:
    assert ev.value_matches("event.type", ["denied", "creation"], ["creation", "denied"])  # set field
    assert not ev.value_matches("event.type", ["creation"], ["creation", "denied"])
    assert not ev.value_matches("process.args", ["a", "b"], ["b", "a"])  # other lists: ordered
    assert ev.value_matches("process.pid", ANY, 0)
    assert not ev.value_matches("process.pid", ANY, ev._MISSING)
    assert not ev.value_matches("user.id", "0", 0)  # no type coercion
    assert ev.value_matches("host.pid_ns_ino", 4026531836, 4026531836.0)


def test_correlation_by_full_or_short_container_id() -> None:
    full = "c5f6acbe81437a3d7986af98bae75b7ac6d2c5044003ff73310dfc914c0a8526"
    assert ev.belongs_to({"container": {"id": full}}, [full])
    assert ev.belongs_to({"container.id": full[:12]}, [full])
    assert not ev.belongs_to({"container.id": full[:6]}, [full])  # too short to be an id
    assert not ev.belongs_to({"container.id": "other"}, [full])
    assert not ev.belongs_to({}, [full])


def test_matching_is_exact_in_count_and_not_greedy() -> None:
    loose, strict = entry(event__action="creation"), entry(event__action="creation", file__path="/b")
    a = {"event": {"action": "creation"}, "file": {"path": "/a"}}
    b = {"event": {"action": "creation"}, "file": {"path": "/b"}}
    # a greedy matcher would give `b` to the loose entry and fail the strict one
    assert ev.match_stream("s", (loose, strict), [b, a]).ok
    assert not ev.match_stream("s", (loose,), [a, b]).ok  # one extra event
    assert not ev.match_stream("s", (loose, strict), [a]).ok


def test_unlisted_stream_must_be_empty_and_diff_reads_well() -> None:
    expected = {"logs-cloud_defend.file-default": (entry(event__action="creation", file__path="/usr/bin/x"),)}
    events = [
        ("logs-cloud_defend.file-default", {"event": {"action": "modification"}, "file": {"path": "/usr/bin/x"}}),
        ("logs-cloud_defend.alerts-default", {"event": {"action": "creation", "kind": "alert"}, "container": {"id": "c"}}),
    ]
    results = ev.compare(expected, events)
    assert [r.stream for r in results] == ["logs-cloud_defend.file-default", "logs-cloud_defend.alerts-default"]
    text = ev.explain(results)
    assert "stream logs-cloud_defend.file-default: expected 1 event(s), got 1 (0 matched)" in text
    assert "expected[0] (s.yaml:7:1) has no matching event" in text
    assert "event.action: expected 'creation', got 'modification'" in text
    assert "file.path" not in text.split("closest actual event #0:")[1].split("stream")[0]  # only wrong fields
    assert "stream logs-cloud_defend.alerts-default: expected 0 event(s), got 1" in text
    assert "unexpected extra event #0: event.action='creation', event.kind='alert'" in text


def test_wait_is_bounded_and_settles_for_extras() -> None:
    expected = {"s": (entry(event__action="x"),)}
    start = time.monotonic()
    results = ev.wait_for(expected, lambda: [], timeout=0.3, settle=0.1, interval=0.05)
    assert not results[0].ok and time.monotonic() - start < 2
    # an extra event arriving during the settle period is caught
    calls = []

    def poll():
        calls.append(1)
        docs = [("s", {"event": {"action": "x"}})]
        return docs + [("s", {"event": {"action": "y"}})] if len(calls) > 2 else docs

    results = ev.wait_for(expected, poll, timeout=2, settle=0.5, interval=0.05)
    assert not results[0].ok and results[0].unexpected == (1,)
