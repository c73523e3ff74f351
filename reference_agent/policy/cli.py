"""`d4c policy validate` and `d4c policy evaluate` (contract: docs/cli.md).

Thin: argument parsing and output formatting around load_policy_file / parse_operations /
evaluate. Exit codes: 0 ok, 1 invalid policy, 2 usage error, unreadable file or malformed
operation. Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, TextIO

from .loader import PolicyFileError, load_policy_file
from .matcher import evaluate
from .model import ValidationResult
from .operation import OperationError, parse_operations

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    policy = subparsers.add_parser(
        "policy",
        help="validate a policy, or evaluate operations against it",
        description="The D4C policy language (docs/spec.md): validate policies, evaluate operations.",
    )
    commands = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check a policy file (exit 0 valid, 1 invalid, 2 unreadable)",
        description="Check a policy file against the policy language; report every problem with its line.",
    )
    validate.add_argument("file", metavar="FILE", help="the policy YAML file")
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    validate.set_defaults(func=run_validate)

    evaluate_ = commands.add_parser(
        "evaluate",
        help="evaluate one operation (or a JSON list of them) against a policy",
        description="Print which selectors match, which responses fire and with which actions.",
    )
    evaluate_.add_argument("file", metavar="FILE", help="the policy YAML file")
    evaluate_.add_argument(
        "--operation",
        required=True,
        metavar="OP.json",
        help="the operation as JSON (an object or a list of objects); `-` reads stdin",
    )
    evaluate_.set_defaults(func=run_evaluate)


def print_text_report(result: ValidationResult, filename: str, out: TextIO) -> None:
    """One line per problem: `FILE:LINE:COLUMN: PATH: MESSAGE` (errors, then warnings)."""
    for diagnostic in result.errors:
        print(diagnostic.format(filename), file=out)
    for diagnostic in result.warnings:
        print(diagnostic.format(filename, "warning"), file=out)


def _load(path: str, command: str) -> ValidationResult | None:
    try:
        return load_policy_file(path)
    except PolicyFileError as exc:
        print(f"d4c policy {command}: {exc}", file=sys.stderr)
        return None


def run_validate(args: argparse.Namespace) -> int:
    result = _load(args.file, "validate")
    if result is None:
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print_text_report(result, args.file, sys.stdout)
    return EXIT_OK if result.valid else EXIT_INVALID


_MAX_JSON_INT_DIGITS = 20  # an operation holds ids and names; no integer needs 64 bits more


class _JsonValueError(ValueError):
    """A JSON token that parses but is refused; `token` is its text, to locate it."""

    def __init__(self, message: str, token: str) -> None:
        super().__init__(message)
        self.token = token


def _bounded_int(token: str) -> int:
    # Refused before int(): Python would parse up to 4,300 digits and then raise an
    # unlocated ValueError, and a 4,000-digit id is an attack, not an operation.
    if len(token.lstrip("-")) > _MAX_JSON_INT_DIGITS:
        raise _JsonValueError(f"integer of {len(token)} digits is out of range", token)
    return int(token)


def _no_constant(token: str) -> Any:
    raise _JsonValueError(f"{token} is not a JSON number", token)


def json_position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset in JSON text (the JSONDecodeError style)."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _token_offset(text: str, token: str) -> int:
    """Where a refused number or constant first stands as a token (not inside a string)."""
    for match in re.finditer(re.escape(token), text):
        before = text[: match.start()].rstrip()
        if not before or before[-1] in "[:,":
            return match.start()
    return 0


def _read_operation_json(source: str) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, one-line error)."""
    name = "<stdin>" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        return None, f"cannot read {name}: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        return None, f"{name}: not UTF-8 text (byte {exc.start})"
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant), None
    except json.JSONDecodeError as exc:
        return None, f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
    except _JsonValueError as exc:
        line, column = json_position(text, _token_offset(text, exc.token))
        return None, f"{name}:{line}:{column}: invalid JSON: {exc}"
    except RecursionError:
        return None, f"{name}: invalid JSON: nesting too deep"


def run_evaluate(args: argparse.Namespace) -> int:
    result = _load(args.file, "evaluate")
    if result is None:
        return EXIT_USAGE
    if not result.valid or result.policy is None:
        print_text_report(result, args.file, sys.stderr)
        return EXIT_INVALID
    obj, problem = _read_operation_json(args.operation)
    if problem is not None:
        print(f"d4c policy evaluate: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        operations = parse_operations(obj)
    except OperationError as exc:
        print(f"d4c policy evaluate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    verdicts = [evaluate(result.policy, op).to_json() for op in operations]
    print(json.dumps(verdicts if isinstance(obj, list) else verdicts[0]))
    return EXIT_OK
