"""The typed, immutable model of a D4C policy (docs/spec.md), and views of its vocabulary (vocabulary.py).

A `Policy` is only ever built by the validator (validator.py), so every value here already
obeys D1–D9: conditions carry their canonical names (aliases normalised, D9), list conditions
are non-empty tuples of strings, an absent list condition is the empty tuple and an absent
boolean condition is None. Selector attribute names ARE the canonical condition names, so
`getattr(selector, name)` works for every name in `CONDITION_NAMES`.

The model is plain data: the matcher compiles it (matcher.compile_policy), the kernel side
compiles it into map values; neither form is kept on the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from . import vocabulary

SectionKind = Literal["file", "process"]
SECTION_KINDS: tuple[SectionKind, ...] = ("file", "process")

# --- vocabulary (vocabulary.py is the table; these are the views the rest reads) -------------

FILE_OPERATIONS: tuple[str, ...] = tuple(o.name for o in vocabulary.OPERATION_NAMES if o.section == "file")
PROCESS_OPERATIONS: tuple[str, ...] = tuple(o.name for o in vocabulary.OPERATION_NAMES if o.section == "process")
OPERATIONS: dict[str, tuple[str, ...]] = {"file": FILE_OPERATIONS, "process": PROCESS_OPERATIONS}

ACTIONS: tuple[str, ...] = vocabulary.ACTIONS

# The common conditions are exactly the ones decided per container (image, orchestrator).
COMMON_CONDITIONS: tuple[str, ...] = vocabulary.names(scope="container")
FILE_CONDITIONS: tuple[str, ...] = vocabulary.names(section="file", scope="operation")
PROCESS_CONDITIONS: tuple[str, ...] = vocabulary.names(section="process", scope="operation")
# Canonical condition names allowed per section (D4).
SECTION_CONDITIONS: dict[str, tuple[str, ...]] = {
    "file": COMMON_CONDITIONS + FILE_CONDITIONS,
    "process": COMMON_CONDITIONS + PROCESS_CONDITIONS,
}
CONDITION_NAMES: tuple[str, ...] = vocabulary.names()

# D9: the vocabulary Elastic shipped later, accepted and normalised to the seed's names.
ALIASES: dict[str, str] = {alias: c.name for c in vocabulary.CONDITIONS for alias in c.aliases}

BOOL_CONDITIONS: frozenset[str] = frozenset(vocabulary.names(values=("boolean",)))
# D11: absolute path patterns, `*` stops at `/`, `**` does not.
PATH_CONDITIONS: frozenset[str] = frozenset(vocabulary.names(values=("path",)))
# D12: conditions whose values may use the string wildcard `*`.
WILDCARD_CONDITIONS: frozenset[str] = frozenset(vocabulary.names(values=("string",)))
# D12: conditions compared for plain equality, where `*` is an error.
EXACT_CONDITIONS: frozenset[str] = frozenset(vocabulary.names(values=("exact", "name")))
ORCHESTRATOR_CONDITIONS: frozenset[str] = frozenset(
    name for name in COMMON_CONDITIONS if name.startswith("orchestrator")
)
ORCHESTRATOR_TYPES: tuple[str, ...] = vocabulary.ORCHESTRATOR_TYPES  # D6

# D32: the operations a selector's `operation` entry covers besides itself.
_COVERS: dict[str, frozenset[str]] = {o.name: frozenset({o.name, *o.covers})
                                      for o in vocabulary.OPERATION_NAMES if o.covers}


def selects_operation(operations: frozenset[str], operation: str) -> bool:
    """Whether a selector with these `operation` values (empty: all, D5) applies to `operation`:
    an `exec` selector also applies to an `execMemFd` (D32), not the other way round."""
    if not operations or operation in operations:
        return True
    return any(operation in _COVERS.get(op, ()) for op in operations)

# D26: the limits of Elastic's own policy editor.
MAX_SELECTORS = 64
MAX_RESPONSES = 64
MAX_PATH_PATTERN_BYTES = 255
MAX_STRING_BYTES = 511
MAX_NAME_CHARS = 128
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # D2


# --- diagnostics ---------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a policy (cli-contract.md: path, line, column, message, code).

    `path` is the dotted/indexed location (`file.selectors[1].targetFilePath[0]`; "" for the
    document itself). `line`/`column` are 1-based and None when the policy did not come from
    YAML text.
    """

    path: str
    line: int | None
    column: int | None
    message: str
    code: str

    def __post_init__(self) -> None:
        # One problem, one line: control characters from the policy (a key "a\nb") are escaped.
        for name in ("path", "message"):
            value = getattr(self, name)
            if _CONTROL.search(value):
                object.__setattr__(self, name, _CONTROL.sub(_escape_control, value))

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "code": self.code,
        }

    def format(self, filename: str, severity: str = "") -> str:
        """The `d4c policy validate` text line: `FILE:LINE:COLUMN: PATH: MESSAGE`."""
        line = "?" if self.line is None else str(self.line)
        column = "?" if self.column is None else str(self.column)
        prefix = f"{severity}: " if severity else ""
        return f"{filename}:{line}:{column}: {self.path or '(policy)'}: {prefix}{self.message} [{self.code}]"


