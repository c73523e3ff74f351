"""The reference agent's process table: ECS process.* and its relatives.

    table = ProcessTable(agent_id)          # /proc, cgroup2 mount and btime found on this host
    table.seed()                            # every process running now
    table.on_fork(task)                     # kernel events keep it current ...
    table.on_exec(pid, executable, args, task=task)
    facts = table.describe(pid)             # ProcessFacts: the process and its relatives
    last = table.on_exit(pid, end_ns=...)   # facts with process.end, for the end event

    ledger = EndLedger()                    # D20: end events exactly for processes with events
"""

from .emission import EndLedger, OwedEnd
from .entity_id import entity_id, parse_entity_id
from .facts import ProcessDescription, ProcessFacts, ProcessImage, iso_timestamp
from .table import ProcessTable, ProcessTableStats

__all__ = [
    "EndLedger",
    "OwedEnd",
    "ProcessDescription",
    "ProcessFacts",
    "ProcessImage",
    "ProcessTable",
    "ProcessTableStats",
    "entity_id",
    "iso_timestamp",
    "parse_entity_id",
]
