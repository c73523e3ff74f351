"""One NDJSON file per data stream: `<dir>/<data_stream>.ndjson` (default dir /var/log/d4c).

Each document is one JSON line, written and flushed under a lock before write() returns, so a
test (or the Elasticsearch shipper, which reads these files as its spool) can tail the file
and never sees half a line. Optionally every line also goes to stdout.
"""

from __future__ import annotations

import json
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
        self._files: dict[str, TextIO] = {}
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def with_stdout(cls, directory: Path, enabled: bool, **kwargs: Any) -> NdjsonWriter:
        return cls(directory, stdout=sys.stdout if enabled else None, **kwargs)

    def write(self, data_stream: str, document: Mapping[str, Any]) -> None:
        line = encode(document) + "\n"
        with self._lock:
            handle = self._files.get(data_stream)
            if handle is None:
                # buffering=1: line-buffered text; the explicit flush below makes it certain.
                handle = open(stream_file(self.directory, data_stream), "a", encoding="utf-8", buffering=1)
                self._files[data_stream] = handle
            handle.write(line)
            handle.flush()
            if self._stdout is not None:
                self._stdout.write(line)
                self._stdout.flush()
        if self._on_write is not None:
            self._on_write(data_stream)

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
