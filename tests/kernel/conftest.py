"""Tests that need a kernel that enforces with BPF LSM (run them in the VM: `d4c vm run --
python3 -m pytest tests/kernel`). Everywhere else they skip, saying why."""

from __future__ import annotations

import pytest

from reference_agent.kernel.support import LsmSupport, probe_bpf_lsm


@pytest.fixture(scope="session")
def bpf_lsm() -> LsmSupport:
    support = probe_bpf_lsm()
    if not support.available:
        pytest.skip(f"needs a BPF-LSM kernel: {support.reason}")
    return support
