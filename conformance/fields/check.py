"""Every field of an event document against the mappings a real Elastic stack indexes it with.

Three field lists, all in this directory: ECS (ecs_flat.json, pinned from npm @elastic/ecs by
update_ecs.py), the cloud_defend integration package's own fields per data stream
(cloud_defend.json, with the package version), and the fields the seed or the project's
decisions add that neither declares (d4c.json). Where the package declares a field, its type
wins: its index template is what the document meets.

Reported, one line each: fields none of the lists knows for the stream; values whose JSON type
the field's mapping would reject or coerce (a number where ECS says keyword, a scalar where
ECS says array); data-stream inconsistencies (data_stream.* against the stream the document
arrived on, event.dataset, event.kind and event.category against the stream, values outside
ECS's allowed categorization values). ECS's per-category "expected event types" are not
checked: they are guidance, and D23 puts `denied` on blocked file and process events.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# dataset -> (event.kind, allowed event.category values) of the cloud_defend streams.
STREAM_SHAPE: Mapping[str, tuple[str, frozenset[str]]] = {
    "cloud_defend.file": ("event", frozenset({"file"})),
    "cloud_defend.process": ("event", frozenset({"process"})),
    "cloud_defend.alerts": ("alert", frozenset({"file", "process"})),
    "cloud_defend.heartbeat": ("metric", frozenset()),
    "cloud_defend.metrics": ("metric", frozenset()),
}
_STREAM = re.compile(r"(?P<type>logs|metrics)-(?P<dataset>[^-]+)-(?P<namespace>[^-]+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?")
_KEYWORDS = frozenset({"keyword", "constant_keyword", "wildcard", "match_only_text", "text", "version"})
_INTEGERS = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_FLOATS = frozenset({"float", "double", "half_float", "scaled_float"})
_OBJECTS = frozenset({"object", "nested", "flattened"})


@dataclass(frozen=True)
class Problem:
    kind: str  # "unknown" | "type" | "stream"
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class FieldType:
    type: str
    array: bool = False  # ECS normalizes the field to an array
    origin: str = "ECS"


@dataclass(frozen=True)
class Catalog:
    ecs: Mapping[str, FieldType]
    allowed: Mapping[str, frozenset[str]]
    streams: Mapping[str, Mapping[str, FieldType]]  # "<type>-<dataset>" -> package + project fields
    ecs_version: str
    package: str

    def lookup(self, stream: str | None, name: str) -> FieldType | None:
        own = self.streams.get(stream or "", {}).get(name)
        if own is not None:
            return own
        return self.ecs.get(name)


@lru_cache(maxsize=1)
def load_catalog(directory: Path = HERE) -> Catalog:
    ecs_doc = json.loads((directory / "ecs_flat.json").read_text())
    ecs = {name: FieldType(spec["type"], bool(spec.get("array"))) for name, spec in ecs_doc["fields"].items()}
    allowed = {name: frozenset(spec["allowed"]) for name, spec in ecs_doc["fields"].items() if "allowed" in spec}
    package = json.loads((directory / "cloud_defend.json").read_text())
    project = json.loads((directory / "d4c.json").read_text())
    label = f"cloud_defend {package['version']}"
    streams: dict[str, dict[str, FieldType]] = {}
    for source, origin in ((project, "d4c"), (package, label)):  # package last: its types win
        for stream, fields in source["streams"].items():
            target = streams.setdefault(stream, {})
            for name, type_ in fields.items():
                # ECS's "array" convention belongs to ECS's type: a package that maps the field
                # as an object (flattened) wants one object, not ECS's array of keywords.
                array = ecs[name].array if name in ecs and type_ not in _OBJECTS else False
                target[name] = FieldType(type_, array, origin)
    return Catalog(ecs, allowed, streams, ecs_doc["version"], label)


def leaves(doc: Mapping[str, Any], catalog: Catalog, stream: str | None,
           prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every field; objects and arrays of objects are walked into,
    except values of object-typed fields (flattened: the whole object is the value)."""
    for key, value in doc.items():
        name = prefix + key
        known = catalog.lookup(stream, name)
        if known is not None and known.type in _OBJECTS:
            yield name, value
        elif isinstance(value, dict):
            yield from leaves(value, catalog, stream, name + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from leaves(item, catalog, stream, name + ".")
        else:
            yield name, value


def _scalar_ok(type_: str, value: Any) -> bool:
    if type_ in _KEYWORDS:
        return isinstance(value, str)
    if type_ in _INTEGERS:
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ in _FLOATS:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "date":
        return (isinstance(value, str) and _DATE.fullmatch(value) is not None) or (
            isinstance(value, int) and not isinstance(value, bool))
    if type_ == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return isinstance(value, str)
    if type_ == "flattened":
        return isinstance(value, dict)
    if type_ in ("object", "nested"):
        return isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value))
    return True  # geo_point and the like: not produced by this project; not judged


