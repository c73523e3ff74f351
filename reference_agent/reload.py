"""The enforcing policy, and how it is replaced while the agent runs.

`PolicyHolder` owns the current validated policy. A reload — on SIGHUP, or when polling sees
the file change (inode, mtime, size, then a SHA-256 of the content; no extra dependency) — is
all-or-nothing:

1. the new file is read once and validated with the policy package's loader;
2. an invalid policy is rejected: each error is logged as `FILE:LINE:COLUMN: PATH: MESSAGE
   [code]` and the previous policy keeps enforcing;
3. a valid one is handed to the `apply` callback (the kernel side passes its map compiler);
   if that raises, the previous policy keeps enforcing too;
4. only then does `current` switch to the new policy, in one reference assignment under a
   lock: readers see the old policy or the new one, never a mix; `on_accepted` is told (the
   agent rewrites its ready file with the new digest: the confirmation harnesses wait for).

Before a reload that a signal or a file change asked for, `prepare` runs (the agent re-lists
its containers there), so the new policy covers everything running when it was asked for.

The signal handler only sets an event (signal-safe); the watcher thread does the work.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reference_agent.policy import (
    Diagnostic,
    Policy,
    ValidationResult,
    load_policy_file,
    load_policy_text,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    digest: str  # sha256 of the exact bytes that were validated
    generation: int  # 1 for the first policy, +1 per accepted reload
    warnings: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True)
class ReloadOutcome:
    accepted: bool
    changed: bool  # False when the content was identical to the enforcing policy
    messages: tuple[str, ...] = ()  # the located error lines, or why it was refused


class PolicyRejected(Exception):
    """The policy at startup is invalid (there is no previous policy to keep)."""

    def __init__(self, messages: tuple[str, ...]) -> None:
        self.messages = messages
        super().__init__("\n".join(messages))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_and_validate(path: Path) -> tuple[ValidationResult, str]:
    """Validate the bytes read once (so the digest is of what was validated)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return load_policy_file(path), digest  # the loader locates the bad byte
    return load_policy_text(text, str(path)), digest


class PolicyHolder:
    def __init__(self, path: str | Path, apply: Callable[[Policy], None], *,
                 prepare: Callable[[], None] | None = None,
                 on_accepted: Callable[[LoadedPolicy], None] | None = None) -> None:
        self.path = Path(path)
        self._apply = apply
        self._prepare = prepare
        self._on_accepted = on_accepted
        self._lock = threading.Lock()  # serialises reloads; `current` reads need no lock
        self._current: LoadedPolicy | None = None
        self._seen_signature: tuple[int, int, int] | None = None
        self._reload_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedPolicy | None:
        return self._current

    def load_initial(self) -> LoadedPolicy:
        """Load, validate and apply the first policy; PolicyRejected when it cannot enforce."""
        outcome = self.reload()
        if not outcome.accepted or self._current is None:
            raise PolicyRejected(outcome.messages)
        return self._current

    def reload(self) -> ReloadOutcome:
        with self._lock:
            signature = _signature(self.path)
            try:
                result, digest = read_and_validate(self.path)
            except OSError as exc:
                message = f"{self.path}: cannot read policy: {exc.strerror or exc}"
                return self._refuse((message,))
            self._seen_signature = signature
            current = self._current
            if current is not None and digest == current.digest:
                return ReloadOutcome(accepted=True, changed=False)
            if result.errors or result.policy is None:
                return self._refuse(tuple(d.format(str(self.path)) for d in result.errors))
            for warning in result.warnings:
                log.warning("%s", warning.format(str(self.path), "warning"))
            try:
                self._apply(result.policy)
            except Exception as exc:  # the kernel refused the maps: the old policy stays loaded
                return self._refuse((f"{self.path}: policy not applied: {type(exc).__name__}: {exc}",))
            generation = current.generation + 1 if current else 1
            self._current = LoadedPolicy(result.policy, self.path, digest, generation, tuple(result.warnings))
            log.info("%s: policy generation %d enforcing", self.path, generation)
            if self._on_accepted is not None:
                self._on_accepted(self._current)
            return ReloadOutcome(accepted=True, changed=True)

    def reapply(self) -> None:
        """Apply the enforcing policy again (e.g. containers changed, so the masks did),
        serialised with reloads so an older policy can never overwrite a newer one."""
        with self._lock:
            if self._current is not None:
                self._apply(self._current.policy)

    def _refuse(self, messages: tuple[str, ...]) -> ReloadOutcome:
        keeping = "keeping the previous policy" if self._current is not None else "no policy enforcing"
        for message in messages:
            log.error("%s", message)
        log.error("%s: new policy rejected (%d problem(s)); %s", self.path, len(messages), keeping)
        return ReloadOutcome(accepted=False, changed=False, messages=messages)

    def changed_on_disk(self) -> bool:
        """Cheap poll: did the file's inode, mtime or size change since it was last read?"""
        return _signature(self.path) != self._seen_signature

    def poll(self) -> ReloadOutcome | None:
        """One watcher step: reload when asked (SIGHUP) or when the file changed."""
        if self._reload_requested.is_set():
            self._reload_requested.clear()
        elif not self.changed_on_disk():
            return None
        if self._prepare is not None:
            self._prepare()
        return self.reload()  # an unchanged digest (touch) is a no-op inside reload()

    # -- SIGHUP and the watcher thread ---------------------------------------------------------

    def request_reload(self, *_signal_args: object) -> None:
        """Signal-handler safe: only sets an event."""
        self._reload_requested.set()

    def install_sighup(self) -> None:
        signal.signal(signal.SIGHUP, self.request_reload)  # main thread only (Python's rule)

    def start(self, interval: float = 1.0) -> None:
        def watch() -> None:
            while not self._stop.is_set():
                self._reload_requested.wait(interval)
                if self._stop.is_set():
                    break
                try:
                    self.poll()
                except Exception:  # never let the watcher die: the agent must keep reloading
                    log.exception("policy watcher")

        self._thread = threading.Thread(target=watch, name="policy-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._reload_requested.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

