"""A fake /proc (plus cgroup2 mount and filesystem roots) made of plain files in a tmp dir.

Only what the process table reads is written: stat, status, cmdline, cgroup, and the exe, cwd
and root symlinks. Cgroup ids are the inodes of real directories under the fake cgroup root,
exactly as on a cgroup2 mount.
"""

from __future__ import annotations

import os
from pathlib import Path

from reference_agent.activity import TaskInfo
from reference_agent.system.procfs import NS_PER_TICK

BTIME = 1_700_000_000  # 2023-11-14T22:13:20Z
HOST_PASSWD = "root:x:0:0:root:/root:/bin/bash\nhostuser:x:1000:1000::/home/hostuser:/bin/sh\n"
HOST_GROUP = "root:x:0:\nhostgroup:x:1000:\n"
CID = "a" * 64  # a container id
CONTAINER_CGROUP = f"/system.slice/docker-{CID}.scope"
HOST_CGROUP = "/system.slice/containerd.service"


class FakeProc:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc = base / "proc"
        self.cgroup = base / "cgroup"
        self.host = base / "host"
        self.proc.mkdir()
        self.cgroup.mkdir()
        (self.proc / "stat").write_text(f"cpu  1 2 3 4\nbtime {BTIME}\nprocesses 42\n")
        self.make_root("host", HOST_PASSWD, HOST_GROUP)

    def make_root(self, name: str, passwd: str | None, group: str | None) -> Path:
        """A filesystem root with its own /etc/passwd and /etc/group."""
        root = self.base / name
        (root / "etc").mkdir(parents=True, exist_ok=True)
        if passwd is not None:
            (root / "etc" / "passwd").write_text(passwd)
        if group is not None:
            (root / "etc" / "group").write_text(group)
        return root

    def cgroup_id(self, path: str) -> int:
        d = self.cgroup / path.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        return os.stat(d).st_ino

    def add(
        self,
        pid: int,
        ppid: int,
        *,
        exe: str,
        args: list[str],
        sid: int | None = None,
        pgid: int | None = None,
        start_ticks: int = 100,
        cwd: str = "/",
        uid: int = 0,
        gid: int = 0,
        tty_nr: int = 0,
        cgroup: str = "/",
        root: Path | None = None,
        comm: str | None = None,
        kthread: bool = False,
    ) -> None:
        d = self.proc / str(pid)
        d.mkdir(exist_ok=True)
        self.cgroup_id(cgroup)
        comm = comm if comm is not None else exe.rsplit("/", 1)[-1][:15]
        flags = 0x00200000 if kthread else 0x00400000
        # fields 3..21, then 22 (starttime), then a few more
        fields = ["S", ppid, pgid or pid, sid or pid, tty_nr, -1, flags] + [0] * 12 + [start_ticks] + [0] * 8
        (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n")
        (d / "status").write_text(
            f"Name:\t{comm}\nPid:\t{pid}\nPPid:\t{ppid}\n"
            f"Uid:\t{uid + 7}\t{uid}\t{uid}\t{uid}\nGid:\t{gid + 7}\t{gid}\t{gid}\t{gid}\n"
        )
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in args))
        (d / "cgroup").write_text(f"1:name=systemd:/ignored\n0::{cgroup}\n")
        for link, target in (("exe", exe), ("cwd", cwd), ("root", str(root or self.host))):
            if os.path.islink(d / link):
                os.unlink(d / link)
            if not kthread or link == "root":
                os.symlink(target, d / link)

    def set_session(self, pid: int, sid: int, pgid: int, tty_nr: int = 0) -> None:
        """What setsid()/setpgid() would show in /proc/<pid>/stat."""
        path = self.proc / str(pid) / "stat"
        text = path.read_text()
        head, rest = text[: text.rfind(")") + 1], text[text.rfind(")") + 1 :].split()
        rest[2], rest[3], rest[4] = str(pgid), str(sid), str(tty_nr)
        path.write_text(head + " " + " ".join(rest) + "\n")

    def zombie(self, pid: int) -> None:
        """What an exited process its parent has not reaped shows: state Z, the rest kept."""
        path = self.proc / str(pid) / "stat"
        text = path.read_text()
        head, rest = text[: text.rfind(")") + 1], text[text.rfind(")") + 1 :].split()
        rest[0] = "Z"
        path.write_text(head + " " + " ".join(rest) + "\n")

    def remove(self, pid: int) -> None:
        d = self.proc / str(pid)
        for child in d.iterdir():
            child.unlink()
        d.rmdir()


def task(
    pid: int,
    ppid: int,
    *,
    exe: str,
    start_ticks: int,
    cgroup_id: int,
    uid: int = 0,
    gid: int = 0,
    tty: bool = False,
    extra_ns: int = 3_456_789,
) -> TaskInfo:
    """The kernel's view of a task: start in full nanoseconds (not tick-rounded)."""
    return TaskInfo(
        pid=pid,
        tid=pid,
        ppid=ppid,
        uid=uid,
        gid=gid,
        cgroup_id=cgroup_id,
        comm=exe.rsplit("/", 1)[-1][:15],
        executable=exe,
        start_time_ns=start_ticks * NS_PER_TICK + extra_ns,
        tty=tty,
    )
