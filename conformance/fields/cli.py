"""`d4c events check DIR|FILE|-...`: event documents against ECS and the cloud_defend package.

Input: NDJSON (one document a line; `<data_stream>.ndjson`, as the reference agent writes them,
names the stream each document must belong to), JSON files holding one document or a list, or
`-` for NDJSON on stdin. Directories are searched for *.ndjson and *.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from conformance.fields.check import Problem, check_document, load_catalog


def register(subparsers: argparse._SubParsersAction) -> None:
    events = subparsers.add_parser("events", help="event documents: check fields and types")
    commands = events.add_subparsers(dest="events_command", metavar="SUBCOMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="check every field of every document against ECS and the cloud_defend package",
        description="One line per problem: FILE:LINE: FIELD: MESSAGE (unknown fields, wrong types, "
                    "data stream / event.kind / event.category inconsistencies), then a summary. "
                    "Exit 0 when there is none, 1 on any, 2 when an input cannot be read.",
    )
    check.add_argument("paths", nargs="+", metavar="DIR|FILE|-", help="NDJSON/JSON files, directories, - for stdin")
    check.add_argument("--max-per-field", type=int, default=3, metavar="N",
                       help="print at most N lines per distinct problem (default 3; 0 = all); all are counted")
    check.set_defaults(func=run_check)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".ndjson", ".json") and p.is_file())
    return [path]


def _stream_of(path: Path | None) -> str | None:
    """`logs-cloud_defend.file-default.ndjson` -> its data stream; other names say nothing."""
    if path is None or path.suffix != ".ndjson":
        return None
    return path.stem if path.stem.count("-") >= 2 else None


def documents(handle: TextIO, path: Path | None) -> Iterator[tuple[int, Any]]:
    """(line, parsed value) of NDJSON, or of one JSON value (a list gives its items)."""
    if path is not None and path.suffix == ".json":
        value = json.load(handle)
        for item in value if isinstance(value, list) else [value]:
            yield 1, item
        return
    for number, line in enumerate(handle, 1):
        if line.strip():
            yield number, json.loads(line)


def _check_one(label: str, handle: TextIO, path: Path | None, out: list[tuple[str, Problem]]) -> int:
    stream = _stream_of(path)
    count = 0
    try:
        for number, doc in documents(handle, path):
            count += 1
            if not isinstance(doc, dict):
                out.append((f"{label}:{number}", Problem("stream", "not a JSON object")))
                continue
            out.extend((f"{label}:{number}", p) for p in check_document(doc, stream))
    except json.JSONDecodeError as error:
        raise ValueError(f"{label}:{error.lineno}: not JSON: {error.msg}") from None
    return count


def run_check(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    found: list[tuple[str, Problem]] = []
    docs = 0
    try:
        for raw in args.paths:
            if raw == "-":
                docs += _check_one("<stdin>", sys.stdin, None, found)
                continue
            path = Path(raw)
            if not path.exists():
                raise ValueError(f"{raw}: no such file or directory")
            for file in _files(path):
                try:
                    with open(file, encoding="utf-8") as handle:
                        docs += _check_one(str(file), handle, file, found)
                except (OSError, UnicodeDecodeError) as error:
                    raise ValueError(f"{file}: cannot read: {error}") from None
    except ValueError as error:
        print(f"d4c events check: {error}", file=sys.stderr)
        return 2
    shown: Counter[str] = Counter()
    for where, problem in found:
        key = problem.text.split(":", 1)[0] + problem.kind
        shown[key] += 1
        if args.max_per_field <= 0 or shown[key] <= args.max_per_field:
            print(f"{where}: {problem}")
    kinds = Counter(p.kind for _, p in found)
    hidden = len(found) - sum(min(n, args.max_per_field) if args.max_per_field > 0 else n for n in shown.values())
    print(f"{docs} documents: {kinds['unknown']} unknown fields, {kinds['type']} wrong types, "
          f"{kinds['stream']} stream inconsistencies (ECS {catalog.ecs_version}, {catalog.package})"
          + (f"; {hidden} more lines not shown (--max-per-field 0 shows all)" if hidden else ""))
    return 1 if found else 0
