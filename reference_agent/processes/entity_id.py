"""Process entity ids: one opaque string per process, stable for its life, unique per agent.

    entity_id = base64( f"{agent_id}-{pid}-{start_ns}" )      (standard alphabet, padded)

- `agent_id` is the agent's own id (ECS `agent.id`), so two agents never collide.
- `pid` is the thread-group id in the initial pid namespace (what the host sees).
- `start_ns` is the process's start as wall-clock nanoseconds since the Unix epoch, at
  clock-tick resolution: boot time (`btime` of /proc/stat) plus the task's start since boot
  rounded down to a whole tick (1/CLK_TCK s, 10 ms on Linux).

Why those choices:
- A pid alone is reused; pid + start time is not (the kernel cannot hand the same pid to two
  processes within one tick of each other unless 4 million pids wrap in 10 ms).
- The start is rounded to the tick because /proc/<pid>/stat only has tick resolution while the
  kernel side reports nanoseconds: a process seeded from /proc at agent start and one reported
  by a BPF fork event must get the same id (ProcessTable does the rounding).
- Wall-clock rather than since-boot: the agent id persists across reboots (state_dir), and
  since-boot values repeat every boot (pid 1 always starts at ~0). `btime` is the kernel's
  own boot timestamp, identical for every reader during a boot, so an agent restart recomputes
  the same ids for processes that outlive it.
- The seed's example (`…-1915535-1679328239`) uses whole seconds; we keep the sub-second part
  because pids can be reused within a second on a busy node.
"""

from __future__ import annotations

import base64
import binascii


def entity_id(agent_id: str, pid: int, start_ns: int) -> str:
    """The ECS `process.entity_id` of the process `pid` that started at `start_ns` (epoch ns)."""
    if pid <= 0:
        raise ValueError(f"pid must be positive, got {pid}")
    raw = f"{agent_id}-{pid}-{start_ns}".encode()
    return base64.b64encode(raw).decode("ascii")


def parse_entity_id(value: str) -> tuple[str, int, int]:
    """(agent_id, pid, start_ns) of an entity id made by `entity_id` (agent ids may contain '-')."""
    try:
        text = base64.b64decode(value.encode("ascii"), validate=True).decode()
        agent_id, pid, start = text.rsplit("-", 2)
        return agent_id, int(pid), int(start)
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError(f"not a process entity id: {value!r}") from exc
