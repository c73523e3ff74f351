"""The per-thread markers that keep one syscall to one event (an O_TRUNC open is reported by
file_open, not again by its path_truncate; a creation reported by path_mknod is not reported
again by file_open) must not outlive the open that set them. An O_TRUNC open can fail after
file_open allowed it: here a fanotify FAN_OPEN_PERM listener denies it (fsnotify_perm runs
after the LSM hooks). A later truncate(2) of the same file by the same thread is then its own
operation and must be reported (VM)."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import cgroup_id
from reference_agent.policy.operation import Container

from .policies import file_policy
from .test_file_enforcement import _in_sandbox, sandbox  # noqa: F401  (fixture)

FAN_CLASS_CONTENT = 0x4
FAN_CLOEXEC = 0x1
FAN_MARK_ADD = 0x1
FAN_OPEN_PERM = 0x10000
FAN_ALLOW, FAN_DENY = 0x1, 0x2
AT_FDCWD = -100
_EVENT = struct.Struct("=IBBHQii")  # struct fanotify_event_metadata
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]

POLICY = file_policy([{"name": "conf", "operations": ["modifyFile"], "targetFilePath": ("/etc/app.conf",)}],
                     [{"match": ["conf"], "actions": ["alert"]}])
CONTAINER = Container(image="nginx:1.25", name="nginx", tag="1.25", full="docker.io/library/nginx:1.25")


class DenyOpens:
    """A fanotify permission listener that denies every open of one file by other processes."""

    def __init__(self, path: str) -> None:
        self.fd = _libc.fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC, os.O_RDONLY)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "fanotify_init")
        if _libc.fanotify_mark(self.fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, path.encode()) != 0:
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), "fanotify_mark")
        self.denied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            buf = os.read(self.fd, 4096)
            off = 0
            while off + _EVENT.size <= len(buf):
                length, _v, _r, _ml, _mask, fd, pid = _EVENT.unpack_from(buf, off)
                verdict = FAN_ALLOW if pid == os.getpid() else FAN_DENY
                self.denied += verdict == FAN_DENY
                os.write(self.fd, struct.pack("=iI", fd, verdict))
                if fd >= 0:
                    os.close(fd)
                off += length

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.fd)


def _failed_truncating_open_then_truncate() -> None:
    try:
        os.open("/etc/app.conf", os.O_WRONLY | os.O_TRUNC)
    except PermissionError:
        pass
    else:
        raise OSError(errno.EEXIST, "the O_TRUNC open was not denied by fanotify")
    os.truncate("/etc/app.conf", 0)


def test_failed_truncating_open_does_not_hide_a_later_truncate(bpf_lsm, sandbox):  # noqa: F811
    cgroup, root = sandbox
    conf = root / "etc/app.conf"
    conf.write_text("a=1\n")
    try:
        listener = DenyOpens(str(conf))
    except OSError as exc:
        pytest.skip(f"no fanotify permission events here: {exc}")
    try:
        with FileEnforcer(compile_file_section(POLICY)) as enforcer:
            enforcer.add_container(cgroup_id(cgroup), CONTAINER)
            _pid, err = _in_sandbox(cgroup, root, _failed_truncating_open_then_truncate)
            got = [(a.operation, a.path, a.trace_point, a.blocked) for a in enforcer.drain()]
    finally:
        listener.close()
    assert (err, listener.denied) == (0, 1)
    assert got == [
        ("modifyFile", "/etc/app.conf", "lsm__file_open", False),  # the open, allowed by the policy
        ("modifyFile", "/etc/app.conf", "lsm__path_truncate", False),  # truncate(2): its own operation
    ]
    assert conf.read_text() == ""
