"""The kernel half of the file operations: the same file operations go to the kernel path (file_hooks.bpf.o,
real syscalls by a process in a container-like sandbox: its own cgroup v2 and a chroot with
a directory volume and a single-file bind mount) and to the reference evaluator; the events,
the EPERMs and the absence of both must agree."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.operation import (
    Container,
    FileTarget,
    Operation,
    image_parts,
)

from .policies import DIFFERENTIAL

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000  # linux/fcntl.h; Python's os.link has no way to pass it
DEEP = "/etc/" + "/".join(["a"] * 70)  # 71 components below the root: more than 64


def _container(image: str) -> Container:
    name, tag, full = image_parts(image)
    return Container(image=image, name=name, tag=tag, full=full)


def _create(path: str, mode: int = 0o644) -> Callable[[], None]:
    return lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _tmpfile_then_link(directory: str, name: str) -> Callable[[], None]:
    """open(dir, O_TMPFILE) then linkat(fd, "", AT_EMPTY_PATH): the file gets its first name
    only at linkat, so that is where it is created (D17); the nameless open is no operation."""
    def action() -> None:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
        try:
            os.write(fd, b"staged\n")
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.linkat(fd, b"", AT_FDCWD, name.encode(), AT_EMPTY_PATH) != 0:
                raise OSError(ctypes.get_errno(), "linkat")
        finally:
            os.close(fd)
    return action


def _write(path: str) -> Callable[[], None]:
    return lambda: os.close(os.open(path, os.O_WRONLY))


@dataclass(frozen=True)
class Case:
    name: str
    action: Callable[[], None]  # runs inside the sandbox
    # (operation, path, mount, event.action, trace_point) the syscall amounts to (D17, D18)
    operations: tuple[tuple[str, str, str, str, str], ...]


CASES = (
    Case("create under /etc", _create("/etc/new.conf"),
         (("createFile", "/etc/new.conf", "root", "creation", "lsm__path_mknod"),)),
    Case("create excluded /etc/tmp*", _create("/etc/tmpfoo"),
         (("createFile", "/etc/tmpfoo", "root", "creation", "lsm__path_mknod"),)),
    Case("write-open /etc/passwd", _write("/etc/passwd"),
         (("modifyFile", "/etc/passwd", "root", "modification", "lsm__file_open"),)),
    Case("truncate /etc/passwd", lambda: os.truncate("/etc/passwd", 0),
         (("modifyFile", "/etc/passwd", "root", "modification", "lsm__path_truncate"),)),
    Case("create /usr/bin/tool", _create("/usr/bin/tool"),
         (("createFile", "/usr/bin/tool", "root", "creation", "lsm__path_mknod"),)),
    Case("create below /usr/bin/sub", _create("/usr/bin/sub/x"),
         (("createFile", "/usr/bin/sub/x", "root", "creation", "lsm__path_mknod"),)),
    Case("create /var/run/secrets/token", _create("/var/run/secrets/token"),
         (("createFile", "/var/run/secrets/token", "root", "creation", "lsm__path_mknod"),)),
    Case("create /var/secrets/token", _create("/var/secrets/token"),
         (("createFile", "/var/secrets/token", "root", "creation", "lsm__path_mknod"),)),
    Case("write-open on a volume", _write("/data/file"),
         (("modifyFile", "/data/file", "volume", "modification", "lsm__file_open"),)),
    Case("write-open a single-file mount", _write("/etc/hosts"),
         (("modifyFile", "/etc/hosts", "file", "modification", "lsm__file_open"),)),
    Case("unlink /usr/bin/old", lambda: os.unlink("/usr/bin/old"),
         (("deleteFile", "/usr/bin/old", "root", "deletion", "lsm__path_unlink"),)),
    Case("chmod +x /usr/bin/script", lambda: os.chmod("/usr/bin/script", 0o755),
         (("createExecutable", "/usr/bin/script", "root", "creation", "lsm__path_chmod"),)),
    Case("chmod an executable", lambda: os.chmod("/usr/bin/exe", 0o700),
         (("modifyExecutable", "/usr/bin/exe", "root", "modification", "lsm__path_chmod"),)),
    Case("rename /usr/bin/a -> /etc/a.conf", lambda: os.rename("/usr/bin/a", "/etc/a.conf"),
         (("deleteFile", "/usr/bin/a", "root", "rename", "lsm__path_rename"),
          ("createFile", "/etc/a.conf", "root", "rename", "lsm__path_rename"))),
    Case("rename onto an existing file", lambda: os.rename("/usr/bin/b", "/var/secrets/existing"),
         (("deleteFile", "/usr/bin/b", "root", "rename", "lsm__path_rename"),
          ("modifyFile", "/var/secrets/existing", "root", "rename", "lsm__path_rename"))),
    Case("hard link into /var/secrets", lambda: os.link("/usr/bin/tool2", "/var/secrets/hard"),
         (("createFile", "/var/secrets/hard", "root", "link", "lsm__path_link"),)),
    Case("O_TMPFILE + linkat into /var/secrets", _tmpfile_then_link("/var/secrets", "/var/secrets/staged"),
         (("createFile", "/var/secrets/staged", "root", "link", "lsm__path_link"),)),
    Case("create an executable", _create("/tmp/run.sh", 0o755),
         (("createExecutable", "/tmp/run.sh", "root", "creation", "lsm__path_mknod"),)),
    Case("create /usr/sbin2 (image condition)", _create("/usr/sbin2"),
         (("createFile", "/usr/sbin2", "root", "creation", "lsm__path_mknod"),)),
    Case("create 71 components deep", _create(DEEP + "/f"),
         (("createFile", DEEP + "/f", "root", "creation", "lsm__path_mknod"),)),
    Case("create after a failed lookup (cached negative dentry)",
         lambda: (os.path.exists("/usr/bin/seen"), _create("/usr/bin/seen")()),
         (("createFile", "/usr/bin/seen", "root", "creation", "lsm__path_mknod"),)),
    Case("O_CREAT open of an existing file", lambda: os.close(os.open("/usr/bin/existing", os.O_WRONLY | os.O_CREAT)),
         (("modifyFile", "/usr/bin/existing", "root", "modification", "lsm__file_open"),)),
    Case("O_CREAT|O_TRUNC open of an existing file (one event)",
         lambda: os.close(os.open("/usr/bin/existing", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)),
         (("modifyFile", "/usr/bin/existing", "root", "modification", "lsm__file_open"),)),
    Case("write-open through a symlink: the target's path (D11)", _write("/usr/bin/lnk"),
         (("modifyFile", "/etc/passwd", "root", "modification", "lsm__file_open"),)),
    Case("unlink a symlink: its own path (D11, D17)", lambda: os.unlink("/usr/bin/lnk2"),
         (("deleteFile", "/usr/bin/lnk2", "root", "deletion", "lsm__path_unlink"),)),
    Case("read-only open is no operation", lambda: os.close(os.open("/etc/passwd", os.O_RDONLY)), ()),
)


def _has_controlling_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY))
    except OSError:
        return False
    return True


def _in_sandbox(cgroup: Path, root: Path, action: Callable[[], None], facts: dict | None = None) -> tuple[int, int]:
    """Run `action` in a forked child placed in `cgroup` and chrooted to `root`; returns
    (child pid, errno of the action or 0). `facts` gets the child's /proc/<pid>/stat fields
    (read while it is a zombie, before it is reaped)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = b"-999"
        try:
            os.close(r)
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            os.chroot(root)
            os.chdir("/")
            os.umask(0o022)
            try:
                action()
                code = b"0"
            except OSError as exc:
                code = str(exc.errno).encode()
        finally:
            os.write(w, code)
            os._exit(0)
    os.close(w)
    out = os.read(r, 32)
    os.close(r)
    if facts is not None:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: /proc still has it
        stat = Path(f"/proc/{pid}/stat").read_text()
        facts["stat"] = stat[stat.rindex(")") + 2:].split()  # fields 3.. (after "pid (comm)")
    os.waitpid(pid, 0)
    return pid, int(out or b"-999")


