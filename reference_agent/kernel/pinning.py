"""Enforcement that outlives the agent (D33): maps and links pinned in bpffs.

One directory per node (DEFAULT_PIN_DIR), one sub-directory per BPF object::

    /sys/fs/bpf/d4c/file_hooks/maps-<token>/<map>      the policy state the hooks read
    /sys/fs/bpf/d4c/file_hooks/links/<program>-<token> the attachments that keep the programs running

A pinned link stays attached when the agent exits, is killed or crashes; the programs keep
reading the pinned maps, so the last policy keeps enforcing with no agent at all. A new agent
opens its objects with the pinned maps reused (libbpf checks that each is compatible), writes
its policy into the slot the hooks are not reading, flips `active_policy` (loaded_program.py),
attaches and pins its own programs, and only then unpins the old ones (which detaches them). Ring buffers and a build's internal maps are not shared:
records are decoded by whoever reads them.

A new build whose maps are not compatible gets fresh maps in a maps directory of its own; the
old one is removed once its programs are unpinned: both generations enforce for that moment (a
union of denials, never a gap).

`remove_enforcement` is the one way to stop enforcing (`d4c agent remove-enforcement`).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterable
from pathlib import Path

from reference_agent.kernel.libbpf import BpfObject, Link, unpin_link

DEFAULT_PIN_DIR = Path("/sys/fs/bpf/d4c")
OBJECTS = ("file_hooks", "process_hooks")  # the sub-directories this agent pins


class PinnedState:
    """The pins of one BPF object under `root`.

    bpffs refuses names with a dot, and nothing is replaced in place: each agent pins its links under
    names of its own (`<program>-<token>`) and only then unpins the others; fresh maps go to a
    directory of their own (`maps-<token>`) and the old one is removed once no link of it is
    pinned. A crash in between leaves both, and the next agent cleans up the same way."""

    def __init__(self, root: str | os.PathLike[str], name: str) -> None:
        self.dir = Path(root) / name
        self.links = self.dir / "links"
        self.token = str(time.time_ns())
        self.maps: Path | None = None  # where this agent's maps are pinned

    def _map_dirs(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        dirs = [p for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("maps-") and any(p.iterdir())]
        return sorted(dirs, key=lambda p: int(p.name.split("-", 1)[1]) if p.name[5:].isdigit() else 0)

    def has_maps(self) -> bool:
        return bool(self._map_dirs())

    def reuse_maps(self, obj: BpfObject, fresh: bool = False) -> None:
        """Before load: every shareable map of `obj` reuses (or creates and pins) its pin in
        the newest maps directory, or (`fresh`: an incompatible build) in a new one."""
        existing = self._map_dirs()
        self.maps = existing[-1] if existing and not fresh else self.dir / f"maps-{self.token}"
        self.maps.mkdir(parents=True, exist_ok=True)
        for name in obj.map_names(pinnable=True):
            obj.set_pin_path(name, self.maps / name)

    def pin_links(self, links: Iterable[Link]) -> None:
        """Pin each link as links/<program>-<token>, then unpin every other link (the old
        programs stay attached until the new ones are pinned), then remove map directories
        no longer ours (no pinned program reads them any more)."""
        self.links.mkdir(parents=True, exist_ok=True)
        ours = set()
        for link in links:
            pin = self.links / f"{link.program}-{self.token}"
            link.pin(pin)
            ours.add(pin.name)
        for old in self.links.iterdir():
            if old.name not in ours:
                _unpin_link(old)
        for old in self._map_dirs():
            if old != self.maps:
                _clear(old)


def remove_enforcement(root: str | os.PathLike[str] = DEFAULT_PIN_DIR) -> list[str]:
    """Unpin every link (which detaches the programs, unless a running agent still holds
    them) and then every map under `root`; returns the objects that were enforcing."""
    root = Path(root)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        links = sub / "links"
        if links.is_dir() and any(links.iterdir()):
            removed.append(sub.name)
            for pin in links.iterdir():
                _unpin_link(pin)
        _clear(links)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        _clear(sub)
    root.rmdir()
    return removed


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _unpin_link(path: Path) -> None:
    try:
        unpin_link(path)
    except FileNotFoundError:
        pass


def _clear(directory: Path) -> None:
    """Remove a pin directory tree (bpffs: unlink each pin, rmdir each directory)."""
    if not directory.exists():
        return
    for entry in directory.iterdir():
        if entry.is_dir():
            _clear(entry)
        else:
            _unlink(entry)
    try:
        directory.rmdir()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


__all__ = ["DEFAULT_PIN_DIR", "OBJECTS", "PinnedState", "remove_enforcement"]
