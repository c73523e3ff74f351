"""The BPF implementation of `reference_agent.agent.KernelBackend` (file operations).

apply_policy compiles first (a CompileError refuses the policy; the loaded one stays), loads
and attaches file_hooks.bpf.o on the first call, and afterwards switches policy slots
atomically (file_enforcer.py). Process operations (fork/exec) are not produced yet:
bpf/process_hooks.bpf.c does not exist (bpf/README.md, known gaps).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reference_agent.activity import FileActivity
from reference_agent.kernel.compiler import CompiledFilePolicy, compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.policy.model import Policy


def selector_bits(compiled: CompiledFilePolicy, names: Iterable[str]) -> int:
    """Selector names (any section) -> bits of the file section's selectors."""
    wanted = set(names)
    return sum(1 << bit for bit, name in enumerate(compiled.names) if name in wanted)


class BpfBackend:
    def __init__(self, object_path: str | None = None) -> None:
        self._object_path = object_path
        self.enforcer: FileEnforcer | None = None

    def apply_policy(self, policy: Policy, container_masks: Mapping[int, frozenset[str]]) -> None:
        compiled = compile_file_section(policy)
        masks = {cgid: selector_bits(compiled, names) for cgid, names in container_masks.items()}
        if self.enforcer is None:
            self.enforcer = FileEnforcer(compiled, self._object_path)
            for cgid, mask in masks.items():
                self.enforcer.set_container_mask(cgid, mask)
        else:
            self.enforcer.set_policy(compiled, masks)

    def poll(self, timeout: float) -> list[FileActivity]:
        if self.enforcer is None:
            return []
        return self.enforcer.poll(max(0, int(timeout * 1000)))

    def close(self) -> None:
        if self.enforcer is not None:
            self.enforcer.close()
            self.enforcer = None
