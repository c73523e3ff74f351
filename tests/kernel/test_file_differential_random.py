"""Randomized differential test of the file program. Random file policies (patterns with `*`, `**`,
`/**/`, operations, volume conditions, image conditions, match/exclude, all action sets) are
loaded into the kernel one after the other (maps rewritten, programs stay attached); random
file syscalls run in a sandboxed container process; for each syscall the kernel's events and
errno must equal what the reference evaluator says about the operations the syscall amounts
to (classified from the file system's state just before it, by D17/D18). Seeded: a failure
names its seed, policy and operation."""

from __future__ import annotations

import errno
import os
import random
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.model import FILE_OPERATIONS
from reference_agent.policy.operation import (
    Container,
    FileTarget,
    Operation,
    image_parts,
)

from .policies import file_policy
from .test_file_enforcement import _in_sandbox

SEED = int(os.environ.get("D4C_DIFF_SEED", "20261129"))
POLICIES = int(os.environ.get("D4C_DIFF_POLICIES", "12"))
OPS_PER_POLICY = int(os.environ.get("D4C_DIFF_OPS", "15"))

DIRS = ("/a", "/a/b", "/a/b/c", "/c", "/v", "/v/d")
NAMES = ("x", "y", "z", "n1", "run.sh")
FILE_MOUNT = "/etc/f"
PATTERNS = ("/a/**", "/a/*", "/a/b/*", "/**", "/v/**", "/etc/f", "/a/**/z", "/c/w", "/*", "/a/b*",
            "/**/y", "/v/*/t", "/a/**/c/*", "/c/*", "/v/d/*", "/a/b/c/z", "/**/run.sh", "/*/b/**")
ACTION_SETS = (("log",), ("alert",), ("block", "alert"), ("log", "alert"), ("block", "alert", "log"))
CONTAINER_IMAGE = "nginx:1.25"


def _mount(path: str) -> str:
    if path == FILE_MOUNT:
        return "file"
    return "volume" if path == "/v" or path.startswith("/v/") else "root"


def random_policy(rng: random.Random):
    selectors = []
    for i in range(rng.randint(2, 7)):
        s: dict = {"name": f"s{i}"}
        if rng.random() < 0.6:
            s["operations"] = rng.sample(FILE_OPERATIONS, rng.randint(1, 3))
        if rng.random() < 0.75 or "operations" not in s:
            s["targetFilePath"] = tuple(rng.sample(PATTERNS, rng.randint(1, 2)))
        r = rng.random()
        if r < 0.15:
            s["ignoreVolumeMounts"] = True
        elif r < 0.3:
            s["ignoreVolumeFiles"] = True
        if rng.random() < 0.15:
            s["containerImageName"] = (rng.choice(["nginx", "redis", "ngi*"]),)
        selectors.append(s)
    names = [s["name"] for s in selectors]
    responses = []
    for _ in range(rng.randint(1, 4)):
        r = {"match": rng.sample(names, rng.randint(1, 2)), "actions": list(rng.choice(ACTION_SETS))}
        if rng.random() < 0.3:
            r["exclude"] = rng.sample(names, 1)
        responses.append(r)
    return file_policy(selectors, responses)


@dataclass(frozen=True)
class Op:
    text: str
    action: object  # callable run in the sandbox
    operations: tuple[tuple[str, str, str], ...]  # (operation, path, mount) it amounts to


