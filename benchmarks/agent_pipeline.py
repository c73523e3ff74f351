"""Benchmark (not a test): activities per second through the agent's userspace pipeline.

Each iteration takes one kernel activity (alternating file creation with log+alert, and exec
with log), looks its container up by cgroup id, builds the ECS documents (two for log+alert),
nests them and writes them to the per-data-stream NDJSON files, flushed per event: everything
`Agent.step` does after the ring buffer. One core, a temporary directory. Each activity comes
from another process (20,000 of them, more than any cache holds), as in exec-heavy work; their
relatives are the same shell, as in a container where one shell runs everything.
Run: python3 benchmarks/agent_pipeline.py [--seconds N]   (the figure: documents per CPU second)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference_agent.activity import Ancestry, FileActivity, ProcessActivity, ProcessSnapshot, TaskInfo  # noqa: E402
from reference_agent.ecs import BootClock, EventContext, file_documents, process_documents  # noqa: E402
from reference_agent.metadata.containers import ContainerInfo, PodInfo, parse_image_reference  # noqa: E402
from reference_agent.metadata.host import AgentFacts, collect_host_facts  # noqa: E402
from reference_agent.outputs import NdjsonWriter  # noqa: E402

PROCESSES = 20_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    ctx = EventContext(host=collect_host_facts(), agent=AgentFacts(id="7829f26d-c2d1-4eaf-a1ac-cd9cb9e12f75",
                       version="bench"), clock=BootClock())
    container = ContainerInfo(id="c" * 64, name="web", image=parse_image_reference("nginx"), pod=PodInfo(
        name="web-1", namespace="prod", uid="u", labels={"app": "web", "tier": "front"}))
    containers = {1234: container}
    shell = ProcessSnapshot(pid=1, start_time_ns=10**8, executable="/bin/bash", args=("bash",), uid=0, gid=0, tty=True)
    ancestry = Ancestry(parent=shell, session_leader=shell, entry_leader=shell)
    activities_by_process = []
    for n in range(PROCESSES):
        task = TaskInfo(pid=4242 + n, tid=4242 + n, ppid=1, uid=0, gid=0, cgroup_id=1234, comm="sh",
                        executable="/bin/sh", start_time_ns=10**9 + n * 10**7, tty=True)
        if n % 2 == 0:
            activities_by_process.append((file_documents, FileActivity(
                operation="createExecutable", event_action="creation", path="/usr/bin/evil", mount="root",
                trace_point="lsm__path_mknod", selectors=("binDir",), actions=frozenset({"log", "alert"}),
                blocked=False, task=task, timestamp_ns=2 * 10**9)))
        else:
            activities_by_process.append((process_documents, ProcessActivity(
                operation="exec", selectors=("shells",), actions=frozenset({"log"}), blocked=False, task=task,
                timestamp_ns=2 * 10**9, args=("sh", "-c", "id"), previous_executable="/bin/bash",
                previous_args=("bash",))))

    with tempfile.TemporaryDirectory() as tmp:
        writer = NdjsonWriter(Path(tmp))
        activities = documents = 0
        start = time.perf_counter()
        cpu_start = time.process_time()
        deadline = start + args.seconds
        while time.perf_counter() < deadline:
            for _ in range(200):
                build, activity = activities_by_process[activities % PROCESSES]
                info = containers.get(activity.task.cgroup_id)
                for doc in build(ctx, activity, info, ancestry):
                    writer.write(doc.data_stream, doc.nested())
                    documents += 1
                activities += 1
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        size = sum(p.stat().st_size for p in Path(tmp).glob("*.ndjson"))
        writer.close()
    # Per CPU second: the pipeline's cost on one core, whatever else the machine runs (a VM
    # beside it takes cycles from the wall-clock figure, not from this one).
    print(f"{activities / cpu:,.0f} activities/s, {documents / cpu:,.0f} documents/s per CPU second "
          f"({activities} activities, {documents} documents, {size / documents:,.0f} bytes/document, "
          f"{cpu:.1f} s CPU in {elapsed:.1f} s wall: {documents / elapsed:,.0f} documents/s wall, one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
