"""Kernel side of the reference agent: BPF objects (built from ../../bpf by `make -C bpf`), a
ctypes binding to libbpf, the policy→map compiler and ring-buffer record decoding into
`reference_agent.activity` values. See bpf/README.md.

    backend = BpfBackend()                       # agent.KernelBackend: file and process operations
    backend.apply_policy(policy, {cgroup_id: selector_names})
    for value in backend.poll(0.5): ...          # FileActivity | ProcessActivity | ProcessLifecycle
"""

from reference_agent.kernel.backend import BpfBackend
from reference_agent.kernel.compiler import (
    CompiledFilePolicy,
    CompileError,
    compile_file_section,
)
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.libbpf import BpfError, BpfObject, RingBuffer
from reference_agent.kernel.process_compiler import (
    CompiledProcessPolicy,
    compile_process_section,
)
from reference_agent.kernel.process_enforcer import ProcessEnforcer
from reference_agent.kernel.records import RecordError, decode_file_event, decode_process_event
from reference_agent.kernel.support import LsmSupport, probe_bpf_lsm

__all__ = [
    "BpfBackend",
    "BpfError",
    "BpfObject",
    "CompileError",
    "CompiledFilePolicy",
    "CompiledProcessPolicy",
    "FileEnforcer",
    "LsmSupport",
    "ProcessEnforcer",
    "RecordError",
    "RingBuffer",
    "compile_file_section",
    "compile_process_section",
    "decode_file_event",
    "decode_process_event",
    "probe_bpf_lsm",
]
