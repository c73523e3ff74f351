"""What FileEnforcer and ProcessEnforcer have in common: one BPF object opened, loaded, its
first policy slot written and its programs attached (each step timed), a ring buffer decoded
into values, the two-slot `container_selectors` update of a policy switch, the stats array,
and closing. The enforcers keep what differs: their maps' policy layout and container facts.

Thread safety: one RLock serialises ring-buffer consumption and map writes (drain() and the
subclasses' policy and container calls take it); poll() waits for records without holding it.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from reference_agent.kernel import abi
from reference_agent.kernel.libbpf import BpfError, BpfObject, RingBuffer
from reference_agent.kernel.pinning import PinnedState
from reference_agent.kernel.records import RecordError, record_slot
from reference_agent.policy.operation import Container, Orchestrator
from reference_agent.kernel.support import bpf_object_path

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

V = TypeVar("V")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartTimes:
    open_s: float
    load_s: float  # verification + map creation (the bulk under TCG)
    attach_s: float


class LoadedProgram(ABC, Generic[V]):
    """One loaded BPF object whose ring buffer yields values of type V, enforcing a compiled
    policy section (`compiled.names` names its selector bits)."""

    obj: BpfObject
    ring: RingBuffer
    times: StartTimes

    def __init__(self, name: str, object_path: str | None, ring_map: str, compiled: Any,
                 pin_dir: str | os.PathLike[str] | None = None,
                 masks: Mapping[int, int] | None = None, loaded: BpfObject | None = None) -> None:
        """`pin_dir`: keep maps and links pinned there (pinning.py, D33), taking over the
        state a previous agent left; `masks` (cgroup id -> selector bits of `compiled`) are
        then part of the first switch, so no container is unenforced during the take-over.
        `loaded`: the object already opened and loaded (preload.py; only without pin_dir,
        whose maps are reused before the load); it becomes this one's."""
        if loaded is not None and pin_dir is not None:
            raise ValueError("a preloaded object cannot reuse pinned maps")
        self.compiled = compiled
        self._slot = 0  # the live slot; active_policy starts zeroed
        self._masks: dict[int, int] = {}  # cgroup id -> selector mask in the live slot
        self._facts: dict[int, tuple[Container, Orchestrator | None]] = {}  # add_container's
        self._lock = threading.RLock()
        self._names: list[tuple[str, ...]] = [compiled.names, ()]  # selector names per slot
        self._values: list[V] = []
        self.undecodable = 0  # records skipped because they did not decode (logged, see _on_record)
        self._program = name
        self._pins = PinnedState(pin_dir, name) if pin_dir is not None else None
        self.took_over = False  # True: a previous agent's pinned policy was replaced
        self._open(name, object_path, ring_map, compiled, masks or {}, loaded)

    @abstractmethod
    def _write_policy(self, slot: int, compiled: Any) -> None:
        ...

    @abstractmethod
    def set_policy(self, compiled: Any, masks: Mapping[int, int] | None = None) -> None:
        ...

    def _adopt(self) -> None:
        """Take over pinned maps: learn the live slot and the masks stored for it, so the
        first switch keeps or clears them like any switch does."""
        raw = self.obj.map("active_policy").lookup(U32.pack(0))
        self._slot = U32.unpack(raw)[0] & 1 if raw else 0
        self._names[self._slot] = ()  # the previous agent's names: its records are not ours
        table = self.obj.map("container_selectors")
        for key in table.keys():
            value = table.lookup(key)
            if value is not None:
                self._masks[U64.unpack(key)[0]] = abi.ContainerSelectors.from_buffer_copy(value).selectors[self._slot]

    def _open(self, name: str, object_path: str | None, ring_map: str, compiled: Any,
              masks: Mapping[int, int], loaded: BpfObject | None = None) -> None:
        """Open bpf/build/<name>.bpf.o (or object_path), load it, write the first policy
        (before attaching: a hook never runs without a policy), attach, pin."""
        t0 = time.perf_counter()
        path = object_path or bpf_object_path(name)
        self.obj = loaded if loaded is not None else BpfObject(path)
        t1 = time.perf_counter()
        try:
            adopting = self._pins is not None and self._pins.has_maps()
            if self._pins is not None:
                self._pins.reuse_maps(self.obj)
            try:
                if loaded is None:
                    self.obj.load()
            except BpfError as exc:
                if not adopting:
                    raise
                # A build whose maps differ from the pinned ones: fresh maps beside them.
                log.warning("pinned maps of %s not reusable (%s): loading fresh ones", name, exc.what)
                self.obj.close()
                self.obj = BpfObject(path)
                assert self._pins is not None
                self._pins.reuse_maps(self.obj, fresh=True)
                self.obj.load()
                adopting = False
            t2 = time.perf_counter()
            self.ring = RingBuffer(self.obj.map(ring_map), self._on_record)
            if adopting:
                self._adopt()
                self.set_policy(compiled, masks)
                self.took_over = True
            else:
                self._write_policy(self._slot, compiled)
            self.obj.attach_all()
            if self._pins is not None:
                self._pins.pin_links(self.obj.links)
            t3 = time.perf_counter()
        except BaseException:
            self.close()
            raise
        self.times = StartTimes(open_s=t1 - t0, load_s=t2 - t1, attach_s=t3 - t2)

    @abstractmethod
    def _decode(self, raw: bytes, selector_names: tuple[str, ...]) -> V:
        ...

    def _on_record(self, raw: bytes) -> None:
        # Named by the policy of the slot that decided it, which may not be the live one.
        try:
            self._values.append(self._decode(raw, self._names[record_slot(raw)]))
        except (RecordError, IndexError) as error:
            # One bad record must not end the agent (enforcement is the kernel's and goes on);
            # it is an event lost, so it is said: the first one in full, then every 1000th.
            self.undecodable += 1
            if self.undecodable == 1 or self.undecodable % 1000 == 0:
                log.error("%s: %d ring buffer record(s) could not be decoded and were skipped; the latest "
                          "(%d bytes): %s", self._program, self.undecodable, len(raw), error)

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
        counter the program never increments reads 0), and the kernel's own: `skipped` = runs
        of its programs the kernel did not make (recursion guard), `skipped.<program>` each."""
        table = self.obj.map("stats")
        out = {}
        for name, stat in abi.words(abi.Stat, "D4C_STAT_").items():
            raw = table.lookup(U32.pack(int(stat)))
            out[name] = U64.unpack(raw)[0] if raw else 0
        misses = self.obj.recursion_misses()
        out["skipped"] = sum(misses.values())
        out.update({f"skipped.{program}": n for program, n in misses.items()})
        return out

    @property
    def pinned(self) -> bool:
        return self._pins is not None

    def close(self) -> None:
        """Free this process's handles. Pinned links stay attached (D33: the policy keeps
        enforcing; pinning.remove_enforcement ends it); unpinned ones are detached."""
        if getattr(self, "ring", None) is not None:
            self.ring.close()
            self.ring = None  # type: ignore[assignment]
        self.obj.close()  # closing a link's fd never detaches a pinned link

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
