"""`d4c es templates`: one composable index template per cloud_defend stream, mapping exactly the
types `d4c events check` uses; printed, or installed with the official client into the
suite's Elasticsearch stand-in (conformance/sinks.py BulkServer)."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from conformance.fields.check import Catalog, FieldType, load_catalog
from conformance.fields.es_cli import run_templates
from conformance.fields.templates import TemplateError, mappings, stream_fields, templates
from conformance.sinks import BulkServer

EVENT_STREAMS = ("logs-cloud_defend.file", "logs-cloud_defend.process", "logs-cloud_defend.alerts")
AGENT_STREAMS = ("metrics-cloud_defend.heartbeat", "metrics-cloud_defend.metrics")


def _types(properties, prefix=""):
    """The mapping back as dotted name -> type (intermediate objects without a type are paths)."""
    out = {}
    for key, entry in properties.items():
        name = prefix + key
        if "type" in entry:
            out[name] = entry["type"]
        out.update(_types(entry.get("properties", {}), name + "."))
    return out


def _args(**kwargs):
    return argparse.Namespace(**{"url": None, "api_key": None, "ca_certs": None, "format": "console", **kwargs})


@pytest.fixture
def es():
    server = BulkServer().start()
    yield server
    server.stop()


def test_each_stream_maps_exactly_the_types_the_checker_uses():
    catalog = load_catalog()
    bodies = templates(catalog)
    assert sorted(bodies) == sorted(f"d4c-{s}" for s in EVENT_STREAMS + AGENT_STREAMS)
    for stream in EVENT_STREAMS + AGENT_STREAMS:
        body = bodies[f"d4c-{stream}"]
        assert body["index_patterns"] == [f"{stream}-*"] and body["data_stream"] == {}
        mapped = _types(body["template"]["mappings"]["properties"])
        assert mapped == {name: field.type for name, field in stream_fields(catalog, stream).items()}
    process = _types(bodies["d4c-logs-cloud_defend.process"]["template"]["mappings"]["properties"])
    # The package's type wins over ECS's (flattened, not keyword), the project's own fields are there.
    assert process["orchestrator.resource.label"] == "flattened"
    assert process["process.session_leader.entry_meta.type"] == "keyword"
    heartbeat = _types(bodies["d4c-metrics-cloud_defend.heartbeat"]["template"]["mappings"]["properties"])
    assert heartbeat["cloud_defend.block_action_enabled"] == "boolean" and heartbeat["d4c.policy.sha256"] == "keyword"


def test_templates_sit_between_the_stacks_and_fleets_and_index_no_unknown_field():
    body = templates()["d4c-logs-cloud_defend.file"]
    assert 100 < body["priority"] < 200
    mapping = body["template"]["mappings"]
    assert mapping["dynamic"] is False
    assert mapping["properties"]["host"]["properties"]["cpu"]["properties"]["usage"] == {
        "type": "scaled_float", "scaling_factor": 1000}
    assert body["template"]["settings"]["index.mapping.total_fields.limit"] > len(_types(mapping["properties"]))


def test_a_scalar_with_sub_fields_is_refused_with_both_names():
    with pytest.raises(TemplateError, match=r"d4c\.x\.y: d4c\.x is a keyword field"):
        mappings({"d4c.x": FieldType("keyword"), "d4c.x.y": FieldType("long")})
    catalog = load_catalog()
    broken = Catalog(catalog.ecs, catalog.allowed, {"logs-cloud_defend.file": {"host.name.first": FieldType("long")}},
                     catalog.ecs_version, catalog.package)
    with pytest.raises(TemplateError):
        templates(broken)


def test_printed_as_dev_tools_requests_and_as_json():
    out = io.StringIO()
    assert run_templates(_args(), out=out) == 0
    blocks = [b for b in out.getvalue().split("PUT _index_template/") if b.strip()]
    printed = {b.split("\n", 1)[0]: json.loads(b.split("\n", 1)[1]) for b in blocks}
    assert printed == templates()
    out = io.StringIO()
    assert run_templates(_args(format="json"), out=out) == 0
    assert json.loads(out.getvalue()) == templates()


def test_installed_with_the_official_client_and_read_back(es):
    elasticsearch = pytest.importorskip("elasticsearch")
    out, err = io.StringIO(), io.StringIO()
    assert run_templates(_args(url=es.url), out=out, err=err) == 0, err.getvalue()
    assert es.templates == templates()  # every body as sent, `_meta` included
    assert out.getvalue().splitlines()[0] == ("d4c es templates: installed d4c-logs-cloud_defend.alerts "
                                              "(logs-cloud_defend.alerts-*)")
    client = elasticsearch.Elasticsearch(es.url)
    [got] = client.indices.get_index_template(name="d4c-metrics-cloud_defend.heartbeat")["index_templates"]
    assert got["index_template"] == templates()["d4c-metrics-cloud_defend.heartbeat"]


def test_an_unreachable_elasticsearch_is_one_line_and_exit_1(es):
    pytest.importorskip("elasticsearch")
    url = es.url
    es.stop()  # nothing listens there any more
    err = io.StringIO()
    assert run_templates(_args(url=url), out=io.StringIO(), err=err) == 1
    [line] = err.getvalue().splitlines()
    assert line.startswith(f"d4c es templates: {url}: ConnectionError")


def test_credentials_without_url_are_a_usage_error():
    err = io.StringIO()
    assert run_templates(_args(api_key="k"), out=io.StringIO(), err=err) == 2
    assert err.getvalue() == "d4c es templates: --api-key and --ca-certs need --url\n"
