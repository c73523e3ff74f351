"""Loads bpf/build/file_hooks.bpf.o, fills its maps from a compiled policy, attaches the LSM
programs, registers containers and turns ring-buffer records into FileActivity values."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from reference_agent.activity import FileActivity
from reference_agent.kernel import abi
from reference_agent.kernel.compiler import CompiledFilePolicy
from reference_agent.kernel.libbpf import BpfObject, RingBuffer
from reference_agent.kernel.records import decode_file_event
from reference_agent.kernel.support import bpf_object_path
from reference_agent.policy.operation import Container, Orchestrator

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class StartTimes:
    open_s: float
    load_s: float  # verification + map creation (the bulk under TCG)
    attach_s: float


class FileEnforcer:
    """One loaded file_hooks object. Use as a context manager; `close()` detaches."""

    def __init__(self, compiled: CompiledFilePolicy, object_path: str | None = None) -> None:
        self.compiled = compiled
        t0 = time.perf_counter()
        self.obj = BpfObject(object_path or bpf_object_path("file_hooks"))
        t1 = time.perf_counter()
        try:
            self.obj.load()
            t2 = time.perf_counter()
            self._write_policy()
            self.obj.attach_all()
            t3 = time.perf_counter()
            self._activities: list[FileActivity] = []
            self.ring = RingBuffer(self.obj.map("file_events"), self._on_record)
        except BaseException:
            self.obj.close()
            raise
        self.times = StartTimes(open_s=t1 - t0, load_s=t2 - t1, attach_s=t3 - t2)

    def set_policy(self, compiled: CompiledFilePolicy) -> None:
        """Replace the policy of the loaded programs, without reloading them. Registered
        containers must be added again (their masks depend on the selectors). The maps are
        written one entry at a time: a hook running meanwhile may see a mix of both policies."""
        for key in self.obj.map("container_selectors").keys():
            self.obj.map("container_selectors").delete(key)
        self.compiled = compiled
        self._write_policy()

    def _write_policy(self) -> None:
        c = self.compiled
        self.obj.map("file_policy").update(_U32.pack(0), bytes(c.policy))
        patterns = self.obj.map("path_patterns")
        for i, pattern in enumerate(c.patterns):
            patterns.update(_U32.pack(i), bytes(pattern))
        responses = self.obj.map("responses")
        for i, response in enumerate(c.responses):
            responses.update(_U32.pack(i), bytes(response))

    def add_container(self, cgroup_id: int, container: Container, orchestrator: Orchestrator | None = None) -> int:
        """Register a container's cgroup; returns its selector mask (0: no selector can match,
        and then nothing is stored: the kernel treats it like a host process)."""
        mask = self.compiled.container_mask(container, orchestrator)
        if mask:
            self.obj.map("container_selectors").update(_U64.pack(cgroup_id), _U64.pack(mask))
        else:
            self.remove_container(cgroup_id)
        return mask

    def remove_container(self, cgroup_id: int) -> None:
        self.obj.map("container_selectors").delete(_U64.pack(cgroup_id))

    def _on_record(self, raw: bytes) -> None:
        self._activities.append(decode_file_event(raw, self.compiled.names))

    def poll(self, timeout_ms: int = 0) -> list[FileActivity]:
        """Deliver what the ring buffer holds (waiting up to timeout_ms for the first record)."""
        self.ring.poll(timeout_ms)
        return self.drain()

    def drain(self) -> list[FileActivity]:
        """Everything committed so far, without waiting: the records of a syscall that has
        returned are all there (bpf_ringbuf_output commits before the hook returns), even if
        the epoll wake-up that poll() waits for has not arrived yet."""
        self.ring.consume()
        out, self._activities = self._activities, []
        return out

    def stats(self) -> dict[str, int]:
        stats = self.obj.map("stats")
        out = {}
        for stat in abi.Stat:
            if stat is abi.Stat.D4C_STAT_COUNT:
                continue
            raw = stats.lookup(_U32.pack(int(stat)))
            out[stat.name.removeprefix("D4C_STAT_").lower()] = _U64.unpack(raw)[0] if raw else 0
        return out

    def close(self) -> None:
        if getattr(self, "ring", None) is not None:
            self.ring.close()
        self.obj.close()

    def __enter__(self) -> "FileEnforcer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

