"""YAML loading that remembers where every value came from.

Error messages of the suite (schema, lint, the policy validator's findings inside a scenario)
must point at `file:line`; PyYAML's composed node tree carries the marks, so the document is
composed once and both the plain data and a path -> (line, column) map are built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

import d4c_yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A parsed YAML document: plain data, the root node, and 1-based positions per path."""

    data: Any
    node: yaml.Node | None
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicates: tuple[tuple[Path_, int, int], ...] = ()  # keys given twice (PyYAML keeps the last)

    def position(self, path: Path_) -> tuple[int, int]:
        """The position of `path`, or of its closest located ancestor."""
        while path not in self.positions and path:
            path = path[:-1]
        return self.positions.get(path, (1, 1))

    def node_at(self, path: Path_) -> yaml.Node | None:
        node = self.node
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                return None
        return node


class YamlSyntaxError(Exception):
    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


def load(text: str) -> Located:
    """Parse one YAML document; raises YamlSyntaxError with a position, never a traceback.

    The hardened loader (d4c_yaml) bounds aliases and nesting, refuses tags YAML does not
    define and non-string keys: a scenario file is data, and lint must survive any file."""
    try:
        node = d4c_yaml.compose(text)
        data = d4c_yaml.construct(node)
    except d4c_yaml.YamlError as error:
        raise YamlSyntaxError(error.message, error.line, error.column) from None
    positions: dict[Path_, tuple[int, int]] = {}
    duplicates: list[tuple[Path_, int, int]] = []
    if node is not None:
        _walk(node, (), positions, duplicates)
    return Located(data, node, positions, tuple(duplicates))


def _walk(node: yaml.Node, path: Path_, positions: dict, duplicates: list) -> None:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else repr(key)
            child = path + (name,)
            if name in seen:
                duplicates.append((child, key.start_mark.line + 1, key.start_mark.column + 1))
            seen.add(name)
            _walk(value, child, positions, duplicates)
            # Errors about a key itself (unknown key) read best at the key's own position.
            positions[child] = (key.start_mark.line + 1, key.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, path + (index,), positions, duplicates)


def dotted(path: Path_) -> str:
    """`('steps', 0, 'run')` -> `steps[0].run`, the path style of the CLI contract."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
