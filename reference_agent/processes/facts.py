"""What the process table says about a process: immutable values.

Every optional field that the table does not know is None, never filled with a guess (D16);
the ECS builders (reference_agent.ecs) omit it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import lru_cache

ENTRY_META_CONTAINER = "container"


@lru_cache(maxsize=4096)  # the same few start times are formatted for every event of a tree
def iso_timestamp(epoch_ns: int) -> str:
    """ECS date as the seed writes it: UTC, millisecond precision, 'Z' suffix."""
    seconds, ns = divmod(epoch_ns, 1_000_000_000)
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1_000_000:03d}Z"


@dataclass(frozen=True)
class ProcessImage:
    """One program a process ran: an element of ECS `process.previous`."""

    executable: str | None
    args: tuple[str, ...]


@dataclass(frozen=True)
class ProcessDescription:
    """One process as ECS describes it under `process.*` or a leader/parent prefix."""

    entity_id: str
    pid: int
    start_ns: int  # wall clock, epoch ns, tick resolution
    executable: str | None
    args: tuple[str, ...]
    working_directory: str | None
    user_id: int
    user_name: str | None
    group_id: int
    group_name: str | None
    interactive: bool
    same_as_process: bool | None = None  # None for the described process itself
    entry_meta_type: str | None = None

    @property
    def name(self) -> str | None:
        """ECS `name`: the executable's basename, not the kernel's 15-byte comm (D16)."""
        if not self.executable:
            return None
        return self.executable.rstrip("/").rsplit("/", 1)[-1] or None

    @property
    def start(self) -> str:
        return iso_timestamp(self.start_ns)


@dataclass(frozen=True)
class ProcessFacts:
    """A process and its relatives, at one moment, ready for an ECS document.

    parent: the process that forked it (kept even after it exits, so a tree stays whole).
    session_leader / group_leader: the process whose pid is the session id / process group id.
    entry_leader: the first process of its container (entry_meta.type "container"); None for
    host processes. Any relative the table does not know (exited before the agent started,
    or evicted by the table's cap) is None and its fields are omitted.
    """

    process: ProcessDescription
    parent: ProcessDescription | None
    session_leader: ProcessDescription | None
    group_leader: ProcessDescription | None
    entry_leader: ProcessDescription | None
    previous: tuple[ProcessImage, ...]  # images before each exec, oldest first
    cgroup_id: int
    container_id: str | None  # None: a host process
    end_ns: int | None = None  # wall clock, epoch ns; set on the facts returned by on_exit

    @property
    def entity_id(self) -> str:
        return self.process.entity_id
