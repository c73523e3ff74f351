"""What differs between the kernels the programs load on, settled before each load.

CO-RE already relocates field offsets; what it cannot do is follow a traced kernel function
that was renamed. 7.x renamed do_filp_open to do_file_open (same arguments, same role: every
open returns through it), so an fentry/fexit program naming a function the running kernel's
BTF lacks is retargeted to the function's other name before the load. The programs mean the
same on every kernel; only where libbpf attaches them changes.

Nor can one object keep its per-CPU scratch its own on every kernel: where hooks can be
preempted (lazy preemption, 6.13+) they must turn preemption off while they run, with a kfunc
that only 6.10+ has and that an older kernel refuses to load. Kernels with it get the `v610`
build of each hook object (bpf/include/d4c_policy.bpf.h, "Preemption").

Some operations moved to a hook of their own on newer kernels: from 6.2 an ACL is set through
inode_set_acl, which 6.1 lacks (it sets ACLs through inode_setxattr). An object carries a
program for each hook; the one on a hook the running kernel lacks is left out of the load.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)

# A traced function -> its names on other kernels, newest first.
RENAMED_FUNCTIONS: dict[str, tuple[str, ...]] = {"do_filp_open": ("do_file_open",)}
TRACING_SECTIONS = ("fentry/", "fexit/", "fmod_ret/")
# LSM hooks only newer kernels have -> the hook that sees the same operation on older ones.
NEWER_LSM_HOOKS: dict[str, str] = {"inode_set_acl": "inode_setxattr"}
_BTF_KIND_FUNC = 12


def traced_function(section: str) -> str | None:
    """The kernel function an fentry/fexit/fmod_ret section names, else None."""
    for prefix in TRACING_SECTIONS:
        if section.startswith(prefix):
            return section.removeprefix(prefix)
    return None


class KernelFunctions:
    """Which functions the running kernel's BTF has (parsed once per process, on first use)."""

    def __init__(self, c: ctypes.CDLL) -> None:
        self._c = c
        self._btf: int | None = None

    def _vmlinux(self) -> int | None:
        if self._btf is None:
            ptr = self._c.btf__load_vmlinux_btf()
            self._btf = ptr or 0
        return self._btf or None

    @functools.cache
    def has(self, name: str) -> bool | None:
        """True/False from the kernel's BTF; None when it cannot be read (then nothing is
        retargeted and the load reports the real problem)."""
        btf = self._vmlinux()
        if btf is None:
            return None
        return self._c.btf__find_by_name_kind(btf, name.encode(), _BTF_KIND_FUNC) > 0


# Hook objects built in a v610 variant too (bpf/Makefile), and the kfunc that selects it.
GUARDED_OBJECTS = ("file_hooks", "process_hooks")
PREEMPT_KFUNC = "bpf_preempt_disable"


def object_file(name: str, has) -> str:
    """The file of object `name` for the running kernel (`has`: KernelFunctions.has)."""
    if name in GUARDED_OBJECTS and has(PREEMPT_KFUNC):
        return f"{name}.v610.bpf.o"
    return f"{name}.bpf.o"


def attach_target(function: str, has) -> str | None:
    """The name to attach to instead of `function`, or None to keep it."""
    if function not in RENAMED_FUNCTIONS or has(function) is not False:
        return None
    other = next((name for name in RENAMED_FUNCTIONS[function] if has(name)), None)
    if other:
        log.info("kernel function %s is %s on this kernel: attaching there", function, other)
    return other


def left_out(section: str, has) -> bool:
    """Whether the program of `section` is left out of the load: an lsm program on a hook of
    NEWER_LSM_HOOKS that the running kernel lacks (each LSM hook is the BTF function
    bpf_lsm_<hook>). Unknown (no BTF): loaded, so that the load reports the real problem."""
    hook = section.removeprefix("lsm/") if section.startswith("lsm/") else None
    if hook not in NEWER_LSM_HOOKS or has(f"bpf_lsm_{hook}") is not False:
        return False
    log.info("LSM hook %s is not in this kernel (%s sees its operations): program left out",
             hook, NEWER_LSM_HOOKS[hook])
    return True
