"""Where an implementation's events arrive: NDJSON files, or the suite's own `_bulk` endpoint.

Both feed the same `EventSource` interface: `mark()` a point in time, then `since(mark)` gives
the (data stream, document) pairs that arrived after it. Correlating them to a scenario's
containers is the assertion's job (conformance/events.py), not the sink's.
"""

from __future__ import annotations

import glob
import gzip
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

Event = tuple[str, dict[str, Any]]  # (data stream, ECS document)


class EventSource(Protocol):
    def mark(self) -> Any: ...

    def since(self, mark: Any) -> list[Event]: ...


class NdjsonFiles:
    """One NDJSON file per data stream, from a path template containing {data_stream}.

    A mark is the size of every file at that moment; only complete lines after it are read.
    Unparseable lines are reported as documents with `_unparseable` so they show in a diff
    instead of vanishing.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        head, _, tail = template.partition("{data_stream}")
        self._glob = glob.escape(head) + "*" + glob.escape(tail)
        self._stream = re.compile(re.escape(head) + "(?P<stream>[^/]+)" + re.escape(tail) + "$")

    def _files(self) -> dict[str, Path]:
        files = {}
        for name in glob.glob(self._glob):
            match = self._stream.match(name)
            if match:
                files[match.group("stream")] = Path(name)
        return files

    def mark(self) -> dict[str, int]:
        return {stream: path.stat().st_size for stream, path in self._files().items()}

    def since(self, mark: dict[str, int]) -> list[Event]:
        events: list[Event] = []
        for stream, path in sorted(self._files().items()):
            with open(path, "rb") as handle:
                handle.seek(mark.get(stream, 0))
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written is not read
            for line in complete.splitlines():
                if line.strip():
                    events.append((stream, _parse(line)))
        return events


def _parse(line: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except ValueError:
        return {"_unparseable": line.decode(errors="replace")}
    return doc if isinstance(doc, dict) else {"_unparseable": line.decode(errors="replace")}


class BulkServer:
    """A minimal Elasticsearch: the `_bulk` API over http.server, storing documents in memory.

    Accepts `POST /_bulk` and `POST /<index>/_bulk` with NDJSON action/source pairs (`create`,
    `index`; `delete`/`update` are acknowledged and ignored), gzip bodies, and answers like
    Elasticsearch 8: `{"took":..,"errors":false,"items":[{"create":{"_index":..,"status":201,..}}]}`.
    The data stream is the action's `_index` (or the URL's). `GET /` returns cluster info so
    clients and Beats that check the version on connect are satisfied. Index templates
    (`PUT /_index_template/NAME`) are kept as sent (`templates`) and answered by
    `GET /_index_template/NAME`, as Elasticsearch does; they change nothing about what is stored.
    """

    VERSION = "8.13.0"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._events: list[Event] = []
        self.templates: dict[str, Any] = {}  # index template name -> body as PUT
        self._lock = threading.Lock()
        server = self

        class Handler(_BulkHandler):
            sink = server

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="d4c-bulk-sink", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> BulkServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, events: list[Event]) -> None:
        with self._lock:
            self._events.extend(events)

    def mark(self) -> int:
        with self._lock:
            return len(self._events)

    def since(self, mark: int) -> list[Event]:
        with self._lock:
            return list(self._events[mark:])


class _BulkHandler(BaseHTTPRequestHandler):
    sink: BulkServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # keep pytest output clean

    def _reply(self, status: int, body: dict[str, Any] | None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")  # the official client checks it
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_HEAD(self) -> None:  # noqa: N802
        self._reply(200, None)

    def do_GET(self) -> None:  # noqa: N802
        name = _template_name(self.path)
        if name is not None:
            body = self.sink.templates.get(name)
            if body is None:
                self._reply(404, {"error": {"type": "resource_not_found_exception",
                                            "reason": f"index template matching [{name}] not found"}, "status": 404})
            else:
                self._reply(200, {"index_templates": [{"name": name, "index_template": body}]})
            return
        if self.path.split("?")[0] in ("", "/"):
            self._reply(200, {
                "name": "d4c-conformance",
                "cluster_name": "d4c-conformance",
                "cluster_uuid": "d4c-conformance",
                "version": {"number": BulkServer.VERSION, "build_flavor": "default"},
                "tagline": "You Know, for Search",
            })
        else:
            self._reply(200, {})

    def do_PUT(self) -> None:  # noqa: N802 - the official client sends _bulk as PUT
        if self.path.split("?")[0].rstrip("/").endswith("/_bulk"):
            self.do_POST()
            return
        body = self._body()
        name = _template_name(self.path)
        if name is not None:
            try:
                template = json.loads(body)
            except ValueError:
                self._reply(400, {"error": {"type": "parse_exception", "reason": "request body is not JSON"},
                                  "status": 400})
                return
            self.sink.templates[name] = template
        self._reply(200, {"acknowledged": True})  # templates, settings and the like

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        route = self.path.split("?")[0].strip("/").split("/")
        if route[-1] != "_bulk" or len(route) > 2:
            self._reply(404, {"error": {"type": "not_found", "reason": f"no handler for {self.path}"}, "status": 404})
            return
        default_index = route[0] if len(route) == 2 else None
        try:
            items, events = _bulk(body, default_index)
        except ValueError as error:
            self._reply(400, {"error": {"type": "illegal_argument_exception", "reason": str(error)}, "status": 400})
            return
        self.sink.add(events)
        self._reply(200, {"took": 1, "errors": any(next(iter(i.values()))["status"] >= 300 for i in items), "items": items})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body


def _template_name(path: str) -> str | None:
    route = path.split("?")[0].strip("/").split("/")
    return route[1] if len(route) == 2 and route[0] == "_index_template" and route[1] else None


def _bulk(body: bytes, default_index: str | None) -> tuple[list[dict[str, Any]], list[Event]]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    items: list[dict[str, Any]] = []
    events: list[Event] = []
    index = 0
    while index < len(lines):
        try:
            action = json.loads(lines[index])
        except ValueError:
            raise ValueError(f"line {index + 1}: malformed action") from None
        if not isinstance(action, dict) or len(action) != 1:
            raise ValueError(f"line {index + 1}: an action is a one-key object")
        op, meta = next(iter(action.items()))
        meta = meta or {}
        target = meta.get("_index", default_index)
        index += 1
        if op in ("create", "index", "update"):
            if index >= len(lines):
                raise ValueError(f"action `{op}` without a source line")
            source = _parse(lines[index])
            index += 1
        elif op == "delete":
            source = None
        else:
            raise ValueError(f"line {index}: unknown bulk action {op!r}")
        doc_id = meta.get("_id") or uuid.uuid4().hex
        if target is None:
            items.append({op: {"_id": doc_id, "status": 400, "error": {
                "type": "action_request_validation_exception", "reason": "index is missing"}}})
            continue
        if op in ("create", "index") and source is not None:
            events.append((target, source))
        status = {"create": 201, "index": 201, "update": 200, "delete": 200}[op]
        items.append({op: {
            "_index": target, "_id": doc_id, "_version": 1, "result": "created" if status == 201 else "updated",
            "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": len(events), "_primary_term": 1,
            "status": status,
        }})
    return items, events
