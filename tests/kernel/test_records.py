"""Ring-buffer record decoding (host): a record cut after its path's NUL, as the kernel sends
it, becomes the FileActivity the pipeline expects; malformed records are errors."""

from __future__ import annotations

import pytest

from reference_agent.kernel import abi
from reference_agent.kernel.records import RecordError, decode_file_event, record_slot


def _record(path: bytes, **fields) -> bytes:
    ev = abi.FileEvent(**fields)
    ev.path = path
    ev.path_len = len(path)
    return bytes(ev)[: abi.FileEvent.path.offset + len(path) + 1]


def test_cut_record_decodes_to_file_activity():
    raw = _record(
        b"/etc/a.conf", timestamp_ns=5, cgroup_id=77, start_time_ns=3, selectors=0b101, pid=10, tid=11,
        ppid=1, uid=1000, gid=1001, operation=int(abi.FileOp.D4C_OP_CREATE_FILE),
        event_action=int(abi.EventAction.D4C_EVENT_RENAME), hook=int(abi.Hook.D4C_HOOK_PATH_RENAME),
        mount=int(abi.MountClass.D4C_MOUNT_VOLUME),
        actions=int(abi.Action.D4C_ACTION_BLOCK | abi.Action.D4C_ACTION_ALERT), blocked=1,
        flags=int(abi.EventFlag.D4C_EVENT_POLICY_SLOT1), tty=1, comm=b"sh",
    )
    assert len(raw) == abi.FileEvent.path.offset + len("/etc/a.conf") + 1
    assert record_slot(raw) == 1
    a = decode_file_event(raw, ("first", "second", "third"))
    assert (a.operation, a.event_action, a.path, a.mount, a.trace_point) == (
        "createFile", "rename", "/etc/a.conf", "volume", "lsm__path_rename")
    assert (a.selectors, a.actions, a.blocked, a.timestamp_ns) == (("first", "third"), frozenset({"block", "alert"}), True, 5)
    t = a.task
    assert (t.pid, t.tid, t.ppid, t.uid, t.gid, t.cgroup_id, t.comm, t.start_time_ns, t.tty) == (
        10, 11, 1, 1000, 1001, 77, "sh", 3, True)


def test_malformed_records_are_errors():
    good = _record(b"/x", operation=1, event_action=1, hook=1)
    with pytest.raises(RecordError):
        decode_file_event(good[:-2], ())  # the path does not fit
    with pytest.raises(RecordError):
        decode_file_event(good[:40], ())  # not even a header
    with pytest.raises(RecordError):
        decode_file_event(_record(b"/x", operation=3, event_action=1, hook=1), ())  # not one operation bit
