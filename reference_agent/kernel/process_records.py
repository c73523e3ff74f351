"""process_events ring-buffer records → ProcessLifecycle / ProcessActivity (activity.py seam)."""

from __future__ import annotations

import ctypes
import struct

from reference_agent.activity import ProcessActivity, ProcessLifecycle, TaskInfo
from reference_agent.kernel import abi, process_abi
from reference_agent.kernel.records import RecordError

_ACTION_NAMES = tuple((name, int(bit)) for name, bit in abi.ACTION_BITS.items())
_HEADER = process_abi.ProcessEvent.path.offset


def process_record_slot(raw: bytes) -> int:
    """The policy slot (0 or 1) an activity record was decided with."""
    (value,) = struct.unpack_from("<I", raw, process_abi.ProcessEvent.flags.offset)
    return 1 if value & process_abi.ProcessFlag.D4C_PFLAG_POLICY_SLOT1 else 0


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
    full = ctypes.sizeof(process_abi.ProcessEvent)
    if len(raw) <= _HEADER:
        raise RecordError(f"process event record of {len(raw)} bytes, shorter than its header")
    ev = process_abi.ProcessEvent.from_buffer_copy(raw[:full].ljust(full, b"\0"))
    if _HEADER + ev.path_len >= len(raw) and ev.path_len < abi.D4C_PATH_MAX:
        raise RecordError(f"process event record of {len(raw)} bytes cannot hold its {ev.path_len}-byte path")
    try:
        kind = process_abi.KIND_NAMES[ev.kind]
        trace_point = process_abi.TRACE_POINTS[process_abi.ProcessHook(ev.hook)]
        record = process_abi.RecordType(ev.record)
    except (KeyError, ValueError) as exc:
        raise RecordError(f"process event with an unknown code: {exc}") from None
    flags = process_abi.ProcessFlag(ev.flags)
    path_len = min(ev.path_len, abi.D4C_PATH_MAX)
    executable = "" if flags & process_abi.ProcessFlag.D4C_PFLAG_NO_EXE else \
        raw[_HEADER:_HEADER + path_len].decode("utf-8", "surrogateescape")
    # From the raw bytes: a ctypes char array stops at its first NUL, and args has many.
    args_at = process_abi.ProcessEvent.args.offset
    args = split_args(raw[args_at:args_at + min(ev.args_len, process_abi.D4C_ARGS_MAX)])
    task = TaskInfo(
        pid=ev.pid,
        tid=ev.tid,
        ppid=ev.ppid,
        uid=ev.uid,
        gid=ev.gid,
        cgroup_id=ev.cgroup_id,
        comm=ev.comm.decode("utf-8", "replace"),
        executable=executable,
        start_time_ns=ev.start_time_ns,
        tty=bool(ev.tty),
        sid=ev.sid,
        pgid=ev.pgid,
    )
    if record is process_abi.RecordType.D4C_RECORD_LIFECYCLE:
        return ProcessLifecycle(
            kind=kind, task=task, timestamp_ns=ev.timestamp_ns, args=args,
            exit_code=exit_status(ev.exit_code) if kind == "exit" else None,
        )
    if kind == "exit":
        raise RecordError("process activity record of kind exit (the kernel decides only fork and exec)")
    return ProcessActivity(
        operation=kind,
        selectors=tuple(name for bit, name in enumerate(selector_names) if ev.selectors >> bit & 1),
        actions=frozenset(name for name, bit in _ACTION_NAMES if ev.actions & bit),
        blocked=bool(ev.blocked),
        task=task,
        timestamp_ns=ev.timestamp_ns,
        args=args,
        trace_point=trace_point,
    )
