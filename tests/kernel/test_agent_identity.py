"""Which agent and which node wrote a document, in the VM (D31): Kibana groups hosts by
`host.id` and shows `agent.version`, so every document of every stream the agent writes
carries both: the guest's machine id and the version `d4c --version` reports; the heartbeat
also names the kernel."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from .running_agent import busybox, lines, run, start_agent, stop

POLICY_YAML = """\
process:
  selectors:
    - name: execs
      operation: [exec]
  responses:
    - match: [execs]
      actions: [log]
"""


def _cli_version() -> str:
    out = subprocess.run([sys.executable, "-m", "d4c", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def test_every_document_names_the_agent_version_and_the_machine(bpf_lsm, tmp_path):
    machine_id = Path("/etc/machine-id").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id), f"the guest has no machine id: {machine_id!r}"
    events = tmp_path / "events"
    process_stream = events / "logs-cloud_defend.process-default.ndjson"
    with busybox("d4c-identity", "true") as cid:
        agent = start_agent(tmp_path, POLICY_YAML, "", events)
        try:
            run("docker", "exec", cid, "true")
            deadline = time.monotonic() + 120
            while not any(d.get("container", {}).get("id") == cid for d in lines(process_stream)):
                assert time.monotonic() < deadline, "no process document for the container's exec"
                time.sleep(1)
        finally:
            stop(agent)

    streams = {path.name: lines(path) for path in sorted(events.glob("*.ndjson"))}
    # the exec's log document, the heartbeat once enforcing, the metrics document at stop
    for name in ("logs-cloud_defend.process-default.ndjson", "metrics-cloud_defend.heartbeat-default.ndjson",
                 "metrics-cloud_defend.metrics-default.ndjson"):
        assert streams.get(name), f"no documents in {name}: {sorted(streams)}"
    want = {"agent.version": _cli_version(), "host.id": machine_id}
    wrong = [(name, number, got) for name, docs in streams.items() for number, doc in enumerate(docs, 1)
             if (got := {field: _field(doc, field) for field in want}) != want]
    assert wrong == [], f"want {want}"
    # the heartbeat names the kernel enforcing (uname's release, then its version string)
    kernels = {_field(doc, "host.os.kernel") for doc in streams["metrics-cloud_defend.heartbeat-default.ndjson"]}
    assert len(kernels) == 1 and all(isinstance(k, str) and k.startswith(platform.release() + " ") for k in kernels), kernels


def _field(doc: dict, dotted: str):
    for key in dotted.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc
