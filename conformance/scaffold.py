"""`d4c scenario new --policy FILE`: a scenario to start from, for a policy (docs/scenarios.md).

The engine part is complete: one operation per selector, built from the selector's own
conditions (its first operation, a path its first pattern matches, its image, labels, user...),
and each expectation is what the reference evaluator answers for it, so the file lints and
passes as written; the author then adds near misses and edits what the evaluator answered if
the policy is not meant to do that. The kernel part (containers, steps, events) needs commands
only the author knows and is left as a commented outline.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

import d4c_yaml
from conformance.adapters import reference

_DEFAULT_OPERATION = {"file": "createFile", "process": "exec"}
_DEFAULT_IMAGE = "docker.io/library/debian:bookworm"


def concrete_path(pattern: str) -> str:
    """A path the D11 pattern matches: `**` -> two directories, `*` -> one name."""
    path = pattern.replace("**", "a/b").replace("*", "x")
    return re.sub(r"/+", "/", path).rstrip("/") or "/x"


def _image(selector: dict[str, Any]) -> str:
    full = [v for v in selector.get("fullContainerImageName", []) if "*" not in v]
    if full:
        return full[0] if ":" in full[0].rsplit("/", 1)[-1] else full[0] + ":latest"
    names = [v for v in selector.get("containerImageName", []) if "*" not in v]
    tags = [v for v in selector.get("containerImageTag", []) if "*" not in v]
    if names:
        return f"{names[0]}:{tags[0] if tags else 'latest'}"
    return _DEFAULT_IMAGE if not tags else f"debian:{tags[0]}"


def _orchestrator(selector: dict[str, Any]) -> dict[str, Any] | None:
    keys = [k for k in selector if k.startswith("orchestrator")]
    if not keys:
        return None
    first = lambda name, default: next((v.replace("*", "x") for v in selector.get(name, [])), default)  # noqa: E731
    labels = {}
    for entry in selector.get("orchestratorResourceLabel", []):
        key, _, value = str(entry).partition(":")
        labels[key] = value.replace("*", "x") or "x"
    return {"type": "kubernetes",
            "cluster": {"id": first("orchestratorClusterId", "cluster-1"), "name": first("orchestratorClusterName", "cluster")},
            "namespace": first("orchestratorNamespace", "default"),
            "resource": {"name": first("orchestratorResourceName", "pod-1"), "labels": labels}}


def operation_for(kind: str, selector: dict[str, Any]) -> dict[str, Any]:
    operations = selector.get("operation") or [_DEFAULT_OPERATION[kind]]
    op: dict[str, Any] = {"kind": kind, "operation": operations[0], "container": {"image": _image(selector)}}
    if kind == "file":
        patterns = selector.get("targetFilePath") or ["/tmp/*"]
        # root: the mount every selector matches (ignoreVolume* only skip volume and file mounts, D19)
        op["file"] = {"path": concrete_path(patterns[0]), "mount": "root"}
    process: dict[str, Any] = {}
    executables = selector.get("processExecutable") or []
    names = selector.get("processName") or []
    if executables:
        process["executable"] = concrete_path(executables[0])
    elif names:
        process["executable"] = f"/usr/bin/{names[0]}"
    else:
        process["executable"] = "/bin/sh"
    users = selector.get("processUserName") or []
    ids = selector.get("processUserId") or []
    if users or ids:
        process["user"] = {"id": str(ids[0]) if ids else "1000", "name": users[0] if users else "user"}
    leader: dict[str, Any] = {}
    if selector.get("sessionLeaderExecutable"):
        leader["executable"] = concrete_path(selector["sessionLeaderExecutable"][0])
    if selector.get("sessionLeaderName") and "executable" not in leader:
        leader["executable"] = f"/usr/bin/{selector['sessionLeaderName'][0]}"  # D32: its basename
    if selector.get("sessionLeaderInteractive") is not None:
        leader["interactive"] = bool(selector["sessionLeaderInteractive"])
    if leader:
        process["session_leader"] = leader
    op["process"] = process
    orchestrator = _orchestrator(selector)
    if orchestrator:
        op["orchestrator"] = orchestrator
    return op


def _flow(value: Any) -> str:
    """One line of YAML flow style (JSON for a lone scalar: safe_dump would add `...`)."""
    if not isinstance(value, (dict, list)):
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()


def scaffold(policy_text: str, scenario_id: str) -> str:
    """The scenario file's text. Raises reference.PolicyInvalid / ValueError for a bad policy."""
    reference.evaluate(policy_text, [])  # PolicyInvalid, with the validator's findings, first
    try:
        policy = d4c_yaml.load(policy_text)
    except d4c_yaml.YamlError as error:
        raise ValueError(str(error)) from None
    operations = []
    for kind in ("file", "process"):
        section = (policy or {}).get(kind) or {}
        for selector in section.get("selectors") or []:
            operations.append((selector.get("name", "?"), operation_for(kind, selector)))
    verdicts = reference.evaluate(policy_text, [op for _, op in operations])
    sections = sorted({op["kind"] for _, op in operations}) or ["file"]
    lines = [
        "# yaml-language-server: $schema=../../conformance/schema/scenario.schema.json",
        f"id: {scenario_id}",
        f"title: {scenario_id.replace('-', ' ')}",
        "spec: [" + ", ".join(f"seed.conditions.{k}" for k in sections) + ", D22]",
        "policy:",
        *("  " + line if line.strip() else "" for line in policy_text.rstrip("\n").splitlines()),
        "",
        "# One operation per selector, built from its conditions; each `expect` is the reference",
        "# evaluator's answer. Add near misses: operations that must NOT match.",
        "operations:",
    ]
    for (name, op), verdict in zip(operations, verdicts):
        lines += [f"  - name: {_flow('selector ' + name)}",
                  f"    input: {_flow(op)}",
                  f"    expect: {_flow({'matched_selectors': verdict['matched_selectors'], 'actions': verdict['actions']})}"]
    lines += [
        "",
        "# The kernel tier (docs/scenarios.md): real containers, commands, the events expected.",
        "# containers:",
        "#   - name: box",
        f"#     image: {operations[0][1]['container']['image'] if operations else _DEFAULT_IMAGE}",
        "# steps:",
        "#   - {container: box, run: \"touch /tmp/x\", expect: {exit: 0}}",
        "# expect:",
        "#   events:",
        "#     logs-cloud_defend.alerts-default:",
        "#       - {event.action: creation, event.kind: alert}",
        "#   files:",
        "#     - {container: box, path: /tmp/x, state: present}",
    ]
    return "\n".join(lines) + "\n"
