"""Ring-buffer records -> `reference_agent.activity` values (the kernel/userspace seam).

Both programs' records start with `struct d4c_record_head` (the decision and the task), so the
head is decoded once here for both; the bodies differ (a file operation, a process lifecycle
or activity). A record is cut by the kernel after its path's NUL; the rest of the struct is
zeros. Selector bits are named by the compiled policy of the slot the record was decided
with (`record_slot`).
"""

from __future__ import annotations

import ctypes
import os
import struct

from reference_agent.activity import FileActivity, ProcessActivity, ProcessLifecycle, TaskInfo
from reference_agent.kernel import abi

_FLAGS_AT = abi.RecordHead.flags.offset  # the head is at offset 0 of every record


class RecordError(ValueError):
    """A record that does not have the layout of its struct."""


def record_slot(raw: bytes) -> int:
    """The policy slot (0 or 1) a record (of either program) was decided with."""
    (flags,) = struct.unpack_from("<I", raw, _FLAGS_AT)
    return 1 if flags & abi.EventFlags.D4C_FLAG_POLICY_SLOT1 else 0


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
        return dict(line.rstrip("\n").partition(":")[::2] for line in f)


def container_init(pid: int, max_hops: int = 64) -> int | None:
    """The host pid of the first process of `pid`'s container: the ancestor that is pid 1 of
    its PID namespace (the last NSpid entry). None for a process of the host's PID namespace
    or when the chain cannot be read."""
    for _ in range(max_hops):
        try:
            status = _status(pid)
        except OSError:
            return None
        nspids = status.get("NSpid", "").split()
        if len(nspids) < 2:
            return None
        if nspids[-1] == "1":
            return pid
        pid = int(status.get("PPid", "0").strip() or 0)
        if pid <= 1:
            return None
    return None


def container_view_executable(pid: int) -> str:
    """The running image of `pid` as seen from its container's root (D11, D28: the root of
    the container's first process, not the process's own, which a chroot may have moved),
    read from /proc after the fact (the BPF side reports only the operation's target path).
    "" when the process is gone."""
    init = container_init(pid)
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        root = os.readlink(f"/proc/{init if init else pid}/root")
    except OSError:
        return ""
    if root != "/" and exe.startswith(root + "/"):
        return exe[len(root):]
    return exe


def _unpack(raw: bytes, record: type[ctypes.Structure], what: str) -> ctypes.Structure:
    path_at = record.path.offset  # type: ignore[attr-defined]
    if len(raw) <= path_at:
        raise RecordError(f"{what} record of {len(raw)} bytes, shorter than its header")
    full = ctypes.sizeof(record)
    ev = record.from_buffer_copy(raw[:full].ljust(full, b"\0"))
    if path_at + ev.path_len >= len(raw) and ev.path_len < abi.D4C_PATH_MAX:
        raise RecordError(f"{what} record of {len(raw)} bytes cannot hold its {ev.path_len}-byte path")
    return ev


def _path(raw: bytes, record: type[ctypes.Structure], path_len: int) -> str:
    at = record.path.offset  # type: ignore[attr-defined]
    return raw[at:at + min(path_len, abi.D4C_PATH_MAX)].decode("utf-8", "surrogateescape")


def _task(head: ctypes.Structure, executable: str) -> TaskInfo:
    t = head.task
    return TaskInfo(pid=t.pid, tid=t.tid, ppid=t.ppid, uid=t.uid, gid=t.gid, cgroup_id=t.cgroup_id,
                    comm=t.comm.decode("utf-8", "replace"), executable=executable,
                    start_time_ns=t.start_time_ns, tty=bool(t.tty), sid=t.sid, pgid=t.pgid)


def _named(bits: int, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(names) if bits >> bit & 1)


def _actions(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in abi.ACTION_NAMES if bits & bit)


def _code(table: dict[int, str], value: int, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise RecordError(f"{what} with an unknown code: {value}") from None


def decode_file_event(raw: bytes, selector_names: tuple[str, ...]) -> FileActivity:
    """Decode one `struct d4c_file_event`."""
    ev = _unpack(raw, abi.FileEvent, "file event")
    head = ev.head
    return FileActivity(
        operation=_code(abi.FILE_OP_NAMES, ev.operation, "file event"),
        event_action=_code(abi.EVENT_ACTION_NAMES, ev.event_action, "file event"),
        path=_path(raw, abi.FileEvent, ev.path_len),
        mount=_code(abi.MOUNT_NAMES, ev.mount, "file event"),
        trace_point=_code(abi.TRACE_POINTS, head.hook, "file event"),
        selectors=_named(head.selectors, selector_names),
        actions=_actions(head.actions),
        blocked=bool(head.blocked),
        task=_task(head, container_view_executable(head.task.pid)),
        timestamp_ns=head.timestamp_ns,
        path_truncated=bool(head.flags & abi.EventFlags.D4C_FLAG_PATH_INCOMPLETE),
    )


def split_args(raw: bytes) -> tuple[str, ...]:
    """NUL-separated argv as captured; a last string cut without its NUL is kept as cut."""
    if not raw:
        return ()
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return tuple(p.decode("utf-8", "surrogateescape") for p in parts)


def exit_status(wait_status: int) -> int:
    """The kernel's wait status as a shell reports it: the exit code, or 128 + the signal."""
    signal = wait_status & 0x7F
    return (wait_status >> 8) & 0xFF if signal == 0 else 128 + signal


def decode_process_event(raw: bytes, selector_names: tuple[str, ...]) -> ProcessLifecycle | ProcessActivity:
    """Decode one `struct d4c_process_event`: a lifecycle record or an activity."""
    ev = _unpack(raw, abi.ProcessEvent, "process event")
    head = ev.head
    kind = _code(abi.KIND_NAMES, ev.kind, "process event")
    trace_point = _code(abi.TRACE_POINTS, head.hook, "process event")
    if ev.record not in (abi.RecordType.D4C_RECORD_LIFECYCLE, abi.RecordType.D4C_RECORD_ACTIVITY):
        raise RecordError(f"process event with an unknown code: record {ev.record}")
    executable = "" if head.flags & abi.EventFlags.D4C_FLAG_NO_EXE else _path(raw, abi.ProcessEvent, ev.path_len)
    # From the raw bytes: a ctypes char array stops at its first NUL, and args has many.
    args_at = abi.ProcessEvent.args.offset
    args = split_args(raw[args_at:args_at + min(ev.args_len, abi.D4C_ARGS_MAX)])
    task = _task(head, executable)
    if ev.record == abi.RecordType.D4C_RECORD_LIFECYCLE:
        return ProcessLifecycle(
            kind=kind, task=task, timestamp_ns=head.timestamp_ns, args=args,
            exit_code=exit_status(ev.exit_code) if kind == "exit" else None,
        )
    if kind == "exit":
        raise RecordError("process activity record of kind exit (the kernel decides only fork and exec)")
    return ProcessActivity(
        operation=kind,
        selectors=_named(head.selectors, selector_names),
        actions=_actions(head.actions),
        blocked=bool(head.blocked),
        task=task,
        timestamp_ns=head.timestamp_ns,
        args=args,
        trace_point=trace_point,
        path_truncated=bool(head.flags & abi.EventFlags.D4C_FLAG_PATH_INCOMPLETE),
        memfd=kind == "exec" and bool(head.flags & abi.EventFlags.D4C_FLAG_MEMFD),
    )
