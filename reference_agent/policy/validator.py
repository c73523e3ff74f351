"""The validator: a located document tree (tree.py) -> a `Policy`, or structured errors.

It enforces D1–D9, the limits of D26, the seed's rules, and reports the D27 warnings; every
problem becomes a `Diagnostic` with the YAML path, line, column and one of the stable error
codes of cli-contract.md. It never raises on any input: whatever the document, the result is
a `ValidationResult`.

The checks follow the document top-down; a problem in one place never hides problems
elsewhere (a selector with a bad condition still registers its name, so responses naming it
do not also report `unknown-selector`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .model import (
    ACTIONS,
    ALIASES,
    BOOL_CONDITIONS,
    CONDITION_NAMES,
    EXACT_CONDITIONS,
    MAX_NAME_CHARS,
    MAX_PATH_PATTERN_BYTES,
    MAX_RESPONSES,
    MAX_SELECTORS,
    MAX_STRING_BYTES,
    NAME_PATTERN,
    OPERATIONS,
    ORCHESTRATOR_TYPES,
    PATH_CONDITIONS,
    SECTION_CONDITIONS,
    SECTION_KINDS,
    Diagnostic,
    Policy,
    Response,
    Section,
    Selector,
    ValidationResult,
)
from . import limits
from .tree import INVALID, Node, index, join

_NAME_RE = re.compile(NAME_PATTERN)
# Path pattern pieces that can never match a normalised path (D11): `//`, `.`/`..` segments,
# a trailing `/`. And runs of three or more `*`, which mean nothing in D11.
_DEGENERATE_PATH = re.compile(r"//|/\.\.?(/|$)|.(/)$")


_TYPOGRAPHIC_QUOTES = frozenset("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2032\u2033")


@dataclass
class _SelectorInfo:
    kind: str
    path: str
    line: int | None
    has_target_path: bool = False
    root_globs: list[str] = field(default_factory=list)  # path patterns starting with `/**`


class _Validator:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.names: dict[str, _SelectorInfo] = {}  # every selector name seen, whole policy
        # (section, pattern set) -> the kernel patterns its values expand to, in document order,
        # with where each value is; and per section the kernel uids of processUserId (D26).
        self.kernel_patterns: dict[tuple[str, str], list[tuple[list[bytes], str, Node]]] = {}
        self.kernel_uids: dict[str, list[tuple[int, str, Node]]] = {}

    # --- reporting -------------------------------------------------------------------------

    def _diag(self, path: str, node: Node | None, code: str, message: str) -> Diagnostic:
        full = join(self.prefix, path) if path else self.prefix
        return Diagnostic(full, node.line if node else None, node.column if node else None, message, code)

    def error(self, path: str, node: Node | None, code: str, message: str) -> None:
        self.errors.append(self._diag(path, node, code, message))

    def warn(self, path: str, node: Node | None, code: str, message: str) -> None:
        self.warnings.append(self._diag(path, node, code, message))

    # --- document ----------------------------------------------------------------------------

    def document(self, root: Node | None) -> Policy | None:
        if root is None or root.is_null or (root.kind == "map" and not root.value):
            self.error("", root, "empty-policy", "the policy is empty: it needs a `file` and/or a `process` section (D1)")
            return None
        if root.kind != "map":
            self.error("", root, "bad-type", f"a policy must be a mapping with `file` and/or `process`, not {_describe(root)}")
            return None
        present: dict[str, tuple[Node, Node]] = {}
        version: str | None = None
        for key, value in root.value:
            if key.value in SECTION_KINDS:
                present[key.value] = (key, value)
            elif key.value == "version":
                version = self.policy_version(value)
            else:
                self.error(join("", _key_text(key)), key, "unknown-key", f"unknown key {_key_repr(key)}: a policy has only `version`, `file` and `process` (D1, D32)")
        if not present:
            self.error("", root, "empty-policy", "the policy has neither a `file` nor a `process` section (D1)")
            return None

        # Selectors of both sections first: names are unique across the policy (D2) and
        # responses must tell a selector of the other section from an unknown one (D7).
        selector_nodes: dict[str, list[tuple[int, Node]] | None] = {}
        selectors: dict[str, list[Selector | None]] = {}
        for kind, (key, value) in present.items():
            selector_nodes[kind] = self.section_shape(kind, key, value)
        for kind in present:
            items = selector_nodes[kind]
            selectors[kind] = [] if items is None else [self.selector(kind, i, n) for i, n in items]
        for kind in present:
            self.kernel_sets(kind)
        responses: dict[str, list[Response | None]] = {}
        for kind, (key, value) in present.items():
            responses[kind] = self.responses(kind, value)

        # A value already reported while the tree was built (`!!int log`) leaves its selector or
        # response unbuilt (None) without an error here: no policy from an incomplete section.
        incomplete = any(item is None for kind in present for item in (*selectors[kind], *responses[kind]))
        if self.errors or incomplete:
            return None
        sections = {
            kind: Section(kind=kind, selectors=tuple(selectors[kind]), responses=tuple(responses[kind]))  # type: ignore[arg-type]
            for kind in present
        }
        return Policy(file=sections.get("file"), process=sections.get("process"), version=version)

    def policy_version(self, value: Node) -> str | None:
        """D32: Kibana's top-level `version`, a non-empty string."""
        if value.kind != "scalar" or not isinstance(value.value, str) or not value.value:
            self.error("version", value, "bad-type", f"`version` must be a non-empty string, not {_describe(value)}{_quote_hint(value)} (D32)")
            return None
        return value.value

    def section_shape(self, kind: str, key: Node, value: Node) -> list[tuple[int, Node]] | None:
        """Check a section's shape; return its selector items (index, node), if a list."""
        if value.kind != "map":
            self.error(kind, value if not value.is_null else key, "bad-type", f"`{kind}` must be a mapping with `selectors` and `responses`, not {_describe(value)}")
            return None
        found = {}
        for k, v in value.value:
            if k.value in ("selectors", "responses"):
                found[k.value] = v
            else:
                self.error(join(kind, _key_text(k)), k, "unknown-key", f"unknown key {_key_repr(k)} in `{kind}`: a section has only `selectors` and `responses` (D1)")
        for required in ("selectors", "responses"):
            if required not in found:
                self.error(kind, key, "missing-field", f"`{kind}` has no `{required}` (D1)")
        items = found.get("selectors")
        if items is None:
            return None
        limit_path = join(kind, "selectors")
        if not self.non_empty_list(limit_path, items, "selectors"):
            return None
        if len(items.value) > MAX_SELECTORS:
            self.error(index(limit_path, MAX_SELECTORS), items.value[MAX_SELECTORS], "too-many", f"`{kind}` has {len(items.value)} selectors; the limit is {MAX_SELECTORS} per section (D26)")
        return list(enumerate(items.value))

    def kernel_sets(self, kind: str) -> None:
        """D26: what one kernel map holds for all selectors of a section, reported at the value
        that goes over (distinct expanded patterns per pattern set; distinct uids)."""
        for (section, set_name), values in self.kernel_patterns.items():
            if section != kind:
                continue
            seen: set[bytes] = set()
            for tokens, path, node in values:
                seen.update(tokens)
                if len(seen) > limits.MAX_KERNEL_PATTERNS:
                    self.error(path, node, "too-many", f"`{kind}` has more than {limits.MAX_KERNEL_PATTERNS} distinct {set_name} patterns (each `/**/` counts twice); the kernel holds at most {limits.MAX_KERNEL_PATTERNS} (D26)")
                    break
        uids: set[int] = set()
        for uid, path, node in self.kernel_uids.get(kind, ()):
            uids.add(uid)
            if len(uids) > limits.MAX_USER_IDS:
                self.error(path, node, "too-many", f"`{kind}` has more than {limits.MAX_USER_IDS} distinct processUserId values; the kernel holds at most {limits.MAX_USER_IDS} (D26)")
                break

    def kernel_value(self, kind: str, path: str, canonical: str, item: Node, value: str) -> bool:
        """D26: a value the kernel matcher cannot hold is an error here, not at load time."""
        set_name = limits.PATTERN_SETS.get(kind, {}).get(canonical)
        if set_name is None:
            if canonical == "processUserId" and (uid := limits.kernel_uid(value)) is not None:
                self.kernel_uids.setdefault(kind, []).append((uid, path, item))
            return True
        if limits.has_token_byte(value):
            code = "bad-type" if canonical in limits.NAME_CONDITIONS else "bad-path-pattern"
            self.error(path, item, code, f"{value!r} contains a byte 0x00-0x02, which the kernel matcher uses as its own tokens (D26)")
            return False
        if canonical in limits.NAME_CONDITIONS:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > limits.MAX_PROCESS_NAME_BYTES:
                self.error(path, item, "too-long", f"`{canonical}` value is {size} bytes; the kernel matches names of at most {limits.MAX_PROCESS_NAME_BYTES} (D26)")
                return False
            tokens = limits.name_tokens(value)
        else:
            globstars = limits.double_slash_globstars(value)
            if globstars > limits.MAX_DOUBLE_SLASH_GLOBSTARS:
                self.error(path, item, "too-many", f"path pattern {value!r} has {globstars} `/**/`; the limit is {limits.MAX_DOUBLE_SLASH_GLOBSTARS} (each doubles the kernel's patterns) (D26)")
                return False
            tokens = limits.expand(value)
        self.kernel_patterns.setdefault((kind, set_name), []).append((tokens, path, item))
        return True

    def non_empty_list(self, path: str, node: Node, what: str) -> bool:
        if node.kind != "seq":
            self.error(path, node, "bad-type", f"`{what}` must be a list, not {_describe(node)}")
            return False
        if not node.value:
            self.error(path, node, "empty-list", f"`{what}` must not be empty")
            return False
        return True

    # --- selectors -----------------------------------------------------------------------------

    def selector(self, kind: str, i: int, node: Node) -> Selector | None:
        path = index(join(kind, "selectors"), i)
        if node.kind != "map":
            self.error(path, node, "bad-type", f"a selector must be a mapping with a `name` and conditions, not {_describe(node)}")
            return None
        errors_before = len(self.errors)
        name_node: Node | None = None
        conditions: dict[str, tuple[Node, Node]] = {}  # canonical name -> (key, value)
        condition_keys = 0
        for key, value in node.value:
            k = key.value
            if k == "name":
                name_node = value
                continue
            if not isinstance(k, str) or ALIASES.get(k, k) not in CONDITION_NAMES:
                self.error(join(path, _key_text(key)), key, "unknown-key", f"unknown condition {_key_repr(key)} in a {kind} selector; allowed: name, {', '.join(SECTION_CONDITIONS[kind])} (D1)")
                continue
            condition_keys += 1
            canonical = ALIASES.get(k, k)
            if canonical not in SECTION_CONDITIONS[kind]:
                other = "process" if kind == "file" else "file"
                self.error(join(path, k), key, "condition-not-allowed", f"`{k}` is a {other} condition, not allowed in a {kind} selector (D4)")
                continue
            if canonical in conditions:
                first = conditions[canonical][0].value
                self.error(join(path, k), key, "exclusive-conditions", f"`{k}` and `{first}` are the same condition (`{canonical}`); use only one (D9)")
                continue
            conditions[canonical] = (key, value)
        if "ignoreVolumeMounts" in conditions and "ignoreVolumeFiles" in conditions:
            later = max(
                (conditions["ignoreVolumeMounts"][0], conditions["ignoreVolumeFiles"][0]),
                key=lambda n: (n.line or 0, n.column or 0),
            )
            self.error(join(path, later.value), later, "exclusive-conditions", "`ignoreVolumeMounts` and `ignoreVolumeFiles` cannot be used in the same selector (D3)")

        name = self.selector_name(kind, path, node, name_node)
        if condition_keys == 0:
            self.error(path, node, "no-condition", "a selector needs at least one condition besides `name` (D3)")

        values: dict[str, Any] = {}
        for canonical, (key, value) in conditions.items():
            values[canonical] = self.condition(kind, join(path, key.value), canonical, key, value)

        if name is not None:
            info = self.names.get(name)
            if info is not None and info.path == path:  # registered by selector_name
                info.has_target_path = "targetFilePath" in values and values["targetFilePath"] is not None
                for cond in ("targetFilePath", "processExecutable"):
                    info.root_globs.extend(p for p in values.get(cond) or () if p.startswith("/**"))

        if len(self.errors) != errors_before or name is None:
            return None
        operations = values.pop("operation", None) or ()
        return Selector(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            index=i,
            operations=frozenset(operations),
            line=node.line,
            column=node.column,
            **{k: v for k, v in values.items() if v is not None},
        )

    def selector_name(self, kind: str, path: str, node: Node, name_node: Node | None) -> str | None:
        if name_node is None:
            self.error(path, node, "missing-field", "a selector needs a `name` (D2)")
            return None
        name_path = join(path, "name")
        name = name_node.value
        if name_node.kind != "scalar" or not isinstance(name, str):
            if name_node.is_null:
                self.error(name_path, name_node, "bad-name", "the selector `name` is empty (D2)")
            elif name is not INVALID:
                self.error(name_path, name_node, "bad-type", f"`name` must be a string, not {_describe(name_node)}{_quote_hint(name_node)}")
            return None
        if len(name) > MAX_NAME_CHARS:
            self.error(name_path, name_node, "too-long", f"selector name is {len(name)} characters; the limit is {MAX_NAME_CHARS} (D2, D26)")
            return None
        if not _NAME_RE.match(name) or "\n" in name:
            self.error(name_path, name_node, "bad-name", f"selector name {name!r} must start with a letter or digit and contain only letters, digits, `_` and `-` (D2)")
            return None
        first = self.names.get(name)
        if first is not None:
            where = f"line {first.line}" if first.line is not None else first.path
            self.error(name_path, name_node, "duplicate-name", f"selector name {name!r} is already used by {first.path} ({where}); names are unique across the policy (D2)")
            return None
        self.names[name] = _SelectorInfo(kind=kind, path=path, line=name_node.line)
        return name

    def condition(self, kind: str, path: str, canonical: str, key: Node, value: Node) -> Any:
        """Check one condition's value; return it in model form, or None when it is invalid."""
        label = key.value
        if canonical in BOOL_CONDITIONS:
            if value.kind != "scalar" or not isinstance(value.value, bool):
                if value.value is not INVALID:
                    self.error(path, value if not value.is_null else key, "bad-type", f"`{label}` must be true or false, not {_describe(value)}")
                return None
            return value.value
        if value.kind != "seq":
            if value.value is not INVALID:
                self.error(path, value if not value.is_null else key, "bad-type", f"`{label}` must be a list, not {_describe(value)}")
            return None
        if not value.value:
            self.error(path, value, "empty-list", f"`{label}` must not be an empty list (D3)")
            return None
        out: list[str] = []
        ok = True
        for j, item in enumerate(value.value):
            checked = self.condition_value(kind, index(path, j), canonical, label, item)
            if checked is None:
                ok = False
            else:
                out.append(checked)
        return tuple(out) if ok else None

    def condition_value(self, kind: str, path: str, canonical: str, label: str, item: Node) -> str | None:
        raw = item.value
        if raw is INVALID:
            return None
        if canonical == "processUserId" and item.kind == "scalar" and isinstance(raw, int) and not isinstance(raw, bool):
            if raw < 0:
                self.error(path, item, "bad-type", f"`processUserId` values are user ids (0 or more), not {raw}")
                return None
            self.kernel_value(kind, path, canonical, item, str(raw))
            return str(raw)
        if item.kind != "scalar" or not isinstance(raw, str):
            what = "a string or an integer" if canonical == "processUserId" else "a string"
            self.error(path, item, "bad-type", f"`{label}` values must be {what}, not {_describe(item)}{_quote_hint(item)}")
            return None

        if _TYPOGRAPHIC_QUOTES.intersection(raw):
            # YAML quotes are ' and " only: a value pasted from a word processor keeps its curly
            # quotes as characters, validates, and can never match (the seed's own example).
            self.warn(path, item, "typographic-quote",
                      f"{raw!r} contains typographic quotes, which YAML keeps as part of the value; "
                      "use ' or \" to quote")

        if canonical == "operation":
            if raw not in OPERATIONS[kind]:
                other = "process" if kind == "file" else "file"
                hint = f"`{raw}` is a {other} operation; " if raw in OPERATIONS[other] else ""
                self.error(path, item, "unknown-operation", f"{hint}{kind} operations are {', '.join(OPERATIONS[kind])} (D5)")
                return None
            return raw

        if canonical in PATH_CONDITIONS:
            if not raw:
                self.error(path, item, "bad-path-pattern", f"`{label}` patterns must not be empty (D11)")
                return None
            if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_PATTERN_BYTES:
                self.error(path, item, "too-long", f"path pattern is {len(raw.encode('utf-8', 'surrogatepass'))} bytes; the limit is {MAX_PATH_PATTERN_BYTES} (D26)")
                return None
            if not raw.startswith("/"):
                self.error(path, item, "bad-path-pattern", f"path pattern {raw!r} must be absolute (start with `/`) (D11)")
                return None
            if "***" in raw:
                self.error(path, item, "bad-path-pattern", f"path pattern {raw!r} has `***`: use `*` (within a directory) or `**` (across directories) (D11)")
                return None
            if _DEGENERATE_PATH.search(raw):
                self.error(path, item, "bad-path-pattern", f"path pattern {raw!r} can never match: paths are normalised (no `//`, `.` or `..` segments, no trailing `/`) (D11)")
                return None
            return raw if self.kernel_value(kind, path, canonical, item, raw) else None

        if not raw:
            code = "bad-label" if canonical == "orchestratorResourceLabel" else "bad-type"
            self.error(path, item, code, f"`{label}` values must be non-empty strings (D3)")
            return None
        if len(raw.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
            self.error(path, item, "too-long", f"value is {len(raw.encode('utf-8', 'surrogatepass'))} bytes; the limit is {MAX_STRING_BYTES} (D26)")
            return None
        if canonical in EXACT_CONDITIONS and "*" in raw:
            self.error(path, item, "wildcard-not-allowed", f"`{label}` does not accept wildcards: {raw!r} (D12)")
            return None
        if canonical == "orchestratorType" and raw not in ORCHESTRATOR_TYPES:
            self.error(path, item, "bad-orchestrator-type", f"orchestratorType {raw!r} is not supported: only `kubernetes` (D6)")
            return None
        if not self.kernel_value(kind, path, canonical, item, raw):
            return None
        if canonical == "orchestratorResourceLabel":
            key, colon, _ = raw.partition(":")
            if not colon:
                self.error(path, item, "bad-label", f"label {raw!r} must be `key:value` (`key:*` for any value) (D14)")
                return None
            if not key:
                self.error(path, item, "bad-label", f"label {raw!r} has an empty key (D14)")
                return None
            if "*" in key:
                self.error(path, item, "wildcard-not-allowed", f"label keys do not accept wildcards: {key!r} (D12)")
                return None
        return raw

    # --- responses -----------------------------------------------------------------------------

    def responses(self, kind: str, section: Node) -> list[Response | None]:
        if section.kind != "map":
            return []
        node = next((v for k, v in section.value if k.value == "responses"), None)
        if node is None:
            return []
        path = join(kind, "responses")
        if not self.non_empty_list(path, node, "responses"):
            return []
        if len(node.value) > MAX_RESPONSES:
            self.error(index(path, MAX_RESPONSES), node.value[MAX_RESPONSES], "too-many", f"`{kind}` has {len(node.value)} responses; the limit is {MAX_RESPONSES} per section (D26)")
        return [self.response(kind, index(path, i), i, item) for i, item in enumerate(node.value)]

    def response(self, kind: str, path: str, i: int, node: Node) -> Response | None:
        if node.kind != "map":
            self.error(path, node, "bad-type", f"a response must be a mapping with `match` and `actions`, not {_describe(node)}")
            return None
        errors_before = len(self.errors)
        fields: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if key.value in ("match", "exclude", "actions"):
                fields[key.value] = (key, value)
            else:
                self.error(join(path, _key_text(key)), key, "unknown-key", f"unknown key {_key_repr(key)} in a response; allowed: match, exclude, actions (D7)")
        for required in ("match", "actions"):
            if required not in fields:
                self.error(path, node, "missing-field", f"a response needs `{required}` (D7)")

        match = self.selector_refs(kind, path, fields.get("match"), required=True)
        exclude = self.selector_refs(kind, path, fields.get("exclude"), required=False)
        actions = self.actions(join(path, "actions"), fields.get("actions"))

        if actions is not None and "block" in actions and match:
            self.broad_block_warnings(kind, path, fields["match"][1], match, exclude or ())

        if len(self.errors) != errors_before or match is None or actions is None:
            return None
        return Response(
            index=i,
            match=tuple(match),
            exclude=tuple(exclude or ()),
            actions=frozenset(actions),
            line=node.line,
            column=node.column,
            kind=kind,  # type: ignore[arg-type]
        )

    def selector_refs(self, kind: str, path: str, field_: tuple[Node, Node] | None, required: bool) -> list[str] | None:
        if field_ is None:
            return None if required else []
        key, node = field_
        what = key.value
        fpath = join(path, what)
        if node.kind != "seq":
            if node.value is not INVALID:
                self.error(fpath, node if not node.is_null else key, "bad-type", f"`{what}` must be a list of selector names, not {_describe(node)}")
            return None
        if required and not node.value:
            self.error(fpath, node, "empty-list", f"`{what}` must name at least one selector (D7)")
            return None
        names: list[str] = []
        ok = True
        for j, item in enumerate(node.value):
            ipath = index(fpath, j)
            name = item.value
            if name is INVALID:
                ok = False
                continue
            if item.kind != "scalar" or not isinstance(name, str) or not name:
                self.error(ipath, item, "bad-type", f"`{what}` entries must be selector names (non-empty strings), not {_describe(item)}{_quote_hint(item)}")
                ok = False
                continue
            if len(name.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
                self.error(ipath, item, "too-long", f"value is {len(name.encode('utf-8', 'surrogatepass'))} bytes; the limit is {MAX_STRING_BYTES} (D26)")
                ok = False
                continue
            info = self.names.get(name)
            if info is None:
                self.error(ipath, item, "unknown-selector", f"no selector is named {name!r} (D7)")
                ok = False
            elif info.kind != kind:
                self.error(ipath, item, "cross-section-selector", f"{name!r} is a {info.kind} selector; a {kind} response can only use {kind} selectors (D7)")
                ok = False
            else:
                names.append(name)
        return names if ok else None

    def actions(self, path: str, field_: tuple[Node, Node] | None) -> list[str] | None:
        if field_ is None:
            return None
        key, node = field_
        if node.kind != "seq":
            if node.value is not INVALID:
                self.error(path, node if not node.is_null else key, "bad-type", f"`actions` must be a list, not {_describe(node)}")
            return None
        if not node.value:
            self.error(path, node, "empty-list", "`actions` must not be empty (D7)")
            return None
        actions: list[str] = []
        block_node: tuple[str, Node] | None = None
        ok = True
        for j, item in enumerate(node.value):
            action = item.value
            if action is INVALID:
                ok = False
            elif item.kind != "scalar" or not isinstance(action, str) or action not in ACTIONS:
                self.error(index(path, j), item, "unknown-action", f"unknown action {_value_repr(item)}: actions are {', '.join(ACTIONS)} (D7)")
                ok = False
            else:
                actions.append(action)
                if action == "block" and block_node is None:
                    block_node = (index(path, j), item)
        if block_node is not None and "alert" not in actions:
            self.error(block_node[0], block_node[1], "block-requires-alert", "`block` requires `alert` in the same response (D8)")
            ok = False
        return actions if ok else None

    def broad_block_warnings(self, kind: str, path: str, match_node: Node, match: list[str], exclude: list[str]) -> None:
        """D27 `broad-block`: a block that may stop every write (or exec) in a container."""
        excluded_by_path = any(self.names[n].has_target_path for n in exclude if n in self.names)
        for j, name in enumerate(match):
            info = self.names.get(name)
            if info is None:
                continue
            item = match_node.value[j] if match_node.kind == "seq" and j < len(match_node.value) else match_node
            ipath = index(join(path, "match"), j)
            if kind == "file" and not info.has_target_path and not excluded_by_path:
                self.warn(ipath, item, "broad-block", f"this response blocks file operations of selector {name!r}, which has no `targetFilePath` (nor does any `exclude` selector): it can block every write in a container (D27)")
            for pattern in info.root_globs:
                self.warn(ipath, item, "broad-block", f"this response blocks with selector {name!r}, whose pattern {pattern!r} starts with `/**` directly under `/` (D27)")


# --- helpers ---------------------------------------------------------------------------------


def _key_text(key: Node) -> str:
    return key.value if isinstance(key.value, str) else repr(key.value)


def _key_repr(key: Node) -> str:
    return f"`{key.value}`" if isinstance(key.value, str) else repr(key.value)


def _value_repr(node: Node) -> str:
    if node.kind == "scalar":
        return repr(node.value) if not isinstance(node.value, str) else f"`{node.value}`"
    return _describe(node)


def _describe(node: Node) -> str:
    if node.kind == "map":
        return "a mapping"
    if node.kind == "seq":
        return "a list"
    value = node.value
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {node.raw if node.raw is not None else value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a value of type {type(value).__name__}"


def _quote_hint(node: Node) -> str:
    """`[1.21]` reads as a number in YAML: suggest quoting the text the author wrote."""
    if node.kind == "scalar" and node.raw and isinstance(node.value, (int, float, bool)) and not isinstance(node.value, str):
        return f" (quote it: \"{node.raw}\")"
    return ""


def _sort_key(d: Diagnostic) -> tuple[int, int, int]:
    if d.line is None:
        return (1, 0, 0)
    return (0, d.line, d.column or 0)


def validate_tree(root: Node | None, prefix: str = "", preliminary: list[Diagnostic] | None = None) -> ValidationResult:
    """Validate a located tree; `preliminary` holds problems found while building it."""
    validator = _Validator(prefix)
    policy = validator.document(root)
    errors = list(preliminary or ()) + validator.errors
    if errors:
        policy = None
    return ValidationResult(
        policy=policy,
        errors=tuple(sorted(errors, key=_sort_key)),
        warnings=tuple(sorted(validator.warnings, key=_sort_key)),
    )
