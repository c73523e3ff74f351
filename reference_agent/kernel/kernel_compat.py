"""What differs between the kernels the programs load on, settled before each load.

CO-RE already relocates field offsets; what it cannot do is follow a traced kernel function
that was renamed. 7.x renamed do_filp_open to do_file_open (same arguments, same role: every
open returns through it), so an fentry/fexit program naming a function the running kernel's
BTF lacks is retargeted to the function's other name before the load. The programs mean the
same on every kernel; only where libbpf attaches them changes.

Nor can one object serve every kernel. The hook objects are built in three variants
(bpf/Makefile), and `variant_for` picks one, oldest first:

  v510     kernels before 5.19 lack helpers the default objects call (bpf_loop,
           bpf_get_current_task_btf, bpf_task_pt_regs) or pass path_rename no flags; the v510
           build does without them (bpf/include/d4c_compat.bpf.h), found by probing the kernel
  default  5.19 up to 6.9
  v610     where hooks can be preempted (lazy preemption, 6.13+) they must turn preemption off
           while they run, with a kfunc only 6.10+ has and an older kernel refuses to load;
           kernels whose BTF has it get the v610 build (bpf/include/d4c_policy.bpf.h,
           "Preemption")

Some operations moved to a hook of their own on newer kernels: from 6.2 an ACL is set through
inode_set_acl, which 5.10 and 6.1 lack (they set ACLs through inode_setxattr). An object carries
a program for each hook; the one on a hook the running kernel lacks is left out of the load.
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

# Objects built in variants (bpf/Makefile), the variants' names, and the kfunc that selects v610.
VARIANT_OBJECTS = ("file_hooks", "process_hooks")
V510 = "v510"
V610 = "v610"
PREEMPT_KFUNC = "bpf_preempt_disable"
# Helpers of the default objects -> (enum bpf_func_id, the kernel that added them).
HELPERS: dict[str, tuple[int, str]] = {
    "bpf_get_current_task_btf": (158, "5.11"),
    "bpf_task_pt_regs": (175, "5.15"),
    "bpf_loop": (181, "5.17"),
}
_BPF_PROG_TYPE_KPROBE = 2  # a type whose helpers include every one above where it exists
# What the v510 objects do differently (bpf/README.md, "Kernel variants"), said at start.
V510_DIFFERENCES = ("rename is decided at security_path_rename, before the other LSMs (a rename "
                    "another LSM refuses is also reported by d4c); syscall registers are read "
                    "at the top of the task's 16 KiB kernel stack")


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

    @functools.cache
    def parameters(self, name: str) -> int | None:
        """How many parameters the kernel function `name` has, from the kernel's BTF; None
        when the BTF cannot be read or lacks the function."""
        btf = self._vmlinux()
        if btf is None:
            return None
        func_id = self._c.btf__find_by_name_kind(btf, name.encode(), _BTF_KIND_FUNC)
        if func_id <= 0:
            return None
        func = _BtfType.from_address(self._c.btf__type_by_id(btf, func_id))
        proto = _BtfType.from_address(self._c.btf__type_by_id(btf, func.type))
        return proto.info & 0xFFFF  # vlen: the prototype's parameters


class _BtfType(ctypes.Structure):
    """struct btf_type (uapi/linux/btf.h): for a FUNC, `type` is its prototype."""

    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("type", ctypes.c_uint32)]


def missing_features(c: ctypes.CDLL, functions: KernelFunctions) -> list[str]:
    """What the default objects need and the running kernel lacks, each named with the
    kernel that brought it. A probe that cannot run at all (no privilege to load a
    program) counts as present: the default object's load then reports the real problem."""
    missing = [f"{helper} ({since})" for helper, (helper_id, since) in HELPERS.items()
               if c.libbpf_probe_bpf_helper(_BPF_PROG_TYPE_KPROBE, helper_id, None) == 0]
    # Only a kernel with every helper needs its BTF parsed for this (5.17 and 5.18).
    if not missing and functions.parameters("bpf_lsm_path_rename") == 4:
        missing.append("path_rename flags (5.19)")
    return missing


def variant_for(missing: list[str], has) -> str | None:
    """The build of the hook objects for the running kernel: v510 where it lacks what the
    default objects need (`missing`, from missing_features), v610 where its BTF has
    bpf_preempt_disable (`has`: KernelFunctions.has; None, BTF unreadable, counts as no),
    else None, the default build."""
    if missing:
        return V510
    if has(PREEMPT_KFUNC):
        return V610
    return None


def object_file(name: str, variant: str | None) -> str:
    """The file name of object `name` in `variant` (None: the default build)."""
    if variant is None or name not in VARIANT_OBJECTS:
        return f"{name}.bpf.o"
    return f"{name}.{variant}.bpf.o"


def variant_notice(missing: list[str]) -> str | None:
    """The start-up line that says which objects this kernel gets and what that changes."""
    if not missing:
        return None
    return (f"this kernel lacks {', '.join(missing)}: loading the {V510} objects, which enforce the "
            f"same policy; differences: {V510_DIFFERENCES}")


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
