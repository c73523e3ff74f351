"""Benchmark (not a test): how long `d4c agent run` takes from its start to enforcing, and where
that time goes, in a BPF-LSM kernel with Docker.

Phases, each timed on its own (median of the rounds): the interpreter plus the agent's imports
(a fresh `python3 -c 'import ...'`), open and load (BTF parsing, verification) of each BPF
object, seeding the process table from /proc, listing Docker's containers; then the whole:
`d4c agent run` with the default policy (deploy/configmap.yaml) until <output-dir>/.ready.
Run in the VM: d4c vm run -- python3 benchmarks/agent_start.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGENT_IMPORTS = "import reference_agent.agent, reference_agent.kernel, reference_agent.cli, docker"


def _timed(action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def _imports() -> None:
    subprocess.run([sys.executable, "-c", AGENT_IMPORTS], check=True, cwd=ROOT)


def _load(name: str) -> Callable[[], None]:
    from reference_agent.kernel.libbpf import BpfObject
    from reference_agent.kernel.support import bpf_object_path

    def load() -> None:
        with BpfObject(bpf_object_path(name)) as obj:
            obj.load()
    return load


def _seed() -> None:
    from reference_agent.processes import ProcessTable

    ProcessTable("bench").seed()


def _docker() -> None:
    import docker

    from reference_agent.metadata.containers import ContainerCache

    ContainerCache(docker.from_env()).refresh()


def ready_seconds(policy_text: str) -> float:
    """Seconds from starting `d4c agent run` to its ready file (enforcing)."""
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
                time.sleep(0.01)
            return time.monotonic() - t0
        finally:
            agent.terminate()
            agent.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from exec_overhead import default_policy_text

    phases = {
        "interpreter + agent imports": _imports,
        "file_hooks.bpf.o open+load": _load("file_hooks"),
        "process_hooks.bpf.o open+load": _load("process_hooks"),
        "process table seed (/proc)": _seed,
        "docker container list": _docker,
    }
    for name, action in phases.items():
        times = [_timed(action) for _ in range(args.rounds)]
        print(f"{name:<34} {statistics.median(times):6.2f} s  rounds {[round(t, 2) for t in times]}", flush=True)
    text = default_policy_text()
    ready = [ready_seconds(text) for _ in range(args.rounds)]
    print(f"{'d4c agent run -> .ready':<34} {statistics.median(ready):6.2f} s  rounds {[round(t, 2) for t in ready]}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
