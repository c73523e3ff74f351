"""Benchmark (not a test): cost of the file_hooks LSM programs, in a BPF-LSM kernel.

Measures (1) open/load/attach time of bpf/build/file_hooks.bpf.o, (2) write-opens per second
of one process: without programs, with programs for a host process (cgroup not registered:
the fast path), for a container process against a policy at the D26 limit whose 64 selectors
carry 2 path patterns each that never match (the whole in-kernel glob loop), and against a
policy whose response fires with `log` (a ring-buffer record per open, drained by a thread).
Run in the VM: d4c vm run --no-docker -- python3 benchmarks/bpf_hooks.py [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id, probe_bpf_lsm
from reference_agent.policy.model import Policy, Response, Section, Selector
from reference_agent.policy.operation import Container

CONTAINER = Container(image="nginx:1.25", name="nginx", tag="1.25", full="docker.io/library/nginx:1.25")


def _policy(patterns: list[tuple[str, str]], actions: frozenset[str]) -> Policy:
    selectors = tuple(Selector(name=f"s{i}", kind="file", index=i, targetFilePath=p) for i, p in enumerate(patterns))
    responses = (Response(index=0, match=tuple(s.name for s in selectors), exclude=(), actions=actions),)
    return Policy(file=Section(kind="file", selectors=selectors, responses=responses))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    support = probe_bpf_lsm()
    if not support.available:
        print(f"bpf_hooks benchmark: {support.reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="d4c-bench-"))
    target = work / "usr/lib/app/data.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    cgroup = CGROUP2_ROOT / f"d4c-bench-{os.getpid()}"
    cgroup.mkdir()
    try:
        miss = _policy([(f"/opt/x{i}/**", f"/srv/*/y{i}") for i in range(64)], frozenset({"log"}))
        hit = _policy([(f"{target.parent}/*",)], frozenset({"log"}))
        baseline = _opens_per_second(target, args.seconds, cgroup)
        times = []
        for _ in range(3):
            with FileEnforcer(compile_file_section(miss)) as e:
                times.append(e.times)
        print("file_hooks.bpf.o open/load/attach (s): "
              + ", ".join(f"{t.open_s:.3f}/{t.load_s:.3f}/{t.attach_s:.3f}" for t in times))
        with FileEnforcer(compile_file_section(miss)) as enforcer:
            host = _opens_per_second(target, args.seconds, None)
            enforcer.add_container(cgroup_id(cgroup), CONTAINER)
            no_match = _opens_per_second(target, args.seconds, cgroup)
            enforcer.set_policy(compile_file_section(hit))
            stop = threading.Event()
            drained = [0]

            def drain() -> None:
                while not stop.is_set():
                    drained[0] += len(enforcer.poll(50))

            thread = threading.Thread(target=drain)
            thread.start()
            logged = _opens_per_second(target, args.seconds, cgroup)
            stop.set()
            thread.join()
            drained[0] += len(enforcer.drain())
            stats = enforcer.stats()
        print(f"write-opens/s, no programs:                       {baseline:10.0f}")
        print(f"write-opens/s, host process (fast path):          {host:10.0f}")
        print(f"write-opens/s, container, 128 patterns, no match: {no_match:10.0f}")
        print(f"write-opens/s, container, match + log record:     {logged:10.0f}  "
              f"({drained[0]} records drained, {stats['ringbuf_full']} lost to a full ring buffer)")
    finally:
        cgroup.rmdir()
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
