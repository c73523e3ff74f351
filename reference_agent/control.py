"""Asking a running agent to reload, from another process (`d4c agent reload`).

The agent's ready file, <output_dir>/.ready, is `PID GENERATION SHA256 POLICY-PATH`, replaced
atomically whenever a policy starts enforcing (agent.py). This module needs nothing but the
standard library: it runs once per scenario in the conformance suite, under TCG too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

READY_FILE = ".ready"


def read_ready(output_dir: Path) -> tuple[int, int, str, Path]:
    """The running agent's pid, generation, enforcing digest and policy path (ValueError/OSError)."""
    ready = Path(output_dir) / READY_FILE
    try:
        fields = ready.read_text().split(maxsplit=3)
    except FileNotFoundError:
        raise ValueError(f"{ready}: no agent is running there (no ready file)") from None
    if len(fields) != 4 or not fields[0].isdigit() or not fields[1].isdigit():
        raise ValueError(f"{ready}: not an agent's ready file (expected PID GENERATION SHA256 PATH)")
    return int(fields[0]), int(fields[1]), fields[2], Path(fields[3].rstrip("\n"))


def request_reload(output_dir: Path, policy: Path | None = None, *, wait: float = 0.0) -> bool:
    """SIGHUP the agent of `output_dir`, after replacing its policy file's content with
    `policy`'s (atomically: the agent never reads half a file). True once its ready file shows
    the digest of what it now has to enforce; with `wait` 0, True once the signal is delivered
    (the caller confirms through the ready file itself, as the conformance suite does)."""
    pid, _generation, _digest, path = read_ready(output_dir)
    if policy is not None:
        data = Path(policy).read_bytes()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    else:
        data = path.read_bytes()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ValueError(f"{output_dir}/{READY_FILE}: agent pid {pid} is not running") from None
    if wait <= 0:
        return True
    want = hashlib.sha256(data).hexdigest()
    deadline = time.monotonic() + wait
    while True:
        try:
            if read_ready(output_dir)[2] == want:
                return True
        except (OSError, ValueError):
            pass  # being replaced, or the agent stopped: keep waiting until the deadline
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
