"""Benchmark (not a test): cost of the file_hooks LSM programs, in a BPF-LSM kernel.

Measures (1) open/load/attach time of bpf/build/file_hooks.bpf.o, (2) write-opens per second
of one process: without programs, with programs for a host process (cgroup not registered:
the fast path), for a container process against a policy of ONE selector and against one at
the D26 limit (64 selectors), each selector carrying 2 path patterns that never match (the
whole in-kernel match loop), and against a policy whose response fires with `log` (a
ring-buffer record per open, drained by a thread). The host/1/64 figures are taken in
alternating rounds (median of each), so load on the machine hits them alike.
Run in the VM: d4c vm run --no-docker -- python3 benchmarks/bpf_hooks.py [--seconds N] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id, probe_bpf_lsm
from reference_agent.policy.model import Policy, Response, Section, Selector
from reference_agent.policy.operation import Container

CONTAINER = Container(image="nginx:1.25", name="nginx", tag="1.25", full="docker.io/library/nginx:1.25")


def _policy(patterns: list[tuple[str, ...]], actions: frozenset[str]) -> Policy:
    selectors = tuple(Selector(name=f"s{i}", kind="file", index=i, targetFilePath=p) for i, p in enumerate(patterns))
    responses = (Response(index=0, match=tuple(s.name for s in selectors), exclude=(), actions=actions),)
    return Policy(file=Section(kind="file", selectors=selectors, responses=responses))


def miss_policy(selectors: int) -> Policy:
    """`selectors` selectors x 2 patterns (a directory prefix and an inner wildcard), none matching."""
    return _policy([(f"/opt/x{i}/**", f"/srv/*/y{i}") for i in range(selectors)], frozenset({"log"}))


def _opens_per_second(path: Path, seconds: float, cgroup: Path | None) -> float:
    """Write-opens per second of a forked child (in `cgroup` when given)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            if cgroup is not None:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            n, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                for _ in range(200):
                    os.close(os.open(path, os.O_WRONLY))
                n += 200
            os.write(w, f"{n / elapsed}".encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return float(out)


@dataclass(frozen=True)
class OpenFigures:
    """Write-opens per second (medians of the rounds) and the program's load times."""

    baseline: float  # no programs
    host: float  # programs attached, host process (fast path)
    one: float  # container, 1 selector x 2 non-matching patterns
    sixty_four: float  # container, 64 selectors x 2 non-matching patterns
    logged: float  # container, match + log record
    drained: int
    lost: int
    load_times: tuple[tuple[float, float, float], ...]  # open/load/attach seconds

    @property
    def ratio_64(self) -> float:
        return self.host / self.sixty_four

    @property
    def scaling_64_vs_1(self) -> float:
        return self.one / self.sixty_four


def measure_opens(seconds: float = 2.0, rounds: int = 3) -> OpenFigures:
    work = Path(tempfile.mkdtemp(prefix="d4c-bench-"))
    target = work / "usr/lib/app/data.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    cgroup = CGROUP2_ROOT / f"d4c-bench-{os.getpid()}"
    cgroup.mkdir()
    try:
        big, small = compile_file_section(miss_policy(64)), compile_file_section(miss_policy(1))
        hit = compile_file_section(_policy([(f"{target.parent}/*",)], frozenset({"log"})))
        baseline = statistics.median(_opens_per_second(target, seconds, cgroup) for _ in range(rounds))
        times = []
        for _ in range(3):
            with FileEnforcer(big) as e:
                times.append((e.times.open_s, e.times.load_s, e.times.attach_s))
        host, one, sixty_four = [], [], []
        with FileEnforcer(big) as enforcer:
            enforcer.add_container(cgroup_id(cgroup), CONTAINER)
            for _ in range(rounds):
                host.append(_opens_per_second(target, seconds, None))
                enforcer.set_policy(small)
                one.append(_opens_per_second(target, seconds, cgroup))
                enforcer.set_policy(big)
                sixty_four.append(_opens_per_second(target, seconds, cgroup))
            enforcer.set_policy(hit)
            stop = threading.Event()
            drained = [0]

            def drain() -> None:
                while not stop.is_set():
                    drained[0] += len(enforcer.poll(50))

            thread = threading.Thread(target=drain)
            thread.start()
            logged = _opens_per_second(target, seconds, cgroup)
            stop.set()
            thread.join()
            drained[0] += len(enforcer.drain())
            stats = enforcer.stats()
    finally:
        cgroup.rmdir()
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()
    return OpenFigures(baseline, statistics.median(host), statistics.median(one), statistics.median(sixty_four),
                       logged, drained[0], stats["ringbuf_full"], tuple(times))


def report(f: OpenFigures) -> list[str]:
    return [
        "file_hooks.bpf.o open/load/attach (s): " + ", ".join(f"{o:.3f}/{l:.3f}/{a:.3f}" for o, l, a in f.load_times),
        f"write-opens/s, no programs:                              {f.baseline:10.0f}",
        f"write-opens/s, host process (fast path):                 {f.host:10.0f}",
        f"write-opens/s, container, 1 selector x 2, no match:      {f.one:10.0f}",
        f"write-opens/s, container, 64 selectors x 2, no match:    {f.sixty_four:10.0f}",
        f"write-opens/s, container, match + log record:            {f.logged:10.0f}  "
        f"({f.drained} records drained, {f.lost} lost to a full ring buffer)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    support = probe_bpf_lsm()
    if not support.available:
        print(f"bpf_hooks benchmark: {support.reason}", file=sys.stderr)
        return 2
    print("\n".join(report(measure_opens(args.seconds, args.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
