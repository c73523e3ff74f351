"""Kernel side of the reference agent: BPF objects (built from ../../bpf by `make -C bpf`), a
ctypes binding to libbpf, the policy→map compiler and ring-buffer record decoding into
`reference_agent.activity` values. See bpf/README.md.

    backend = BpfBackend()                       # agent.KernelBackend: file and process operations
    backend.apply_policy(policy, {cgroup_id: selector_names})
    for value in backend.poll(0.5): ...          # FileActivity | ProcessActivity | ProcessLifecycle

The names below are imported on first use (PEP 562): `d4c agent run` starts loading the BPF
objects (preload.py) before it imports the compiler, the enforcers and the policy package.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BpfBackend": "backend",
    "BpfError": "libbpf",
    "BpfObject": "libbpf",
    "RingBuffer": "libbpf",
    "CompileError": "compiler",
    "CompiledFilePolicy": "compiler",
    "compile_file_section": "compiler",
    "CompiledProcessPolicy": "process_compiler",
    "compile_process_section": "process_compiler",
    "FileEnforcer": "file_enforcer",
    "ProcessEnforcer": "process_enforcer",
    "RecordError": "records",
    "decode_file_event": "records",
    "decode_process_event": "records",
    "LsmSupport": "support",
    "probe_bpf_lsm": "support",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
