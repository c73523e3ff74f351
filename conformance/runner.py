"""Execution: one scenario tier against one target -> passed, or a failure text, or a skip.

Independent of pytest (the plugin maps `Skip`/`Failure` to pytest outcomes), so the same code
can be driven by other tools.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import events as ev
from conformance.adapters.command import AdapterError, AdapterSpec, AgentProcess, EngineCallError, base_values, expand
from conformance.kernel import Containers, DockerUnavailable, SetupError, docker_client
from conformance.kube_api import KubeApi
from conformance.pods import ScenarioPods, node_name
from conformance.model import Scenario
from conformance.probe import kernel_too_old
from conformance.fields.check import check_document
from conformance.sinks import BulkServer, Event, EventSource, NdjsonFiles
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
    # A per-worker agent (adapters with load_policy) lives here and is left running after the
    # run, for the next run to adopt: one scenario in seconds, not an agent start each time.
    agent_dir: Path | None = None


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
    restarts: list[str] = field(default_factory=list)  # why the per-worker agent was restarted
    kube: KubeApi | None = None
    kubeconfig: Path | None = None
    cgroup_driver: str = "systemd"
    _kube_dir: Path | None = None
    _started: bool = False

    def docker(self) -> Any:
        if not self._started:
            self._started = True
            try:
                self.client = docker_client()
                self.cgroup_driver = str(self.client.info().get("CgroupDriver") or "cgroupfs")
            except DockerUnavailable as error:
                self.docker_error = str(error)
        if self.client is None:
            raise Skip(f"kernel tier needs Docker: {self.docker_error}")
        return self.client

    def _adoptable(self, agent: AgentProcess) -> bool:
        assert self.options.agent_dir is not None
        try:
            pid = int((self.options.agent_dir / AGENT_PID_FILE).read_text())
        except (OSError, ValueError):
            return False
        return agent.process is not None and agent.process.pid == pid

    def kubernetes(self) -> Path:
        """The worker's Kubernetes API server (started once) and its kubeconfig. With
        --agent-dir the server takes the port of the previous run's (KUBE_PORT_FILE), so the
        agent that run left behind, adopted, reaches it again at the same address; the
        kubeconfig's name carries the port, and AgentProcess.adopt compares $KUBECONFIG: an
        agent of a server on another port is not adopted."""
        if self.kube is None:
            self.kube = KubeApi()
            keep = self.options.agent_dir
            url = self._start_kube(keep)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / KUBE_PORT_FILE).write_text(f"{self.kube.port}\n")
                where = keep
            else:
                where = self._kube_dir = Path(tempfile.mkdtemp(prefix="d4c-kube-"))
            self.kubeconfig = self.kube.write_kubeconfig(where / f"kubeconfig-{self.kube.port}", url)
        assert self.kubeconfig is not None
        return self.kubeconfig

    def _start_kube(self, keep: Path | None) -> str:
        assert self.kube is not None
        if keep is not None:
            try:
                return self.kube.start(int((keep / KUBE_PORT_FILE).read_text()))
            except (OSError, ValueError):  # no earlier run, or its port is taken now
                pass
        return self.kube.start()

    def sink(self, spec: AdapterSpec) -> BulkServer | None:
        if spec.events and spec.events.elasticsearch and self.bulk is None:
            self.bulk = BulkServer().start()
        return self.bulk

    def close(self) -> None:
        kept = self.options.agent_dir is not None
        if self.session_agent is not None and not (kept and self._adoptable(self.session_agent)):
            self.session_agent.stop()  # a fallback agent started with a scenario's policy is not kept
        self.session_agent = None
        if self.bulk is not None:
            self.bulk.stop()
            self.bulk = None
        if self.kube is not None:
            self.kube.stop()
            self.kube = None
        if self._kube_dir is not None:
            shutil.rmtree(self._kube_dir, ignore_errors=True)
            self._kube_dir = None
        if self.session_dir is not None and not self.options.keep_workdirs and not kept:
            shutil.rmtree(self.session_dir, ignore_errors=True)


# What a per-worker agent enforces between scenarios: valid for any D4C implementation, and
# matches no container, so a scenario's containers are created, and its files checked, with
# nothing enforcing or reporting on them (as when each scenario had an agent of its own).
NEUTRAL_POLICY = """\
file:
  selectors:
    - name: d4c-conformance-idle
      containerImageName: [d4c-conformance.invalid/matches-no-container]
  responses:
    - match: [d4c-conformance-idle]
      actions: [log]
"""


def _start(spec: AdapterSpec, values: dict[str, str]) -> AgentProcess:
    agent = AgentProcess(spec.agent, dict(values))  # type: ignore[arg-type]
    try:
        agent.start()
    except AdapterError:
        agent.stop()
        raise
    return agent


def _session_agent(session: KernelSession, spec: AdapterSpec, values: dict[str, str]) -> AgentProcess:
    """The worker's agent, enforcing the neutral policy; (re)started when there is none running."""
    agent = session.session_agent
    if agent is not None and not agent.alive:
        agent.stop()
        session.session_agent = agent = None
    if agent is None:
        neutral = Path(values["workdir"]) / "policy-neutral.yaml"
        neutral.write_text(NEUTRAL_POLICY)
        idle = {**values, "policy": str(neutral), "scenario": ""}
        agent = _adopted(session, spec, idle) or _start(spec, idle)
        session.session_agent = agent
        if session.options.agent_dir is not None and agent.process is not None:
            (session.options.agent_dir / AGENT_PID_FILE).write_text(f"{agent.process.pid}\n")
    return agent


