"""Event transports: the _bulk endpoint (with the official Elasticsearch client) and NDJSON files."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conformance.sinks import BulkServer, NdjsonFiles


@pytest.fixture
def bulk():
    server = BulkServer().start()
    yield server
    server.stop()


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/x-ndjson", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_official_client_helpers_bulk(bulk: BulkServer) -> None:
    elasticsearch = pytest.importorskip("elasticsearch")
    from elasticsearch import helpers

    client = elasticsearch.Elasticsearch(bulk.url)
    docs = [
        {"_op_type": "create", "_index": "logs-cloud_defend.file-default",
         "_source": {"container": {"id": "c1"}, "event": {"action": "creation"}}},
        {"_op_type": "create", "_index": "logs-cloud_defend.alerts-default", "_source": {"event": {"kind": "alert"}}},
    ]
    mark = bulk.mark()
    ok, errors = helpers.bulk(client, docs)
    assert (ok, errors) == (2, [])
    assert bulk.since(mark) == [
        ("logs-cloud_defend.file-default", {"container": {"id": "c1"}, "event": {"action": "creation"}}),
        ("logs-cloud_defend.alerts-default", {"event": {"kind": "alert"}}),
    ]
    assert client.info()["version"]["number"].startswith("8.")


def test_bulk_response_shape_index_in_url_and_gzip(bulk: BulkServer) -> None:
    body = b'{"create":{}}\n{"a":1}\n{"index":{"_index":"other","_id":"x"}}\n{"b":2}\n'
    status, reply = post(f"{bulk.url}/logs-cloud_defend.process-default/_bulk", gzip.compress(body),
                         {"Content-Encoding": "gzip"})
    assert status == 200 and reply["errors"] is False
    assert [next(iter(i)) for i in reply["items"]] == ["create", "index"]
    assert reply["items"][0]["create"]["_index"] == "logs-cloud_defend.process-default"
    assert reply["items"][0]["create"]["status"] == 201
    assert reply["items"][1]["index"]["_id"] == "x"
    assert bulk.since(0) == [("logs-cloud_defend.process-default", {"a": 1}), ("other", {"b": 2})]


def test_bulk_without_index_is_an_item_error_and_garbage_a_400(bulk: BulkServer) -> None:
    status, reply = post(f"{bulk.url}/_bulk", b'{"create":{}}\n{"a":1}\n')
    assert status == 200 and reply["errors"] is True and reply["items"][0]["create"]["status"] == 400
    status, reply = post(f"{bulk.url}/_bulk", b"not json\n")
    assert status == 400 and "malformed" in reply["error"]["reason"]
    assert bulk.since(0) == []


def test_ndjson_files_per_stream_from_a_mark_and_only_complete_lines(tmp_path: Path) -> None:
    source = NdjsonFiles(str(tmp_path / "{data_stream}.ndjson"))
    (tmp_path / "logs-cloud_defend.file-default.ndjson").write_text('{"old":1}\n')
    mark = source.mark()
    with open(tmp_path / "logs-cloud_defend.file-default.ndjson", "a") as out:
        out.write('{"new":1}\n{"partial":')
    (tmp_path / "logs-cloud_defend.alerts-default.ndjson").write_text('{"alert":1}\nnot json\n')
    (tmp_path / "unrelated.txt").write_text("x\n")
    assert source.since(mark) == [
        ("logs-cloud_defend.alerts-default", {"alert": 1}),
        ("logs-cloud_defend.alerts-default", {"_unparseable": "not json"}),
        ("logs-cloud_defend.file-default", {"new": 1}),
    ]
