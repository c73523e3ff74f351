"""What FileEnforcer and ProcessEnforcer have in common: one BPF object opened, loaded, its
first policy slot written and its programs attached (each step timed), a ring buffer decoded
into values, the two-slot `container_selectors` update of a policy switch, the stats array,
and closing. The enforcers keep what differs: their maps' policy layout and container facts.

Thread safety: one RLock serialises ring-buffer consumption and map writes (drain() and the
subclasses' policy and container calls take it); poll() waits for records without holding it.
"""

from __future__ import annotations

import select
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from reference_agent.kernel import abi
from reference_agent.kernel.libbpf import BpfObject, RingBuffer
from reference_agent.kernel.records import record_slot
from reference_agent.policy.operation import Container, Orchestrator
from reference_agent.kernel.support import bpf_object_path

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

V = TypeVar("V")


@dataclass(frozen=True)
class StartTimes:
    open_s: float
    load_s: float  # verification + map creation (the bulk under TCG)
    attach_s: float


class LoadedProgram(Generic[V]):
    """One loaded BPF object whose ring buffer yields values of type V, enforcing a compiled
    policy section (`compiled.names` names its selector bits)."""

    obj: BpfObject
    ring: RingBuffer
    times: StartTimes

    def __init__(self, name: str, object_path: str | None, ring_map: str, compiled: Any) -> None:
        self.compiled = compiled
        self._slot = 0  # the live slot; active_policy starts zeroed
        self._masks: dict[int, int] = {}  # cgroup id -> selector mask in the live slot
        self._facts: dict[int, tuple[Container, Orchestrator | None]] = {}  # add_container's
        self._lock = threading.RLock()
        self._names: list[tuple[str, ...]] = [compiled.names, ()]  # selector names per slot
        self._values: list[V] = []
        self._open(name, object_path, ring_map, lambda: self._write_policy(self._slot, compiled))

    def _write_policy(self, slot: int, compiled: Any) -> None:
        raise NotImplementedError

    def _open(self, name: str, object_path: str | None, ring_map: str,
              write_first_policy: Callable[[], None]) -> None:
        """Open bpf/build/<name>.bpf.o (or object_path), load it, write the first policy slot
        (before attaching: a hook never runs without a policy), attach, open the ring buffer."""
        t0 = time.perf_counter()
        self.obj = BpfObject(object_path or bpf_object_path(name))
        t1 = time.perf_counter()
        try:
            self.obj.load()
            t2 = time.perf_counter()
            write_first_policy()
            self.obj.attach_all()
            t3 = time.perf_counter()
            self.ring = RingBuffer(self.obj.map(ring_map), self._on_record)
        except BaseException:
            self.obj.close()
            raise
        self.times = StartTimes(open_s=t1 - t0, load_s=t2 - t1, attach_s=t3 - t2)

    def _decode(self, raw: bytes, selector_names: tuple[str, ...]) -> V:
        raise NotImplementedError

    def _on_record(self, raw: bytes) -> None:
        # Named by the policy of the slot that decided it, which may not be the live one.
        self._values.append(self._decode(raw, self._names[record_slot(raw)]))

    # -- maps shared by both programs' layouts -------------------------------------------------

    def _write_responses(self, slot: int, responses: Sequence[abi.Response]) -> None:
        table = self.obj.map("responses")
        for i, response in enumerate(responses):
            table.update(U32.pack(slot * abi.D4C_MAX_RESPONSES + i), bytes(response))

    def _write_container_selectors(self, live_slot: int, live: Mapping[int, int],
                                   new_slot: int, new: Mapping[int, int]) -> None:
        """Before a switch: every cgroup of either policy gets its mask in both slots, so a
        hook sees a whole policy whichever slot `active_policy` names when it reads it."""
        table = self.obj.map("container_selectors")
        for cgid in set(live) | set(new):
            value = abi.ContainerSelectors()
            value.selectors[live_slot] = live.get(cgid, 0)
            value.selectors[new_slot] = new.get(cgid, 0)
            table.update(U64.pack(cgid), bytes(value))

    def _activate(self, slot: int) -> None:
        self.obj.map("active_policy").update(U32.pack(0), U32.pack(slot))

    # -- events and counters --------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> list[V]:
        """Deliver what the ring buffer holds (waiting up to timeout_ms for the first record)."""
        if timeout_ms > 0:
            select.select([self.ring.fileno()], [], [], timeout_ms / 1000)
        return self.drain()

    def drain(self) -> list[V]:
        """Everything committed so far, without waiting: the records of a syscall that has
        returned are all there (bpf_ringbuf_output commits before the hook returns), even if
        the epoll wake-up that poll() waits for has not arrived yet."""
        with self._lock:
            self.ring.consume()
            out, self._values = self._values, []
            return out

    def fileno(self) -> int:
        return self.ring.fileno()

    def stats(self) -> dict[str, int]:
        """The counters of the program's `stats` array, by lower-case name (enum d4c_stat; a
        counter the program never increments reads 0)."""
        table = self.obj.map("stats")
        out = {}
        for name, stat in abi.words(abi.Stat, "D4C_STAT_").items():
            raw = table.lookup(U32.pack(int(stat)))
            out[name] = U64.unpack(raw)[0] if raw else 0
        return out

    def close(self) -> None:
        if getattr(self, "ring", None) is not None:
            self.ring.close()
        self.obj.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
