"""A located document tree: what the validator reads, whatever the policy came from.

YAML text and embedded PyYAML nodes keep their marks (1-based line and column of every key
and value); an already-parsed Python mapping has none. Converting both into this one small
tree lets a single validator serve `load_policy_text`, `validate_policy_node` and
`validate_policy_document`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

import d4c_yaml

from .model import Diagnostic


class _Invalid:
    """A value that could not be built (e.g. an unknown YAML tag); already reported."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(slots=True)
class Node:
    kind: Literal["map", "seq", "scalar"]
    # map: list of (key Node, value Node); seq: list of Node; scalar: the Python value
    value: Any
    line: int | None = None
    column: int | None = None
    raw: str | None = None  # a YAML scalar's source text (to suggest quoting `1.21`)

    @property
    def is_null(self) -> bool:
        return self.kind == "scalar" and self.value is None


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


class _YamlConverter:
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        self.active: set[int] = set()  # nodes on the current branch: detects recursive aliases

    def error(self, node: yaml.Node, path: str, message: str, code: str = "yaml-syntax") -> None:
        mark = node.start_mark
        self.diagnostics.append(Diagnostic(path, mark.line + 1, mark.column + 1, message, code))

    def convert(self, node: yaml.Node, path: str) -> Node:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if id(node) in self.active:
            self.error(node, path, "recursive alias: a node cannot contain itself")
            return Node("scalar", INVALID, line, column)
        if isinstance(node, yaml.ScalarNode):
            try:
                value = d4c_yaml.construct_scalar(node)
            except d4c_yaml.YamlError as exc:  # `!!int abc`, a bad date, a 100-digit integer
                self.error(node, path, exc.message)
                value = INVALID
            return Node("scalar", value, line, column, raw=node.value)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return Node(
                    "seq",
                    [self.convert(item, index(path, i)) for i, item in enumerate(node.value)],
                    line,
                    column,
                )
            assert isinstance(node, yaml.MappingNode)
            items: list[tuple[Node, Node]] = []
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:
                    key = Node("scalar", "<<", key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                elif isinstance(key_node, yaml.ScalarNode):
                    key = self.convert(key_node, path)
                else:
                    self.error(key_node, path, "a mapping key must be a plain value, not a list or mapping", "bad-type")
                    continue
                try:
                    first = seen.get(key.value)
                except TypeError:  # unhashable can't happen for scalars, but stay safe
                    first = None
                if first is not None:
                    self.error(
                        key_node,
                        join(path, key.value),
                        f"duplicate key {key.value!r} (first at line {first})",
                    )
                    continue
                try:
                    seen[key.value] = key.line or 0
                except TypeError:
                    pass
                items.append((key, self.convert(value_node, join(path, key.value))))
            return Node("map", items, line, column)
        finally:
            self.active.discard(id(node))


def from_yaml_node(node: yaml.Node, path: str, diagnostics: list[Diagnostic]) -> Node:
    """Convert a composed PyYAML node; problems (bad tags, duplicate keys) go to diagnostics."""
    return _YamlConverter(diagnostics).convert(node, path)


def from_python(obj: Any, path: str, diagnostics: list[Diagnostic], _active: set[int] | None = None) -> Node:
    """Convert an already-parsed document (dicts, lists, scalars); no lines or columns."""
    active = _active if _active is not None else set()
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            diagnostics.append(Diagnostic(path, None, None, "recursive structure", "bad-type"))
            return Node("scalar", INVALID)
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                return Node(
                    "map",
                    [
                        (Node("scalar", k), from_python(v, join(path, k), diagnostics, active))
                        for k, v in obj.items()
                    ],
                )
            return Node("seq", [from_python(v, index(path, i), diagnostics, active) for i, v in enumerate(obj)])
        finally:
            active.discard(id(obj))
    return Node("scalar", obj)
