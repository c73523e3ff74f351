"""The suite's own Kubernetes API server: the pods of the scenario being run, nothing else.

An implementation under test may read pods from the Kubernetes API, as Elastic's agent does; no
cluster runs here, so the suite serves the API itself, in the real wire format, so that any
client (client-go, the official Python client, kubectl) works against it unmodified through a
kubeconfig (`write_kubeconfig`). What it answers (docs/scenarios.md, "Kubernetes"):

- namespaces: `GET /api/v1/namespaces` (NamespaceList), `GET /api/v1/namespaces/{name}`, and
  `watch=true` on the list; `kube-system` and `default` always exist (each with a fixed uid for
  the server's life), the namespace of every pod served exists while the pod does;
- pods: `GET /api/v1/namespaces/{ns}/pods/{name}`, `GET /api/v1/pods` and
  `GET /api/v1/namespaces/{ns}/pods` (PodList; `fieldSelector=spec.nodeName=N` honoured,
  other selectors refused with 400), and `watch=true` on either list;
- a watch streams `{"type": "ADDED|MODIFIED|DELETED", "object": ...}` lines after its
  `resourceVersion` (chunked, held open until `timeoutSeconds`); an RV older than what the
  server keeps gets an `ERROR` event with a 410 `Status`, as after a real API server's compaction;
- every request needs `Authorization: Bearer TOKEN` (401 otherwise) and is recorded as
  (verb, resource, path) with the verb as RBAC names it (get / list / watch).
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "d4c-conformance-token"
ALWAYS_THERE = ("kube-system", "default")  # namespaces every cluster has
MAX_REQUESTS_KEPT = 10_000  # the request record is for tests; a long suite run must not grow it forever


def pod_json(namespace: str, name: str, *, labels: Mapping[str, str] | None = None, node: str = "node-1",
             ip: str | None = None, uid: str | None = None,
             containers: list[dict[str, Any]] | None = None,
             statuses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Pod object. `containers`: spec.containers ([{name, image}]); `statuses`:
    status.containerStatuses ([{name, image, imageID, containerID: "<runtime>://<id>"}])."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                     "labels": dict(labels or {})},
        "spec": {"nodeName": node, "containers": containers or [{"name": "main", "image": "nginx:1.25"}]},
        "status": {"phase": "Running"},
    }
    if ip:
        pod["status"]["podIP"] = ip
    if statuses is not None:
        pod["status"]["containerStatuses"] = [
            {"ready": True, "restartCount": 0, "started": True, "state": {"running": {}}, **s} for s in statuses]
    return pod


def namespace_json(name: str, uid: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": uid or str(uuid.uuid4())}, "status": {"phase": "Active"}}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeApi:
    """The server's state (pods, namespaces, a resourceVersion counter, the event log watches
    replay) and its HTTP(S) front."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {"pods": {}, "namespaces": {}}
        # resourceVersions from the clock (ms): a server restarted on the same port (the next run
        # of an adopted agent) only ever hands out versions newer than the last one's, so a watch
        # resumed from the old server's version misses nothing of the new one's.
        self._rv = int(time.time() * 1000)
        self._events: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, resource, type, object)
        self.oldest_watchable = 0  # watches from an rv below this get 410 Gone
        self.requests: list[tuple[str, str, str]] = []  # (verb, resource, path?query)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        for name in ALWAYS_THERE:
            self._put("namespaces", namespace_json(name))

    # -- state changes ---------------------------------------------------------------------------

    def put(self, pod: dict[str, Any]) -> None:
        """Create or update a pod (ADDED / MODIFIED event); its namespace is created if new."""
        namespace = pod["metadata"]["namespace"]
        with self._cond:
            if ("", namespace) not in self._objects["namespaces"]:
                self._put("namespaces", namespace_json(namespace))
            self._put("pods", pod)

    def set_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        with self._cond:
            pod = copy.deepcopy(self._objects["pods"][(namespace, name)])
        pod["metadata"]["labels"] = dict(labels)
        self.put(pod)

    def delete(self, namespace: str, name: str) -> None:
        """Delete a pod (DELETED event), and its namespace when it was the last pod in one that
        is not always there."""
        with self._cond:
            self._delete("pods", (namespace, name))
            if namespace not in ALWAYS_THERE and not any(k[0] == namespace for k in self._objects["pods"]):
                self._delete("namespaces", ("", namespace))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._cond:
            found = self._objects[resource].get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def expire_history(self) -> None:
        """Compaction: every resourceVersion known so far is too old to watch from."""
        with self._cond:
            self.oldest_watchable = self._rv + 1

    def verbs(self) -> set[tuple[str, str]]:
        return {(verb, resource) for verb, resource, _ in self.requests}

    def _put(self, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self._cond:
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            kind = "MODIFIED" if key in self._objects[resource] else "ADDED"
            self._objects[resource][key] = obj
            self._events.append((self._rv, resource, kind, obj))
            self._cond.notify_all()

    def _delete(self, resource: str, key: tuple[str, str]) -> None:
        with self._cond:
            obj = self._objects[resource].pop(key, None)
            if obj is None:
                return
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            self._events.append((self._rv, resource, "DELETED", obj))
            self._cond.notify_all()

    # -- serving ---------------------------------------------------------------------------------

    def start(self, port: int = 0, tls: tuple[Path, Path] | None = None, host: str = "127.0.0.1") -> str:
        """Serve on `host` (`port` 0 = any free one), over HTTPS with `tls` = (certificate,
        key) as an in-cluster API server does; the base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                api._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True  # a restarted API on the same port
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="kube-api")
        self._thread.start()
        return f"{scheme}://{host}:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, url: str) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "d4c",
            "clusters": [{"name": "d4c", "cluster": {"server": url}}],
            "users": [{"name": "agent", "user": {"token": TOKEN}}],
            "contexts": [{"name": "d4c", "context": {"cluster": "d4c", "user": "agent"}}],
        }))
        return path

    def _send_json(self, handler: BaseHTTPRequestHandler, code: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        # One request per connection: stop() then really makes the API unreachable (a kept-alive
        # connection would otherwise still be served by its handler thread).
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True

    def _record(self, verb: str, resource: str, path: str) -> None:
        with self._cond:
            if len(self.requests) >= MAX_REQUESTS_KEPT:
                del self.requests[: MAX_REQUESTS_KEPT // 2]
            self.requests.append((verb, resource, path))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [s for s in parts.path.split("/") if s]
        scheme, _, credentials = (handler.headers.get("Authorization") or "").partition(" ")
        # The auth scheme is case-insensitive (RFC 7235); the Python client's in-cluster loader sends "bearer".
        if scheme.lower() != "bearer" or credentials != TOKEN:
            self._send_json(handler, 401, _status(401, "Unauthorized", "Unauthorized"))
            return
        if segments[:2] != ["api", "v1"]:
            self._not_found(handler)
            return
        rest = segments[2:]
        if rest == ["namespaces"]:
            self._collection(handler, "namespaces", None, query)
        elif len(rest) == 2 and rest[0] == "namespaces":
            self._one(handler, "namespaces", "", rest[1])
        elif rest == ["pods"]:
            self._collection(handler, "pods", None, query)
        elif len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "pods":
            self._collection(handler, "pods", rest[1], query)
        elif len(rest) == 4 and rest[0] == "namespaces" and rest[2] == "pods":
            self._one(handler, "pods", rest[1], rest[3])
        else:
            self._not_found(handler)

    def _not_found(self, handler: BaseHTTPRequestHandler) -> None:
        self._send_json(handler, 404, _status(404, "NotFound", "the server could not find the requested resource"))

    def _one(self, handler: BaseHTTPRequestHandler, resource: str, namespace: str, name: str) -> None:
        self._record("get", resource, handler.path)
        found = self.get(resource, namespace, name)
        if found is None:
            self._send_json(handler, 404, _status(404, "NotFound", f'{resource} "{name}" not found'))
        else:
            self._send_json(handler, 200, found)

    def _collection(self, handler: BaseHTTPRequestHandler, resource: str, namespace: str | None,
                    query: Mapping[str, str]) -> None:
        node = self._node_selector(query.get("fieldSelector")) if resource == "pods" else None
        if node is False or (resource == "namespaces" and query.get("fieldSelector")):
            self._send_json(handler, 400, _status(400, "BadRequest", "unsupported fieldSelector"))
            return

        def wanted(obj: dict[str, Any]) -> bool:
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return node is None or obj["spec"].get("nodeName") == node

        if query.get("watch") in ("true", "1"):
            self._record("watch", resource, handler.path)
            self._watch(handler, resource, wanted, query)
            return
        self._record("list", resource, handler.path)
        with self._cond:
            items = [copy.deepcopy(o) for o in self._objects[resource].values() if wanted(o)]
            rv = str(self._rv)
        kind = "PodList" if resource == "pods" else "NamespaceList"
        self._send_json(handler, 200, {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv},
                                       "items": items})

    @staticmethod
    def _node_selector(selector: str | None) -> str | None | bool:
        if not selector:
            return None
        if selector.startswith("spec.nodeName=") and "," not in selector:
            return selector[len("spec.nodeName="):]
        return False

    def _watch(self, handler: BaseHTTPRequestHandler, resource: str, wanted: Any, query: Mapping[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(obj: Mapping[str, Any]) -> None:
            data = json.dumps(obj).encode() + b"\n"
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        try:
            since = int(query.get("resourceVersion") or 0)
            timeout = float(query.get("timeoutSeconds") or 30)
        except ValueError:
            since, timeout = -1, 0.0
        try:
            if since < 0 or (since and since < self.oldest_watchable):
                chunk({"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {since}")})
            else:
                self._stream(resource, wanted, since, timeout, chunk)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client went away (Watch.stop()): nothing to finish
        handler.close_connection = True

    def _stream(self, resource: str, wanted: Any, since: int, timeout: float, chunk: Any) -> None:
        deadline = threading.Event()
        timer = threading.Timer(timeout, lambda: (deadline.set(), self._wake()))
        timer.daemon = True
        timer.start()
        sent = since
        try:
            while not deadline.is_set():
                with self._cond:
                    pending = [e for e in self._events if e[0] > sent]
                    if not pending:
                        if self._closing:
                            break
                        self._cond.wait(0.5)
                        continue
                for rv, kind_of, kind, obj in pending:
                    sent = rv
                    if kind_of == resource and wanted(obj):
                        chunk({"type": kind, "object": obj})
        finally:
            timer.cancel()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
