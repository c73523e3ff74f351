"""A PyYAML SafeLoader that is safe for untrusted input, not only free of code execution.

`yaml.safe_load` still lets a file do harm or crash its reader: a 500-byte alias bomb expands
to a billion nodes for whoever walks the result; 1,000 nested `[` exhaust Python's recursion;
`!!int abc`, a 5,000-digit integer or `2001-13-45` raise ValueError from the constructor;
`!!python/object` on a mapping is silently ignored; a NUL byte raises an error without a mark.
This loader takes its events from libyaml (PyYAML's CParser: scanning and parsing in C, five
times faster than PyYAML's own; its marks still name line and column), composes them with
PyYAML's Composer and constructs with SafeConstructor, and adds:

- explicit tags only from YAML's own core types (!!str !!int !!float !!bool !!null !!seq !!map),
  on scalars, sequences and mappings alike; anything else is an error at the tag;
- at most MAX_DEPTH nested collections, MAX_ALIASES aliases, and MAX_ALIAS_NODES nodes added
  by alias expansion (counted at compose time from each anchor's size, so nothing is expanded
  to find out); an alias to a collection that contains it is an error;
- integers of at most MAX_INT_BITS bits (checked on the text first: no 10,000-digit parsing);
- mapping keys that are strings (a `1:` or `null:` key is an error where data is built);
- every failure of the parser, composer or constructor becomes one YamlError with a position;
  a lone surrogate (text decoded with `surrogateescape`, or a `"\\ud800"` escape) is such a failure.

Implicit timestamps (`date: 2024-01-01`) are still YAML 1.1 timestamps: the reader of the data
decides whether a date is acceptable where it expects a string.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent

try:
    from yaml._yaml import CParser
except ImportError:  # a PyYAML built without libyaml: its own (slower) reader, scanner and parser

    class CParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

MAX_DEPTH = 64  # policies nest 5 deep, scenarios 7; PyYAML recurses ~3 frames per level
MAX_ALIASES = 1_000
MAX_ALIAS_NODES = 10_000  # nodes an alias may add beyond what the text spells out
MAX_INT_BITS = 64  # ids, versions, counts: anything larger is a mistake or an attack
_MAX_INT_TEXT = 80  # a 64-bit integer in any YAML 1.1 notation is shorter than this

_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
_NON_SPECIFIC = (None, "!")


class YamlError(Exception):
    """The text is not YAML this project accepts; line and column are 1-based. `path` holds
    the keys and indices from the root to the offending node, when the composer knew them."""

    def __init__(self, message: str, line: int = 1, column: int = 1, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.message, self.line, self.column, self.path = message, line, column, path


def _at(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class StrictLoader(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver, CParser):
    """SafeLoader's behaviour plus the limits above; use the module functions rather than this
    directly. Composer comes before CParser so that its (overridable) compose_node is used."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._aliases = 0
        self._alias_nodes = 0
        self._open_anchors: set[str] = set()
        self._sizes: dict[str, int] = {}  # anchor -> nodes in its subtree, aliases expanded
        self._counts: list[int] = [0]  # per open collection: nodes composed inside it so far
        self._path: list[str | int | None] = []  # keys/indices down to the node being composed

    def _error(self, message: str, mark: Any) -> YamlError:
        return YamlError(message, *_at(mark), tuple(p for p in self._path if p is not None))

    # -- composer ---------------------------------------------------------------------------
    def compose_node(self, parent: Any, index: Any) -> Any:
        # PyYAML passes a mapping value's key node, or a sequence item's position, as `index`.
        part = index.value if isinstance(index, yaml.ScalarNode) else index if isinstance(index, int) else None
        self._path.append(part)
        try:
            return self._compose_node(parent, index)
        finally:
            self._path.pop()

    def _compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            return self._alias(event, parent, index)
        assert isinstance(event, NodeEvent)
        tag = getattr(event, "tag", None)
        if tag not in _NON_SPECIFIC and tag not in ALLOWED_TAGS:
            shown = "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag
            raise self._error(
                f"tag {shown} is not allowed: only the core tags !!str !!int !!float !!bool !!null !!seq !!map",
                event.start_mark,
            )
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            if len(self._counts) > MAX_DEPTH:
                raise self._error(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            self._counts.append(0)
            if event.anchor is not None:
                self._open_anchors.add(event.anchor)
        node = super().compose_node(parent, index)
        size = 1 + (self._counts.pop() if collection else 0)
        if event.anchor is not None:
            self._open_anchors.discard(event.anchor)
            self._sizes[event.anchor] = size
        self._counts[-1] += size
        return node

    def _alias(self, event: AliasEvent, parent: Any, index: Any) -> Any:
        anchor = event.anchor
        if anchor in self._open_anchors:
            raise self._error(f"recursive alias *{anchor}: a node cannot contain itself", event.start_mark)
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise self._error(f"more than {MAX_ALIASES} aliases", event.start_mark)
        size = self._sizes.get(anchor, 1)  # an undefined anchor: PyYAML reports it below
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise self._error(f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)", event.start_mark)
        self._counts[-1] += size
        return super().compose_node(parent, index)

    # -- constructor ------------------------------------------------------------------------
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (YamlError, yaml.YAMLError):
            raise
        except Exception as exc:  # noqa: BLE001 - every constructor failure is the text's fault
            # `!!int abc` (ValueError), `!!bool maybe` (KeyError), `2001-13-45` (ValueError)...
            text = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            tag = node.tag.removeprefix(_CORE)
            raise YamlError(f"cannot read {_short(str(text))!r} as {tag}: {exc}", *_at(node.start_mark)) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value.replace("_", "")) > _MAX_INT_TEXT:
            raise YamlError(f"integer {_short(node.value)!r} is too large (at most {MAX_INT_BITS} bits)", *_at(node.start_mark))
        value = super().construct_yaml_int(node)
        if value.bit_length() > MAX_INT_BITS:
            raise YamlError(f"integer {_short(node.value)!r} is too large (at most {MAX_INT_BITS} bits)", *_at(node.start_mark))
        return value

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            for key_node, _ in node.value:
                if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _CORE + "str"):
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                    raise YamlError(
                        f"mapping keys must be strings, not {_short(str(shown))!r} (quote it)",
                        *_at(key_node.start_mark),
                    )
        return super().construct_mapping(node, deep)


