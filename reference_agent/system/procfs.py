"""Reading one process out of a /proc tree (the real one, or a fake one in tests).

Every reader takes the proc root as a parameter: nothing here assumes "/proc", so the table
can be tested against a directory of plain files. A process can exit between any two reads;
readers raise `ProcessGone` (a `LookupError`) for that, and callers skip the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Flag bit of /proc/<pid>/stat field 9 (include/linux/sched.h): kernel threads have no
# executable, no user-space image and never live in a container; the table skips them.
PF_KTHREAD = 0x00200000

# USER_HZ is 100 on every Linux ABI; sysconf is asked anyway so a test host cannot disagree.
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NS_PER_TICK = 1_000_000_000 // CLK_TCK

_DELETED = " (deleted)"


class ProcessGone(LookupError):
    """The process exited (or its /proc entry is unreadable) while it was being read."""


@dataclass(frozen=True)
class StatLine:
    """The fields of /proc/<pid>/stat the table needs."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    tty_nr: int  # controlling terminal of the session; 0 = none
    flags: int
    start_ns: int  # since boot, tick resolution (field 22 x 1e9 / CLK_TCK)
    state: str = "R"  # field 3: Z (zombie) and X (dead) have exited, only not been reaped

    @property
    def exited(self) -> bool:
        return self.state in ("Z", "X")

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


@dataclass(frozen=True)
class ProcSnapshot:
    """Everything the table learns about one process from /proc."""

    stat: StatLine
    executable: str | None  # None: unreadable (permission, kernel thread)
    args: tuple[str, ...]
    cwd: str | None
    uid: int  # effective
    gid: int  # effective
    cgroup_path: str | None  # the cgroup v2 ("0::") path, None without one


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError) as exc:
        raise ProcessGone(path) from exc


def parse_stat(text: str) -> StatLine:
    # comm (field 2) is in parentheses and may itself contain spaces and ')': split after
    # the LAST ')'. Fields after it start at field 3 (state), so field N is rest[N - 3].
    close = text.rfind(")")
    if close < 0:
        raise ValueError(f"malformed stat line: {text[:80]!r}")
    pid = int(text[: text.index("(")].strip())
    rest = text[close + 1 :].split()
    return StatLine(
        pid=pid,
        ppid=int(rest[4 - 3]),
        pgid=int(rest[5 - 3]),
        sid=int(rest[6 - 3]),
        tty_nr=int(rest[7 - 3]),
        flags=int(rest[9 - 3]),
        start_ns=int(rest[22 - 3]) * NS_PER_TICK,
        state=rest[0],
    )


def read_stat(proc_root: str, pid: int) -> StatLine:
    raw = _read(f"{proc_root}/{pid}/stat")
    try:
        return parse_stat(raw.decode(errors="replace"))
    except (ValueError, IndexError) as exc:
        # An empty read means the task is being torn down; anything else is not a stat file.
        raise ProcessGone(f"{proc_root}/{pid}/stat") from exc


def _readlink(path: str) -> str | None:
    try:
        target = os.readlink(path)
    except OSError:
        return None
    # An unlinked image or directory still has a name, with this suffix: keep the name.
    return target.removesuffix(_DELETED)


def _effective_ids(status: str) -> tuple[int, int]:
    uid = gid = None
    for line in status.splitlines():
        # "Uid:\treal\teffective\tsaved\tfs"
        if line.startswith("Uid:"):
            uid = int(line.split()[2])
        elif line.startswith("Gid:"):
            gid = int(line.split()[2])
    if uid is None or gid is None:
        raise ValueError("status without Uid/Gid")
    return uid, gid


def parse_cgroup_v2_path(text: str) -> str | None:
    """The path of the unified-hierarchy line ("0::/path") of /proc/<pid>/cgroup; None without
    one. A "0::" with no path names no cgroup: it is None, never the root (which would make the
    whole node a container's cgroup)."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:] or None
    return None


def read_cgroup_path(proc_root: str, pid: int) -> str | None:
    """The cgroup v2 path of a process; None when it has none or cannot be read."""
    try:
        raw = _read(f"{proc_root}/{pid}/cgroup")
    except (ProcessGone, OSError):  # any unreadable file: the process is no container's
        return None
    return parse_cgroup_v2_path(raw.decode(errors="replace"))


def read_snapshot(proc_root: str, pid: int) -> ProcSnapshot:
    stat = read_stat(proc_root, pid)
    base = f"{proc_root}/{pid}"
    try:
        uid, gid = _effective_ids(_read(f"{base}/status").decode(errors="replace"))
    except ValueError as exc:
        raise ProcessGone(f"{base}/status") from exc
    cmdline = _read(f"{base}/cmdline")
    # NUL-separated with a trailing NUL; a process that rewrote its argv (nginx, postgres)
    # may leave one space-joined string, which is what it chose to show: keep it as is.
    args = tuple(a.decode(errors="surrogateescape") for a in cmdline.split(b"\0"))
    if args and args[-1] == "":
        args = args[:-1]
    cgroup_path = read_cgroup_path(proc_root, pid)
    return ProcSnapshot(
        stat=stat,
        executable=_readlink(f"{base}/exe"),
        args=args,
        cwd=_readlink(f"{base}/cwd"),
        uid=uid,
        gid=gid,
        cgroup_path=cgroup_path,
    )


def list_pids(proc_root: str) -> list[int]:
    return sorted(int(name) for name in os.listdir(proc_root) if name.isdigit())


def read_cwd(proc_root: str, pid: int) -> str | None:
    return _readlink(f"{proc_root}/{pid}/cwd")


def read_args(proc_root: str, pid: int) -> tuple[str, ...] | None:
    try:
        raw = _read(f"{proc_root}/{pid}/cmdline")
    except ProcessGone:
        return None
    args = tuple(a.decode(errors="surrogateescape") for a in raw.split(b"\0"))
    return args[:-1] if args and args[-1] == "" else args


def boot_time_ns(proc_root: str) -> int:
    """Wall-clock boot time (epoch ns) from the `btime` line of <proc_root>/stat."""
    for line in _read(f"{proc_root}/stat").decode().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1_000_000_000
    raise ValueError(f"{proc_root}/stat: no btime line")


def round_to_tick(ns_since_boot: int) -> int:
    """The kernel's nanosecond start time at /proc's resolution (see entity_id.py)."""
    return ns_since_boot - ns_since_boot % NS_PER_TICK
