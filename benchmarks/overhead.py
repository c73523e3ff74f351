"""Benchmark (not a test): every overhead figure a node owner weighs, side by side in one run.

Runs benchmarks/bpf_hooks.py's write-open measurement (host fast path, a container against 1
and 64 selectors x 2 non-matching patterns, match + log) and benchmarks/exec_overhead.py's
exec loop (off, kernel programs only, `d4c agent run`, which also gives the time from the
agent's start to enforcing), prints both reports and the goals, then as its LAST line:

    open_ratio_64=<x> open_scaling_64_vs_1=<y> exec_ratio_kernel=<z> exec_ratio_agent=<w> ready_s=<s>

open_ratio_64: host fast path opens/s / container opens/s with 64 selectors (goal <= 1.10);
open_scaling_64_vs_1: opens/s with 1 selector / with 64 (goal <= 1.05);
exec_ratio_kernel / exec_ratio_agent: exec-loop time against no agent (goals <= 1.10, <= 1.25);
ready_s: seconds from `d4c agent run`'s start to <output-dir>/.ready (goal <= 2).
Ratios compare figures of this one run; absolute numbers depend on the machine's load.
Run in the VM: d4c vm run -- python3 benchmarks/overhead.py [--seconds N] [--rounds N] [--n N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpf_hooks  # noqa: E402
import exec_overhead  # noqa: E402

from reference_agent.kernel.support import probe_bpf_lsm  # noqa: E402

GOALS = {"open_ratio_64": 1.10, "open_scaling_64_vs_1": 1.05, "exec_ratio_kernel": 1.10,
         "exec_ratio_agent": 1.25, "ready_s": 2.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per write-open round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    parser.add_argument("--n", type=int, default=500, help="execs per exec-loop round")
    parser.add_argument("--image", default="debian:bookworm")
    args = parser.parse_args()
    support = probe_bpf_lsm()
    if not support.available:
        print(f"overhead benchmark: {support.reason}", file=sys.stderr)
        return 2
    opens = bpf_hooks.measure_opens(args.seconds, args.rounds)
    print("\n".join(bpf_hooks.report(opens)), flush=True)
    execs = exec_overhead.measure_exec(args.n, args.rounds, args.image)
    print("\n".join(exec_overhead.report(execs, args.rounds, args.image)))
    figures = {"open_ratio_64": opens.ratio_64, "open_scaling_64_vs_1": opens.scaling_64_vs_1,
               "exec_ratio_kernel": execs.ratio_kernel, "exec_ratio_agent": execs.ratio_agent,
               "ready_s": execs.ready_s}
    for name, value in figures.items():
        verdict = "met" if value <= GOALS[name] else "NOT met"
        print(f"goal {name:<22} <= {GOALS[name]:<5g} measured {value:6.2f}  {verdict}")
    print(" ".join(f"{name}={value:.2f}" for name, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
