"""Where the BPF objects are, how the kernel encodes things userspace sees differently, and
whether this kernel can enforce at all (BPF LSM enabled AND an lsm program really loads)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reference_agent.kernel import kernel_compat
from reference_agent.kernel.libbpf import BpfError, BpfObject, lib

# bpf/build/ of this checkout, where `make -C bpf` puts the objects; D4C_BPF_BUILD overrides
# it (an installed agent, a separate build directory).
_CHECKOUT_BUILD = Path(__file__).resolve().parents[2] / "bpf" / "build"
LSM_LIST = Path("/sys/kernel/security/lsm")
CGROUP2_ROOT = Path("/sys/fs/cgroup")


def bpf_build_dir() -> Path:
    return Path(os.environ.get("D4C_BPF_BUILD", _CHECKOUT_BUILD))


def bpf_object_path(name: str, variant: str | None | bool = True) -> Path:
    """Path of bpf/build/<name>.bpf.o, or of the variant of it the running kernel needs
    (`variant` True: kernel_compat.variant_for; None: the default build; else that variant)."""
    if variant is True:
        variant = _running_kernel_variant() if name in kernel_compat.VARIANT_OBJECTS else None
    return bpf_build_dir() / kernel_compat.object_file(name, variant)


def _running_kernel_variant() -> str | None:
    libbpf = lib()
    return kernel_compat.variant_for(libbpf.missing_features(), libbpf.functions.has)


def kernel_dev(st_dev: int) -> int:
    """The kernel's internal dev_t (MAJOR << 20 | MINOR) for a userspace st_dev, as BPF reads
    `inode->i_sb->s_dev`; the two encodings differ (new_encode_dev vs MKDEV)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def cgroup_id(path: str | os.PathLike[str]) -> int:
    """The cgroup v2 id of a cgroup directory: its kernfs inode number, what
    bpf_get_current_cgroup_id() returns for tasks in it."""
    return os.stat(path).st_ino


@dataclass(frozen=True)
class LsmSupport:
    available: bool
    reason: str  # why not, or what was checked


def lsm_list_problem() -> str | None:
    """Why the active LSM list rules BPF LSM out (unreadable, or no `bpf` in it), or None."""
    try:
        active = LSM_LIST.read_text().strip().split(",")
    except OSError as exc:
        return f"cannot read {LSM_LIST} ({exc.strerror}): securityfs missing or not root"
    if "bpf" not in active:
        return f"BPF LSM not active: {LSM_LIST} lists {','.join(active)}"
    return None


def probe_bpf_lsm() -> LsmSupport:
    """BPF LSM must be in the active LSM list and an lsm program must load and attach: a
    locked-down kernel lists `bpf` yet refuses the load (EPERM), as this project's host does."""
    problem = lsm_list_problem()
    if problem is not None:
        return LsmSupport(False, problem)
    path = bpf_object_path("smoke")
    if not path.is_file():
        return LsmSupport(False, f"{path} is missing: run `make -C bpf` on the host")
    try:
        with BpfObject(path) as obj:
            obj.load()
            obj.attach_all()
    except BpfError as exc:
        return LsmSupport(False, f"an lsm program does not load here ({exc.what}: {os.strerror(exc.errno)})")
    return LsmSupport(True, "bpf in the LSM list and lsm/file_open loads and attaches")
