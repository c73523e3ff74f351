"""Any implementation as commands, described by a small YAML adapter file (--adapter FILE).

```yaml
name: my-agent
evaluate: [my-agent, policy, evaluate, "{policy}", --operation, "-"]  # engine tier (stdin: JSON list)
agent:                                   # kernel tier
  start: [my-agent, run, --policy, "{policy}", --events, "{events_dir}"]
  ready: {path: "{workdir}/ready", timeout: 30}   # or {delay: 2}
  stop: {signal: TERM, timeout: 10}               # or {command: [...]}
  load_policy: [my-agent, reload, "{policy}"]     # optional: then started once per worker
  loaded: {path: "{workdir}/status", timeout: 10} # optional: enforcing once it shows the policy's SHA-256
  requires_bpf_lsm: true
  env: {LOG_LEVEL: debug}
events:
  ndjson: "{events_dir}/{data_stream}.ndjson"     # a file per data stream, or
  elasticsearch: true                             # the suite's own _bulk endpoint at {es_url}
```

Placeholders in any string: {policy} {workdir} {events_dir} {es_url} {scenario} {adapter_dir}
{python} {kubeconfig} {node_name}. The agent's environment also has KUBECONFIG (the suite's
Kubernetes API server) and NODE_NAME. Full reference: docs/scenarios.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import yamlpos


class AdapterError(Exception):
    """A bad adapter file: one line with file:line and field."""


@dataclass(frozen=True)
class AgentSpec:
    start: tuple[str, ...]
    ready_path: str | None = None
    ready_delay: float = 0.0
    ready_timeout: float = 30.0
    stop_signal: str = "TERM"
    stop_command: tuple[str, ...] | None = None
    stop_timeout: float = 10.0
    load_policy: tuple[str, ...] | None = None
    loaded_path: str | None = None  # shows the SHA-256 of the policy file once it enforces
    loaded_timeout: float = 10.0
    requires_bpf_lsm: bool = True
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EventsSpec:
    ndjson: str | None = None  # a path template with {data_stream}
    elasticsearch: bool = False


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    evaluate: tuple[str, ...] | None
    agent: AgentSpec | None
    events: EventsSpec | None
    base_dir: Path | None  # the adapter file's directory ({adapter_dir})


def load_adapter(path: Path) -> AdapterSpec:
    try:
        doc = yamlpos.load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AdapterError(f"{path}: cannot read adapter file: {error}") from None
    except yamlpos.YamlSyntaxError as error:
        raise AdapterError(f"{path}:{error.line}:{error.column}: YAML syntax: {error.message}") from None

    def fail(where: tuple, message: str) -> AdapterError:
        line, column = doc.position(where)
        return AdapterError(f"{path}:{line}:{column}: {yamlpos.dotted(where) or '(adapter)'}: {message}")

    def mapping(obj: Any, where: tuple, allowed: set[str]) -> dict:
        if not isinstance(obj, dict):
            raise fail(where, "must be a mapping")
        for key in obj:
            if key not in allowed:
                raise fail(where + (key,), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return obj

    def argv(obj: Any, where: tuple) -> tuple[str, ...]:
        if not (isinstance(obj, list) and obj and all(isinstance(a, (str, int, float)) for a in obj)):
            raise fail(where, "must be a non-empty list of strings (argv, no shell)")
        return tuple(str(a) for a in obj)

    def number(obj: Any, where: tuple) -> float:
        if isinstance(obj, bool) or not isinstance(obj, (int, float)) or obj < 0:
            raise fail(where, "must be a non-negative number of seconds")
        return float(obj)

    top = mapping(doc.data, (), {"name", "evaluate", "agent", "events"})
    if not isinstance(top.get("name"), str):
        raise fail(("name",), "required: a string")
    evaluate = argv(top["evaluate"], ("evaluate",)) if "evaluate" in top else None
    agent = None
    if "agent" in top:
        a = mapping(top["agent"], ("agent",),
                    {"start", "ready", "stop", "load_policy", "loaded", "requires_bpf_lsm", "env"})
        if "start" not in a:
            raise fail(("agent",), "`start` is required")
        ready = mapping(a.get("ready", {}), ("agent", "ready"), {"path", "delay", "timeout"})
        stop = mapping(a.get("stop", {}), ("agent", "stop"), {"signal", "command", "timeout"})
        sig = str(stop.get("signal", "TERM")).removeprefix("SIG")
        if not hasattr(signal, f"SIG{sig}"):
            raise fail(("agent", "stop", "signal"), f"unknown signal {sig!r}")
        loaded = mapping(a.get("loaded", {}), ("agent", "loaded"), {"path", "timeout"})
        if loaded and "load_policy" not in a:
            raise fail(("agent", "loaded"), "only means something with `load_policy`")
        if loaded and "path" not in loaded:
            raise fail(("agent", "loaded"), "`path` is required (a file showing the enforcing policy's SHA-256)")
        env = mapping(a.get("env", {}), ("agent", "env"), set(a.get("env", {}) or {}))
        if not isinstance(a.get("requires_bpf_lsm", True), bool):
            raise fail(("agent", "requires_bpf_lsm"), "must be true or false")
        agent = AgentSpec(
            start=argv(a["start"], ("agent", "start")),
            ready_path=str(ready["path"]) if "path" in ready else None,
            ready_delay=number(ready.get("delay", 0), ("agent", "ready", "delay")),
            ready_timeout=number(ready.get("timeout", 30), ("agent", "ready", "timeout")),
            stop_signal=sig,
            stop_command=argv(stop["command"], ("agent", "stop", "command")) if "command" in stop else None,
            stop_timeout=number(stop.get("timeout", 10), ("agent", "stop", "timeout")),
            load_policy=argv(a["load_policy"], ("agent", "load_policy")) if "load_policy" in a else None,
            loaded_path=str(loaded["path"]) if "path" in loaded else None,
            loaded_timeout=number(loaded.get("timeout", 10), ("agent", "loaded", "timeout")),
            requires_bpf_lsm=a.get("requires_bpf_lsm", True),
            env=tuple((str(k), str(v)) for k, v in env.items()),
        )
    events = None
    if "events" in top:
        e = mapping(top["events"], ("events",), {"ndjson", "elasticsearch"})
        if ("ndjson" in e) == bool(e.get("elasticsearch")):
            raise fail(("events",), "give exactly one of `ndjson: PATH-TEMPLATE` or `elasticsearch: true`")
        if "ndjson" in e and "{data_stream}" not in str(e["ndjson"]):
            raise fail(("events", "ndjson"), "the path template must contain {data_stream}")
        events = EventsSpec(ndjson=str(e["ndjson"]) if "ndjson" in e else None, elasticsearch=bool(e.get("elasticsearch")))
    if agent is not None and events is None:
        raise fail(("agent",), "an agent needs `events:` (where its events arrive)")
    if evaluate is None and agent is None:
        raise fail((), "give `evaluate` (engine tier) and/or `agent` (kernel tier)")
    return AdapterSpec(top["name"], evaluate, agent, events, path.resolve().parent)


def expand(template: str, values: dict[str, str]) -> str:
    """Replace {placeholders}; unknown ones stay as they are (they may be the program's own)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def base_values(spec: AdapterSpec) -> dict[str, str]:
    values = {"python": sys.executable}
    if spec.base_dir is not None:
        values["adapter_dir"] = str(spec.base_dir)
    return values


class EngineCallError(Exception):
    """The evaluate command failed or broke the output contract."""


def run_evaluate(argv: list[str], operations: list[dict[str, Any]], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run an evaluate command (the `d4c policy evaluate` contract) with a JSON list on stdin."""
    try:
        done = subprocess.run(argv, input=json.dumps(operations), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EngineCallError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise EngineCallError(f"`{' '.join(argv)}` did not answer within {timeout:g}s") from None
    if done.returncode != 0:
        what = {1: "rejected the policy", 2: "rejected an operation or its usage"}.get(done.returncode, "failed")
        raise EngineCallError(
            f"`{' '.join(argv)}` {what} (exit {done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}"
        )
    try:
        verdicts = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise EngineCallError(f"output is not JSON ({error}): {done.stdout[:200]!r}") from None
    if not isinstance(verdicts, list) or len(verdicts) != len(operations):
        raise EngineCallError(f"expected a JSON list of {len(operations)} verdicts, got: {done.stdout[:200]!r}")
    return verdicts


class AdoptedProcess:
    """An agent started by an earlier run (not this process's child), with the parts of
    Popen's interface AgentProcess uses. Its exit status is unknown: -1 once it is gone."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]


# The suite's Kubernetes API server reaches the agent as any Kubernetes client finds it
# (KUBECONFIG), and the node's name as a DaemonSet's downward API gives it (NODE_NAME).
SUITE_ENV = (("KUBECONFIG", "kubeconfig"), ("NODE_NAME", "node_name"))


def agent_env(spec: AgentSpec, values: dict[str, str]) -> dict[str, str]:
    """The agent's environment: the suite's, then the suite's own variables, then the adapter's `env`."""
    suite = {name: values[key] for name, key in SUITE_ENV if values.get(key)}
    return {**os.environ, **suite, **{k: expand(v, values) for k, v in spec.env}}


def running_env(pid: int) -> dict[str, str] | None:
    """The environment a running process was started with (None when gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {k: v for k, _, v in pairs}


def running_argv(pid: int) -> list[str] | None:
    """The command line of a running process (None when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


@dataclass
class AgentProcess:
    """A running implementation agent (kernel tier)."""

    spec: AgentSpec
    values: dict[str, str]
    process: subprocess.Popen | AdoptedProcess | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return [expand(a, self.values) for a in self.spec.start]

    def adopt(self, pid: int) -> bool:
        """Take over an agent an earlier run left running with this same command line."""
        if running_argv(pid) != self.argv:
            return False
        env = agent_env(self.spec, self.values)
        running = running_env(pid)
        # Same command, but another run's API server (its kubeconfig): it would watch a dead one.
        if running is None or running.get("KUBECONFIG") != env.get("KUBECONFIG"):
            return False
        self.env = env
        self.log_path = Path(self.values["workdir"]) / "agent.log"
        self.process = AdoptedProcess(pid)
        return True

    def start(self) -> None:
        argv = self.argv
        self.env = agent_env(self.spec, self.values)
        self.log_path = Path(self.values["workdir"]) / "agent.log"
        if self.spec.ready_path:  # a previous agent's, in a reused work directory, must not count
            Path(expand(self.spec.ready_path, self.values)).unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        except OSError as error:
            raise AdapterError(f"cannot start agent `{' '.join(argv)}`: {error}") from None
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.ready_timeout
        if self.spec.ready_path:
            ready = Path(expand(self.spec.ready_path, self.values))
            while not ready.exists():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise AdapterError(f"agent not ready: {ready} did not appear within {self.spec.ready_timeout:g}s")
                time.sleep(0.05)
        if self.spec.ready_delay:
            time.sleep(self.spec.ready_delay)
        self._check_alive()

    def _check_alive(self, when: str = "during startup") -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AdapterError(f"agent exited with {self.process.returncode} {when}:\n{self.log_tail()}")

    def load_policy(self) -> None:
        """Make the running agent enforce {policy}; returns once it is enforcing. The
        confirmation: the command's exit 0, and with `loaded`, the SHA-256 (hex) of the
        policy file's bytes appearing in the `loaded` file (the agent writes it once the
        policy enforces for every container running when the command was started)."""
        if self.spec.load_policy is None:
            return
        self._check_alive("before the policy was loaded")
        argv = [expand(a, self.values) for a in self.spec.load_policy]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env or None, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise AdapterError(f"`{' '.join(argv)}`: {error}") from None
        if done.returncode != 0:
            raise AdapterError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()}")
        if self.spec.loaded_path is None:
            return
        want = hashlib.sha256(Path(self.values["policy"]).read_bytes()).hexdigest()
        status = Path(expand(self.spec.loaded_path, self.values))
        deadline = time.monotonic() + self.spec.loaded_timeout
        while True:
            with contextlib.suppress(OSError):
                if want in status.read_text(errors="replace"):
                    return
            self._check_alive("while loading the policy")
            if time.monotonic() > deadline:
                raise AdapterError(f"policy not confirmed: {status} did not show its SHA-256 {want[:12]}… within "
                                   f"{self.spec.loaded_timeout:g}s (rejected?)\n{self.log_tail()}")
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.spec.stop_command:
            subprocess.run([expand(a, self.values) for a in self.spec.stop_command], timeout=60, check=False)
        elif self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, getattr(signal, f"SIG{self.spec.stop_signal}"))
        try:
            self.process.wait(timeout=self.spec.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no agent log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
