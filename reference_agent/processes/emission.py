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

DEFAULT_MAX_OWED = 65536  # same order as the process table's cap


class EndLedger:
    """Which processes are owed an `end` event (D20)."""

    def __init__(self, max_owed: int = DEFAULT_MAX_OWED) -> None:
        if max_owed < 1:
            raise ValueError("max_owed must be at least 1")
        self.max_owed = max_owed
        self._owed: OrderedDict[str, int] = OrderedDict()  # entity id -> pid
        self.dropped = 0  # debts dropped by the cap: ends that will never be emitted

    def __len__(self) -> int:
        return len(self._owed)

    def note_emitted(self, entity_id: str, pid: int) -> None:
        """A fork or exec event of this process was emitted (repeats are harmless)."""
        if entity_id in self._owed:
            return
        if len(self._owed) >= self.max_owed:
            self._owed.popitem(last=False)
            self.dropped += 1
        self._owed[entity_id] = pid

    def owes_end(self, entity_id: str) -> bool:
        """Whether an end event is owed for this process (does not settle it)."""
        return entity_id in self._owed

    def settle_end(self, entity_id: str) -> bool:
        """The process ended: True exactly once if an end event must be emitted now."""
        return self._owed.pop(entity_id, None) is not None

    def forget(self, entity_id: str) -> None:
        """Drop a debt without emitting (the caller has handled the process some other way)."""
        self._owed.pop(entity_id, None)

    def owed_pids(self) -> list[int]:
        return sorted(set(self._owed.values()))
