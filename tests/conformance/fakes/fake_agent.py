"""A fake D4C "agent" for testing the suite's kernel-tier runner on a host without BPF LSM.

It enforces nothing. It watches Docker's event stream and, for every `docker exec` into a
container, writes one ECS process `exec` event per action of the policy's process responses
(`log` -> logs-cloud_defend.process-default, `alert` -> logs-cloud_defend.alerts-default),
with container.id, the exec'd argv and the pod metadata read from the suite's Kubernetes API
server ($KUBECONFIG: the node's pods, the one whose containerStatuses name the container), as a
real agent must: the suite puts no pod labels on containers.
That is enough to prove the runner (containers, steps, correlation, waits, diffs) and both
event transports (NDJSON files, Elasticsearch _bulk) work.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

import docker
import yaml


def actions_of(policy_file: str) -> set[str]:
    """Read on every event, so a policy replaced by the adapter's `load_policy` takes effect."""
    try:
        policy = yaml.safe_load(Path(policy_file).read_text()) or {}
    except FileNotFoundError:
        return set()
    process = policy.get("process") or {}
    return {a for response in process.get("responses", []) for a in response.get("actions", [])}


def pod_of(container_id: str) -> dict | None:
    """The pod whose status names this container, from the API server in $KUBECONFIG."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return None
    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    token = config["users"][0]["user"]["token"]
    selector = urllib.parse.quote(f"spec.nodeName={os.environ['NODE_NAME']}")
    request = urllib.request.Request(f"{server}/api/v1/pods?fieldSelector={selector}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            pods = json.load(response)["items"]
    except OSError:  # the server of another run (an exec not of this run's scenario): no pod facts
        return None
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses", []):
            if status.get("containerID", "").partition("://")[2] == container_id:
                return pod
    return None


def event_for(attributes: dict, container_id: str, argv: list[str], stream: str) -> dict:
    kind = "alert" if ".alerts-" in stream else "event"
    doc = {
        "@timestamp": datetime.now(timezone.utc).isoformat(),
        "event": {"kind": kind, "action": "exec", "type": ["start"], "category": ["process"], "id": str(uuid.uuid4())},
        "container": {"id": container_id, "image": {"name": attributes.get("image", "").split(":")[0]}},
        "process": {"args": argv, "executable": argv[0] if argv else None},
        "data_stream": {"type": "logs", "dataset": stream.split("-")[1], "namespace": "default"},
        "message": "cloud-defend process event",
    }
    pod = pod_of(container_id)
    if pod is not None:
        meta = pod["metadata"]
        doc["orchestrator"] = {
            "namespace": meta["namespace"],
            "resource": {"name": meta["name"], "type": "pod", "label": meta.get("labels") or {}},
        }
    return doc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", required=True)
    parser.add_argument("--ndjson", help="directory: one <data stream>.ndjson per stream")
    parser.add_argument("--es", help="Elasticsearch URL: documents go to <url>/_bulk")
    parser.add_argument("--ready", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client = docker.from_env()
    events = client.events(decode=True, filters={"type": "container"})
    Path(args.ready).write_text("ready\n")  # subscribed: nothing from now on is missed
    for event in events:
        action = event.get("Action", "")
        if not action.startswith("exec_start: "):
            continue
        actions = actions_of(args.policy)
        streams = [s for a, s in (("log", "logs-cloud_defend.process-default"),
                                  ("alert", "logs-cloud_defend.alerts-default")) if a in actions]
        attributes = event.get("Actor", {}).get("Attributes", {})
        try:  # the event's text joins argv with spaces; the exec's own record keeps it exact
            config = client.api.exec_inspect(attributes["execID"])["ProcessConfig"]
            argv = [config["entrypoint"], *config.get("arguments", [])]
        except (KeyError, docker.errors.APIError):
            argv = shlex.split(action.removeprefix("exec_start: "))
        attributes = event.get("Actor", {}).get("Attributes", {})
        docs = [(stream, event_for(attributes, event["Actor"]["ID"], argv, stream)) for stream in streams]
        if args.ndjson:
            for stream, doc in docs:
                with open(Path(args.ndjson) / f"{stream}.ndjson", "a") as out:
                    out.write(json.dumps(doc) + "\n")
        if args.es and docs:
            body = "".join(json.dumps({"create": {"_index": s}}) + "\n" + json.dumps(d) + "\n" for s, d in docs)
            request = urllib.request.Request(f"{args.es}/_bulk", body.encode(), {"Content-Type": "application/x-ndjson"})
            with urllib.request.urlopen(request) as response:
                assert json.load(response)["errors"] is False
    return 0


if __name__ == "__main__":
    sys.exit(main())
