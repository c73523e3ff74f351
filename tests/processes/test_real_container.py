"""A real process tree in a container-like sandbox, seen through the real /proc and cgroup2.

What a runtime does, done by hand: a cgroup v2 directory named like Docker's
(`docker-<64 hex>.scope`), a private mount namespace with pivot_root into a root filesystem
that has its own /etc/passwd, and an unprivileged user that only that passwd names. Checks the
parts a fake /proc cannot: cgroup ids are the inodes the kernel reports, /proc/<pid>/exe and cwd
are the paths inside the container, names come through /proc/<pid>/root.

Needs root, a writable cgroup2 mount and a static busybox (Debian: busybox-static); skipped
otherwise.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_agent.processes import ProcessTable
from reference_agent.system import procfs
from reference_agent.system.cgroups import find_cgroup2_mount

CONTAINER_ID = "d4c0" * 16
CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 0x00020000, 0x1000, 0x4000, 1 << 18, 2
SYS_PIVOT_ROOT = 155  # x86_64
UID = GID = 4321  # named "inside" by the sandbox's passwd only


def _static_busybox() -> str | None:
    path = shutil.which("busybox")
    if path is None:
        return None
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return path if b"ld-linux" not in head else None  # a dynamic one cannot run after pivot_root


def _sandbox_root(base: Path, busybox: str) -> Path:
    root = base / "rootfs"
    for d in ("bin", "etc", "dev", "old", "work"):
        (root / d).mkdir(parents=True)
    os.chmod(base, 0o755)
    os.chmod(root, 0o755)
    shutil.copy(busybox, root / "bin" / "busybox")
    os.mknod(root / "dev" / "null", 0o20666, os.makedev(1, 3))  # busybox sh wants it for '&'
    os.chmod(root / "dev" / "null", 0o666)
    (root / "etc" / "passwd").write_text(f"root:x:0:0::/:/bin/sh\ninside:x:{UID}:{GID}::/work:/bin/sh\n")
    (root / "etc" / "group").write_text(f"root:x:0:\ninside:x:{GID}:\n")
    return root


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    if os.geteuid() != 0 or os.uname().machine != "x86_64":
        pytest.skip("needs root on x86_64")
    busybox = _static_busybox()
    mount = find_cgroup2_mount()
    if busybox is None or mount is None:
        pytest.skip("needs a static busybox and a cgroup2 mount")
    parent_cg = Path(mount) / f"d4c-processes-test-{os.getpid()}"
    leaf = parent_cg / f"docker-{CONTAINER_ID}.scope"
    try:
        leaf.mkdir(parents=True)
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {mount}: {exc}")
    root = _sandbox_root(tmp_path, busybox)
    libc = ctypes.CDLL(None, use_errno=True)

    def check(rc: int, what: str) -> None:
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def enter() -> None:  # runs in the child between fork and exec, like runc init
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        check(libc.unshare(CLONE_NEWNS), "unshare")
        check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
        check(libc.mount(bytes(root), bytes(root), None, MS_BIND | MS_REC, None), "bind rootfs")
        os.chdir(root)
        check(libc.syscall(SYS_PIVOT_ROOT, b".", b"old"), "pivot_root")
        check(libc.umount2(b"/old", MNT_DETACH), "detach old root")
        os.chdir("/work")
        os.setgid(GID)
        os.setuid(UID)

    # preexec_fn is the only stdlib way to run code between fork and exec; the test starts no
    # threads of its own, which is the condition for it to be safe.
    argv = ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 60 & wait"]
    init = subprocess.Popen(argv, preexec_fn=enter)  # noqa: PLW1509
    child = None
    try:
        deadline = time.monotonic() + 10
        while child is None and time.monotonic() < deadline:
            for pid in procfs.list_pids("/proc"):
                try:
                    if procfs.read_stat("/proc", pid).ppid == init.pid:
                        child = pid
                except procfs.ProcessGone:
                    pass
            time.sleep(0.05)
        assert child is not None, "the sandbox's sleep never started"
        yield init, child, leaf
    finally:
        for pid in (child, init.pid):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        init.wait()
        for _ in range(100):  # the orphaned sleep is reaped by init asynchronously
            try:
                leaf.rmdir()
                parent_cg.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_container_process_tree_through_real_proc(sandbox: tuple[subprocess.Popen, int, Path]) -> None:
    init, child, leaf = sandbox
    table = ProcessTable("agent-real")
    table.seed()

    sleep = table.describe(child)
    assert sleep is not None
    assert sleep.cgroup_id == os.stat(leaf).st_ino  # the kernel's cgroup id is the dir's inode
    assert sleep.container_id == CONTAINER_ID
    assert sleep.process.executable == "/bin/busybox"  # the path inside the container
    assert sleep.process.args == ("/bin/busybox", "sleep", "60")
    assert sleep.process.working_directory == "/work"
    assert (sleep.process.user_name, sleep.process.group_name) == ("inside", "inside")
    assert sleep.parent.pid == init.pid
    assert sleep.entry_leader.pid == init.pid  # the first process of the container
    assert sleep.entry_leader.entry_meta_type == "container"
    assert sleep.entry_leader.same_as_process is False
    assert sleep.process.user_id == UID

    sh = table.describe(init.pid)
    assert sh.entry_leader.pid == init.pid and sh.entry_leader.same_as_process is True
    assert sh.parent.pid == os.getpid()  # the "runtime" (this test) is a host process
    assert sh.parent.entry_meta_type is None
    me = table.describe(os.getpid())
    assert me.container_id is None and me.entry_leader is None

    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        time.sleep(0.05)
    # sh's `wait` returns and sh exits; unreaped by this test, it stays in /proc as a zombie,
    # which has exited all the same.
    while procfs.read_stat("/proc", init.pid).state != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = {f.process.pid: f for f in table.reconcile()}
    assert child in ended and init.pid in ended
    assert ended[init.pid].container_id == CONTAINER_ID
