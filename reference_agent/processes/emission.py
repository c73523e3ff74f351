"""D20 bookkeeping: an `end` event is emitted for a process exactly when one of its fork/exec
events was emitted, so every process tree in the output is closed.

The pipeline calls `note_emitted` after writing a fork or exec event (at least one document),
and `settle_end` when the process exits: it returns True once — emit the end event then — and
forgets the process. Processes are keyed by entity id, not pid: after a lost exit and pid reuse,
the newcomer does not inherit the old process's debt.

Memory: one entry per live process that had an event. Entries whose exit never arrives are
released by `forget` (call it with what ProcessTable.reconcile() ended, after emitting their
ends) and, as a last resort, by the cap, which drops the oldest debts and counts them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_OWED = 65536  # same order as the process table's cap


@dataclass(frozen=True)
class OwedEnd:
    """An end event owed to one process, with what its fork/exec event had (the end carries
    the same selectors and actions, so it lands in the same data streams)."""

    pid: int
    selectors: tuple[str, ...] = ()
    actions: frozenset[str] = frozenset()


class EndLedger:
    """Which processes are owed an `end` event (D20)."""

    def __init__(self, max_owed: int = DEFAULT_MAX_OWED) -> None:
        if max_owed < 1:
            raise ValueError("max_owed must be at least 1")
        self.max_owed = max_owed
        self._owed: OrderedDict[str, OwedEnd] = OrderedDict()  # by entity id
        self.dropped = 0  # debts dropped by the cap: ends that will never be emitted

    def __len__(self) -> int:
        return len(self._owed)

    def note_emitted(
        self, entity_id: str, pid: int, selectors: tuple[str, ...] = (), actions: frozenset[str] = frozenset()
    ) -> None:
        """A fork or exec event of this process was emitted. Repeats (fork then exec) still owe
        one end; it carries the union of their selectors (first-seen order) and actions."""
        known = self._owed.get(entity_id)
        if known is not None:
            merged = known.selectors + tuple(s for s in selectors if s not in known.selectors)
            self._owed[entity_id] = OwedEnd(pid, merged, known.actions | actions)
            return
        if len(self._owed) >= self.max_owed:
            self._owed.popitem(last=False)
            self.dropped += 1
        self._owed[entity_id] = OwedEnd(pid, tuple(selectors), frozenset(actions))

    def owes_end(self, entity_id: str) -> bool:
        """Whether an end event is owed for this process (does not settle it)."""
        return entity_id in self._owed

    def settle_end(self, entity_id: str) -> bool:
        """The process ended: True exactly once if an end event must be emitted now."""
        return self._owed.pop(entity_id, None) is not None

    def settle(self, entity_id: str) -> OwedEnd | None:
        """As settle_end, returning what the end event should carry (None: nothing owed)."""
        return self._owed.pop(entity_id, None)

    def forget(self, entity_id: str) -> None:
        """Drop a debt without emitting (the caller has handled the process some other way)."""
        self._owed.pop(entity_id, None)

    def owed_pids(self) -> list[int]:
        return sorted({owed.pid for owed in self._owed.values()})
