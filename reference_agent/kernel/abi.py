"""The kernel/userspace contract (bpf/include/*.h) in Python.

No layout is written here. `make -C bpf` generates `d4c_abi.py` from the BTF that clang emits
into the objects (bpf/abi_from_btf.py) and puts it next to them, so the mirror always describes
the objects that are loaded, wherever they are installed (`$D4C_BPF_BUILD`). This module loads
it and re-exports every name it defines (`abi.FileEvent`, `abi.Stat.D4C_STAT_EVENTS`,
`abi.D4C_MAX_PATTERNS`, ...), and adds what a layout cannot say: the words of the policy and of
ECS that enumerators stand for. Those follow from the enumerator names (the header's
convention: `D4C_OP_CREATE_EXECUTABLE` is `createExecutable`, `D4C_HOOK_FILE_OPEN` is the
kernel's `file_open` hook), so they are not written twice either.
"""

from __future__ import annotations

import enum
import importlib.machinery
import importlib.util
from types import ModuleType
from typing import Any

from reference_agent.kernel.support import bpf_build_dir

GENERATED = "d4c_abi.py"


class AbiUnavailable(ImportError):
    """The generated mirror is missing: the BPF objects were not built."""


def _load_generated() -> ModuleType:
    path = bpf_build_dir() / GENERATED
    if not path.is_file():
        raise AbiUnavailable(f"{path} is missing: run `make -C bpf` (it generates it from the objects' BTF)")
    loader = importlib.machinery.SourceFileLoader("reference_agent.kernel._generated_abi", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


_generated = _load_generated()


def __getattr__(name: str) -> Any:
    try:
        return getattr(_generated, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def _camel(upper_snake: str) -> str:
    """CREATE_EXECUTABLE -> createExecutable."""
    first, *rest = upper_snake.lower().split("_")
    return first + "".join(part.capitalize() for part in rest)


def words(members: type[enum.IntEnum], prefix: str, *, camel: bool = False) -> dict[str, enum.IntEnum]:
    """The word each enumerator stands for -> the enumerator: D4C_MOUNT_ROOT -> "root"."""
    out = {}
    for member in members:
        suffix = member.name.removeprefix(prefix)
        out[_camel(suffix) if camel else suffix.lower()] = member
    return out


def _trace_point(hook: enum.IntEnum) -> str:
    """cloud_defend.trace_point: tracepoints by their name, LSM hooks as `lsm__<hook>`."""
    name = hook.name.removeprefix("D4C_HOOK_").lower()
    return name if name.startswith("sched_") else f"lsm__{name}"


# Policy operation names (D5) -> kernel bits; the bit index is the index in op_selectors.
FILE_OP_BITS = words(_generated.FileOp, "D4C_OP_", camel=True)
PROCESS_OP_BITS = words(_generated.ProcessOp, "D4C_OP_", camel=True)
FILE_OP_NAMES = {int(bit): name for name, bit in FILE_OP_BITS.items()}
ACTION_BITS = words(_generated.Action, "D4C_ACTION_")  # log, alert, block
ACTION_NAMES = tuple((name, int(bit)) for name, bit in ACTION_BITS.items())
MOUNT_NAMES = {int(m): name for name, m in words(_generated.MountClass, "D4C_MOUNT_").items()}  # D19
EVENT_ACTION_NAMES = {int(m): name for name, m in words(_generated.EventAction, "D4C_EVENT_").items()}  # D25
KIND_NAMES = {int(m): name for name, m in words(_generated.ProcessKind, "D4C_KIND_").items()}
TRACE_POINTS = {int(hook): _trace_point(hook) for hook in _generated.Hook}