# --- the policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """A selector with its conditions under their canonical names (D9).

    `operations` is empty when the selector has no `operation` condition: it then matches
    every operation of its section (D5). Absent list conditions are `()`, absent booleans None.
    """

    name: str
    kind: SectionKind
    index: int  # position in its section's `selectors` list
    operations: frozenset[str] = frozenset()
    # common conditions
    containerImageName: tuple[str, ...] = ()
    containerImageTag: tuple[str, ...] = ()
    fullContainerImageName: tuple[str, ...] = ()
    orchestratorClusterId: tuple[str, ...] = ()
    orchestratorClusterName: tuple[str, ...] = ()
    orchestratorNamespace: tuple[str, ...] = ()
    orchestratorResourceName: tuple[str, ...] = ()
    orchestratorResourceLabel: tuple[str, ...] = ()  # raw `key:value` entries (D14)
    orchestratorType: tuple[str, ...] = ()
    # file conditions
    targetFilePath: tuple[str, ...] = ()
    ignoreVolumeMounts: bool | None = None
    ignoreVolumeFiles: bool | None = None
    # process conditions
    processExecutable: tuple[str, ...] = ()
    processName: tuple[str, ...] = ()
    processUserName: tuple[str, ...] = ()
    processUserId: tuple[str, ...] = ()  # integers in the YAML are normalised to strings
    sessionLeaderInteractive: bool | None = None
    sessionLeaderExecutable: tuple[str, ...] = ()
    sessionLeaderName: tuple[str, ...] = ()  # D32: basenames of the leader's executable
    # Where it was written: not part of its meaning (two equal policies may differ in layout).
    line: int | None = field(default=None, compare=False)
    column: int | None = field(default=None, compare=False)

    @property
    def conditions(self) -> dict[str, Any]:
        """The conditions present, canonical name -> value (`operation` as a sorted tuple)."""
        present: dict[str, Any] = {}
        if self.operations:
            present["operation"] = tuple(sorted(self.operations))
        for name in SECTION_CONDITIONS[self.kind]:
            if name == "operation":
                continue
            value = getattr(self, name)
            if value is not None and value != ():
                present[name] = value
        return present

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """`orchestratorResourceLabel` split into (key, value pattern) pairs (D14)."""
        return tuple(split_label(entry) for entry in self.orchestratorResourceLabel)


def split_label(entry: str) -> tuple[str, str]:
    """`key:value` -> (key, value). Label keys cannot contain `:`, so the first one splits."""
    key, _, value = entry.partition(":")
    return key, value


@dataclass(frozen=True)
class Response:
    """A response: fires when a `match` selector matches and no `exclude` selector does (D22)."""

    index: int  # position in its section's `responses` list (the `responses` of a verdict)
    match: tuple[str, ...]
    exclude: tuple[str, ...]
    actions: frozenset[str]
    # Where it was written: not part of its meaning (two equal policies may differ in layout).
    line: int | None = field(default=None, compare=False)
    column: int | None = field(default=None, compare=False)
    kind: SectionKind = "file"


@dataclass(frozen=True)
class Section:
    kind: SectionKind
    selectors: tuple[Selector, ...]
    responses: tuple[Response, ...]

    def selector(self, name: str) -> Selector | None:
        for selector in self.selectors:
            if selector.name == name:
                return selector
        return None


@dataclass(frozen=True)
class Policy:
    file: Section | None = None
    process: Section | None = None
    # D32: Kibana's top-level `version`; says which schema wrote it, changes no verdict.
    version: str | None = field(default=None, compare=False)

    def section(self, kind: str) -> Section | None:
        if kind == "file":
            return self.file
        if kind == "process":
            return self.process
        raise ValueError(f"unknown section kind {kind!r}")

    @property
    def sections(self) -> tuple[Section, ...]:
        return tuple(s for s in (self.file, self.process) if s is not None)


@dataclass(frozen=True)
class ValidationResult:
    """What loading and validating a policy gives: the policy when valid, and every problem."""

    policy: Policy | None
    errors: tuple[Diagnostic, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """The `d4c policy validate --format json` document."""
        return {
            "valid": self.valid,
            "errors": [d.to_json() for d in self.errors],
            "warnings": [d.to_json() for d in self.warnings],
        }
