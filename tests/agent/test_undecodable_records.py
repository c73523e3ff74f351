"""A ring buffer record the agent cannot decode is skipped and said, never the end of the agent:
the kernel goes on enforcing whatever userspace does with a record, so one bad record (a
layout mismatch, a record clobbered in the kernel) must cost that one event, logged."""

from __future__ import annotations

import logging

from reference_agent.kernel import abi
from reference_agent.kernel.loaded_program import LoadedProgram
from reference_agent.kernel.records import RecordError


class Program(LoadedProgram[bytes]):
    """The record path of a loaded program, without a BPF object behind it."""

    def __init__(self) -> None:  # noqa: D107 - only what _on_record and drain-side state use
        self._names = [("sel",), ()]
        self._values = []
        self.undecodable = 0
        self._program = "process_hooks"

    def _decode(self, raw: bytes, selector_names: tuple[str, ...]) -> bytes:
        if raw.endswith(b"bad"):
            raise RecordError("process activity record of kind exit (the kernel decides only fork and exec)")
        return raw

    def _write_policy(self, slot, compiled):  # pragma: no cover - not reached
        raise AssertionError

    def set_policy(self, compiled, masks=None):  # pragma: no cover - not reached
        raise AssertionError


def _record(tail: bytes) -> bytes:
    return bytes(abi.RecordHead.flags.offset + 4) + tail


def test_a_bad_record_is_skipped_counted_and_logged_and_the_next_one_delivered(caplog):
    program = Program()
    with caplog.at_level(logging.ERROR):
        for tail in (b"good-1", b"bad", b"good-2", b"bad"):
            program._on_record(_record(tail))
    assert program._values == [_record(b"good-1"), _record(b"good-2")]
    assert program.undecodable == 2
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1  # the first in full; later ones every 1000th, not one line each
    assert "process_hooks: 1 ring buffer record(s) could not be decoded" in logged[0]
    assert "kind exit" in logged[0]
