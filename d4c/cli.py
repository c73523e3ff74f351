"""Entry point of the `d4c` console script (contract: ../docs/cli.md)."""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from typing import Any

# Subsystems that contribute commands: top-level command -> module with `register(subparsers)`.
# Every registered command sets `func(args) -> int` as its parser default.
COMMAND_MODULES = {
    "policy": "reference_agent.policy.cli",  # d4c policy validate|evaluate
    "scenario": "conformance.cli",  # d4c scenario lint
    "vm": "vm.cli",  # d4c vm build|run|up|down|status|console
    "agent": "reference_agent.cli",  # d4c agent run
    "events": "conformance.fields.cli",  # d4c events check
    "es": "conformance.fields.es_cli",  # d4c es templates
}


class _StdoutWhileRead:
    """stdout that outlives its reader: after `d4c policy validate bad.yaml | head -1` closes
    the pipe, the rest of the output is dropped, so the command still finishes and exits with
    its own status (1 for that invalid policy) instead of a traceback or a masked 0."""

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop_rest()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop_rest()

    def _drop_rest(self) -> None:
        self.reader_gone = True
        # What is still buffered can never be delivered; /dev/null takes it, so the
        # interpreter's own last flush does not fail either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _harden_std_streams() -> None:
    """Text output never fails on what it prints: a lone surrogate (YAML allows "\\ud800")
    is written as its escape, and a closed pipe on stdout does not change the exit status."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    if sys.stdout is sys.__stdout__ and isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout = _StdoutWhileRead(sys.stdout)  # type: ignore[assignment]


def _version() -> str:
    from reference_agent.metadata.host import agent_version

    return agent_version() or "unknown"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, with `only`, one command's: importing every subsystem (jsonschema,
    docker, the BPF loader...) costs seconds under TCG, which `d4c agent run` should not pay."""
    parser = argparse.ArgumentParser(
        prog="d4c",
        description="Defend for Containers policies: validate, evaluate, enforce, and check conformance.",
    )
    parser.add_argument("--version", action="version", version=f"d4c {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command, module in COMMAND_MODULES.items():
        if only is None or command == only:
            importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMAND_MODULES else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    _harden_std_streams()
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # inside main: a reader that left early is seen by the wrapper
        return status
    except KeyboardInterrupt:
        print("d4c: interrupted", file=sys.stderr)
        return 130
