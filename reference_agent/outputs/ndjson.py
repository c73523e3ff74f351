"""One NDJSON file per data stream: `<dir>/<data_stream>.ndjson` (default dir /var/log/d4c).

Each document is one JSON line, written with one write(2) under a lock before write() returns,
so a test (or the Elasticsearch shipper, which reads these files as its spool) can tail the file
and never sees half a line. When the disk is full a write may be short: the file is cut back to
where the line began and the error raised, so the next line after space is freed does not
follow half a document. Optionally every line also goes to stdout.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

try:
    import orjson  # the `agent` extra: encoding was a third of the pipeline's time with json
except ImportError:  # pragma: no cover - the reference agent still runs without it, slower
    orjson = None


def encode(document: Mapping[str, Any]) -> str:
    """The line for a document: compact JSON, stable key order, no trailing newline."""
    return encode_bytes(document).decode("utf-8")


def encode_bytes(document: Mapping[str, Any]) -> bytes:
    """encode() as UTF-8, the form written: compact, keys sorted, non-ASCII text as itself."""
    if orjson is not None:
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            # orjson.JSONEncodeError (a TypeError): what it refuses (an integer beyond 64 bits,
            # a lone surrogate, a non-string key) json writes, so the line is never lost.
            pass
    return _utf8(json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False))


# A path from the kernel is bytes, decoded with surrogateescape: a byte that is not UTF-8 is a
# lone surrogate. JSON is UTF-8 and Elasticsearch refuses anything else, so each such byte
# becomes U+FFFD, as Go's encoding/json (Elastic's agent) writes it, and the document lands.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def stream_file(directory: Path, data_stream: str) -> Path:
    if "/" in data_stream or data_stream.startswith("."):
        raise ValueError(f"not a data stream name: {data_stream!r}")
    return directory / f"{data_stream}.ndjson"


class NdjsonWriter:
    def __init__(self, directory: Path, *, stdout: TextIO | None = None,
                 on_write: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self._stdout = stdout
        self._on_write = on_write  # e.g. wake the shipper
        self._files: dict[str, int] = {}  # data stream -> fd (O_APPEND)
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def with_stdout(cls, directory: Path, enabled: bool, **kwargs: Any) -> NdjsonWriter:
        return cls(directory, stdout=sys.stdout if enabled else None, **kwargs)

    def write(self, data_stream: str, document: Mapping[str, Any]) -> None:
        data = encode_bytes(document) + b"\n"
        with self._lock:
            fd = self._files.get(data_stream)
            if fd is None:
                fd = os.open(stream_file(self.directory, data_stream), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._files[data_stream] = fd
            _append_whole(fd, data)
            if self._stdout is not None:
                self._stdout.write(data.decode("utf-8"))
                self._stdout.flush()
        if self._on_write is not None:
            self._on_write(data_stream)

    def close(self) -> None:
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()


def _append_whole(fd: int, data: bytes) -> None:
    """All of `data` at the end of the file, or nothing (OSError): a short write is undone."""
    written = 0
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file writes short only when space runs out
            more = os.write(fd, data[written:])
            if more == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += more
    except OSError:
        if written:
            # One writer per file (the lock): the line's first `written` bytes are the file's
            # last ones. Measured after the failure, not before every write (an fstat each).
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise
