"""The reference agent's userspace, composed: policy holder + container cache + ECS builders +
outputs, around a kernel backend.

`d4c agent run` is meant to be a short composition of this module::

    config = load_config(args.config)                         # ConfigError -> exit 2
    agent = Agent(config, args.policy, KernelBackendImpl(...))
    agent.start()                                             # PolicyRejected -> exit 1
    agent.install_signal_handlers()                           # SIGHUP reload, SIGTERM/INT stop
    agent.run()                                               # <output_dir>/.ready once enforcing

`run_agent()` below does exactly that with the error handling (one line per problem, exit
codes, no traceback) given a backend factory.

The kernel side implements `KernelBackend`. Optionally it may also offer
`ancestry(task: TaskInfo) -> Ancestry | None` (its process table): process.parent/…_leader.*
fields are then filled; without it they are omitted, never invented.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from reference_agent.activity import Ancestry, FileActivity, ProcessActivity, TaskInfo
from reference_agent.config import (
    EXIT_BAD_CONFIG,
    AgentConfig,
    ConfigError,
    load_config,
)
from reference_agent.ecs import (
    BootClock,
    Document,
    EventContext,
    file_documents,
    process_documents,
)
from reference_agent.metadata.containers import ContainerCache
from reference_agent.metadata.host import (
    HostFacts,
    collect_agent_facts,
    collect_host_facts,
)
from reference_agent.metadata.scoping import container_masks
from reference_agent.metadata.users import UserNames
from reference_agent.outputs import BulkShipper, NdjsonWriter
from reference_agent.policy import Policy
from reference_agent.reload import LoadedPolicy, PolicyHolder, PolicyRejected

log = logging.getLogger(__name__)

READY_FILE = ".ready"
EXIT_BAD_POLICY = 1  # also: cannot start (docker, BPF)

Activity = FileActivity | ProcessActivity


class KernelBackend(Protocol):
    def apply_policy(self, policy: Policy, container_masks: Mapping[int, frozenset[str]]) -> None:
        """Load `policy` into the kernel, atomically; raise to refuse it (the old one stays).
        container_masks: cgroup id -> names of the selectors whose container conditions hold
        there (metadata/scoping.py); absent = host. Called again with the same policy when
        containers come and go. May be called from the policy-watcher or docker-events thread
        while poll() runs in the main thread (calls to apply_policy itself are serialised)."""

    def poll(self, timeout: float) -> Iterable[Activity]:
        """Activities decoded from the ring buffer, waiting at most `timeout` seconds."""

    def close(self) -> None: ...


class Agent:
    def __init__(self, config: AgentConfig, policy_path: str | Path, backend: KernelBackend, *,
                 docker_client: Any = None, containers: ContainerCache | None = None,
                 host: HostFacts | None = None, clock: BootClock | None = None,
                 stdout: TextIO | None = None, shipper: BulkShipper | None = None,
                 watch_interval: float = 1.0,
                 ancestry: Callable[[TaskInfo], Ancestry | None] | None = None) -> None:
        self.config = config
        self.backend = backend
        self.policy = PolicyHolder(policy_path, self._apply)
        if containers is None:
            if docker_client is None:
                import docker  # the agent extra; only needed for a real run

                docker_client = docker.from_env()
            containers = ContainerCache(docker_client)
        containers.on_change = self._containers_changed
        self.containers = containers
        self._host = host
        self._clock = clock
        self._stdout = stdout if stdout is not None else (sys.stdout if config.stdout else None)
        self._shipper = shipper
        self._watch_interval = watch_interval
        # The process table (reference_agent.processes.ProcessTable.ancestry), given directly
        # or offered by the backend; neither = relatives omitted.
        self._ancestry = ancestry if ancestry is not None else getattr(backend, "ancestry", None)
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self.ctx: EventContext | None = None
        self.writer: NdjsonWriter | None = None
        self.documents_written = 0
        self.documents_dropped = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LoadedPolicy:
        """Gather facts, open outputs, load and apply the policy. PolicyRejected if invalid."""
        cfg = self.config
        self.ctx = EventContext(
            host=self._host or collect_host_facts(), agent=collect_agent_facts(cfg.state_dir),
            clock=self._clock or BootClock(), namespace=cfg.namespace,
            package_policy_id=cfg.package_policy_id, package_policy_version=cfg.package_policy_version,
            cluster_id=cfg.cluster_id, cluster_name=cfg.cluster_name, names=UserNames())
        if self._shipper is None and cfg.elasticsearch_url:
            self._shipper = BulkShipper(cfg.elasticsearch_url, cfg.output_dir, cfg.state_dir)
        on_write = self._shipper.wake if self._shipper is not None else None
        self.writer = NdjsonWriter(cfg.output_dir, stdout=self._stdout, on_write=on_write)
        # Containers first: the first policy is applied with every running container's mask.
        self.containers.refresh()
        loaded = self.policy.load_initial()
        self.containers.start_events()
        self.policy.start(self._watch_interval)
        if self._shipper is not None:
            self._shipper.start()
        # Readiness for harnesses (the conformance suite waits for <events_dir>/.ready): written
        # last, once the policy is in the kernel and events are being collected.
        ready = cfg.output_dir / READY_FILE
        tmp = ready.with_name(READY_FILE + ".tmp")
        tmp.write_text(f"{os.getpid()} {loaded.generation} {loaded.digest}\n")
        os.replace(tmp, ready)
        return loaded

    def install_signal_handlers(self) -> None:
        self.policy.install_sighup()
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())

    def run(self, poll_timeout: float = 0.5) -> None:
        while not self._stop.is_set():
            self.step(poll_timeout)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        try:
            (self.config.output_dir / READY_FILE).unlink()
        except OSError:
            pass  # never started, or already removed
        self.policy.stop()
        self.containers.close()
        self.backend.close()
        if self.writer is not None:
            self.writer.close()
        if self._shipper is not None:
            self._shipper.close()

    # -- policy and containers -------------------------------------------------------------

    def _masks(self, policy: Policy) -> dict[int, frozenset[str]]:
        return container_masks(policy, self.containers.containers(), self.config.cluster_id, self.config.cluster_name)

    def _apply(self, policy: Policy) -> None:
        """PolicyHolder's apply callback: the kernel gets the policy with fresh masks."""
        with self._apply_lock:
            self.backend.apply_policy(policy, self._masks(policy))

    def _containers_changed(self) -> None:
        """A container started or went away: re-send the enforcing policy with new masks."""
        try:
            self.policy.reapply()
        except Exception:  # the old masks stay; the next change or reload tries again
            log.exception("re-applying the policy for changed containers")

    # -- activities -> documents -------------------------------------------------------------

    def step(self, timeout: float) -> int:
        """Poll the backend once and write every resulting document; returns how many."""
        written = 0
        for activity in self.backend.poll(timeout):
            for doc in self.documents_for(activity):
                try:
                    self.writer.write(doc.data_stream, doc.nested())
                except OSError as exc:  # disk full, directory gone: keep enforcing, count the loss
                    self.documents_dropped += 1
                    log.error("cannot write a %s document: %s", doc.data_stream, exc)
                    continue
                written += 1
        self.documents_written += written
        return written

    def documents_for(self, activity: Activity) -> list[Document]:
        assert self.ctx is not None, "start() first"
        container = self.containers.lookup(activity.task.cgroup_id)
        if container is None:
            # The kernel only reports what matched, and only container tasks match (D15): an
            # unknown cgroup means Docker could not tell us (yet). Report without container facts.
            log.warning("activity of pid %d in cgroup %d: container unknown", activity.task.pid, activity.task.cgroup_id)
        ancestry = self._ancestry(activity.task) if self._ancestry is not None else None
        try:
            if isinstance(activity, FileActivity):
                return file_documents(self.ctx, activity, container, ancestry)
            return process_documents(self.ctx, activity, container, ancestry)
        except ValueError as exc:  # a malformed activity must not stop the agent
            log.error("dropping malformed activity %r: %s", activity, exc)
            return []


