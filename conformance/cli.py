"""`d4c scenario lint [PATHS]`: check scenario files; `d4c scenario run FILE...`: run them
through the conformance suite, as a spec author's loop (docs/scenarios.md)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from conformance.lint import lint
from conformance.probe import bpf_lsm_missing

SUITE_DIR = Path(__file__).resolve().parent
# Where the kernel tier's agent is kept between runs (tmpfs: it goes with the machine).
AGENT_DIR = Path("/run/d4c-scenario-agent")


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
    run_parser = commands.add_parser(
        "run",
        help="run scenario files through the conformance suite (engine tier here, kernel tier in the BPF-LSM kernel)",
        description="The same items, outcomes and diffs as `pytest conformance/ --scenarios FILE`. The kernel "
                    "tier runs here when this kernel enforces BPF LSM, else in the VM of `d4c vm up` (files "
                    "must then be inside the checkout, which the VM shares), else it is skipped. There, the "
                    "reference agent is kept running between runs (enforcing a policy that matches nothing) "
                    "and each run loads the scenario's policy into it. Exit code: pytest's.",
    )
    run_parser.add_argument("paths", nargs="+", type=Path, metavar="FILE", help="scenario files or directories")
    run_parser.add_argument("--target", default="reference", help="reference (default), command or engine")
    run_parser.add_argument("--adapter", metavar="FILE", help="the implementation's adapter file (--target command)")
    run_parser.add_argument("--event-timeout", metavar="SECONDS", help="kernel tier: wait for expected events")
    run_parser.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST-ARGS",
                            help="anything after `--` goes to pytest (-k, -x, --keep-workdirs, ...)")
    run_parser.set_defaults(func=run_scenarios)
    new_parser = commands.add_parser(
        "new",
        help="print a scenario for a policy: one operation per selector, expectations from the evaluator",
        description="Writes a scenario whose engine part lints and passes as written (each expectation is the "
                    "reference evaluator's answer), with the kernel part as a commented outline. "
                    "Exit 0, 1 when the policy is invalid, 2 when it cannot be read or OUT exists.",
    )
    new_parser.add_argument("--policy", required=True, type=Path, metavar="FILE", help="the policy YAML file")
    new_parser.add_argument("--id", metavar="ID", help="kebab-case scenario id (default: from the policy file name)")
    new_parser.add_argument("-o", "--output", type=Path, metavar="OUT",
                            help="write OUT (named <id>.yaml by convention) instead of printing")
    new_parser.set_defaults(func=run_new)


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


def run_new(args: argparse.Namespace) -> int:
    from conformance.adapters.reference import PolicyInvalid
    from conformance.scaffold import scaffold

    try:
        text = args.policy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"d4c scenario new: cannot read {args.policy}: {getattr(error, 'strerror', None) or error}", file=sys.stderr)
        return 2
    stem = args.output.stem if args.output else args.policy.stem
    scenario_id = args.id or re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "new-scenario"
    try:
        out = scaffold(text, scenario_id)
    except PolicyInvalid as error:
        for finding in error.findings:
            print(f"{args.policy}:{finding.line}:{finding.column}: {finding.path}: {finding.message}", file=sys.stderr)
        return 1
    except (ValueError, AttributeError, TypeError) as error:
        print(f"d4c scenario new: {args.policy}: {error}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(out)
        return 0
    if args.output.exists():
        print(f"d4c scenario new: {args.output} exists; not overwriting it", file=sys.stderr)
        return 2
    args.output.write_text(out)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _up_vm() -> bool:
    """Is a `d4c vm up` VM of this checkout running? (False when the vm package is absent.)"""
    try:
        from vm import machine
        from vm.paths import checkout_root
    except ImportError:
        return False
    return machine.load(machine.persistent_dir(checkout_root())) is not None


def suite_argv(args: argparse.Namespace, kernel_here: bool) -> list[str]:
    argv = [sys.executable, "-m", "pytest", str(SUITE_DIR), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(SUITE_DIR.parent), "--target", args.target, "--library", "none"]
    for path in args.paths:
        argv += ["--scenarios", str(path.resolve())]
    if args.adapter:
        argv += ["--adapter", str(Path(args.adapter).resolve())]
    if args.event_timeout:
        argv += ["--event-timeout", args.event_timeout]
    if kernel_here:
        argv += ["--agent-dir", str(AGENT_DIR / args.target)]
    return argv + [a for a in args.pytest_args if a != "--"]


def run_scenarios(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    if missing:
        for path in missing:
            print(f"d4c scenario run: {path}: no such file or directory", file=sys.stderr)
        return 2
    kernel_here = bpf_lsm_missing() is None
    if not kernel_here and args.target != "engine" and _up_vm():
        # The VM runs this same command, where the kernel enforces; its output is pytest's.
        inner = ["python3", "-m", "d4c", "scenario", "run", *map(str, args.paths), "--target", args.target]
        if args.adapter:
            inner += ["--adapter", args.adapter]
        if args.event_timeout:
            inner += ["--event-timeout", args.event_timeout]
        extra = [a for a in args.pytest_args if a != "--"]
        if extra:
            inner += ["--", *extra]
        return subprocess.call([sys.executable, "-m", "d4c", "vm", "run", "--", *inner])
    if not kernel_here and args.target != "engine":
        print("d4c scenario run: no BPF-LSM kernel here and no `d4c vm up` VM: kernel items are skipped",
              file=sys.stderr)
    return subprocess.call(suite_argv(args, kernel_here), env={**os.environ, "PYTHONPATH": _pythonpath()})


def _pythonpath() -> str:
    """The suite's own checkout first, so the run tests this code, not an installed copy."""
    here = str(SUITE_DIR.parent)
    rest = os.environ.get("PYTHONPATH")
    return f"{here}:{rest}" if rest else here
