"""The tests' Kubernetes API server is the conformance suite's own (conformance/kube_api.py): one
server speaking the real wire format, so the agent's tests and the suite check the same thing.
This module adds what only tests need: a certificate to serve it over HTTPS."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.kube_api import TOKEN, KubeApi, namespace_json, pod_json

__all__ = ["TOKEN", "KubeApi", "namespace_json", "pod_json", "self_signed_certificate"]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl CLI), to serve the API over HTTPS like a cluster's."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make the test API server's certificate")
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key