AGENT_PID_FILE = "agent.pid"  # in --agent-dir: the agent left running by an earlier run
KUBE_PORT_FILE = "kube-api.port"  # in --agent-dir: the port of that run's Kubernetes API server


def _adopted(session: KernelSession, spec: AdapterSpec, values: dict[str, str]) -> AgentProcess | None:
    """The agent an earlier run left in --agent-dir, if it still runs this adapter's command."""
    if session.options.agent_dir is None:
        return None
    try:
        pid = int((session.options.agent_dir / AGENT_PID_FILE).read_text())
    except (OSError, ValueError):
        return None
    agent = AgentProcess(spec.agent, dict(values))  # type: ignore[arg-type]
    return agent if agent.adopt(pid) else None


def _load(agent: AgentProcess, policy_file: Path, scenario_id: str) -> None:
    agent.values.update(policy=str(policy_file), scenario=scenario_id)
    agent.load_policy()


def _enforce_scenario_policy(session: KernelSession, spec: AdapterSpec, values: dict[str, str],
                             policy_file: Path, scenario_id: str) -> AgentProcess:
    """The worker's agent, confirmed enforcing the scenario's policy for its (running)
    containers. Falls back to restarting the agent with that policy when loading it into the
    running one fails (the agent died, or did not confirm)."""
    agent = _session_agent(session, spec, values)
    try:
        _load(agent, policy_file, scenario_id)
        return agent
    except AdapterError as error:
        agent.stop()
        session.session_agent = None
        session.restarts.append(f"{scenario_id}: {str(error).splitlines()[0]}")
    agent = session.session_agent = _start(spec, values)
    return agent


def mapping_problems(events: list[Event]) -> list[str]:
    """`d4c events check` over a scenario's events: every field known to ECS, the cloud_defend
    package or the project's list, of its type; data stream, kind and category consistent."""
    out = []
    for number, (stream, doc) in enumerate(events, 1):
        action = ev.field(doc, "event.action")
        label = f"{stream}, {action}" if isinstance(action, str) else stream
        out += [f"event {number} ({label}): {problem}" for problem in check_document(doc, stream)]
    return out


def run_kernel(scenario: Scenario, target: Target, session: KernelSession) -> None:
    reason = target.kernel_unavailable() or kernel_too_old(scenario.min_kernel)
    if reason:
        raise Skip(reason)
    spec = target.agent_adapter()
    assert spec.agent is not None and spec.events is not None
    client = session.docker()
    bulk = session.sink(spec)
    per_session = spec.agent.load_policy is not None
    if per_session and session.session_dir is None:
        if session.options.agent_dir is not None:
            session.options.agent_dir.mkdir(parents=True, exist_ok=True)
            session.session_dir = session.options.agent_dir
        else:
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
        "kubeconfig": str(session.kubernetes()),
        "node_name": node_name(),
    }
    source: EventSource = bulk if bulk is not None else NdjsonFiles(expand(spec.events.ndjson or "", values))
    agent: AgentProcess | None = None
    problems: list[str] = []
    step_problems: list[str] = []
    file_problems: list[str] = []
    field_problems: list[str] = []
    try:
        pods = ScenarioPods(session.kube, scenario, "docker") if session.kube is not None else None
        with Containers(client, scenario, pods, session.cgroup_driver) as containers:
            mark = source.mark()
            try:
                if per_session:
                    agent = _enforce_scenario_policy(session, spec, values, policy_file, scenario.id)
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
            field_problems = mapping_problems([(s, d) for s, d in source.since(mark) if ev.belongs_to(d, ids)])
            # Before file checks: a policy must not see or block the checks.
            if not per_session:
                agent.stop()
            else:
                try:
                    _load(agent, workdir / "policy-neutral.yaml", "")
                except AdapterError as error:  # stopped instead; the next scenario starts one
                    session.restarts.append(f"{scenario.id} (neutral policy after it): {str(error).splitlines()[0]}")
                    agent.stop()
                    session.session_agent = None
            for check in scenario.files:
                file_problems += containers.check_file(check)
    except SetupError as error:
        raise Failure(f"{scenario.location}: cannot set up the scenario's containers: {error}") from None
    finally:
        if agent is not None and not per_session:
            agent.stop()
        if not per_session and not session.options.keep_workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
    sections = [("steps", step_problems), ("events", problems), ("fields", field_problems), ("files", file_problems)]
    text = "\n".join(f"--- {title}:\n" + "\n".join(lines) for title, lines in sections if lines)
    if text:
        raise Failure("kernel tier:\n" + text)
