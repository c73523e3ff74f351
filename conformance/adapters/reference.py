"""The reference agent, reached in-process (engine tier, lint) or as `d4c agent run` (kernel tier).

This is the only module of `conformance/` that imports `reference_agent`; everything else talks
to implementations through the `Engine`/adapter interfaces, so the suite judges the reference
agent exactly as it judges any other implementation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from conformance.adapters.command import AdapterSpec, AgentSpec, EventsSpec


class ReferenceUnavailable(Exception):
    """The reference policy engine cannot be imported (e.g. not installed yet)."""


@dataclass(frozen=True)
class Finding:
    """One validator or parser finding, located in the YAML the caller handed over."""

    path: str
    line: int | None
    column: int | None
    message: str
    code: str
    severity: str  # error | warning


def _policy_api() -> Any:
    try:
        from reference_agent import policy
    except ImportError as error:  # pragma: no cover - depends on the checkout's state
        raise ReferenceUnavailable(f"reference_agent.policy cannot be imported: {error}") from None
    for name in ("load_policy_text", "evaluate", "parse_operation", "OperationError"):
        if not hasattr(policy, name):
            raise ReferenceUnavailable(f"reference_agent.policy has no `{name}` yet")
    return policy


def unavailable_reason() -> str | None:
    try:
        _policy_api()
    except ReferenceUnavailable as error:
        return str(error)
    return None


class PolicyInvalid(Exception):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__("; ".join(f"{f.path}: {f.message} [{f.code}]" for f in findings))
        self.findings = findings


def _findings(result: Any) -> list[Finding]:
    found = []
    for severity, diagnostics in (("error", result.errors), ("warning", result.warnings)):
        for d in diagnostics:
            found.append(Finding(d.path, d.line, d.column, d.message, d.code, severity))
    return found


def evaluate(policy_text: str, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdicts (the `d4c policy evaluate` JSON objects) of the reference evaluator, in-process."""
    api = _policy_api()
    result = api.load_policy_text(policy_text)
    if not result.valid:
        raise PolicyInvalid([f for f in _findings(result) if f.severity == "error"])
    verdicts = []
    for index, raw in enumerate(operations):
        try:
            operation = api.parse_operation(raw, f"operation[{index}]")
        except api.OperationError as error:
            raise ValueError(str(error)) from None
        verdicts.append(api.evaluate(result.policy, operation).to_json())
    return verdicts


def validate_policy_node(node: Any, path_prefix: str) -> list[Finding]:
    """Validate a policy given as a composed YAML node: findings carry the node's own lines,
    i.e. lines of the scenario file the node came from."""
    api = _policy_api()
    validate = getattr(api, "validate_policy_node", None)
    if validate is None:
        raise ReferenceUnavailable("reference_agent.policy has no `validate_policy_node` yet")
    return _findings(validate(node, path_prefix))


def validate_policy_text(text: str) -> list[Finding]:
    return _findings(_policy_api().load_policy_text(text))


def parse_operation(obj: Any, where: str) -> str | None:
    """None when `obj` is a well-formed operation, else the parser's one-line message."""
    api = _policy_api()
    try:
        api.parse_operation(obj, where)
    except api.OperationError as error:
        return str(error)
    return None


# --- kernel tier: the reference agent as a command -----------------------------------------

# What `d4c agent run` is expected to accept; until it exists kernel items skip.
AGENT_ARGV = ("{d4c}", "agent", "run", "--policy", "{policy}", "--output-dir", "{events_dir}")
# One agent per worker: each scenario's policy replaces the running agent's (SIGHUP), and the
# agent confirms it by writing the policy's SHA-256 into its ready file.
LOAD_POLICY_ARGV = ("{d4c}", "agent", "reload", "--output-dir", "{events_dir}", "{policy}")


@lru_cache(maxsize=1)  # asked once per kernel item; the answer cannot change within a run
def agent_unavailable_reason() -> str | None:
    d4c = shutil.which("d4c")
    argv = [d4c] if d4c else [sys.executable, "-m", "d4c"]
    try:
        probe = subprocess.run(argv + ["agent", "run", "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`d4c agent run` cannot be started: {error}"
    if probe.returncode != 0:
        return "`d4c agent run` does not exist in this installation"
    return None


def agent_adapter() -> AdapterSpec:
    d4c = shutil.which("d4c") or "d4c"
    argv = tuple(part.replace("{d4c}", d4c) for part in AGENT_ARGV)
    load = tuple(part.replace("{d4c}", d4c) for part in LOAD_POLICY_ARGV)
    return AdapterSpec(
        name="reference",
        evaluate=None,
        agent=AgentSpec(start=argv, ready_path="{events_dir}/.ready", ready_timeout=60.0,
                        load_policy=load, loaded_path="{events_dir}/.ready", loaded_timeout=15.0),
        events=EventsSpec(ndjson="{events_dir}/{data_stream}.ndjson"),
        base_dir=None,
    )
