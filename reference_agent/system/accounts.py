"""User and group names, looked up in the files of the process's own root filesystem.

A uid means whatever the container's /etc/passwd says it means, so the names of a container
process come from /proc/<pid>/root/etc/passwd and /etc/group (its own root, as the kernel
sees it); the host's files are used only for host processes. A uid that the relevant file does
not name gets no name at all: the ECS `*.name` field is omitted, never guessed (D16).

Reading files through another root is done defensively, because the container controls them:
the final component is opened with O_NOFOLLOW (an `/etc/passwd -> /host/...` symlink resolves
against the agent's root, not the container's), O_NONBLOCK (a FIFO must not hang the agent),
and only regular files up to `_MAX_FILE_BYTES` are parsed.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict

_MAX_FILE_BYTES = 4 * 1024 * 1024
# Parsed files, keyed by identity (device, inode, mtime, size): every process of one container
# sees the same file, so a node needs about one entry per image; the bound keeps churn cheap.
_MAX_CACHED_FILES = 256


class AccountNames:
    """uid/gid -> name through passwd/group files under a given root directory."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[int, int, int, int], dict[int, str]] = OrderedDict()

    def user_name(self, root: str, uid: int) -> str | None:
        return self._table(f"{root.rstrip('/')}/etc/passwd").get(uid)

    def group_name(self, root: str, gid: int) -> str | None:
        return self._table(f"{root.rstrip('/')}/etc/group").get(gid)

    def readable(self, root: str) -> bool:
        """Whether `root` is still there to read (a /proc/<pid>/root of a live process)."""
        return os.path.isdir(root)

    def _table(self, path: str) -> dict[int, str]:
        opened = _open_account_file(path)
        if opened is None:
            return {}
        fd, st = opened
        try:
            key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            table = _parse_open_file(fd)
        except OSError:
            return {}
        finally:
            os.close(fd)
        self._cache[key] = table
        if len(self._cache) > _MAX_CACHED_FILES:
            self._cache.popitem(last=False)
        return table


def read_id_file(path: str) -> dict[int, str] | None:
    """id -> name of the passwd/group file at `path`, read as defensively as AccountNames
    reads it; None when it cannot be read (absent, a symlink, not a regular file, too big)."""
    opened = _open_account_file(path)
    if opened is None:
        return None
    fd, _ = opened
    try:
        return _parse_open_file(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _open_account_file(path: str) -> tuple[int, os.stat_result] | None:
    """An fd on `path` if it is a regular file of at most _MAX_FILE_BYTES, opened so that a
    container cannot redirect (symlink) or stall (FIFO) the agent; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_FILE_BYTES:
        os.close(fd)
        return None
    return fd, st


def _parse_open_file(fd: int) -> dict[int, str]:
    with os.fdopen(fd, "rb", closefd=False) as f:
        return parse_id_file(f.read(_MAX_FILE_BYTES).decode(errors="replace"))


def parse_id_file(text: str) -> dict[int, str]:
    """id -> name of a passwd (name:pw:uid:...) or group (name:pw:gid:members) file.

    The first entry for an id wins, as with getpwuid(3). NIS compat lines (+/-) and comments
    are skipped; malformed lines are ignored rather than failing the whole file.
    """
    names: dict[int, str] = {}
    for line in text.splitlines():
        if not line or line[0] in "#+-":
            continue
        fields = line.split(":")
        if len(fields) < 3 or not fields[0]:
            continue
        try:
            ident = int(fields[2])
        except ValueError:
            continue
        names.setdefault(ident, fields[0])
    return names