StrictLoader.add_constructor(_CORE + "int", StrictLoader.construct_yaml_int)
# YAML 1.1's `=` value key: SafeLoader resolves a bare `=` to it but has no constructor.
StrictLoader.add_constructor(_CORE + "value", yaml.SafeLoader.construct_yaml_str)


def _located(exc: yaml.YAMLError, text: str) -> YamlError:
    if isinstance(exc, yaml.MarkedYAMLError):
        message = "; ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return YamlError(message, *_at(exc.problem_mark or exc.context_mark))
    if isinstance(exc, yaml.reader.ReaderError):
        # Unmarked (a NUL, a control character): locate it from its offset in the text.
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        return YamlError(f"unreadable character {char!r}: {exc.reason}", line, column)
    return YamlError(str(exc).splitlines()[0] if str(exc) else "invalid YAML")


def _unencodable(exc: UnicodeEncodeError, text: str) -> YamlError:
    before = text[: exc.start]
    line, column = before.count("\n") + 1, exc.start - (before.rfind("\n") + 1) + 1
    return YamlError(f"unreadable character {text[exc.start]!r}: not UTF-8 text", line, column)


def compose(text: str) -> yaml.Node | None:
    """The node tree of a one-document text (None when empty); raises YamlError only."""
    try:
        loader = StrictLoader(text)  # the reader checks every character here
    except yaml.YAMLError as exc:
        raise _located(exc, text) from None
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: a lone surrogate has no encoding
        raise _unencodable(exc, text) from None
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _located(exc, text) from None
    except RecursionError:  # not reachable within MAX_DEPTH; kept as a last line of defence
        raise YamlError("nesting too deep") from None
    finally:
        loader.dispose()


def construct(node: yaml.Node | None) -> Any:
    """Plain data (dicts with str keys, lists, scalars) from a composed node; YamlError only."""
    if node is None:
        return None
    loader = StrictLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _located(exc, "") from None
    except RecursionError:
        raise YamlError("nesting too deep", *_at(node.start_mark)) from None
    finally:
        loader.dispose()


def construct_scalar(node: yaml.ScalarNode) -> Any:
    """One scalar's value (true, 12, null, a date...) with the same checks as construct()."""
    return construct(node)


def load(text: str) -> Any:
    """compose() then construct(): plain data, or YamlError."""
    return construct(compose(text))


def decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); bytes that are not UTF-8 are a YamlError at their place."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line, column) from None
