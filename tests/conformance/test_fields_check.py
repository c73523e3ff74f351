"""conformance/fields: `d4c events check` against ECS, the cloud_defend package and d4c.json."""

from __future__ import annotations

import io
import json

import pytest

from conformance.fields import update_ecs
from conformance.fields.check import check_document, load_catalog
from conformance.runner import mapping_problems
from d4c.cli import main
from reference_agent.ecs.file_event import file_documents
from reference_agent.ecs.process_event import process_documents
from tests.agent.test_ecs import ANCESTRY, CTX_FULL, PLAIN_CONTAINER, POD_CONTAINER, context, file_activity, process_activity


def agent_documents(container=PLAIN_CONTAINER):
    ctx = context(**CTX_FULL)
    return (file_documents(ctx, file_activity(actions=frozenset({"log", "alert", "block"}), blocked=True), container, ANCESTRY)
            + process_documents(ctx, process_activity(actions=frozenset({"log", "alert"})), container, ANCESTRY)
            + process_documents(ctx, process_activity(operation="end"), container, ANCESTRY))


def write_streams(tmp_path, docs):
    for doc in docs:
        with open(tmp_path / f"{doc.data_stream}.ndjson", "a") as handle:
            handle.write(json.dumps(doc.nested()) + "\n")


def test_the_agents_documents_have_no_unknown_field_and_no_wrong_type(tmp_path, capsys):
    docs = agent_documents()
    assert {d.data_stream for d in docs} == {"logs-cloud_defend.file-default", "logs-cloud_defend.alerts-default",
                                             "logs-cloud_defend.process-default"}
    for doc in docs:
        assert check_document(doc.nested(), doc.data_stream) == []
        assert check_document(dict(doc.fields), doc.data_stream) == []  # dotted form too
    write_streams(tmp_path, docs)
    assert main(["events", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().startswith(f"{len(docs)} documents: 0 unknown fields, 0 wrong types")


def test_a_planted_wrong_type_exits_1_naming_file_line_and_field(tmp_path, capsys):
    write_streams(tmp_path, agent_documents())
    path = tmp_path / "logs-cloud_defend.process-default.ndjson"
    lines = path.read_text().splitlines()
    doc = json.loads(lines[1])
    doc["host"]["pid_ns_ino"] = 4026531836  # ECS: keyword
    lines[1] = json.dumps(doc)
    path.write_text("\n".join(lines) + "\n")
    assert main(["events", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: host.pid_ns_ino: keyword (ECS) but is 4026531836" in out
    assert "1 wrong types" in out


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["process"].update(bogus_field=1), "process.bogus_field: unknown field"),
    (lambda d: d["process"].update(pid="12"), "process.pid: long (ECS) but is \"12\""),
    (lambda d: d["event"].update(category="process"), "event.category: an array of keyword (ECS) but is the single value"),
    (lambda d: d["event"].update(kind="alert"), "event.kind 'alert' on cloud_defend.process (expected 'event')"),
    (lambda d: d["event"].update(type=["started"]), "event.type 'started' is not an ECS 9.4.0 allowed value"),
    (lambda d: d["data_stream"].update(dataset="cloud_defend.file"), "data_stream.* say 'logs-cloud_defend.file-default'"),
    (lambda d: d["cloud_defend"].update(hook_point=[7]), "cloud_defend.hook_point: keyword (cloud_defend 1.2.5) but holds 7"),
    (lambda d: d["process"]["parent"].update(same_as_process="no"), "process.parent.same_as_process: boolean (d4c)"),
])
def test_each_kind_of_problem_is_reported(change, expected):
    doc = next(d for d in agent_documents() if d.data_stream == "logs-cloud_defend.process-default").nested()
    change(doc)
    problems = [str(p) for p in check_document(doc, "logs-cloud_defend.process-default")]
    assert any(expected in p for p in problems), problems


def test_a_field_the_package_declares_for_another_stream_only_is_unknown():
    # cloud_defend.block_action_enabled exists, but only on the heartbeat stream.
    doc = agent_documents()[0].nested()
    doc["cloud_defend"]["block_action_enabled"] = True
    assert [p.kind for p in check_document(doc, "logs-cloud_defend.file-default")] == ["unknown"]


def test_flattened_package_fields_want_an_object():
    # The package maps orchestrator.resource.label as flattened (an object); the agent writes one,
    # and ECS's "key:value" keyword array is reported.
    doc = next(d for d in agent_documents(POD_CONTAINER) if d.data_stream == "logs-cloud_defend.file-default")
    assert check_document(doc.nested(), doc.data_stream) == []
    nested = doc.nested()
    nested["orchestrator"]["resource"]["label"] = ["app:web"]
    problems = [str(p) for p in check_document(nested, doc.data_stream)]
    assert problems == ['orchestrator.resource.label: flattened (cloud_defend 1.2.5) but holds "app:web"']


def test_stdin_and_unreadable_input(tmp_path, capsys, monkeypatch):
    doc = agent_documents()[0].nested()
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(doc) + "\n"))
    assert main(["events", "check", "-"]) == 0
    (tmp_path / "bad.ndjson").write_text("{not json\n")
    assert main(["events", "check", str(tmp_path / "bad.ndjson")]) == 2
    assert main(["events", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.ndjson'}:1: not JSON" in err and "missing: no such file or directory" in err


def test_the_kernel_tier_reports_mapping_problems_per_event():
    docs = [(d.data_stream, d.nested()) for d in agent_documents()]
    assert mapping_problems(docs) == []
    docs[0][1]["host"]["pid_ns_ino"] = 5
    assert mapping_problems(docs) == [
        "event 1 (logs-cloud_defend.file-default, creation): host.pid_ns_ino: keyword (ECS) but is 5"]


def test_pinned_ecs_and_its_update_reduction():
    catalog = load_catalog()
    assert catalog.ecs_version == "9.4.0" and len(catalog.ecs) > 2000
    assert catalog.ecs["host.pid_ns_ino"].type == "keyword" and catalog.ecs["event.category"].array
    sample = {"event.kind": {"type": "keyword", "normalize": [], "allowed_values": [{"name": "event"}, {"name": "alert"}]},
              "process.args": {"type": "keyword", "normalize": ["array"]}}
    reduced = update_ecs.reduce_schema(sample, "1.2.3")
    assert reduced["fields"] == {"event.kind": {"type": "keyword", "allowed": ["alert", "event"]},
                                 "process.args": {"type": "keyword", "array": True}}
    assert json.loads(update_ecs.dump(reduced)) == reduced
