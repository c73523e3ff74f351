"""uid/gid -> user.name/group.name, as the container sees them.

A container has its own /etc/passwd and /etc/group; the host's would name the wrong user. The
agent reads them through /proc/<pid>/root of the container's init process (the container's root
filesystem as seen from the host pid namespace). Unknown ids give None: the name is omitted.
The files belong to the container, so they are read by the one defensive reader of the
agent (`system.accounts`): no symlink, no FIFO, a size cap.
"""

from __future__ import annotations

import threading
from pathlib import Path

from reference_agent.metadata.containers import ContainerInfo
from reference_agent.system.accounts import read_id_file


class UserNames:
    """Per-root cached passwd/group tables. Host processes (container None) use the host's."""

    def __init__(self, proc_root: Path = Path("/proc"), host_root: Path = Path("/")) -> None:
        self._proc_root = proc_root
        self._host_root = host_root
        self._cache: dict[tuple[str, str], dict[int, str]] = {}
        self._lock = threading.Lock()

    def _table(self, container: ContainerInfo | None, file: str) -> dict[int, str]:
        key = (container.id if container else "", file)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        if container is None:
            root = self._host_root
        elif container.init_pid:
            root = self._proc_root / str(container.init_pid) / "root"
        else:
            return {}
        table = read_id_file(str(root / "etc" / file))
        if table is None:
            return {}  # not cached: the container may not be readable yet
        with self._lock:
            self._cache[key] = table
        return table

    def user(self, container: ContainerInfo | None, uid: int) -> str | None:
        return self._table(container, "passwd").get(uid)

    def group(self, container: ContainerInfo | None, gid: int) -> str | None:
        return self._table(container, "group").get(gid)

    def forget(self, container_id: str) -> None:
        with self._lock:
            for key in [k for k in self._cache if k[0] == container_id]:
                del self._cache[key]