class World:
    """The sandbox's files, seen from the test process (outside the container)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def st(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.root / path.lstrip("/"))
        except FileNotFoundError:
            return None

    def regular(self, path: str) -> bool:
        st = self.st(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def exe(self, path: str) -> bool:
        st = self.st(path)
        return st is not None and bool(st.st_mode & 0o111)

    def files(self) -> list[str]:
        return [f"{d}/{n}" for d in DIRS for n in NAMES if self.regular(f"{d}/{n}")] + [FILE_MOUNT]


def _modify(world: World, path: str) -> str:
    return "modifyExecutable" if world.exe(path) else "modifyFile"


def random_op(rng: random.Random, world: World) -> Op:
    files = world.files()
    movable = [f for f in files if f != FILE_MOUNT]
    kind = rng.choice(["create", "write", "truncate", "chmod", "unlink", "rename", "link"])
    if kind in ("unlink", "rename", "link") and not movable:
        kind = "create"
    if kind == "create":
        path = f"{rng.choice(DIRS)}/{rng.choice(NAMES)}"
        mode = rng.choice([0o644, 0o755])
        if world.regular(path):
            ops = ((_modify(world, path), path, _mount(path)),)
        else:
            ops = (("createExecutable" if mode & 0o111 else "createFile", path, _mount(path)),)
        return Op(f"open({path}, O_WRONLY|O_CREAT, {mode:o})",
                  lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT, mode)), ops)
    if kind == "write":
        path = rng.choice(files)
        return Op(f"open({path}, O_WRONLY)", lambda: os.close(os.open(path, os.O_WRONLY)),
                  ((_modify(world, path), path, _mount(path)),))
    if kind == "truncate":
        path = rng.choice(files)
        return Op(f"truncate({path})", lambda: os.truncate(path, 0),
                  ((_modify(world, path), path, _mount(path)),))
    if kind == "chmod":
        path = rng.choice(files)
        mode = rng.choice([0o644, 0o755, 0o600, 0o700])
        op = "createExecutable" if not world.exe(path) and mode & 0o111 else _modify(world, path)
        return Op(f"chmod({path}, {mode:o})", lambda: os.chmod(path, mode), ((op, path, _mount(path)),))
    if kind == "unlink":
        path = rng.choice(movable)
        return Op(f"unlink({path})", lambda: os.unlink(path), (("deleteFile", path, _mount(path)),))
    src = rng.choice(movable)
    same_mount = [f"{d}/{n}" for d in DIRS for n in NAMES if _mount(f"{d}/{n}") == _mount(src)]
    if kind == "link":
        free = [p for p in same_mount if world.st(p) is None]
        if not free:
            return random_op(rng, world)
        dst = rng.choice(free)
        op = "createExecutable" if world.exe(src) else "createFile"
        return Op(f"link({src}, {dst})", lambda: os.link(src, dst), ((op, dst, _mount(dst)),))
    sst = world.st(src)
    targets = [p for p in same_mount if p != src and (world.st(p) is None or world.st(p).st_ino != sst.st_ino)]
    if not targets:
        return random_op(rng, world)
    dst = rng.choice(targets)
    put = _modify(world, dst) if world.regular(dst) else ("createExecutable" if world.exe(src) else "createFile")
    return Op(f"rename({src}, {dst})", lambda: os.rename(src, dst),
              (("deleteFile", src, _mount(src)), (put, dst, _mount(dst))))


@pytest.fixture
def world(tmp_path):
    if not (CGROUP2_ROOT / "cgroup.procs").is_file() or not (CGROUP2_ROOT / "cgroup.controllers").exists():
        pytest.skip(f"needs cgroup v2 mounted at {CGROUP2_ROOT}")
    import subprocess

    root = tmp_path / "root"
    for d in ("a/b/c", "c", "v", "etc"):
        (root / d).mkdir(parents=True)
    volume = tmp_path / "volume"
    (volume / "d").mkdir(parents=True)
    single = tmp_path / "single"
    single.write_text("f\n")
    (root / "etc/f").write_text("")
    for f, mode in (("a/x", 0o644), ("a/b/y", 0o755), ("a/b/c/z", 0o644), ("c/w", 0o644)):
        (root / f).write_text("x\n")
        (root / f).chmod(mode)
    for f in ("u", "d/t"):
        (volume / f).write_text("v\n")
    cgroup = CGROUP2_ROOT / f"d4c-diff-{os.getpid()}"
    cgroup.mkdir()
    mounted = []
    try:
        for src, dst in ((volume, root / "v"), (single, root / "etc/f")):
            subprocess.run(["mount", "--bind", str(src), str(dst)], check=True)
            mounted.append(dst)
        yield cgroup, root
    finally:
        for dst in reversed(mounted):
            subprocess.run(["umount", str(dst)], check=False)
        cgroup.rmdir()


def test_random_policies_and_operations_agree(bpf_lsm, world):
    cgroup, root = world
    rng = random.Random(SEED)
    name, tag, full = image_parts(CONTAINER_IMAGE)
    container = Container(image=CONTAINER_IMAGE, name=name, tag=tag, full=full)
    state = World(root)
    mismatches: list[str] = []
    fired = blocked = 0
    policy = random_policy(rng)
    with FileEnforcer(compile_file_section(policy)) as enforcer:
        for p in range(POLICIES):
            if p:
                policy = random_policy(rng)
                enforcer.set_policy(compile_file_section(policy))
            enforcer.add_container(cgroup_id(cgroup), container)
            for _ in range(OPS_PER_POLICY):
                op = random_op(rng, state)
                verdicts = [
                    (o, evaluate(policy, Operation(kind="file", operation=o[0], file=FileTarget(o[1], o[2]),
                                                   container=container)))
                    for o in op.operations
                ]
                want_block = any("block" in v.actions for _, v in verdicts)
                want = [(*o, v.matched_selectors, frozenset(v.actions), want_block) for o, v in verdicts if v.actions]
                _, err = _in_sandbox(cgroup, root, op.action)
                got = [(a.operation, a.path, a.mount, a.selectors, a.actions, a.blocked) for a in enforcer.drain()]
                want_errno = errno.EPERM if want_block else 0
                fired += bool(want)
                blocked += want_block
                if (err, got) != (want_errno, want):
                    mismatches.append(
                        f"seed {SEED} policy {p} {op.text}: kernel errno={err} {got}\n"
                        f"    reference errno={want_errno} {want}\n    policy={policy.file}"
                    )
        stats = enforcer.stats()
    print(f"{POLICIES} policies x {OPS_PER_POLICY} ops: {fired} fired, {blocked} blocked, stats {stats}")
    assert not mismatches, "\n".join(mismatches[:5])
    assert fired and blocked, "the random policies never fired or never blocked: the test proves nothing"
