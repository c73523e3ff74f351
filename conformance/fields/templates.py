"""Composable index templates for Elasticsearch without Fleet, built from the checker's catalog.

One template per cloud_defend data stream: the three event streams (logs-cloud_defend.file,
.process, .alerts) and the agent's two metrics streams (.heartbeat, .metrics). Each maps every
field `d4c events check` knows for that stream with the type the checker judges it by: ECS's
(ecs_flat.json), overridden by the project's (d4c.json) and then the package's
(cloud_defend.json), exactly as `Catalog.lookup` resolves them. A document the checker accepts
is therefore indexed without a mapping conflict, and a field the checker calls unknown is not
mapped (`dynamic: false`: kept in _source, not indexed) rather than guessed.

Names and priority: `d4c-<stream>` with priority 150, above the stack's built-in `logs` and
`metrics` templates (100, whose `logs-*-*` pattern would otherwise map these streams
dynamically) and below Fleet's package templates (200): where the cloud_defend package is
installed, its templates win and these are inert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.fields.check import Catalog, FieldType, load_catalog

PRIORITY = 150
NAME_PREFIX = "d4c-"
# Parameters some field types require; ECS gives its scaled_float fields this factor.
_TYPE_PARAMETERS: Mapping[str, Mapping[str, Any]] = {"scaled_float": {"scaling_factor": 1000}}
_CONTAINERS = frozenset({"object", "nested"})  # types whose node holds `properties`


class TemplateError(ValueError):
    """Two fields of one stream cannot both be mapped (a scalar with sub-fields)."""


def stream_fields(catalog: Catalog, stream: str) -> dict[str, FieldType]:
    """Every field the checker knows for `stream` ("<type>-<dataset>"), resolved as it does."""
    fields = dict(catalog.ecs)
    fields.update(catalog.streams.get(stream, {}))
    return fields


def mappings(fields: Mapping[str, FieldType]) -> dict[str, Any]:
    """The `mappings` of one template: a `properties` tree of the dotted names."""
    root: dict[str, Any] = {}
    # Parents before children: an object/nested field's node receives its children's
    # properties, and a scalar with a child below it is found when the child is placed.
    for name in sorted(fields, key=lambda n: (n.count("."), n)):
        *parents, leaf = name.split(".")
        node = root
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {"properties": {}})
            if "properties" not in child:
                raise TemplateError(f"{name}: {'.'.join(parents[:depth + 1])} is a {child['type']} field, "
                                    "it cannot have sub-fields")
            node = child["properties"]
        type_ = fields[name].type
        entry: dict[str, Any] = {"type": type_, **_TYPE_PARAMETERS.get(type_, {})}
        if type_ in _CONTAINERS:
            entry["properties"] = {}
        node[leaf] = entry
    return {"dynamic": False, "properties": _drop_empty(root)}


def _drop_empty(properties: dict[str, Any]) -> dict[str, Any]:
    """Objects with no declared children map as plain objects; `properties: {}` is noise."""
    for entry in properties.values():
        children = entry.get("properties")
        if children is not None:
            if children:
                _drop_empty(children)
            else:
                del entry["properties"]
    return properties


def _field_count(properties: Mapping[str, Any]) -> int:
    """What index.mapping.total_fields.limit counts: every node, objects included."""
    return sum(1 + _field_count(e.get("properties", {})) for e in properties.values())


def index_template(catalog: Catalog, stream: str) -> dict[str, Any]:
    """The composable index template body for the data streams `<stream>-*`."""
    body = mappings(stream_fields(catalog, stream))
    limit = max(1000, _field_count(body["properties"]) + 100)  # ECS alone is more than the default 1000
    return {
        "index_patterns": [f"{stream}-*"],
        "data_stream": {},
        "priority": PRIORITY,
        "template": {
            "settings": {"index.mapping.total_fields.limit": limit},
            "mappings": body,
        },
        "_meta": {
            "managed_by": "d4c",
            "description": f"{stream}: the field types `d4c events check` judges its documents by",
            "ecs_version": catalog.ecs_version,
            "package": catalog.package,
        },
    }


def templates(catalog: Catalog | None = None) -> dict[str, dict[str, Any]]:
    """Template name -> body, one per cloud_defend data stream the catalog knows."""
    catalog = catalog or load_catalog()
    return {NAME_PREFIX + stream: index_template(catalog, stream) for stream in sorted(catalog.streams)}
