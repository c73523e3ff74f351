"""Ship the NDJSON data-stream files to Elasticsearch with `_bulk` `create` operations.

The NDJSON files written by `NdjsonWriter` are the spool: the shipper reads them from a
per-file byte cursor (kept in `<state_dir>/shipper-cursors.json`) and advances the cursor only
past lines Elasticsearch has taken. While Elasticsearch is down nothing is lost — lines wait in
the file — and an agent restart resumes where shipping stopped. Each document is sent with
`_id` = its `event.id`, so a batch re-sent after a crash or a timeout is idempotent: the copies
already indexed come back `409 version_conflict` and count as delivered.

Retries are bounded: a batch is tried `max_attempts` times with exponential backoff, then the
cycle gives up (the data stays spooled, the next cycle tries again). Items Elasticsearch rejects
for good (4xx other than 409/429, e.g. a mapping conflict) are moved to
`<state_dir>/rejected/<data_stream>.ndjson` with the reason, so one bad document cannot block
the stream forever.

Client: the official `elasticsearch` Python client (8.x; installs from PyPI), with its own
retries switched off so the bound above is the only one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CURSOR_FILE = "shipper-cursors.json"
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ShipResult:
    delivered: int = 0  # created, or already present (409)
    rejected: int = 0  # permanently refused, moved to the rejected file
    pending: bool = False  # something is left to ship (sink down or more than one batch)
    error: str | None = None  # why this cycle stopped early


def _default_client(url: str, request_timeout: float) -> Any:
    from elasticsearch import (
        Elasticsearch,  # the agent extra; imported only when shipping
    )

    return Elasticsearch(url, max_retries=0, retry_on_timeout=False, request_timeout=request_timeout)


class BulkShipper:
    def __init__(self, url: str, spool_dir: Path, state_dir: Path, *, client: Any = None,
                 batch_size: int = 500, max_attempts: int = 4, backoff: float = 0.5, max_backoff: float = 8.0,
                 request_timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.spool_dir = spool_dir
        self.state_dir = state_dir
        self._client = client if client is not None else _default_client(url, request_timeout)
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._cursors = self._load_cursors()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one shipping cycle at a time

    # -- cursors -----------------------------------------------------------------------------

    def _cursor_path(self) -> Path:
        return self.state_dir / CURSOR_FILE

    def _load_cursors(self) -> dict[str, dict[str, int]]:
        try:
            data = json.loads(self._cursor_path().read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def _save_cursors(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._cursor_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(self._cursors, sort_keys=True))
        os.replace(tmp, self._cursor_path())  # atomic: a crash leaves the old or the new cursor

    def _offset(self, path: Path) -> int:
        st = path.stat()
        cursor = self._cursors.get(path.name)
        if cursor is None or cursor.get("inode") != st.st_ino or cursor.get("offset", 0) > st.st_size:
            return 0  # new, replaced or truncated file: ship it from the start
        return int(cursor["offset"])

    # -- shipping ----------------------------------------------------------------------------

    def ship_once(self) -> ShipResult:
        """Ship what is spooled, one batch per file at a time, until done or the sink fails."""
        with self._lock:
            delivered = rejected = 0
            for path in sorted(self.spool_dir.glob("*.ndjson")):
                while True:
                    sent, refused, more, error = self._ship_batch(path)
                    delivered += sent
                    rejected += refused
                    if error is not None:
                        return ShipResult(delivered, rejected, True, error)
                    if not more:
                        break
            return ShipResult(delivered, rejected, False)

    def _read_batch(self, path: Path, offset: int) -> list[tuple[int, bytes]]:
        """Up to batch_size complete lines from offset: (end offset, line) pairs."""
        lines: list[tuple[int, bytes]] = []
        with open(path, "rb") as handle:
            handle.seek(offset)
            pos = offset
            while len(lines) < self._batch_size:
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break  # EOF, or a line still being written: leave it for next time
                pos += len(line)
                if line.strip():
                    lines.append((pos, line.rstrip(b"\n")))
                else:
                    lines.append((pos, b""))
        return lines

    def _ship_batch(self, path: Path) -> tuple[int, int, bool, str | None]:
        data_stream = path.name[: -len(".ndjson")]
        offset = self._offset(path)
        batch = self._read_batch(path, offset)
        if not batch:
            return 0, 0, False, None
        inode = path.stat().st_ino
        operations: list[Any] = []
        shipped: list[tuple[int, bytes]] = []  # lines actually sent, in order
        rejected = 0
        for end, line in batch:
            if not line:
                continue
            try:
                event_id = json.loads(line).get("event", {}).get("id")
            except (ValueError, AttributeError):
                self._reject(data_stream, line, "not a JSON object")
                rejected += 1
                continue
            action: dict[str, Any] = {"_index": data_stream}
            if isinstance(event_id, str):
                action["_id"] = event_id
            operations.append({"create": action})
            operations.append(line.decode("utf-8", "replace"))
            shipped.append((end, line))
        if not shipped:
            self._advance(path, inode, batch[-1][0])
            return 0, rejected, len(batch) == self._batch_size, None

        delivered = 0
        remaining_ops, remaining = operations, shipped
        last_error = "unknown"
        for attempt in range(self._max_attempts):
            if attempt:
                self._sleep(min(self._max_backoff, self._backoff * 2 ** (attempt - 1)))
            try:
                response = self._bulk(remaining_ops)
            except Exception as exc:  # connection refused, timeout, 5xx, 429: the sink is unwell
                last_error = f"{type(exc).__name__}: {exc}"
                log.warning("elasticsearch bulk attempt %d/%d failed: %s", attempt + 1, self._max_attempts, last_error)
                continue
            items = _items(response)
            if len(items) != len(remaining):
                last_error = f"bulk response has {len(items)} items for {len(remaining)} documents"
                continue
            retry_from = None
            for index, item in enumerate(items):
                status = int(item.get("status", 0))
                if 200 <= status < 300 or status == 409:
                    delivered += 1
                elif status in RETRYABLE_STATUS:
                    retry_from = index
                    last_error = f"item status {status}: {item.get('error')}"
                    break
                else:
                    self._reject(data_stream, remaining[index][1], json.dumps(item.get("error")))
                    rejected += 1
            if retry_from is None:
                self._advance(path, inode, batch[-1][0])
                return delivered, rejected, len(batch) == self._batch_size, None
            # Everything before the first retryable item is settled: move the cursor past it.
            if retry_from:
                self._advance(path, inode, remaining[retry_from - 1][0])
            remaining = remaining[retry_from:]
            remaining_ops = remaining_ops[2 * retry_from:]
        return delivered, rejected, True, last_error

    def _bulk(self, operations: list[Any]) -> Any:
        """POST /_bulk. Not `client.bulk()`, which sends PUT: Elasticsearch takes both, but
        minimal _bulk endpoints (the conformance suite's sink) only take POST."""
        return self._client.perform_request(
            "POST", "/_bulk", body=operations,
            headers={"accept": "application/json", "content-type": "application/x-ndjson"},
            endpoint_id="bulk", path_parts={})

    def _advance(self, path: Path, inode: int, offset: int) -> None:
        self._cursors[path.name] = {"inode": inode, "offset": offset}
        self._save_cursors()

    def _reject(self, data_stream: str, line: bytes, reason: str) -> None:
        directory = self.state_dir / "rejected"
        directory.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"reason": reason, "document": line.decode("utf-8", "replace")})
        with open(directory / f"{data_stream}.ndjson", "a", encoding="utf-8") as handle:
            handle.write(record + "\n")
        log.error("elasticsearch rejected a %s document: %s", data_stream, reason)

    # -- background loop ---------------------------------------------------------------------

    def wake(self, _data_stream: str | None = None) -> None:
        """Called by the writer after each line: ship soon rather than at the next poll."""
        self._wake.set()

    def start(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                try:
                    result = self.ship_once()
                except OSError as exc:  # spool or state dir trouble: report, keep trying
                    log.error("shipper: %s", exc)
                    continue
                if result.error:
                    # The sink is down: wait a full interval (not every write) before the next try.
                    self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="es-shipper", daemon=True)
        self._thread.start()

    def close(self, drain: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if drain:
            self.ship_once()


def _items(response: Any) -> list[dict[str, Any]]:
    body = getattr(response, "body", response)
    out = []
    for item in (body or {}).get("items", []):
        # Each item is {"create": {...}}; take the single op result whatever its name.
        out.append(next(iter(item.values())) if isinstance(item, dict) and item else {})
    return out
