"""Host side of the guest agent protocol (the guest side is vm/guest/agent.py).

One TCP connection per request, to the loopback port qemu forwards into the guest. Requests
are one JSON line; "run" answers with JSON lines carrying base64 output chunks and finally
{"exit": N}.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import socket
import sys
import termios
import tty
from pathlib import Path
from typing import BinaryIO

from vm.errors import VmError

LOST = 255  # exit code when the machine went away before reporting the command's own
SILENCE_CHECK = 30.0  # seconds without output before checking that the guest still answers
PING_TIMEOUT = 90.0  # a loaded TCG guest can be slow, but not this slow


def _connect(port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def console_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no console log at {path})"
    return f"last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


def ping(port: int, timeout: float = 3.0) -> dict | None:
    """The guest's self-description, or None when the agent does not answer (yet)."""
    try:
        with _connect(port, timeout) as sock:
            sock.sendall(b'{"op": "ping"}\n')
            line = sock.makefile("rb").readline()
    except OSError:
        return None
    # qemu accepts on the host port before the guest listens, then closes: empty line.
    try:
        return json.loads(line)["pong"] if line else None
    except (ValueError, KeyError):
        return None


def run(port: int, argv: list[str], env: dict[str, str], cwd: str,
        stdout: BinaryIO | None = None, stderr: BinaryIO | None = None, wait_docker: bool = True,
        console_log: Path | None = None) -> int:
    """Run argv in the guest, streaming its stdout/stderr; its exit code (128+N if killed by N).

    The guest starts the command once dockerd answers, unless `wait_docker` is false.
    """
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr.buffer
    try:
        sock = _connect(port, 10.0)
    except OSError as error:
        raise VmError(f"cannot reach the VM's agent on port {port}: {error.strerror or error}") from None
    silence_check = float(os.environ.get("D4C_VM_SILENCE_CHECK", SILENCE_CHECK))
    with sock:
        sock.settimeout(None)
        sock.sendall(json.dumps({"op": "run", "argv": argv, "env": env, "cwd": cwd,
                                 "wait_docker": wait_docker}).encode() + b"\n")
        buffer = b""
        while True:
            # A quiet command is fine; a guest that stopped answering pings is not (a hung
            # kernel would otherwise hang `d4c vm run`, and CI, forever). select + recv rather
            # than a socket file with a timeout: that file is unusable after one timeout.
            readable, _, _ = select.select([sock], [], [], silence_check)
            if not readable:
                if ping(port, timeout=PING_TIMEOUT) is None:
                    raise VmError(f"the VM stopped answering (no reply to a ping in {PING_TIMEOUT:.0f}s)",
                                  detail=console_tail(console_log) if console_log else "", exit_code=LOST)
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:  # reset: the guest or qemu went away
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                frame = json.loads(line)
                if "o" in frame:
                    stdout.write(base64.b64decode(frame["o"]))
                    stdout.flush()
                elif "e" in frame:
                    stderr.write(base64.b64decode(frame["e"]))
                    stderr.flush()
                elif "exit" in frame:
                    return int(frame["exit"])
    raise VmError("the VM closed the connection before the command finished",
                  detail=console_tail(console_log) if console_log else "", exit_code=LOST)


def poweroff(port: int) -> bool:
    try:
        with _connect(port, 5.0) as sock:
            sock.sendall(b'{"op": "poweroff"}\n')
            return bool(sock.makefile("rb").readline())
    except OSError:
        return False


def shell(port: int, cwd: str) -> int:
    """An interactive root shell on a pty in the guest, relayed raw over the connection."""
    if not os.isatty(0):
        raise VmError("d4c vm console needs a terminal (stdin is not a tty)", exit_code=2)
    size = shutil.get_terminal_size()
    try:
        sock = _connect(port, 10.0)
    except OSError as error:
        raise VmError(f"cannot reach the VM's agent on port {port}: {error.strerror or error}") from None
    saved = termios.tcgetattr(0)
    with sock:
        sock.sendall(json.dumps({"op": "shell", "rows": size.lines, "cols": size.columns,
                                 "term": os.environ.get("TERM", "vt100"), "cwd": cwd}).encode() + b"\n")
        tty.setraw(0)
        try:
            while True:
                readable, _, _ = select.select([0, sock], [], [])
                if sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        break
                    os.write(1, data)
                if 0 in readable:
                    data = os.read(0, 65536)
                    if not data:
                        break
                    sock.sendall(data)
        finally:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return 0
