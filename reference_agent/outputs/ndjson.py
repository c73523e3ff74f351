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
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO


def encode(document: Mapping[str, Any]) -> str:
    """The line for a document: compact JSON, stable key order, no trailing newline."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


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
        line = encode(document) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            fd = self._files.get(data_stream)
            if fd is None:
                fd = os.open(stream_file(self.directory, data_stream), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._files[data_stream] = fd
            _append_whole(fd, data)
            if self._stdout is not None:
                self._stdout.write(line)
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
    start = os.fstat(fd).st_size  # one writer per file (the lock): the end stays where it is
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file writes short only when space runs out
            more = os.write(fd, data[written:])
            if more == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += more
    except OSError:
        os.ftruncate(fd, start)
        raise
