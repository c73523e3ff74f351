"""The BPF implementation of `reference_agent.agent.KernelBackend`: file and process operations.

apply_policy compiles both sections first (a CompileError refuses the policy; the loaded one
stays), loads and attaches file_hooks.bpf.o and process_hooks.bpf.o on the first call (in two
threads: the kernel verifies both at once, on two CPUs; ctypes releases the GIL; or takes them
already loaded from a Preload that `d4c agent run` started before its imports), and
afterwards switches the policy slots of both atomically (file_enforcer.py, process_enforcer.py).
poll() drains both ring buffers and returns one batch in kernel timestamp order (an exec's
lifecycle before a file activity of the new image; a fork/exec's lifecycle before its
activity: same timestamp, ring order kept by the stable sort).
"""

from __future__ import annotations

import os
import select
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Mapping

from reference_agent.activity import FileActivity, ProcessActivity, ProcessLifecycle
from reference_agent.kernel.compiler import CompiledFilePolicy, compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.process_compiler import (
    CompiledProcessPolicy,
    compile_process_section,
)
from reference_agent.kernel.preload import Preload
from reference_agent.kernel.process_enforcer import ProcessEnforcer
from reference_agent.policy.model import Policy

Polled = FileActivity | ProcessActivity | ProcessLifecycle


def selector_bits(compiled: CompiledFilePolicy | CompiledProcessPolicy, names: Iterable[str]) -> int:
    """Selector names (any section) -> bits of that compiled section's selectors."""
    wanted = set(names)
    return sum(1 << bit for bit, name in enumerate(compiled.names) if name in wanted)


class BpfBackend:
    def __init__(self, object_path: str | None = None, process_object_path: str | None = None,
                 pin_dir: str | os.PathLike[str] | None = None, preload: Preload | None = None) -> None:
        """`pin_dir`: pin maps and links there so the policy outlives this process, taking
        over what an earlier agent pinned (kernel/pinning.py, D33); None: detach on close.
        `preload`: where the objects are already being loaded (preload.py), used when nothing
        is pinned (pinned maps must be reused before the load); else loaded on the first
        apply_policy."""
        self._pin_dir = pin_dir
        self._object_path = object_path
        self._process_object_path = process_object_path
        self._preload = preload
        self.enforcer: FileEnforcer | None = None
        self.process_enforcer: ProcessEnforcer | None = None

    def apply_policy(self, policy: Policy, container_masks: Mapping[int, frozenset[str]]) -> None:
        compiled = compile_file_section(policy)
        compiled_process = compile_process_section(policy)
        masks = {cgid: selector_bits(compiled, names) for cgid, names in container_masks.items()}
        # Every known container is registered on the process side, nothing applying or not:
        # its tasks' lifecycle feeds the agent's process table.
        process_masks = {cgid: selector_bits(compiled_process, names) for cgid, names in container_masks.items()}
        if self.enforcer is None or self.process_enforcer is None:
            self._load(compiled, compiled_process, masks, process_masks)
            assert self.enforcer is not None and self.process_enforcer is not None
            for cgid, mask in masks.items():
                self.enforcer.set_container_mask(cgid, mask)
            for cgid, mask in process_masks.items():
                self.process_enforcer.set_container_mask(cgid, mask)
        else:
            self.enforcer.set_policy(compiled, masks)
            self.process_enforcer.set_policy(compiled_process, process_masks)

    def _load(self, compiled: CompiledFilePolicy, compiled_process: CompiledProcessPolicy,
              masks: Mapping[int, int], process_masks: Mapping[int, int]) -> None:
        """Both objects loaded and attached at once; if either fails, neither stays loaded
        (pinned ones stay as the previous agent left them, or as this one switched them)."""
        pins = self._pin_dir
        preload, self._preload = self._preload, None
        if preload is not None and pins is not None:
            preload.close()  # pinned maps are reused at load time: these loads cannot be used
            preload = None
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bpf-load") as pool:
            if preload is not None:
                file_side = pool.submit(lambda: FileEnforcer(compiled, loaded=preload.take("file_hooks")))
                process_side = pool.submit(lambda: ProcessEnforcer(compiled_process,
                                                                   loaded=preload.take("process_hooks")))
            else:
                file_side = pool.submit(FileEnforcer, compiled, self._object_path, pin_dir=pins, masks=masks)
                process_side = pool.submit(ProcessEnforcer, compiled_process, self._process_object_path,
                                           pin_dir=pins, masks=process_masks)
        if preload is not None:
            preload.close()  # what an enforcer that failed did not take
        loaded = [f.result() for f in (file_side, process_side) if f.exception() is None]
        failed = [f.exception() for f in (file_side, process_side) if f.exception() is not None]
        if failed:
            for enforcer in loaded:
                enforcer.close()
            raise failed[0]  # type: ignore[misc]
        self.enforcer, self.process_enforcer = loaded  # type: ignore[assignment]

    def poll(self, timeout: float) -> list[Polled]:
        if self.enforcer is None or self.process_enforcer is None:
            return []
        if timeout > 0:
            fds = [self.enforcer.ring.fileno(), self.process_enforcer.fileno()]
            select.select(fds, [], [], timeout)
        values: list[Polled] = list(self.process_enforcer.drain())
        values.extend(self.enforcer.drain())
        values.sort(key=lambda v: v.timestamp_ns)
        return values

    def counters(self) -> dict[str, dict[str, int]]:
        """The `stats` counters of each program ("file", "process"), as the kernel has them now
        (ringbuf_full: records lost because that ring buffer was full)."""
        out: dict[str, dict[str, int]] = {}
        if self.enforcer is not None:
            out["file"] = self.enforcer.stats()
        if self.process_enforcer is not None:
            out["process"] = self.process_enforcer.stats()
        return out

    def close(self) -> None:
        if self._preload is not None:  # never applied a policy
            self._preload.close()
            self._preload = None
        if self.process_enforcer is not None:
            self.process_enforcer.close()
            self.process_enforcer = None
        if self.enforcer is not None:
            self.enforcer.close()
            self.enforcer = None
