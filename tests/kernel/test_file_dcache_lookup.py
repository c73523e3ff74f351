"""DCACHE_PAR_LOOKUP must be the running kernel's value (bpf/README.md: CO-RE enum value from
the kernel's BTF on 6.15+, the 4.7-6.14 value otherwise). An O_CREAT open of an EXISTING file
whose name is not in the dentry cache reaches path_mknod before the lookup has found it: with
the right flag the hook defers (blocks only the O_CREAT part, reports nothing once the file
turns out to exist); with a wrong one it reports and blocks a creation that never happened
(VM)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import cgroup_id
from reference_agent.policy.operation import Container

from .policies import file_policy
from .test_file_enforcement import _in_sandbox, sandbox  # noqa: F401  (fixture)

POLICY = file_policy([{"name": "bin-create", "operations": ["createFile"], "targetFilePath": ("/cold/*",)}],
                     [{"match": ["bin-create"], "actions": ["block", "alert"]}])
CONTAINER = Container(image="nginx:1.25", name="nginx", tag="1.25", full="docker.io/library/nginx:1.25")


def test_o_creat_open_of_an_uncached_existing_file_is_no_creation(bpf_lsm, sandbox):  # noqa: F811
    cgroup, root = sandbox
    # On a disk filesystem: tmpfs (the VM's /tmp) keeps every dentry, so nothing is uncached.
    disk = Path(tempfile.mkdtemp(prefix="d4c-dcache-", dir="/var/tmp"))
    (disk / "cold").write_text("x\n")
    (root / "cold").mkdir()
    subprocess.run(["mount", "--bind", str(disk), str(root / "cold")], check=True)
    try:
        _check(cgroup, root)
    finally:
        subprocess.run(["umount", str(root / "cold")], check=False)
        for f in disk.iterdir():
            f.unlink()
        disk.rmdir()


def _check(cgroup: Path, root: Path) -> None:
    with FileEnforcer(compile_file_section(POLICY)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup), CONTAINER)
        before = enforcer.stats()
        # Dropping caches is a request, not a promise (a dentry still referenced somewhere
        # stays): try a few times until the open really met an uncached name. An attempt that
        # found "cold" cached takes no mknod path and must report nothing either.
        events: list[tuple[str, str, bool]] = []
        for _attempt in range(5):
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("2\n")  # unused dentries out: "cold" is looked up anew
            _pid, err = _in_sandbox(cgroup, root, lambda: os.close(os.open("/cold/cold", os.O_WRONLY | os.O_CREAT, 0o644)))
            events += [(a.operation, a.path, a.blocked) for a in enforcer.drain()]
            after = enforcer.stats()
            if err or after["create_in_lookup"] > before["create_in_lookup"]:
                break
        # and a real creation of an uncached name is still blocked and reported, once
        _pid, err_new = _in_sandbox(cgroup, root, lambda: os.close(os.open("/cold/fresh", os.O_WRONLY | os.O_CREAT, 0o644)))
        new_events = [(a.operation, a.path, a.blocked) for a in enforcer.drain()]
    assert (err, events) == (0, [])
    assert after["create_in_lookup"] > before["create_in_lookup"], "the in-lookup path was not taken"
    assert after["denial_withdrawn"] > before["denial_withdrawn"]
    assert (err_new, new_events) == (1, [("createFile", "/cold/fresh", True)])
    assert not (root / "cold/fresh").exists()