@pytest.fixture
def sandbox(tmp_path) -> Iterator[tuple[Path, Path]]:
    if not (CGROUP2_ROOT / "cgroup.procs").is_file() or not (CGROUP2_ROOT / "cgroup.controllers").exists():
        pytest.skip(f"needs cgroup v2 mounted at {CGROUP2_ROOT}")
    root = tmp_path / "root"
    for d in ("etc", "usr/bin/sub", "var/run/secrets", "var/secrets", "data", "tmp", DEEP.lstrip("/")):
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in ("etc/passwd", "usr/bin/old", "usr/bin/a", "usr/bin/b", "usr/bin/script", "usr/bin/tool2",
              "var/secrets/existing", "etc/hosts", "usr/bin/existing"):
        (root / f).write_text("x\n")
    (root / "usr/bin/lnk").symlink_to("/etc/passwd")  # resolved inside the chroot
    (root / "usr/bin/lnk2").symlink_to("/etc/passwd")
    (root / "usr/bin/exe").write_text("#!/bin/sh\n")
    (root / "usr/bin/exe").chmod(0o755)
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "file").write_text("v\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    mounts = [(volume, root / "data"), (hosts, root / "etc/hosts")]
    done: list[Path] = []
    cgroup = CGROUP2_ROOT / f"d4c-file-{os.getpid()}"
    cgroup.mkdir()
    try:
        for src, dst in mounts:
            subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)
            done.append(dst)
        yield cgroup, root
    finally:
        for dst in reversed(done):
            subprocess.run(["umount", str(dst)], check=False)
        cgroup.rmdir()


