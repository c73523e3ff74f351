"""kernel/preload.py where no BPF LSM is needed: a load that fails is reported by whoever takes
the object (and as the reason the kernel cannot enforce), and closing never raises."""

from __future__ import annotations

import pytest

from reference_agent.kernel import support
from reference_agent.kernel.libbpf import BpfError
from reference_agent.kernel.preload import Preload


def test_a_missing_object_is_the_reason_and_raises_when_taken(tmp_path, monkeypatch):
    lsm = tmp_path / "lsm"
    lsm.write_text("lockdown,capability,bpf\n")
    monkeypatch.setattr("reference_agent.kernel.support.LSM_LIST", lsm)
    missing = tmp_path / "file_hooks.bpf.o"
    preload = Preload({"file_hooks": str(missing), "process_hooks": str(tmp_path / "process_hooks.bpf.o")})
    try:
        assert preload.lsm_problem() == f"{missing} is missing: run `make -C bpf` on the host"
        with pytest.raises(OSError):
            preload.take("process_hooks")
    finally:
        preload.close()
        preload.close()  # twice: nothing left to close


def test_bpf_not_in_the_lsm_list_is_the_reason(tmp_path, monkeypatch):
    lsm = tmp_path / "lsm"
    lsm.write_text("lockdown,capability,apparmor\n")
    monkeypatch.setattr("reference_agent.kernel.support.LSM_LIST", lsm)
    preload = Preload()
    try:
        assert preload.lsm_problem() == f"BPF LSM not active: {lsm} lists lockdown,capability,apparmor"
    finally:
        preload.close()


def test_a_refused_load_is_the_reason(tmp_path, monkeypatch):
    # What a locked-down kernel that lists `bpf` does (this project's host): EPERM on load.
    lsm = tmp_path / "lsm"
    lsm.write_text("bpf\n")
    monkeypatch.setattr("reference_agent.kernel.support.LSM_LIST", lsm)

    def refuse(self):
        raise BpfError(1, "load of file_hooks.bpf.o")

    monkeypatch.setattr("reference_agent.kernel.libbpf.BpfObject.load", refuse)
    if not support.bpf_object_path("file_hooks").is_file():
        pytest.skip("bpf/build/file_hooks.bpf.o not built (make -C bpf)")
    preload = Preload()
    try:
        assert preload.lsm_problem() == ("an lsm program does not load here "
                                         "(load of file_hooks.bpf.o: Operation not permitted)")
        with pytest.raises(BpfError):
            preload.take("file_hooks")
    finally:
        preload.close()
