"""Smoke test: an eBPF LSM program from bpf/, loaded through our libbpf binding, denies
one file to one cgroup v2 and nothing else, and stops denying once detached."""

from __future__ import annotations

import errno
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_agent.kernel.libbpf import BpfObject
from reference_agent.kernel.support import (
    CGROUP2_ROOT,
    bpf_object_path,
    cgroup_id,
    kernel_dev,
)


def _open_errno(path: Path, cgroup: Path | None = None) -> int:
    """errno of opening `path` (0 on success) in a forked child, placed in `cgroup` first.
    The exact errno tells EPERM (our LSM) from EACCES (permissions) or anything else."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = b"-999"
        try:
            os.close(r)
            if cgroup is not None:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            try:
                os.close(os.open(path, os.O_RDONLY))
                code = b"0"
            except OSError as exc:
                code = str(exc.errno).encode()
        finally:
            os.write(w, code)
            os._exit(0)
    os.close(w)
    out = os.read(r, 32)
    os.close(r)
    os.waitpid(pid, 0)
    return int(out or b"-999")


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    if not (CGROUP2_ROOT / "cgroup.procs").is_file() or not (CGROUP2_ROOT / "cgroup.controllers").exists():
        pytest.skip(f"needs cgroup v2 mounted at {CGROUP2_ROOT}")
    path = CGROUP2_ROOT / f"d4c-smoke-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()  # empty again: every probe process has exited


def test_lsm_denies_marker_file_to_one_cgroup_until_detached(bpf_lsm, child_cgroup, tmp_path, record_property):
    marker = tmp_path / "marker"
    other = tmp_path / "other"
    marker.write_text("deny me\n")
    other.write_text("allow me\n")
    assert _open_errno(marker, child_cgroup) == 0, "marker must open before any program is attached"

    with BpfObject(bpf_object_path("smoke")) as obj:
        started = time.perf_counter()
        obj.load()
        loaded = time.perf_counter()
        obj.attach("smoke_file_open")
        attached = time.perf_counter()
        record_property("load_s", round(loaded - started, 3))
        record_property("attach_s", round(attached - loaded, 3))
        print(f"smoke.bpf.o load {loaded - started:.3f}s attach {attached - loaded:.3f}s")

        st = marker.stat()
        obj.map("deny_inodes").update(struct.pack("<QII", st.st_ino, kernel_dev(st.st_dev), 0), b"\x01")
        obj.map("deny_cgroups").update(struct.pack("<Q", cgroup_id(child_cgroup)), b"\x01")

        assert _open_errno(marker, child_cgroup) == errno.EPERM
        assert _open_errno(other, child_cgroup) == 0, "only the marker inode is denied"
        assert _open_errno(marker) == 0, "processes outside the cgroup are not affected"
        with open(marker) as f:  # this test process is outside the cgroup too
            assert f.read() == "deny me\n"
        denials = struct.unpack("<Q", obj.map("deny_count").lookup(struct.pack("<I", 0)))[0]
        assert denials == 1, "the EPERM came from our program, exactly once"

        obj.detach_all()
        assert _open_errno(marker, child_cgroup) == 0, "no denial once detached"
