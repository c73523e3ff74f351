"""Command agent of the BPF-LSM VM. Runs in the guest (stdlib only), started by init.sh.

Boot-time setup (once): load the virtio/9p modules, mount the host checkout at the same
absolute path it has on the host, bring up the user-mode network, start dockerd in the
background. Then it serves the host over TCP (qemu forwards a host loopback port to it).

Protocol (one request per connection; see vm/agent.py for the host side): the host sends one
JSON line, the agent answers with JSON lines.
  {"op": "ping"}                         -> {"pong": {"kernel": ..., "lsm": ...}}
  {"op": "run", "argv": [...], "env": {...}, "cwd": "/path", "wait_docker": true}
                                         -> {"o": b64} / {"e": b64} ... then {"exit": N}
  {"op": "shell", "rows": R, "cols": C, "term": T}
                                         -> raw bytes both ways on a pty until the shell exits
  {"op": "poweroff"}                     -> {"ok": true}, then the machine powers off
Closing the connection during "run" kills the command's process group.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse

PORT = 7000
CHUNK = 65536
DOCKER_READY = threading.Event()


def log(message: str) -> None:
    uptime = open("/proc/uptime").read().split()[0]
    print(f"d4c-guest: [{uptime}s since boot] {message}", flush=True)


def kernel_params() -> dict[str, str]:
    """`d4c.KEY=VALUE` words of the kernel command line (values are percent-encoded)."""
    words = open("/proc/cmdline").read().split()
    return {
        w[4:].split("=", 1)[0]: urllib.parse.unquote(w.split("=", 1)[1])
        for w in words
        if w.startswith("d4c.") and "=" in w
    }


def sh(*argv: str) -> None:
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        log(f"{' '.join(argv)}: exit {result.returncode}: {result.stdout.strip()}")


def setup(params: dict[str, str]) -> None:
    sh("modprobe", "-a", "virtio_net", "9pnet_virtio", "9p")
    checkout = params.get("checkout")
    if checkout:
        os.makedirs(checkout, exist_ok=True)
        sh("mount", "-t", "9p", "-o", "trans=virtio,version=9p2000.L,msize=262144", "checkout", checkout)
    sh("ip", "link", "set", "lo", "up")
    nics = [n for n in os.listdir("/sys/class/net") if n != "lo"]
    if nics:
        # qemu's user-mode network: fixed addresses, no DHCP client needed.
        sh("ip", "link", "set", nics[0], "up")
        sh("ip", "addr", "add", "10.0.2.15/24", "dev", nics[0])
        sh("ip", "route", "add", "default", "via", "10.0.2.2")
    # No bridge/iptables by default: dockerd starts in ~15 s instead of ~40 s under TCG, and
    # the scenarios need process/file activity in containers, not container networking.
    dockerd_args = params.get("dockerd", "--iptables=false --bridge=none")
    threading.Thread(target=start_dockerd, args=(dockerd_args,), daemon=True).start()


def start_dockerd(extra: str) -> None:
    started = time.monotonic()
    logfile = open("/var/log/dockerd.log", "ab")
    subprocess.Popen(
        ["dockerd", *extra.split()], stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
        start_new_session=True,
    )
    while time.monotonic() - started < 120:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect("/run/docker.sock")
                probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if b"200 OK" in probe.recv(256):
                    log(f"dockerd ready in {time.monotonic() - started:.1f}s")
                    DOCKER_READY.set()
                    return
        except OSError:
            pass
        time.sleep(0.2)
    log("dockerd did not become ready in 120s (see /var/log/dockerd.log)")
    DOCKER_READY.set()


def send(sock: socket.socket, frame: dict) -> None:
    sock.sendall(json.dumps(frame).encode() + b"\n")


def run(sock: socket.socket, request: dict) -> None:
    if request.get("wait_docker", True):
        DOCKER_READY.wait(timeout=120)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "D4C_IN_VM": "1",
    }
    env.update(request.get("env", {}))
    try:
        proc = subprocess.Popen(
            request["argv"], cwd=request.get("cwd") or "/", env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as error:
        # Like a shell: 127 when the command is missing, 126 when it cannot be executed.
        code = 127 if isinstance(error, FileNotFoundError) else 126
        send(sock, {"e": base64.b64encode(f"d4c-guest: {request['argv'][0]}: {error.strerror}\n".encode()).decode()})
        send(sock, {"exit": code})
        return
    streams = {proc.stdout.fileno(): "o", proc.stderr.fileno(): "e"}
    while streams:
        readable, _, _ = select.select([*streams, sock.fileno()], [], [])
        if sock.fileno() in readable and not sock.recv(1, socket.MSG_PEEK):
            # The host went away (Ctrl-C, killed): do not leave the command running.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        for fd in readable:
            if fd in streams:
                data = os.read(fd, CHUNK)
                if data:
                    send(sock, {streams[fd]: base64.b64encode(data).decode()})
                else:
                    del streams[fd]
    code = proc.wait()
    send(sock, {"exit": code if code >= 0 else 128 - code})


def shell(sock: socket.socket, request: dict) -> None:
    DOCKER_READY.wait(timeout=120)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({"TERM": request.get("term", "vt100"), "HOME": "/root", "D4C_IN_VM": "1"})
        os.chdir(request.get("cwd") or "/")
        os.execvp("bash", ["bash", "-l"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", request.get("rows", 24), request.get("cols", 80), 0, 0))
    try:
        while True:
            readable, _, _ = select.select([fd, sock.fileno()], [], [])
            if fd in readable:
                try:
                    data = os.read(fd, CHUNK)
                except OSError:
                    data = b""
                if not data:
                    break
                sock.sendall(data)
            if sock.fileno() in readable:
                data = sock.recv(CHUNK)
                if not data:
                    break
                os.write(fd, data)
    finally:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline()
        if not line:
            return
        request = json.loads(line)
        op = request.get("op")
        if op == "ping":
            lsm = open("/sys/kernel/security/lsm").read().strip()
            send(self.connection, {"pong": {"kernel": os.uname().release, "lsm": lsm, "docker": DOCKER_READY.is_set()}})
        elif op == "run":
            run(self.connection, request)
        elif op == "shell":
            shell(self.connection, request)
        elif op == "poweroff":
            send(self.connection, {"ok": True})
            os.sync()
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            send(self.connection, {"error": f"unknown op {op!r}"})


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    setup(kernel_params())
    server = Server(("0.0.0.0", PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log(f"ready, kernel {os.uname().release}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
