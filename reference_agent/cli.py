"""`d4c agent run`: the reference agent enforcing a policy file on this node.

A short composition (agent.run_agent does the lifecycle): check the configuration and the
policy first, so bad input gets its located one-line errors wherever it is run; then check that
this kernel can enforce at all (BPF LSM active and the agent's own lsm programs load: they have
been loading since the command's first line, kernel/preload.py); then run the agent with the
BPF backend until SIGTERM/SIGINT. SIGHUP or a change of the policy file reloads it (reload.py); an invalid new policy leaves the old one
enforcing.

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 invalid policy or cannot start (docker, BPF maps),
2 usage error or bad configuration file, 3 this kernel cannot load BPF LSM programs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # imported where used: `d4c agent reload` runs once per scenario in the suite
    from reference_agent.config import AgentConfig
    from reference_agent.kernel.preload import Preload
    from reference_agent.reload import LoadedPolicy

EXIT_BAD_POLICY = 1
EXIT_NO_BPF_LSM = 3


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="run the reference agent (eBPF LSM enforcement)",
        description="The reference agent: enforce a D4C policy on this node with BPF LSM programs.",
    )
    commands = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="enforce a policy until SIGTERM/SIGINT (SIGHUP or a file change reloads it)",
        description=(
            "Load POLICY into the kernel, write one NDJSON file per data stream into the output "
            "directory and <output-dir>/.ready once enforcing. Exit 1 invalid policy or cannot "
            "start, 2 bad configuration, 3 BPF LSM unavailable on this kernel."
        ),
    )
    run.add_argument("--policy", required=True, metavar="FILE", help="the policy YAML file")
    run.add_argument("--config", metavar="FILE", help="the agent's configuration YAML (default: built-in defaults)")
    run.add_argument("--output-dir", metavar="DIR", type=Path, help="where the NDJSON files go (overrides the config)")
    run.add_argument("--pin-dir", metavar="DIR", type=Path,
                     help="pin the BPF programs and maps in this bpffs directory (e.g. /sys/fs/bpf/d4c): "
                          "the policy keeps enforcing after the agent stops or dies, and the next agent "
                          "started with the same DIR takes over; end it with `d4c agent remove-enforcement`")
    run.add_argument("-v", "--verbose", action="store_true", help="log reloads and container changes")
    run.set_defaults(func=run_agent_command)
    remove = commands.add_parser(
        "remove-enforcement",
        help="detach the pinned BPF programs an agent left enforcing (uninstall)",
        description=(
            "Unpin every program link and map under DIR (what `d4c agent run --pin-dir DIR` pinned): "
            "the node stops enforcing, unless an agent is still running. Exit 0 removed or nothing "
            "there, 1 could not remove (not root, not bpffs), 2 usage error."
        ),
    )
    remove.add_argument("--pin-dir", metavar="DIR", type=Path, default=None,
                        help="the bpffs directory (default /sys/fs/bpf/d4c)")
    remove.set_defaults(func=run_remove_command)
    reload = commands.add_parser(
        "reload",
        help="make a running agent reload its policy, or enforce another one",
        description=(
            "Signal the agent writing into DIR (its pid is in DIR/.ready) to reload its policy file; "
            "with POLICY, first replace that file's content with POLICY's. --wait: until DIR/.ready "
            "shows the new policy's SHA-256 (enforcing). Exit 0 done, 1 no agent there or not "
            "enforcing in time (see the agent's log for why), 2 usage error."
        ),
    )
    reload.add_argument("policy", nargs="?", type=Path, metavar="POLICY", help="the policy to enforce from now on")
    reload.add_argument("--output-dir", required=True, type=Path, metavar="DIR", help="the agent's output directory")
    reload.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for the agent to confirm the policy (default: do not wait)")
    reload.set_defaults(func=run_reload_command)


def preflight(policy_path: Path, config_path: str | None, err: TextIO) -> int | None:
    """Configuration and policy checks that need no kernel; an exit code when they fail."""
    # Imported here: the policy language has no dependency on the agent extra, and
    # `d4c --help` must not need libbpf or docker.
    from reference_agent.agent import load_agent_config
    from reference_agent.config import EXIT_BAD_CONFIG, ConfigError
    from reference_agent.reload import read_and_validate

    if config_path is not None:
        try:
            load_agent_config(config_path, environ={})  # $KUBECONFIG: run_agent's, after the kernel check
        except ConfigError as exc:
            print(str(exc), file=err)
            return EXIT_BAD_CONFIG
    try:
        result, _digest = read_and_validate(policy_path)
    except OSError as exc:
        print(f"{policy_path}: cannot read policy: {exc.strerror or exc}", file=err)
        return EXIT_BAD_POLICY
    if result.errors or result.policy is None:
        for diagnostic in result.errors:
            print(diagnostic.format(str(policy_path)), file=err)
        return EXIT_BAD_POLICY
    return None


def bpf_lsm_problem(preload: Preload | None = None) -> str | None:
    """Why this kernel cannot enforce, or None: the agent's own objects must load (`preload`,
    whose loads started first thing; without it, loaded here and closed again)."""
    try:
        from reference_agent.kernel.preload import Preload
    except (ImportError, OSError) as exc:  # libbpf.so missing: the ctypes binding cannot load
        return f"libbpf cannot be loaded: {exc}"
    if preload is not None:
        return preload.lsm_problem()
    own = Preload()
    try:
        return own.lsm_problem()
    finally:
        own.close()


def kernel_variant_notice() -> str | None:
    """Which BPF objects this kernel gets, when not the default ones, and what that changes
    (an older kernel is never enforced on differently without saying so)."""
    from reference_agent.kernel.kernel_compat import variant_notice
    from reference_agent.kernel.libbpf import lib

    return variant_notice(lib().missing_features())


def enforcing_line(loaded: LoadedPolicy, started: float) -> str:
    file_selectors = len(loaded.policy.file.selectors) if loaded.policy.file else 0
    process_selectors = len(loaded.policy.process.selectors) if loaded.policy.process else 0
    return (f"d4c agent: enforcing policy {loaded.path} ({file_selectors} file selectors, "
            f"{process_selectors} process selectors) in {time.monotonic() - started:.1f}s")


def run_agent_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    started = time.monotonic()
    # First: the kernel verifies the BPF objects on the other CPU while this one imports the
    # agent and validates the policy (most of the start-up under TCG).
    preload = _start_preload()
    try:
        return _run_agent(args, started, preload, out or sys.stdout, err or sys.stderr)
    finally:
        if preload is not None:
            preload.close()  # what the backend did not take (a refused start)


def _start_preload() -> Preload | None:
    try:
        from reference_agent.kernel.preload import Preload
    except (ImportError, OSError):  # reported by bpf_lsm_problem, after the policy checks
        return None
    return Preload()


def _run_agent(args: argparse.Namespace, started: float, preload: Preload | None, out: TextIO, err: TextIO) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=err,
                        format="d4c agent: %(levelname)s: %(message)s")
    policy_path = Path(args.policy)
    failed = preflight(policy_path, args.config, err)
    if failed is not None:
        return failed
    problem = bpf_lsm_problem(preload)
    if problem is not None:
        print(f"d4c agent: BPF LSM programs cannot be loaded here: {problem}", file=err)
        return EXIT_NO_BPF_LSM
    notice = kernel_variant_notice()
    if notice is not None:
        print(f"d4c agent: {notice}", file=err)

    from reference_agent.agent import run_agent
    from reference_agent.kernel import BpfBackend

    def backend(_config: AgentConfig) -> BpfBackend:
        return BpfBackend(pin_dir=args.pin_dir, preload=preload)

    # The process table (relatives, ends, executables of short-lived processes) is the
    # Agent's own: seeded from /proc at start, kept by the kernel's fork/exec/exit values.

    def started_line(loaded: LoadedPolicy) -> None:
        print(enforcing_line(loaded, started), file=out, flush=True)

    return run_agent(args.config, policy_path, backend, output_dir=args.output_dir, err=err,
                     on_started=started_line)



def run_remove_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from reference_agent.kernel.pinning import DEFAULT_PIN_DIR, remove_enforcement

    out = out or sys.stdout
    err = err or sys.stderr
    pin_dir = args.pin_dir or DEFAULT_PIN_DIR
    try:
        removed = remove_enforcement(pin_dir)
    except OSError as exc:
        print(f"d4c agent remove-enforcement: {exc.filename or pin_dir}: {exc.strerror}", file=err)
        return EXIT_BAD_POLICY
    if removed:
        print(f"d4c agent remove-enforcement: {pin_dir}: removed {', '.join(removed)}", file=out)
    else:
        print(f"d4c agent remove-enforcement: {pin_dir}: nothing was enforcing", file=out)
    return 0


def run_reload_command(args: argparse.Namespace, err: TextIO | None = None) -> int:
    from reference_agent.control import request_reload

    err = err or sys.stderr
    try:
        confirmed = request_reload(args.output_dir, args.policy, wait=args.wait)
    except (OSError, ValueError) as exc:
        print(f"d4c agent reload: {exc}", file=err)
        return EXIT_BAD_POLICY
    if not confirmed:
        print(f"d4c agent reload: {args.output_dir}/.ready does not show the new policy after {args.wait:g}s "
              "(rejected? see the agent's log)", file=err)
        return EXIT_BAD_POLICY
    return 0
