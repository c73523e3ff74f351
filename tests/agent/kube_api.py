"""A small Kubernetes API server of this project's own, for tests (no real one is reachable here).

It speaks the real wire format of the three calls reference_agent/metadata/kubernetes.py makes,
so the official `kubernetes` client is tested unmodified, pointed at it through a kubeconfig:

- `GET /api/v1/namespaces/{ns}/pods/{name}` -> a Pod, or a 404 `Status`;
- `GET /api/v1/pods?fieldSelector=spec.nodeName=N` -> a `PodList` with metadata.resourceVersion;
- the same with `watch=true&resourceVersion=RV[&timeoutSeconds=T]` -> a chunked stream of
  `{"type": "ADDED|MODIFIED|DELETED", "object": Pod}` lines, one per change after RV, then held
  open for new changes until T; an RV older than what the server keeps -> an `ERROR` event with
  a 410 `Status` (as a real API server does after compaction).

Requests need `Authorization: Bearer TOKEN` (401 otherwise). Every request is recorded as
(verb, resource) with the verb as RBAC names it (get / list / watch), for the RBAC test.
"""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOKEN = "d4c-test-token"


def pod_json(namespace: str, name: str, *, labels: Mapping[str, str] | None = None, node: str = "node-1",
             ip: str | None = None, uid: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
                     "labels": dict(labels or {})},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx:1.25"}]},
        "status": {"phase": "Running"},
    }
    if ip:
        pod["status"]["podIP"] = ip
    return pod


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeApi:
    """The server's state: pods, a resourceVersion counter, the event log watches replay."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = 100
        self._events: list[tuple[int, str, dict[str, Any]]] = []  # (rv, type, pod)
        self.oldest_watchable = 0  # watches from an rv below this get 410 Gone
        self.requests: list[tuple[str, str, str]] = []  # (verb, resource, path?query)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    # -- state changes (tests call these) ------------------------------------------------------

    def put(self, pod: dict[str, Any]) -> None:
        """Create or update a pod (ADDED / MODIFIED event)."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._cond:
            self._rv += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self._rv)
            kind = "MODIFIED" if key in self._pods else "ADDED"
            self._pods[key] = pod
            self._events.append((self._rv, kind, pod))
            self._cond.notify_all()

    def set_labels(self, namespace: str, name: str, labels: Mapping[str, str]) -> None:
        with self._cond:
            pod = copy.deepcopy(self._pods[(namespace, name)])
        pod["metadata"]["labels"] = dict(labels)
        self.put(pod)

    def delete(self, namespace: str, name: str) -> None:
        with self._cond:
            self._rv += 1
            pod = self._pods.pop((namespace, name))
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self._rv)
            self._events.append((self._rv, "DELETED", pod))
            self._cond.notify_all()

    def expire_history(self) -> None:
        """Compaction: every resourceVersion known so far is too old to watch from."""
        with self._cond:
            self.oldest_watchable = self._rv + 1

    def verbs(self) -> set[tuple[str, str]]:
        return {(verb, resource) for verb, resource, _ in self.requests}

    # -- serving -------------------------------------------------------------------------------

    def start(self, port: int = 0, tls: tuple[Path, Path] | None = None) -> str:
        """Serve on 127.0.0.1 (`port` 0 = any free one), over HTTPS with `tls` = (certificate,
        key) as an in-cluster API server does; the base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                api._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True  # a restarted test API on the same port
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, url: str) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url}}],
            "users": [{"name": "agent", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "agent"}}],
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

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [s for s in parts.path.split("/") if s]
        scheme, _, credentials = (handler.headers.get("Authorization") or "").partition(" ")
        # The auth scheme is case-insensitive (RFC 7235); the client's in-cluster loader sends "bearer".
        if scheme.lower() != "bearer" or credentials != TOKEN:
            self._send_json(handler, 401, _status(401, "Unauthorized", "Unauthorized"))
            return
        if len(segments) == 6 and segments[:3] == ["api", "v1", "namespaces"] and segments[4] == "pods":
            self.requests.append(("get", "pods", handler.path))
            with self._cond:
                pod = self._pods.get((segments[3], segments[5]))
            if pod is None:
                self._send_json(handler, 404, _status(404, "NotFound", f'pods "{segments[5]}" not found'))
            else:
                self._send_json(handler, 200, pod)
            return
        if segments == ["api", "v1", "pods"]:
            node = self._node_selector(query.get("fieldSelector"))
            if node is False:
                self._send_json(handler, 400, _status(400, "BadRequest", "unsupported fieldSelector"))
                return
            if query.get("watch") in ("true", "1"):
                self.requests.append(("watch", "pods", handler.path))
                self._watch(handler, node, query)
            else:
                self.requests.append(("list", "pods", handler.path))
                with self._cond:
                    items = [p for p in self._pods.values() if node is None or p["spec"]["nodeName"] == node]
                    rv = str(self._rv)
                self._send_json(handler, 200, {"kind": "PodList", "apiVersion": "v1",
                                               "metadata": {"resourceVersion": rv}, "items": items})
            return
        self._send_json(handler, 404, _status(404, "NotFound", "the server could not find the requested resource"))

    @staticmethod
    def _node_selector(selector: str | None) -> str | None | bool:
        if selector is None:
            return None
        if selector.startswith("spec.nodeName=") and "," not in selector:
            return selector[len("spec.nodeName="):]
        return False

    def _watch(self, handler: BaseHTTPRequestHandler, node: str | None, query: Mapping[str, str]) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(obj: Mapping[str, Any]) -> None:
            data = json.dumps(obj).encode() + b"\n"
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        since = int(query.get("resourceVersion") or 0)
        timeout = float(query.get("timeoutSeconds") or 30)
        try:
            if since and since < self.oldest_watchable:
                chunk({"type": "ERROR", "object": _status(410, "Expired", f"too old resource version: {since}")})
            else:
                deadline = threading.Event()
                timer = threading.Timer(timeout, lambda: (deadline.set(), self._wake()))
                timer.daemon = True
                timer.start()
                sent = since
                while not deadline.is_set():
                    with self._cond:
                        pending = [e for e in self._events if e[0] > sent]
                        if not pending:
                            if self._closing:
                                break
                            self._cond.wait(0.5)
                            continue
                    for rv, kind, pod in pending:
                        sent = rv
                        if node is None or pod["spec"]["nodeName"] == node:
                            chunk({"type": kind, "object": pod})
                timer.cancel()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (Watch.stop()): nothing to finish
        handler.close_connection = True

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl CLI), to serve the API over HTTPS like a cluster's."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make the test API server's certificate")
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key