def _expected(container: Container, case: Case) -> tuple[int, list[tuple]]:
    """What the reference evaluator says: errno and events (D18: blocked if either is)."""
    verdicts = [
        (op, evaluate(DIFFERENTIAL, Operation(kind="file", operation=op[0], file=FileTarget(op[1], op[2]),
                                              container=container)))
        for op in case.operations
    ]
    blocked = any("block" in v.actions for _, v in verdicts)
    events = [
        (*op, v.matched_selectors, frozenset(v.actions), blocked) for op, v in verdicts if v.actions
    ]
    return (errno.EPERM if blocked else 0), events


def test_kernel_agrees_with_reference_evaluator(bpf_lsm, sandbox, record_property):
    cgroup, root = sandbox
    container = _container("nginx:1.25")
    compiled = compile_file_section(DIFFERENTIAL)
    with FileEnforcer(compiled) as enforcer:
        print(f"file_hooks.bpf.o open {enforcer.times.open_s:.3f}s load {enforcer.times.load_s:.3f}s "
              f"attach {enforcer.times.attach_s:.3f}s")
        record_property("load_s", round(enforcer.times.load_s, 3))
        record_property("attach_s", round(enforcer.times.attach_s, 3))
        cgid = cgroup_id(cgroup)
        assert enforcer.add_container(cgid, container) != 0

        mismatches = []
        comm = Path("/proc/self/comm").read_text().strip()
        tty = _has_controlling_terminal()
        for case in CASES:
            before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            facts: dict = {}
            pid, err = _in_sandbox(cgroup, root, case.action, facts)
            after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            activities = enforcer.drain()
            got = [
                (a.operation, a.path, a.mount, a.event_action, a.trace_point, a.selectors, a.actions, a.blocked)
                for a in activities
            ]
            want_errno, want = _expected(container, case)
            if (err, got) != (want_errno, want):
                mismatches.append(f"{case.name}: kernel errno={err} events={got}\n"
                                  f"    reference errno={want_errno} events={want}")
            start_ticks = int(facts["stat"][19])  # field 22: starttime, clock ticks since boot
            for a in activities:
                t = a.task
                assert (t.pid, t.tid, t.ppid, t.cgroup_id) == (pid, pid, os.getpid(), cgid)
                assert (t.uid, t.gid, t.comm, t.tty) == (os.geteuid(), os.getegid(), comm, tty)
                assert before <= a.timestamp_ns <= after, "timestamps are CLOCK_BOOTTIME"
                assert t.start_time_ns // (10**9 // os.sysconf("SC_CLK_TCK")) == start_ticks, \
                    "start_time_ns is /proc's starttime (start_boottime)"
        assert not mismatches, "\n".join(mismatches)

        # D15: the same write from a host process is not the container's business.
        with open(root / "etc/passwd", "w") as f:
            f.write("host\n")
        assert enforcer.drain() == []
        stats = enforcer.stats()
        assert stats["ringbuf_full"] == 0 and stats["path_incomplete"] == 0
        assert stats["blocks"] >= 1


def test_overlong_path_fails_closed(bpf_lsm, sandbox):
    """A path longer than D4C_PATH_MAX cannot be resolved: a block that could apply applies."""
    cgroup, root = sandbox
    name = "d" * 200
    fd = os.open(root / "etc", os.O_DIRECTORY)
    for _ in range(21):  # 21 * 201 bytes > 4096: built relative to a dir fd (PATH_MAX)
        os.mkdir(name, dir_fd=fd)
        nxt = os.open(name, os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)

    def create_deep() -> None:
        fd = os.open("/etc", os.O_DIRECTORY)
        for _ in range(21):
            nxt = os.open(name, os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))

    with FileEnforcer(compile_file_section(DIFFERENTIAL)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup), _container("nginx:1.25"))
        _, err = _in_sandbox(cgroup, root, create_deep)
        activities = enforcer.drain()
        assert err == errno.EPERM
        assert [a.blocked for a in activities] == [True]
        assert enforcer.stats()["path_incomplete"] >= 1
    # Detached: the same creation now succeeds.
    _, err = _in_sandbox(cgroup, root, create_deep)
    assert err == 0


