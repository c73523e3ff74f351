"""Loading policies: from a file, from YAML text, from an embedded PyYAML node, or from an
already-parsed mapping. Every entry point returns a `ValidationResult`; only an unreadable
file raises (`PolicyFileError`), because that is not a property of the policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import d4c_yaml

from .model import Diagnostic, ValidationResult
from .tree import from_python, from_yaml_node, index, join
from .validator import validate_tree


class PolicyFileError(Exception):
    """The policy file cannot be read (missing, a directory, no permission)."""


def _yaml_error(exc: d4c_yaml.YamlError, prefix: str) -> ValidationResult:
    path = prefix
    for part in exc.path:
        path = index(path, part) if isinstance(part, int) else join(path, part)
    return ValidationResult(
        policy=None, errors=(Diagnostic(path, exc.line, exc.column, f"not valid YAML: {exc.message}", "yaml-syntax"),)
    )


def load_policy_text(text: str, filename: str = "<string>") -> ValidationResult:
    """Parse and validate YAML text. `filename` only names the source (it is not read)."""
    try:
        node = d4c_yaml.compose(text)
    except d4c_yaml.YamlError as exc:
        return _yaml_error(exc, "")
    if node is None:  # empty document, or comments only
        return ValidationResult(
            policy=None,
            errors=(
                Diagnostic("", 1, 1, "the policy is empty: it needs a `file` and/or a `process` section (D1)", "empty-policy"),
            ),
        )
    return validate_policy_node(node)


def load_policy_file(path: str | Path) -> ValidationResult:
    """Read and validate a policy file; raises PolicyFileError only when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = d4c_yaml.decode(data)
    except d4c_yaml.YamlError as exc:
        return _yaml_error(exc, "")
    return load_policy_text(text, str(path))


def validate_policy_node(node: yaml.Node, path_prefix: str = "") -> ValidationResult:
    """Validate a policy given as a composed PyYAML node (e.g. embedded in a scenario file).

    Lines and columns are those of the enclosing file; every path starts with `path_prefix`
    (e.g. `policy` gives `policy.file.selectors[0].name`).
    """
    preliminary: list[Diagnostic] = []
    try:
        tree = from_yaml_node(node, path_prefix, preliminary)
    except RecursionError:
        mark = node.start_mark
        return ValidationResult(
            policy=None,
            errors=(Diagnostic(path_prefix, mark.line + 1, mark.column + 1, "nesting too deep", "yaml-syntax"),),
        )
    return validate_tree(tree, path_prefix, preliminary)


def validate_policy_document(obj: Any, path_prefix: str = "") -> ValidationResult:
    """Validate an already-parsed policy (dicts, lists, scalars). Diagnostics have no lines."""
    preliminary: list[Diagnostic] = []
    try:
        tree = from_python(obj, path_prefix, preliminary)
    except RecursionError:
        return ValidationResult(
            policy=None, errors=(Diagnostic(path_prefix, None, None, "nesting too deep", "bad-type"),)
        )
    return validate_tree(tree, path_prefix, preliminary)
