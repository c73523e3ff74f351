"""Decoding process_events records (host): lifecycle vs activity, args from the raw bytes,
cut records, unknown codes."""

from __future__ import annotations

import ctypes

import pytest

from reference_agent.activity import ProcessActivity, ProcessLifecycle
from reference_agent.kernel import abi, process_abi
from reference_agent.kernel.process_records import (
    decode_process_event,
    process_record_slot,
)
from reference_agent.kernel.records import RecordError

P = process_abi


def record(**fields) -> bytes:
    ev = P.ProcessEvent(pid=42, tid=42, ppid=1, uid=0, gid=0, cgroup_id=7, start_time_ns=5, timestamp_ns=9,
                        sid=42, pgid=42, comm=b"sh")
    path = fields.pop("path", b"/usr/bin/echo")
    args = fields.pop("args", b"echo\0a b\0")
    for name, value in fields.items():
        setattr(ev, name, value)
    ev.path_len, ev.args_len = len(path), len(args)
    ctypes.memmove(ctypes.addressof(ev) + P.ProcessEvent.path.offset, path, len(path))
    ctypes.memmove(ctypes.addressof(ev) + P.ProcessEvent.args.offset, args, len(args))
    return bytes(ev)[: P.ProcessEvent.path.offset + len(path) + 1]  # the kernel cuts after the NUL


def test_lifecycle_exec_with_args():
    v = decode_process_event(record(record=P.RecordType.D4C_RECORD_LIFECYCLE, kind=P.Kind.D4C_KIND_EXEC,
                                    hook=P.ProcessHook.D4C_PHOOK_SCHED_PROCESS_EXEC), ())
    assert isinstance(v, ProcessLifecycle)
    assert (v.kind, v.task.executable, v.args, v.task.sid, v.exit_code) == ("exec", "/usr/bin/echo", ("echo", "a b"), 42, None)


def test_activity_named_by_its_slot_and_exit_status():
    raw = record(record=P.RecordType.D4C_RECORD_ACTIVITY, kind=P.Kind.D4C_KIND_FORK, selectors=0b101,
                 actions=int(abi.Action.D4C_ACTION_BLOCK | abi.Action.D4C_ACTION_ALERT), blocked=1,
                 flags=int(P.ProcessFlag.D4C_PFLAG_POLICY_SLOT1), hook=P.ProcessHook.D4C_PHOOK_TASK_ALLOC)
    assert process_record_slot(raw) == 1
    v = decode_process_event(raw, ("a", "b", "c"))
    assert isinstance(v, ProcessActivity)
    assert (v.operation, v.selectors, v.actions, v.blocked, v.trace_point) == (
        "fork", ("a", "c"), frozenset({"block", "alert"}), True, "lsm__task_alloc")
    end = decode_process_event(record(record=P.RecordType.D4C_RECORD_LIFECYCLE, kind=P.Kind.D4C_KIND_EXIT,
                                      hook=P.ProcessHook.D4C_PHOOK_SCHED_PROCESS_EXIT, exit_code=9,
                                      flags=int(P.ProcessFlag.D4C_PFLAG_NO_EXE), path=b""), ())
    assert (end.kind, end.exit_code, end.task.executable) == ("exit", 137, "")


def test_bad_records_are_refused():
    good = record(record=P.RecordType.D4C_RECORD_LIFECYCLE, kind=P.Kind.D4C_KIND_FORK,
                  hook=P.ProcessHook.D4C_PHOOK_SCHED_PROCESS_FORK)
    with pytest.raises(RecordError, match="shorter than its header"):
        decode_process_event(good[:100], ())
    with pytest.raises(RecordError, match="cannot hold"):
        decode_process_event(good[:-5], ())
    with pytest.raises(RecordError, match="unknown code"):
        decode_process_event(record(record=P.RecordType.D4C_RECORD_LIFECYCLE, kind=9,
                                    hook=P.ProcessHook.D4C_PHOOK_SCHED_PROCESS_FORK), ())
