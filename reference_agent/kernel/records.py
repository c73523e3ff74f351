"""Ring-buffer records → `reference_agent.activity` values (the kernel/userspace seam)."""

from __future__ import annotations

import ctypes
import os
import struct

from reference_agent.activity import FileActivity, TaskInfo
from reference_agent.kernel import abi

_ACTION_NAMES = tuple((name, int(bit)) for name, bit in abi.ACTION_BITS.items())


class RecordError(ValueError):
    """A record that does not have the layout of abi.FileEvent."""


def container_view_executable(pid: int) -> str:
    """The running image of `pid` as seen inside its own root (D11), read from /proc after the
    fact (the BPF side reports only the operation's target path). "" when the process is gone."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        root = os.readlink(f"/proc/{pid}/root")
    except OSError:
        return ""
    if root != "/" and exe.startswith(root + "/"):
        return exe[len(root):]
    return exe


def record_slot(raw: bytes) -> int:
    """The policy slot (0 or 1) a record was decided with."""
    flags = abi.FileEvent.flags
    (value,) = struct.unpack_from("<I", raw, flags.offset)
    return 1 if value & abi.EventFlag.D4C_EVENT_POLICY_SLOT1 else 0


def decode_file_event(raw: bytes, selector_names: tuple[str, ...]) -> FileActivity:
    """Decode one `struct d4c_file_event`; selector bits are named by the compiled policy of
    the slot it was decided with (record_slot)."""
    full = ctypes.sizeof(abi.FileEvent)
    if len(raw) <= abi.FileEvent.path.offset:
        raise RecordError(f"file event record of {len(raw)} bytes, shorter than its header")
    # The kernel cuts a record after the path's NUL; the rest of the struct is zeros.
    ev = abi.FileEvent.from_buffer_copy(raw[:full].ljust(full, b"\0"))
    if abi.FileEvent.path.offset + ev.path_len >= len(raw) and ev.path_len < abi.D4C_PATH_MAX:
        raise RecordError(f"file event record of {len(raw)} bytes cannot hold its {ev.path_len}-byte path")
    path_len = min(ev.path_len, abi.D4C_PATH_MAX)
    path = bytes(ev.path[:path_len]).decode("utf-8", "surrogateescape")
    try:
        operation = abi.FILE_OP_NAMES[ev.operation]
        event_action = abi.EVENT_ACTION_NAMES[ev.event_action]
        trace_point = abi.TRACE_POINTS[abi.Hook(ev.hook)]
        mount = abi.MOUNT_NAMES[ev.mount]
    except (KeyError, ValueError) as exc:
        raise RecordError(f"file event with an unknown code: {exc}") from None
    selectors = tuple(name for bit, name in enumerate(selector_names) if ev.selectors >> bit & 1)
    task = TaskInfo(
        pid=ev.pid,
        tid=ev.tid,
        ppid=ev.ppid,
        uid=ev.uid,
        gid=ev.gid,
        cgroup_id=ev.cgroup_id,
        comm=ev.comm.decode("utf-8", "replace"),
        executable=container_view_executable(ev.pid),
        start_time_ns=ev.start_time_ns,
        tty=bool(ev.tty),
    )
    return FileActivity(
        operation=operation,
        event_action=event_action,
        path=path,
        mount=mount,
        trace_point=trace_point,
        selectors=selectors,
        actions=frozenset(name for name, bit in _ACTION_NAMES if ev.actions & bit),
        blocked=bool(ev.blocked),
        task=task,
        timestamp_ns=ev.timestamp_ns,
    )
