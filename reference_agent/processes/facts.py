"""What the process table says about a process: immutable values with their ECS fields.

`ProcessFacts` is what the ECS builders consume. Every optional field that the agent does not
know is None and is omitted from `to_ecs()` output, never filled with a guess (D16 and the
"unknown fields are omitted" project decision).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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

    def to_ecs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"args": list(self.args)}
        if self.executable is not None:
            out["executable"] = self.executable
        return out


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

    def to_ecs(self, prefix: str, *, account_prefix: str | None = None) -> dict[str, Any]:
        """Dotted ECS keys under `prefix` (e.g. "process.parent").

        `account_prefix` moves user.*/group.* elsewhere: the described process's own user is
        top-level `user.*`/`group.*` in the seed's event table, leaders' are nested.
        """
        acct = prefix if account_prefix is None else account_prefix
        acct = f"{acct}." if acct else ""
        out: dict[str, Any] = {
            f"{prefix}.entity_id": self.entity_id,
            f"{prefix}.pid": self.pid,
            f"{prefix}.start": self.start,
            f"{prefix}.args": list(self.args),
            f"{prefix}.interactive": self.interactive,
            f"{acct}user.id": str(self.user_id),  # ECS user.id / group.id are keywords
            f"{acct}group.id": str(self.group_id),
        }
        optional = {
            f"{prefix}.executable": self.executable,
            f"{prefix}.name": self.name,
            f"{prefix}.working_directory": self.working_directory,
            f"{acct}user.name": self.user_name,
            f"{acct}group.name": self.group_name,
            f"{prefix}.same_as_process": self.same_as_process,
            f"{prefix}.entry_meta.type": self.entry_meta_type,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


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

    def to_ecs(self, *, previous: bool = True) -> dict[str, Any]:
        """Every process-related ECS key, dotted: process.*, its relatives, user.*, group.*.

        `process.previous` is an array of {args, executable} objects (ECS); pass
        previous=False for events that must not carry it (fork events, file events).
        """
        out = self.process.to_ecs("process", account_prefix="")
        relatives = (
            ("process.parent", self.parent),
            ("process.session_leader", self.session_leader),
            ("process.group_leader", self.group_leader),
            ("process.entry_leader", self.entry_leader),
        )
        for prefix, description in relatives:
            if description is not None:
                out.update(description.to_ecs(prefix))
        if previous and self.previous:
            out["process.previous"] = [image.to_ecs() for image in self.previous]
        if self.end_ns is not None:
            out["process.end"] = iso_timestamp(self.end_ns)
        return out