def test_o_creat_of_existing_uncached_file_is_not_a_denied_creation(bpf_lsm, sandbox):
    """An O_CREAT open whose name is not in the dentry cache reaches path_mknod before the
    lookup: the creation is blocked there, but a denial is reported only if the open then
    fails. Needs a file system that does not keep dentries cached: the checkout's 9p mount in
    the VM (tmpfs pins them all); skipped where the uncached case does not occur."""
    import shutil
    import tempfile

    from reference_agent.kernel.support import bpf_build_dir

    from .policies import file_policy

    cgroup, root = sandbox
    uncached = Path(tempfile.mkdtemp(prefix="uncached-", dir=bpf_build_dir()))
    (uncached / "existing").write_text("x\n")
    (root / "p").mkdir()
    policy = file_policy(
        [{"name": "p-create", "operations": ["createFile"], "targetFilePath": ("/p/**",)},
         {"name": "p-modify", "operations": ["modifyFile"], "targetFilePath": ("/p/**",)}],
        [{"match": ["p-create"], "actions": ["block", "alert"]}, {"match": ["p-modify"], "actions": ["log"]}],
    )
    subprocess.run(["mount", "--bind", str(uncached), str(root / "p")], check=True)
    try:
        with FileEnforcer(compile_file_section(policy)) as enforcer:
            enforcer.add_container(cgroup_id(cgroup), _container("nginx"))
            open_creat = lambda path: lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            _, err_existing = _in_sandbox(cgroup, root, open_creat("/p/existing"))
            existing = [(a.operation, a.path, a.mount, a.blocked) for a in enforcer.drain()]
            _, err_new = _in_sandbox(cgroup, root, open_creat("/p/new"))
            new = [(a.operation, a.path, a.mount, a.blocked) for a in enforcer.drain()]
            stats = enforcer.stats()
        if stats["create_in_lookup"] < 2:
            pytest.skip(f"{uncached} keeps dentries cached here: the uncached case does not occur")
        assert (err_existing, existing) == (0, [("modifyFile", "/p/existing", "volume", False)])
        assert stats["denial_withdrawn"] == 1
        assert (err_new, new) == (errno.EPERM, [("createFile", "/p/new", "volume", True)])
        assert not (uncached / "new").exists()
    finally:
        subprocess.run(["umount", str(root / "p")], check=False)
        shutil.rmtree(uncached)


@pytest.fixture
def overlay(sandbox, tmp_path) -> Iterator[tuple[Path, Path]]:
    """The sandbox with an overlayfs mounted at /ov (a container root is one): its lower layer
    holds the files below, so writes to them copy up and open the upper file underneath."""
    cgroup, root = sandbox
    layers = tmp_path / "layers"
    layers.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(layers)], check=True)  # any upper-capable fs
    try:
        for d in ("lower", "upper", "work"):
            (layers / d).mkdir()
        for f in ("append", "trunc", "chmod", "chmodx", "twice"):
            (layers / "lower" / f).write_text("lower\n")
        (layers / "lower" / "exe").write_text("#!/bin/sh\n")
        (layers / "lower" / "exe").chmod(0o755)
        (root / "ov").mkdir()
        opts = f"lowerdir={layers / 'lower'},upperdir={layers / 'upper'},workdir={layers / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root / "ov")], check=True)
        try:
            yield cgroup, root
        finally:
            subprocess.run(["umount", str(root / "ov")], check=False)
    finally:
        subprocess.run(["umount", str(layers)], check=False)


def _open(path: str, flags: int) -> Callable[[], None]:
    return lambda: os.close(os.open(path, flags, 0o644))


