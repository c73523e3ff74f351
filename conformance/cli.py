"""`d4c scenario lint [PATHS]`: check scenario files (docs/scenarios.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.lint import lint


def register(subparsers: argparse._SubParsersAction) -> None:
    scenario = subparsers.add_parser("scenario", help="conformance scenarios: lint")
    commands = scenario.add_subparsers(dest="scenario_command", metavar="SUBCOMMAND", required=True)
    lint_parser = commands.add_parser(
        "lint",
        help="check scenario files: schema, ids, embedded policies and operations",
        description="Exit 0 when every scenario is valid (warnings allowed), 1 on errors, 2 on usage errors. "
                    "One line per problem: FILE:LINE:COLUMN: MESSAGE.",
    )
    lint_parser.add_argument("paths", nargs="*", type=Path, default=[Path("scenarios")], metavar="PATH",
                             help="scenario files or directories (default: scenarios/)")
    lint_parser.set_defaults(func=run_lint)


def run_lint(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        for path in missing:
            print(f"d4c scenario lint: {path}: no such file or directory", file=sys.stderr)
        return 2
    problems, count = lint(args.paths)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    print(f"{count} scenario file(s): {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0
