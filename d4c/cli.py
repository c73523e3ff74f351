"""Entry point of the `d4c` console script (contract: ../docs/cli.md)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Subsystems that contribute commands, each a module with `register(subparsers)`.
# Every registered command sets `func(args) -> int` as its parser default.
COMMAND_MODULES = (
    "reference_agent.policy.cli",  # d4c policy validate|evaluate
    "conformance.cli",  # d4c scenario lint
    "vm.cli",  # d4c vm build|run|up|down|status|console
    "reference_agent.cli",  # d4c agent run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d4c",
        description="Defend for Containers policies: validate, evaluate, enforce, and check conformance.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("d4c: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error worth a traceback.
        return 0
