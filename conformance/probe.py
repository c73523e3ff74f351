"""Is this a BPF-LSM kernel, recent enough for the scenario? Kernel-tier items skip with the
reason when it is not."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

LSM_FILE = Path("/sys/kernel/security/lsm")


@lru_cache(maxsize=1)
def bpf_lsm_missing() -> str | None:
    """None when BPF LSM is active and its programs can load; otherwise why not."""
    try:
        active = LSM_FILE.read_text().strip().split(",")
    except OSError as error:
        return f"no BPF-LSM kernel: cannot read {LSM_FILE} ({error.strerror}); run the kernel tier in the VM"
    if "bpf" not in active:
        return f"no BPF-LSM kernel: `bpf` is not among the active LSMs ({','.join(active)}); boot with lsm=...,bpf"
    # The LSM list can name bpf while lockdown or a missing config still forbids loading
    # programs; bpftool's probe actually loads a minimal lsm program.
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        return None  # cannot tell more; the agent's own start-up will say
    try:
        probe = subprocess.run([bpftool, "feature", "probe", "kernel"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"BPF-LSM probe failed: {error}"
    if "program_type lsm is available" not in probe.stdout:
        return "no BPF-LSM kernel: BPF LSM programs cannot be loaded here (bpftool feature probe)"
    return None


def kernel_too_old(required: tuple[int, int] | None, release: str | None = None) -> str | None:
    """None when this node's Linux is at least `required` (a scenario's `requires.kernel`); else why.

    The kernel tier's containers run on the node the suite runs on, so its kernel is the one
    the implementation enforces on."""
    if required is None:
        return None
    release = release if release is not None else os.uname().release
    found = re.match(r"(\d+)\.(\d+)", release)
    if found is None:
        return None  # an unknown form: let the scenario run and say what it finds
    if (int(found[1]), int(found[2])) >= required:
        return None
    return f"the scenario needs Linux {required[0]}.{required[1]} or later (requires.kernel); this node runs {release}"
