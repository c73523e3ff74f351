"""Loading policies: from a file, from YAML text, from an embedded PyYAML node, or from an
already-parsed mapping. Every entry point returns a `ValidationResult`; only an unreadable
file raises (`PolicyFileError`), because that is not a property of the policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .model import Diagnostic, ValidationResult
from .tree import from_python, from_yaml_node
from .validator import validate_tree


class PolicyFileError(Exception):
    """The policy file cannot be read (missing, a directory, no permission)."""


def _yaml_error(exc: yaml.YAMLError, prefix: str, text: str = "") -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "; ".join(parts) or str(exc)
    else:
        message = str(exc).replace("\n", " ")
    line = column = None
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        # Not a marked error: locate the offending character from its offset in the text.
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        message = f"unreadable character {char!r}: {exc.reason}"
    return Diagnostic(prefix, line, column, f"not valid YAML: {message}", "yaml-syntax")


def load_policy_text(text: str, filename: str = "<string>") -> ValidationResult:
    """Parse and validate YAML text. `filename` only names the source (it is not read)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return ValidationResult(policy=None, errors=(_yaml_error(exc, "", text),))
    except RecursionError:
        return ValidationResult(
            policy=None,
            errors=(Diagnostic("", 1, 1, "not valid YAML: nesting too deep", "yaml-syntax"),),
        )
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
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return ValidationResult(
            policy=None,
            errors=(Diagnostic("", line, column, "not valid YAML: the file is not UTF-8 text", "yaml-syntax"),),
        )
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
