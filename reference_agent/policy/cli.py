"""`d4c policy validate|evaluate|explain|schema` (contract: docs/cli.md).

Thin: argument parsing and output formatting around load_policy_file / parse_operations /
evaluate / explain. Exit codes: 0 ok, 1 invalid policy, 2 usage error, unreadable file or
malformed operation; bad input gets one line naming the file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, TextIO

from . import jsonpath
from .explain import explain, explain_text
from .loader import PolicyFileError, load_policy_file, load_policy_text
from .matcher import evaluate
from .model import ValidationResult
from .operation import Operation, OperationError, parse_operations
from .schema import schema_path

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
        help="check policy files (exit 0 valid, 1 invalid, 2 unreadable)",
        description="Check policy files against the policy language; report every problem with its line. "
                    "Several files: each is checked; exit 2 if any is unreadable, else 1 if any is invalid. "
                    "`--format json` then prints a list of reports, each with its `file`.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="policy YAML files; `-` reads stdin")
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

    explain_ = commands.add_parser(
        "explain",
        help="why an operation gets its verdict: each selector's conditions, each response's outcome",
        description="Per selector: each condition matched or failed (judged by the evaluator); per response: "
                    "fired, excluded (and by which selector) or not matched; then the verdict of `evaluate`.",
    )
    explain_.add_argument("file", metavar="FILE", help="the policy YAML file")
    explain_.add_argument("--operation", required=True, metavar="OP.json",
                          help="the operation as JSON (an object or a list); `-` reads stdin")
    explain_.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    explain_.set_defaults(func=run_explain)

    schema = commands.add_parser(
        "schema",
        help="print the policy JSON Schema (or, with --path, where it is)",
        description="The JSON Schema (draft 2020-12) of the policy language, for editors: e.g. the YAML "
                    "language server's modeline `# yaml-language-server: $schema=<the --path output>`.",
    )
    schema.add_argument("--path", action="store_true", help="print the schema file's path instead of its text")
    schema.set_defaults(func=run_schema)


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


def _load_one(name: str) -> ValidationResult | None:
    if name != "-":
        return _load(name, "validate")
    try:
        return load_policy_text(sys.stdin.read(), "<stdin>")
    except UnicodeDecodeError:
        print("d4c policy validate: <stdin>: not UTF-8 text", file=sys.stderr)
        return None


def run_validate(args: argparse.Namespace) -> int:
    code = EXIT_OK
    reports = []
    for name in args.files:
        shown = "<stdin>" if name == "-" else name
        result = _load_one(name)
        if result is None:
            code = EXIT_USAGE
            continue
        if not result.valid and code == EXIT_OK:
            code = EXIT_INVALID
        if args.format == "json":
            reports.append({"file": shown, **result.to_json()} if len(args.files) > 1 else result.to_json())
        else:
            print_text_report(result, shown, sys.stdout)
    if args.format == "json" and reports:
        print(json.dumps(reports if len(args.files) > 1 else reports[0], indent=2))
    return code


def run_schema(args: argparse.Namespace) -> int:
    path = schema_path()
    print(path if args.path else path.read_text(encoding="utf-8").rstrip("\n"))
    return EXIT_OK


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


def _too_deep_offset(text: str, depth: int = 500) -> int:
    """Where brackets first nest `depth` deep (outside strings): where the parser gave up."""
    level, in_string, escaped = 0, False, False
    for offset, char in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level >= depth:
                return offset
        elif char in "]}":
            level -= 1
    return 0


def _token_offset(text: str, token: str) -> int:
    """Where a refused number or constant first stands as a token (not inside a string)."""
    for match in re.finditer(re.escape(token), text):
        before = text[: match.start()].rstrip()
        if not before or before[-1] in "[:,":
            return match.start()
    return 0


def _read_operation_json(source: str) -> tuple[Any, list[Operation] | None, str | None]:
    """(parsed JSON, its operations, None) or (None, None, one-line error)."""
    name = "<stdin>" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode("utf-8", "surrogateescape")
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        return None, None, f"cannot read {name}: {exc.strerror or exc}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, None, f"{name}:{line}:{column}: not UTF-8 text (byte {exc.start})"
    return parse_operation_text(text, name)


def parse_operation_text(text: str, name: str) -> tuple[Any, list[Operation] | None, str | None]:
    """(parsed JSON, its operations, None) or (None, None, one line `name:LINE:COLUMN: ...`):
    an operation that parses as JSON but not as an operation is located at the field it names."""
    obj, problem = read_operation_text(text, name)
    if problem is not None:
        return None, None, problem
    try:
        return obj, parse_operations(obj), None
    except OperationError as exc:
        decoder = json.JSONDecoder(parse_int=_bounded_int, parse_constant=_no_constant)
        line, column = json_position(text, jsonpath.locate(text, str(exc), decoder))
        return None, None, f"{name}:{line}:{column}: {exc}"


def read_operation_text(text: str, name: str) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, one-line error located at `name:LINE:COLUMN`)."""
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant), None
    except json.JSONDecodeError as exc:
        return None, f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
    except _JsonValueError as exc:
        line, column = json_position(text, _token_offset(text, exc.token))
        return None, f"{name}:{line}:{column}: invalid JSON: {exc}"
    except RecursionError:
        line, column = json_position(text, _too_deep_offset(text))
        return None, f"{name}:{line}:{column}: invalid JSON: nesting too deep"


def _policy_and_operations(args: argparse.Namespace, command: str) -> tuple[Any, Any, list[Any]] | int:
    """(policy, the operation JSON, parsed operations), or the exit code after one error line."""
    result = _load(args.file, command)
    if result is None:
        return EXIT_USAGE
    if not result.valid or result.policy is None:
        print_text_report(result, args.file, sys.stderr)
        return EXIT_INVALID
    obj, operations, problem = _read_operation_json(args.operation)
    if problem is not None or operations is None:
        print(f"d4c policy {command}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return result.policy, obj, operations


def run_evaluate(args: argparse.Namespace) -> int:
    loaded = _policy_and_operations(args, "evaluate")
    if isinstance(loaded, int):
        return loaded
    policy, obj, operations = loaded
    verdicts = [evaluate(policy, op).to_json() for op in operations]
    print(json.dumps(verdicts if isinstance(obj, list) else verdicts[0]))
    return EXIT_OK


def run_explain(args: argparse.Namespace) -> int:
    loaded = _policy_and_operations(args, "explain")
    if isinstance(loaded, int):
        return loaded
    policy, obj, operations = loaded
    reports = [explain(policy, op) for op in operations]
    if args.format == "json":
        print(json.dumps(reports if isinstance(obj, list) else reports[0], indent=2))
    else:
        print("\n\n".join(explain_text(r) for r in reports))
    return EXIT_OK
