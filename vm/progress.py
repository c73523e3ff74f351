"""One-line progress messages with elapsed time for the long steps (to stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(f"vm: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(label: str) -> Iterator[None]:
    """Announce a long step, then report how long it took (or that it failed after how long)."""
    started = time.monotonic()
    say(f"{label} ...")
    try:
        yield
    except BaseException:
        say(f"{label}: failed after {time.monotonic() - started:.1f}s")
        raise
    say(f"{label}: done in {time.monotonic() - started:.1f}s")