def type_problem(field: FieldType, value: Any) -> str | None:
    if value is None:
        return None  # null: Elasticsearch indexes nothing, any mapping accepts it
    if isinstance(value, list) and field.type not in ("object", "nested"):
        wrong = [v for v in value if v is not None and not _scalar_ok(field.type, v)]
        if wrong:
            return f"{field.type} ({field.origin}) but holds {json.dumps(wrong[0])}"
        return None
    if field.array:
        return f"an array of {field.type} ({field.origin}) but is the single value {json.dumps(value)}"
    if not _scalar_ok(field.type, value):
        return f"{field.type} ({field.origin}) but is {json.dumps(value)}"
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def stream_problems(doc: Mapping[str, Any], stream: str | None, catalog: Catalog) -> list[str]:
    """data_stream.*, event.dataset, event.kind, event.category against the stream."""
    flat = dict(leaves(doc, catalog, None))
    out: list[str] = []
    parts = (flat.get("data_stream.type"), flat.get("data_stream.dataset"), flat.get("data_stream.namespace"))
    if stream is not None:
        match = _STREAM.fullmatch(stream)
        if match is None:
            out.append(f"arrived on {stream!r}, not a <type>-<dataset>-<namespace> data stream")
        elif parts != (match["type"], match["dataset"], match["namespace"]):
            out.append(f"data_stream.* say {'-'.join(map(str, parts))!r}, the document is in {stream!r}")
    dataset = parts[1]
    if flat.get("event.dataset") is not None and flat.get("event.dataset") != dataset:
        out.append(f"event.dataset {flat.get('event.dataset')!r} != data_stream.dataset {dataset!r}")
    for name in ("event.kind", "event.category", "event.type"):
        for value in _as_list(flat.get(name)):
            if value is not None and value not in catalog.allowed.get(name, {value}):
                out.append(f"{name} {value!r} is not an ECS {catalog.ecs_version} allowed value")
    shape = STREAM_SHAPE.get(str(dataset))
    if shape is None:
        out.append(f"data_stream.dataset {dataset!r} is none of the cloud_defend streams ({', '.join(STREAM_SHAPE)})")
        return out
    kind, categories = shape
    if flat.get("event.kind") != kind:
        out.append(f"event.kind {flat.get('event.kind')!r} on {dataset} (expected {kind!r})")
    if categories:
        got = set(_as_list(flat.get("event.category")))
        if not got or not got <= categories:
            out.append(f"event.category {sorted(map(str, got))} on {dataset} (expected one of {sorted(categories)})")
    return out


def stream_key(doc: Mapping[str, Any], stream: str | None) -> str | None:
    """"<type>-<dataset>" of the document: from the stream it arrived on, else its data_stream.*."""
    match = _STREAM.fullmatch(stream or "")
    if match:
        return f"{match['type']}-{match['dataset']}"
    ds = doc.get("data_stream")
    if isinstance(ds, dict) and ds.get("type") and ds.get("dataset"):
        return f"{ds['type']}-{ds['dataset']}"
    if doc.get("data_stream.type") and doc.get("data_stream.dataset"):
        return f"{doc['data_stream.type']}-{doc['data_stream.dataset']}"
    return None


def check_document(doc: Mapping[str, Any], stream: str | None = None,
                   catalog: Catalog | None = None) -> list[Problem]:
    """Problems of one document (nested or dotted), `stream` = the data stream it arrived on."""
    catalog = catalog or load_catalog()
    if "_unparseable" in doc:
        return [Problem("stream", "not a JSON object: " + str(doc["_unparseable"])[:80])]
    key = stream_key(doc, stream)
    out: list[Problem] = []
    for name, value in leaves(doc, catalog, key):
        field = catalog.lookup(key, name)
        if field is None:
            out.append(Problem("unknown", f"{name}: unknown field (not in ECS {catalog.ecs_version}, {catalog.package} or d4c.json for {key})"))
            continue
        wrong = type_problem(field, value)
        if wrong:
            out.append(Problem("type", f"{name}: {wrong}"))
    return out + [Problem("stream", text) for text in stream_problems(doc, stream, catalog)]