def run_agent(config_path: str | Path | None, policy_path: str | Path,
              backend_factory: Callable[[AgentConfig], KernelBackend], *, output_dir: Path | None = None,
              err: TextIO | None = None, install_signals: bool = True,
              on_started: Callable[[LoadedPolicy], None] | None = None, **agent_kwargs: Any) -> int:
    """Start and run the agent until SIGTERM/SIGINT; the exit code of `d4c agent run`.

    No config file = defaults; `output_dir` (the suite's `--output-dir`) overrides the config's.
    """
    err = err or sys.stderr
    try:
        config = load_config(config_path) if config_path is not None else AgentConfig()
    except ConfigError as exc:
        print(str(exc), file=err)
        return EXIT_BAD_CONFIG
    if output_dir is not None:
        config = dataclasses.replace(config, output_dir=Path(output_dir))
    try:
        agent = Agent(config, policy_path, backend_factory(config), **agent_kwargs)
    except Exception as exc:  # docker daemon unreachable, BPF load refused...: one line, no traceback
        print(f"d4c agent: cannot start: {type(exc).__name__}: {exc}", file=err)
        return EXIT_BAD_POLICY
    try:
        loaded = agent.start()
    except PolicyRejected as exc:
        for line in exc.messages:
            print(line, file=err)
        agent.close()
        return EXIT_BAD_POLICY
    except Exception as exc:  # docker gone mid-start, BPF refusing the maps: one line, no traceback
        print(f"d4c agent: cannot start: {type(exc).__name__}: {exc}", file=err)
        agent.close()
        return EXIT_BAD_POLICY
    if on_started is not None:  # the CLI's "enforcing ..." line
        on_started(loaded)
    try:
        if install_signals:
            agent.install_signal_handlers()
        agent.run()
    finally:
        agent.close()
    return 0
