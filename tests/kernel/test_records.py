"""Ring-buffer record decoding (host): records cut after their path's NUL, as the kernel sends
them, become the activity values the pipeline expects; malformed records are errors. Both
programs' records share their head (decision and task), decoded once."""

from __future__ import annotations

import ctypes

import pytest

from reference_agent.activity import ProcessActivity, ProcessLifecycle
from reference_agent.kernel import abi
from reference_agent.kernel.records import (
    RecordError,
    decode_file_event,
    decode_process_event,
    record_slot,
)

TASK = dict(pid=10, tid=11, ppid=1, uid=1000, gid=1001, cgroup_id=77, start_time_ns=3, tty=1, sid=10, pgid=9,
            comm=b"sh")


def _cut(ev: ctypes.Structure, path: bytes, **blobs: bytes) -> bytes:
    """The record's bytes as the kernel submits them: the path (and args) in place, cut after
    the path's NUL."""
    record = type(ev)
    for name, data in {"path": path, **blobs}.items():
        ctypes.memmove(ctypes.addressof(ev) + getattr(record, name).offset, data, len(data))
    ev.path_len = len(path)
    return bytes(ev)[: record.path.offset + len(path) + 1]


def _head(**decision) -> abi.RecordHead:
    return abi.RecordHead(task=abi.Task(**TASK), **decision)


def file_record(path: bytes, head: dict | None = None, **body) -> bytes:
    return _cut(abi.FileEvent(head=_head(**(head or {})), **body), path)


def process_record(path: bytes = b"/usr/bin/echo", args: bytes = b"echo\0a b\0", head: dict | None = None,
                   **body) -> bytes:
    ev = abi.ProcessEvent(head=_head(**(head or {})), args_len=len(args), **body)
    return _cut(ev, path, args=args)


def test_cut_file_record_decodes_to_file_activity():
    raw = file_record(
        b"/etc/a.conf",
        head=dict(timestamp_ns=5, selectors=0b101, hook=int(abi.Hook.D4C_HOOK_PATH_RENAME),
                  actions=int(abi.Action.D4C_ACTION_BLOCK | abi.Action.D4C_ACTION_ALERT), blocked=1,
                  flags=int(abi.EventFlags.D4C_FLAG_POLICY_SLOT1)),
        operation=int(abi.FileOp.D4C_OP_CREATE_FILE), event_action=int(abi.EventAction.D4C_EVENT_RENAME),
        mount=int(abi.MountClass.D4C_MOUNT_VOLUME),
    )
    assert len(raw) == abi.FileEvent.path.offset + len("/etc/a.conf") + 1
    assert record_slot(raw) == 1
    a = decode_file_event(raw, ("first", "second", "third"))
    assert (a.operation, a.event_action, a.path, a.mount, a.trace_point) == (
        "createFile", "rename", "/etc/a.conf", "volume", "lsm__path_rename")
    assert (a.selectors, a.actions, a.blocked, a.timestamp_ns) == (("first", "third"), frozenset({"block", "alert"}), True, 5)
    t = a.task
    assert (t.pid, t.tid, t.ppid, t.uid, t.gid, t.cgroup_id, t.comm, t.start_time_ns, t.tty, t.sid, t.pgid) == (
        10, 11, 1, 1000, 1001, 77, "sh", 3, True, 10, 9)


def test_incomplete_path_flag_decodes_to_path_truncated_d30():
    flag = int(abi.EventFlags.D4C_FLAG_PATH_INCOMPLETE)
    tail = decode_file_event(file_record(b"d/d/f", head=dict(hook=1, flags=flag), operation=1, event_action=1), ())
    assert (tail.path, tail.path_truncated) == ("d/d/f", True)
    whole = decode_file_event(file_record(b"/srv/f", head=dict(hook=1), operation=1, event_action=1), ())
    assert (whole.path, whole.path_truncated) == ("/srv/f", False)
    exe = decode_process_event(process_record(path=b"bin/x", head=dict(hook=int(abi.Hook.D4C_HOOK_BPRM_CREDS_FOR_EXEC),
                                                                   flags=flag),
                                              record=abi.RecordType.D4C_RECORD_ACTIVITY,
                                              kind=abi.ProcessKind.D4C_KIND_EXEC), ())
    assert (exe.task.executable, exe.path_truncated) == ("bin/x", True)


