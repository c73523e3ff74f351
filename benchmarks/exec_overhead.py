"""Benchmark (not a test): exec-heavy overhead of the reference agent, in the VM.

A shell in a Docker container runs a loop of N `/bin/true` (one fork, one exec, one exit per
iteration) and times it itself (`date +%s%N` inside the container, so `docker exec` start-up
is not counted). Modes, each timed in several rounds (median reported):
  off     no BPF programs loaded;
  kernel  file_hooks + process_hooks attached with the default policy and this container
          registered, records drained by a thread of this process (kernel cost only);
  agent   `d4c agent run` with the default policy (the kernel cost plus the agent's userspace:
          decoding, process table, ECS documents, NDJSON), on the same 2 vCPUs.
The default policy is the one deploy/configmap.yaml ships (log every fork/exec, alert on
executable changes). Prints per-iteration times and the ratios to `off`; asserts nothing.
Run in the VM: d4c vm run -- python3 -u benchmarks/exec_overhead.py [--n 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_agent.kernel.backend import BpfBackend
from reference_agent.kernel.support import CGROUP2_ROOT, cgroup_id
from reference_agent.policy import load_policy_text

NAME = "d4c-bench-exec"


def default_policy_text() -> str:
    for doc in yaml.safe_load_all((ROOT / "deploy/configmap.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            return doc["data"]["policy.yaml"]
    raise SystemExit("deploy/configmap.yaml: no ConfigMap with data.policy.yaml")


def loop_ns(n: int) -> int:
    script = (f"s=$(date +%s%N); i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done; "
              "e=$(date +%s%N); echo $((e-s))")
    out = subprocess.run(["docker", "exec", NAME, "sh", "-c", script], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def rounds(n: int, count: int) -> list[float]:
    loop_ns(max(1, n // 10))  # warm-up: page cache, dentries
    return [loop_ns(n) / n / 1000 for _ in range(count)]  # µs per iteration


def container_cgroup() -> Path:
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", NAME], check=True, capture_output=True,
                         text=True).stdout.strip()
    line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if x.startswith("0::"))
    return CGROUP2_ROOT / line[3:].lstrip("/")


def kernel_mode(policy_text: str, n: int, count: int) -> tuple[list[float], int]:
    result = load_policy_text(policy_text, "deploy/configmap.yaml policy.yaml")
    if result.policy is None:
        raise SystemExit(f"the default policy is invalid: {result.errors[0]}")
    policy = result.policy
    backend = BpfBackend()
    names = frozenset(s.name for section in policy.sections for s in section.selectors)
    backend.apply_policy(policy, {cgroup_id(container_cgroup()): names})
    seen = 0
    stop = threading.Event()

    def drain() -> None:
        nonlocal seen
        while not stop.is_set():
            seen += len(backend.poll(0.05))

    thread = threading.Thread(target=drain)
    thread.start()
    try:
        times = rounds(n, count)
    finally:
        stop.set()
        thread.join()
        seen += len(backend.poll(0))
        backend.close()
    return times, seen


def agent_mode(policy_text: str, n: int, count: int) -> tuple[list[float], float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(policy_text)
        out = Path(tmp) / "out"
        t0 = time.monotonic()
        agent = subprocess.Popen([sys.executable, "-m", "d4c", "agent", "run", "--policy", str(policy),
                                  "--output-dir", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            while not (out / ".ready").exists():
                if agent.poll() is not None or time.monotonic() - t0 > 300:
                    raise SystemExit(f"d4c agent run did not become ready (exit {agent.returncode})")
                time.sleep(0.02)
            ready = time.monotonic() - t0
            times = rounds(n, count)
            time.sleep(2)  # let it write what the last round produced
        finally:
            agent.terminate()
            agent.wait(60)
        lines = sum(len(p.read_text().splitlines()) for p in out.glob("*.ndjson"))
    return times, ready, lines


@dataclass(frozen=True)
class ExecFigures:
    """µs per loop iteration (medians of the rounds); ratios against `off` before and after."""

    n: int
    off: list[float]
    off_after: list[float]
    kernel: list[float]
    records: int
    agent: list[float]
    ready_s: float
    lines: int

    @property
    def base(self) -> float:
        return statistics.median(self.off + self.off_after)

    @property
    def ratio_kernel(self) -> float:
        return statistics.median(self.kernel) / self.base

    @property
    def ratio_agent(self) -> float:
        return statistics.median(self.agent) / self.base if self.agent else float("nan")


def measure_exec(n: int = 500, count: int = 3, image: str = "debian:bookworm", agent: bool = True) -> ExecFigures:
    policy_text = default_policy_text()
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--rm", "--name", NAME, image, "sleep", "infinity"],
                   check=True, capture_output=True)
    try:
        off = rounds(n, count)
        kernel, records = kernel_mode(policy_text, n, count)
        agent_times, ready, lines = agent_mode(policy_text, n, count) if agent else ([], 0.0, 0)
        off_after = rounds(n, count)
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    return ExecFigures(n, off, off_after, kernel, records, agent_times, ready, lines)


def report(f: ExecFigures, count: int, image: str) -> list[str]:
    lines = [
        f"exec loop: {f.n} x /bin/true per round, {count} rounds per mode, image {image}",
        f"off     : {statistics.median(f.off):8.1f} µs/iteration (before) "
        f"{statistics.median(f.off_after):8.1f} (after); rounds {[round(x, 1) for x in f.off + f.off_after]}",
        f"kernel  : {statistics.median(f.kernel):8.1f} µs/iteration  ratio {f.ratio_kernel:5.2f}  "
        f"rounds {[round(x, 1) for x in f.kernel]}  ({f.records} records decoded)",
    ]
    if f.agent:
        lines.append(f"agent   : {statistics.median(f.agent):8.1f} µs/iteration  ratio {f.ratio_agent:5.2f}  "
                     f"rounds {[round(x, 1) for x in f.agent]}  (ready in {f.ready_s:.2f} s, {f.lines} NDJSON documents)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="execs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", default="debian:bookworm")
    parser.add_argument("--skip-agent", action="store_true", help="only off and kernel")
    args = parser.parse_args()
    figures = measure_exec(args.n, args.rounds, args.image, agent=not args.skip_agent)
    print("\n".join(report(figures, args.rounds, args.image)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
