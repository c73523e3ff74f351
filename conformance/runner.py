"""Execution: one scenario tier against one target -> passed, or a failure text, or a skip.

Independent of pytest (the plugin maps `Skip`/`Failure` to pytest outcomes), so the same code
can be driven by other tools.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import events as ev
from conformance.adapters.command import AdapterError, AdapterSpec, AgentProcess, EngineCallError, base_values, expand
from conformance.kernel import Containers, DockerUnavailable, SetupError, docker_client
from conformance.model import Scenario
from conformance.sinks import BulkServer, EventSource, NdjsonFiles
from conformance.targets import Target


class Skip(Exception):
    pass


class Failure(Exception):
    """A conformance failure; the message is the readable report shown to the user."""


@dataclass(frozen=True)
class Options:
    event_timeout: float = 10.0  # bounded wait for expected events
    settle: float = 1.0  # extra watching for unexpected events once the expectation holds
    keep_workdirs: bool = False


def _fmt(values: Any) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def run_engine(scenario: Scenario, target: Target) -> None:
    reason = target.engine_unavailable()
    if reason:
        raise Skip(reason)
    with tempfile.TemporaryDirectory(prefix=f"d4c-{scenario.id}-") as tmp:
        policy_file = Path(tmp) / "policy.yaml"
        policy_file.write_text(scenario.policy_text)
        operations = [case.input for case in scenario.operations]
        try:
            verdicts = target.evaluate(scenario.policy_text, policy_file, operations)
        except (EngineCallError, ValueError) as error:
            raise Failure(f"{scenario.location}: the implementation did not evaluate the operations:\n{error}") from None
        except Exception as error:
            # The reference adapter raises PolicyInvalid and friends; report, do not crash.
            raise Failure(f"{scenario.location}: evaluation failed: {type(error).__name__}: {error}") from None
    lines = []
    for case, verdict in zip(scenario.operations, verdicts, strict=True):
        wrong = []
        if not isinstance(verdict, dict):
            wrong.append(f"verdict is not an object: {verdict!r}")
        else:
            got_selectors = verdict.get("matched_selectors")
            if got_selectors != list(case.matched_selectors):
                wrong.append(f"matched_selectors: expected {_fmt(case.matched_selectors)}, got {got_selectors!r}")
            got_actions = verdict.get("actions")
            if not isinstance(got_actions, list) or sorted(set(got_actions)) != sorted(case.actions) \
                    or len(got_actions) != len(set(got_actions)):
                wrong.append(f"actions: expected {_fmt(sorted(case.actions))}, got {got_actions!r}")
            if case.responses is not None and verdict.get("responses") != list(case.responses):
                wrong.append(f"responses: expected {_fmt(case.responses)}, got {verdict.get('responses')!r}")
        if wrong:
            lines.append(f"{case.location}: operation {case.name!r}")
            lines += [f"    {w}" for w in wrong]
    if lines:
        bad = sum(1 for line in lines if not line.startswith("    "))
        raise Failure(f"engine tier: {bad} of {len(scenario.operations)} operation(s) got a wrong verdict\n" + "\n".join(lines))


@dataclass
class KernelSession:
    """Shared across a worker's kernel items: the Docker client, the _bulk sink, and the
    agent when the adapter can load policies into a running agent."""

    options: Options
    client: Any = None
    bulk: BulkServer | None = None
    session_agent: AgentProcess | None = None
    session_dir: Path | None = None
    docker_error: str | None = None
    _started: bool = False

    def docker(self) -> Any:
        if not self._started:
            self._started = True
            try:
                self.client = docker_client()
            except DockerUnavailable as error:
                self.docker_error = str(error)
        if self.client is None:
            raise Skip(f"kernel tier needs Docker: {self.docker_error}")
        return self.client

    def sink(self, spec: AdapterSpec) -> BulkServer | None:
        if spec.events and spec.events.elasticsearch and self.bulk is None:
            self.bulk = BulkServer().start()
        return self.bulk

    def close(self) -> None:
        if self.session_agent is not None:
            self.session_agent.stop()
            self.session_agent = None
        if self.bulk is not None:
            self.bulk.stop()
            self.bulk = None
        if self.session_dir is not None and not self.options.keep_workdirs:
            shutil.rmtree(self.session_dir, ignore_errors=True)


def run_kernel(scenario: Scenario, target: Target, session: KernelSession) -> None:
    reason = target.kernel_unavailable()
    if reason:
        raise Skip(reason)
    spec = target.agent_adapter()
    assert spec.agent is not None and spec.events is not None
    client = session.docker()
    bulk = session.sink(spec)
    per_session = spec.agent.load_policy is not None
    if per_session and session.session_dir is None:
        session.session_dir = Path(tempfile.mkdtemp(prefix="d4c-agent-"))
    workdir = session.session_dir if per_session else Path(tempfile.mkdtemp(prefix=f"d4c-{scenario.id}-"))
    assert workdir is not None
    (workdir / "events").mkdir(exist_ok=True)
    policy_file = workdir / f"policy-{scenario.id}.yaml"
    policy_file.write_text(scenario.policy_text)
    values = {
        **base_values(spec),
        "policy": str(policy_file),
        "workdir": str(workdir),
        "events_dir": str(workdir / "events"),
        "scenario": scenario.id,
        "es_url": bulk.url if bulk else "",
    }
    source: EventSource = bulk if bulk is not None else NdjsonFiles(expand(spec.events.ndjson or "", values))
    agent: AgentProcess | None = None
    problems: list[str] = []
    step_problems: list[str] = []
    file_problems: list[str] = []
    try:
        with Containers(client, scenario) as containers:
            mark = source.mark()
            try:
                if per_session:
                    if session.session_agent is None:
                        started = AgentProcess(spec.agent, values)
                        try:
                            started.start()
                        except AdapterError:
                            started.stop()
                            raise
                        session.session_agent = started  # only a running agent is reused
                    agent = session.session_agent
                    agent.values.update(policy=str(policy_file), scenario=scenario.id)
                    agent.load_policy()
                else:
                    agent = AgentProcess(spec.agent, values)
                    agent.start()
            except AdapterError as error:
                raise Failure(f"{scenario.location}: the agent could not be started: {error}") from None
            defaults = {c.name: c.user for c in scenario.containers}
            for step in scenario.steps:
                result = containers.run(step, defaults[step.container])
                for wrong in result.problems():
                    step_problems.append(f"{step.location}: `{step.display}` in {step.container}: {wrong}")
            ids = list(containers.ids.values())
            expected = dict(scenario.events)
            results = ev.wait_for(
                expected,
                lambda: [(s, d) for s, d in source.since(mark) if ev.belongs_to(d, ids)],
                timeout=session.options.event_timeout,
                settle=session.options.settle,
            )
            if not all(r.ok for r in results):
                names = ", ".join(f"{n}={cid[:12]}" for n, cid in containers.ids.items())
                problems.append(f"containers: {names}\n" + ev.explain(results))
                problems.append("agent log (last lines):\n" + (agent.log_tail() or "(empty)"))
            if not per_session:
                agent.stop()  # before file checks: a policy must not see or block the checks
            for check in scenario.files:
                file_problems += containers.check_file(check)
    except SetupError as error:
        raise Failure(f"{scenario.location}: cannot set up the scenario's containers: {error}") from None
    finally:
        if agent is not None and not per_session:
            agent.stop()
        if not per_session and not session.options.keep_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    sections = [("steps", step_problems), ("events", problems), ("files", file_problems)]
    text = "\n".join(f"--- {title}:\n" + "\n".join(lines) for title, lines in sections if lines)
    if text:
        raise Failure("kernel tier:\n" + text)