# (name, syscall, the one event it must produce: operation, path, event.action, trace_point)
ONE_EVENT_PER_SYSCALL = (
    ("creating open (`echo x > f`)", _open("/ov/new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
     ("createFile", "/ov/new", "creation", "lsm__path_mknod")),
    ("append to a lower file (copy-up)", _open("/ov/append", os.O_WRONLY | os.O_APPEND),
     ("modifyFile", "/ov/append", "modification", "lsm__file_open")),
    ("append to it again (upper now)", _open("/ov/append", os.O_WRONLY | os.O_APPEND),
     ("modifyFile", "/ov/append", "modification", "lsm__file_open")),
    ("O_TRUNC open of a lower file", _open("/ov/trunc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
     ("modifyFile", "/ov/trunc", "modification", "lsm__file_open")),
    ("truncate(2) of a lower file", lambda: os.truncate("/ov/twice", 0),
     ("modifyFile", "/ov/twice", "modification", "lsm__path_truncate")),
    ("chmod of a lower file", lambda: os.chmod("/ov/chmod", 0o600),
     ("modifyFile", "/ov/chmod", "modification", "lsm__path_chmod")),
    ("chmod +x of a lower file", lambda: os.chmod("/ov/chmodx", 0o755),
     ("createExecutable", "/ov/chmodx", "creation", "lsm__path_chmod")),
    ("write-open of a lower executable", _open("/ov/exe", os.O_WRONLY),
     ("modifyExecutable", "/ov/exe", "modification", "lsm__file_open")),
)


def test_one_event_per_syscall_on_overlayfs(bpf_lsm, overlay):
    """D17: one syscall is one operation and at most one event. On overlayfs (every container
    root) the kernel opens the upper/real file inside the user's open, and copies lower files
    up through a write-open of its own: neither is a second operation."""
    from .policies import file_policy

    cgroup, root = overlay
    ops = ["createFile", "modifyFile", "createExecutable", "modifyExecutable"]
    policy = file_policy([{"name": "ov", "operations": ops, "targetFilePath": ("/ov/**",)}],
                         [{"match": ["ov"], "actions": ["log"]}])
    with FileEnforcer(compile_file_section(policy)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup), _container("nginx"))
        wrong = []
        for name, action, want in ONE_EVENT_PER_SYSCALL:
            _, err = _in_sandbox(cgroup, root, action)
            got = [(a.operation, a.path, a.event_action, a.trace_point) for a in enforcer.drain()]
            if (err, got) != (0, [want]):
                wrong.append(f"{name}: errno={err} events={got}, want exactly [{want}]")
        stats = enforcer.stats()
    assert not wrong, "\n".join(wrong)
    assert stats["path_incomplete"] == 0, "no event for a path outside the container (copy-up)"


def test_pseudo_filesystems_are_not_container_files(bpf_lsm, sandbox, tmp_path):
    """D19: proc, cgroup2, ... are not the container's file system. runc writes
    /proc/<pid>/attr/apparmor/exec in every `docker exec`: a policy that blocks every
    modification must neither block nor report it. A tmpfs (container /dev, emptyDir) stays a
    container file: the same policy blocks a write there."""
    from .policies import file_policy

    cgroup, root = sandbox
    for d in ("proc", "sys/fs/cgroup", "dev"):
        (root / d).mkdir(parents=True)
    mounted: list[Path] = []
    try:
        for args in (["--bind", "/proc", str(root / "proc")],
                     ["--bind", str(CGROUP2_ROOT), str(root / "sys/fs/cgroup")],
                     ["-t", "tmpfs", "tmpfs", str(root / "dev")]):
            subprocess.run(["mount", *args], check=True)
            mounted.append(Path(args[-1]))
        (root / "dev/shm-file").write_text("x\n")
        attr = "/proc/self/attr/apparmor/exec" if Path("/proc/self/attr/apparmor/exec").exists() \
            else "/proc/self/attr/exec"
        everything = ["createFile", "modifyFile", "createExecutable", "modifyExecutable", "deleteFile"]
        policy = file_policy([{"name": "all", "operations": everything}],
                             [{"match": ["all"], "actions": ["block", "alert"]}])
        with FileEnforcer(compile_file_section(policy)) as enforcer:
            enforcer.add_container(cgroup_id(cgroup), _container("nginx"))
            procs = f"/sys/fs/cgroup/{cgroup.name}/cgroup.procs"

            def write(path: str, data: bytes | None) -> Callable[[], None]:
                def go() -> None:
                    fd = os.open(path, os.O_WRONLY)
                    try:
                        if data is not None:
                            os.write(fd, data)
                    finally:
                        os.close(fd)
                return go

            results = {}
            for path, data in ((attr, None), ("/proc/self/comm", b"d4c-pseudo"),
                               (procs, b"0"), ("/dev/shm-file", b"y")):
                _, err = _in_sandbox(cgroup, root, write(path, data))
                results[path] = (err, [(a.operation, a.path, a.blocked) for a in enforcer.drain()])
            stats = enforcer.stats()
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", str(m)], check=False)
    assert results[attr] == (0, []), results
    assert results["/proc/self/comm"] == (0, []), results
    assert results[procs] == (0, []), results
    assert results["/dev/shm-file"] == (errno.EPERM, [("modifyFile", "/dev/shm-file", True)]), results
    assert stats["not_container_file"] >= 3