def test_malformed_file_records_are_errors():
    good = file_record(b"/x", head=dict(hook=1), operation=1, event_action=1)
    with pytest.raises(RecordError):
        decode_file_event(good[:-2], ())  # the path does not fit
    with pytest.raises(RecordError):
        decode_file_event(good[:40], ())  # not even a header
    with pytest.raises(RecordError):
        decode_file_event(file_record(b"/x", head=dict(hook=1), operation=3, event_action=1), ())  # not one bit


def test_lifecycle_exec_with_args():
    v = decode_process_event(process_record(head=dict(hook=int(abi.Hook.D4C_HOOK_SCHED_PROCESS_EXEC)),
                                            record=abi.RecordType.D4C_RECORD_LIFECYCLE,
                                            kind=abi.ProcessKind.D4C_KIND_EXEC), ())
    assert isinstance(v, ProcessLifecycle)
    assert (v.kind, v.task.executable, v.args, v.task.sid, v.exit_code) == ("exec", "/usr/bin/echo", ("echo", "a b"), 10, None)


def test_process_activity_named_by_its_slot_and_exit_status():
    raw = process_record(head=dict(selectors=0b101, actions=int(abi.Action.D4C_ACTION_BLOCK | abi.Action.D4C_ACTION_ALERT),
                                   blocked=1, flags=int(abi.EventFlags.D4C_FLAG_POLICY_SLOT1),
                                   hook=int(abi.Hook.D4C_HOOK_TASK_ALLOC)),
                         record=abi.RecordType.D4C_RECORD_ACTIVITY, kind=abi.ProcessKind.D4C_KIND_FORK)
    assert record_slot(raw) == 1
    v = decode_process_event(raw, ("a", "b", "c"))
    assert isinstance(v, ProcessActivity)
    assert (v.operation, v.selectors, v.actions, v.blocked, v.trace_point) == (
        "fork", ("a", "c"), frozenset({"block", "alert"}), True, "lsm__task_alloc")
    end = decode_process_event(process_record(b"", head=dict(hook=int(abi.Hook.D4C_HOOK_SCHED_PROCESS_EXIT),
                                                             flags=int(abi.EventFlags.D4C_FLAG_NO_EXE)),
                                              record=abi.RecordType.D4C_RECORD_LIFECYCLE,
                                              kind=abi.ProcessKind.D4C_KIND_EXIT, exit_code=9), ())
    assert (end.kind, end.exit_code, end.task.executable) == ("exit", 137, "")


def test_bad_process_records_are_refused():
    fork = dict(head=dict(hook=int(abi.Hook.D4C_HOOK_SCHED_PROCESS_FORK)), record=abi.RecordType.D4C_RECORD_LIFECYCLE)
    good = process_record(kind=abi.ProcessKind.D4C_KIND_FORK, **fork)
    with pytest.raises(RecordError, match="shorter than its header"):
        decode_process_event(good[:100], ())
    with pytest.raises(RecordError, match="cannot hold"):
        decode_process_event(good[:-5], ())
    with pytest.raises(RecordError, match="unknown code"):
        decode_process_event(process_record(kind=9, **fork), ())


def test_every_hook_has_a_trace_point_name():
    assert sorted(abi.TRACE_POINTS) == sorted(int(h) for h in abi.Hook)
    assert abi.TRACE_POINTS[abi.Hook.D4C_HOOK_FILE_OPEN] == "lsm__file_open"
    assert abi.TRACE_POINTS[abi.Hook.D4C_HOOK_SCHED_PROCESS_EXIT] == "sched_process_exit"
