"""Where in a JSON text a field named by an OperationError is: its line and column.

json.loads keeps no positions, so an operation that parses but is wrong (`operation[1].file.mount:
must be one of ...`) would be reported without one. The text has already parsed, so this walks
it again along the error's path (`operation`, `[i]`, `.key`) with the json module's own string
scanner and decoder, as far as the path resolves: a key the text does not have (a missing
field) is reported at the object that lacks it.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any

_PART = re.compile(r"\[(\d+)\]|\.([^.\[]+)")
_SPACE = re.compile(r"[ \t\n\r]*")


def path_parts(where: str) -> list[str | int]:
    """`operation[1].file.mount` -> [1, "file", "mount"] (the root's name dropped)."""
    rest = where.split(":", 1)[0].removeprefix("operation")
    return [int(m.group(1)) if m.group(1) is not None else m.group(2) for m in _PART.finditer(rest)]


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


def _child(text: str, pos: int, part: str | int, decoder: json.JSONDecoder) -> int | None:
    """The offset of member `part` of the object or array at `pos`, or None."""
    opener = text[pos:pos + 1]
    if opener not in ("{", "[") or (opener == "{") != isinstance(part, str):
        return None
    i, n = _skip(text, pos + 1), 0
    while i < len(text) and text[i] not in "]}":
        key: Any = n
        if opener == "{":
            key, i = scanstring(text, i + 1)
            i = _skip(text, _skip(text, i) + 1)  # past `:`
        if key == part:
            return i
        _, i = decoder.raw_decode(text, i)
        i = _skip(text, i)
        if text[i:i + 1] == ",":
            i = _skip(text, i + 1)
        n += 1
    return None


def locate(text: str, where: str, decoder: json.JSONDecoder) -> int:
    """The offset of the deepest value along `where` that the text has. `decoder` must accept
    what the text was parsed with (the CLI's bounded integers)."""
    pos = _skip(text, 0)
    for part in path_parts(where):
        found = _child(text, pos, part, decoder)
        if found is None:
            break
        pos = found
    return pos
