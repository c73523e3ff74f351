"""Entry point of the `d4c` console script (contract: ../docs/cli.md)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subsystems that contribute commands: top-level command -> module with `register(subparsers)`.
# Every registered command sets `func(args) -> int` as its parser default.
COMMAND_MODULES = {
    "policy": "reference_agent.policy.cli",  # d4c policy validate|evaluate
    "scenario": "conformance.cli",  # d4c scenario lint
    "vm": "vm.cli",  # d4c vm build|run|up|down|status|console
    "agent": "reference_agent.cli",  # d4c agent run
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, with `only`, one command's: importing every subsystem (jsonschema,
    docker, the BPF loader...) costs seconds under TCG, which `d4c agent run` should not pay."""
    parser = argparse.ArgumentParser(
        prog="d4c",
        description="Defend for Containers policies: validate, evaluate, enforce, and check conformance.",
    )
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
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("d4c: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error worth a traceback.
        return 0
