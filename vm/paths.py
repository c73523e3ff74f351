"""Where the vm package keeps things: the user's cache dir and the project checkout."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$D4C_VM_CACHE`, else `$XDG_CACHE_HOME/d4c/vm`, else `~/.cache/d4c/vm`."""
    if os.environ.get("D4C_VM_CACHE"):
        return Path(os.environ["D4C_VM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "d4c" / "vm"


def checkout_root() -> Path:
    """The project checkout this package lives in (shared with the guest at the same path)."""
    return Path(__file__).resolve().parent.parent
