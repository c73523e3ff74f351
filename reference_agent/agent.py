"""The reference agent's userspace, composed: policy holder + container cache + ECS builders +
outputs, around a kernel backend.

`d4c agent run` is meant to be a short composition of this module::

    config = load_agent_config(args.config)                   # ConfigError -> exit 2
    agent = Agent(config, args.policy, KernelBackendImpl(...))
    agent.install_signal_handlers()                           # SIGHUP reload, SIGTERM/INT stop
    agent.start()                                             # PolicyRejected -> exit 1
    agent.run()                                               # <output_dir>/.ready once enforcing

`run_agent()` below does exactly that with the error handling (one line per problem, exit
codes, no traceback) given a backend factory.

The kernel side implements `KernelBackend`. Its poll() yields FileActivity, ProcessActivity
and ProcessLifecycle values (docs/agent.md). The agent owns the process table
(reference_agent.processes.ProcessTable, seeded from /proc at start) and the D20 EndLedger:

- a ProcessLifecycle (fork/exec/exit of a container task) updates the table and writes nothing
  by itself; an exit whose process had a fork/exec event written gets its `end` documents,
  exactly once, in the streams of the events it closes;
- every document's process.parent/session_leader/entry_leader/group_leader.* come from the
  table, an exec's process.previous is the image the table had before, and an executable the
  kernel side could not read ("") is the table's (short-lived processes leave /proc before
  their event is decoded);
- a task the table does not know is learnt late from /proc or from the kernel's own view;
  what neither tells is omitted, never invented.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from reference_agent.activity import (
    Ancestry,
    FileActivity,
    ProcessActivity,
    ProcessLifecycle,
    TaskInfo,
)
from reference_agent.config import (
    EXIT_BAD_CONFIG,
    AgentConfig,
    ConfigError,
    kubernetes_from_environment,
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
from reference_agent.processes import EndLedger, ProcessTable
from reference_agent.control import READY_FILE
from reference_agent.reload import LoadedPolicy, PolicyHolder, PolicyRejected
from reference_agent.status import StatusReporter

log = logging.getLogger(__name__)

EXIT_BAD_POLICY = 1  # also: cannot start (docker, BPF)

Activity = FileActivity | ProcessActivity
Polled = FileActivity | ProcessActivity | ProcessLifecycle

END_TRACE_POINT = "sched_process_exit"  # cloud_defend.trace_point of the end events (D20)
# Lost exits (ring buffer full) leave processes in the table and debts in the ledger; /proc is
# compared with the table this often to close them (one walk of the table's live pids).
RECONCILE_INTERVAL_S = 60.0
# A skipped run of the exit program (the kernel's recursion guard, status.py) is a lost exit
# the kernel counts: the counters are looked at this often, and /proc compared this long after
# they grew (the task that was not seen has finished exiting by then).
SKIP_CHECK_INTERVAL_S = 2.0
SKIP_RECONCILE_DELAY_S = 1.0
# At stop, what the ring buffers still hold is decoded and written for at most this long: a
# full 4 MiB ring takes ~10-20 s under TCG; a workload still flooding them could otherwise keep
# the agent from ever stopping.
FINAL_DRAIN_S = 30.0


class KernelBackend(Protocol):
    def apply_policy(self, policy: Policy, container_masks: Mapping[int, frozenset[str]]) -> None:
        """Load `policy` into the kernel, atomically; raise to refuse it (the old one stays).
        container_masks: cgroup id -> names of the selectors whose container conditions hold
        there (metadata/scoping.py); absent = host. Called again with the same policy when
        containers come and go. May be called from the policy-watcher or docker-events thread
        while poll() runs in the main thread (calls to apply_policy itself are serialised)."""

    def poll(self, timeout: float) -> Iterable[Polled]:
        """Values decoded from the ring buffers, waiting at most `timeout` seconds; in kernel
        timestamp order, a fork/exec's ProcessLifecycle before its ProcessActivity."""

    def close(self) -> None: ...

    def counters(self) -> Mapping[str, Mapping[str, int]]:
        """Kernel counters per program ("file", "process" -> name -> value, monotonic since
        the programs were loaded); `ringbuf_full` = records lost to a full ring buffer,
        `events` = records committed, `blocks` = operations refused. {} = none known."""


class Agent:
    def __init__(self, config: AgentConfig, policy_path: str | Path, backend: KernelBackend, *,
                 docker_client: Any = None, containers: ContainerCache | None = None,
                 host: HostFacts | None = None, clock: BootClock | None = None,
                 stdout: TextIO | None = None, shipper: BulkShipper | None = None,
                 watch_interval: float = 1.0, processes: ProcessTable | None = None,
                 process_table: bool = True, ledger: EndLedger | None = None,
                 reconcile_interval: float = RECONCILE_INTERVAL_S,
                 ancestry: Callable[[TaskInfo], Ancestry | None] | None = None) -> None:
        """`processes`: the process table to use (tests give one over a fake /proc); None =
        start() builds one over this host's /proc and seeds it, unless `process_table` is
        False. `ancestry` overrides where relatives come from (tests; the table otherwise)."""
        self.config = config
        self.cluster_id = config.cluster_id  # start() asks the API when the config does not say
        self.backend = backend
        self.policy = PolicyHolder(policy_path, self._apply, prepare=self._refresh_containers,
                                   on_accepted=self._accepted)
        if containers is None:
            pods = _pod_source(config)
            if docker_client is None:
                docker_client = _docker_client(required=pods is None)
            containers = ContainerCache(docker_client, pods=pods)
        containers.on_change = self._containers_changed
        self.containers = containers
        self._host = host
        self._clock = clock
        self._stdout = stdout if stdout is not None else (sys.stdout if config.stdout else None)
        self._shipper = shipper
        self._watch_interval = watch_interval
        self.processes = processes
        self._want_table = process_table
        self.ledger = ledger if ledger is not None else EndLedger()
        self._reconcile_interval = reconcile_interval
        self._last_reconcile = time.monotonic()
        self._last_skip_check = self._last_reconcile
        self._skipped_seen: int | None = None  # the process programs' skipped runs at the last check
        self._reconcile_at: float | None = None  # when skipped runs ask for an early reconcile
        self._ancestry = ancestry
        self._apply_lock = threading.Lock()
        self._ready = False
        self._stop = threading.Event()
        self.ctx: EventContext | None = None
        self.writer: NdjsonWriter | None = None
        self.documents_written = 0
        self.documents_dropped = 0
        self.status: StatusReporter | None = None  # from start(): heartbeat, metrics, losses
        self.exit_summary: str | None = None  # set by close() once it has run
        self._output_failing = False  # logged once per failing spell, then counted
        self._encoding_failed = False  # a document the writer refused: traceback logged once

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LoadedPolicy:
        """Gather facts, open outputs, load and apply the policy. PolicyRejected if invalid."""
        cfg = self.config
        if self.cluster_id is None:
            self.cluster_id = self.containers.cluster_uid()
        self.ctx = EventContext(
            host=self._host or collect_host_facts(), agent=collect_agent_facts(cfg.state_dir),
            clock=self._clock or BootClock(), namespace=cfg.namespace,
            package_policy_id=cfg.package_policy_id, package_policy_version=cfg.package_policy_version,
            cluster_id=self.cluster_id, cluster_name=cfg.cluster_name, names=UserNames())
        if self._shipper is None and cfg.elasticsearch_url:
            self._shipper = BulkShipper(cfg.elasticsearch_url, cfg.output_dir, cfg.state_dir)
        on_write = self._shipper.wake if self._shipper is not None else None
        self.writer = NdjsonWriter(cfg.output_dir, stdout=self._stdout, on_write=on_write)
        if self.processes is None and self._want_table:
            self.processes = self._seeded_table()
        # Containers first: the first policy is applied with every running container's mask.
        self.containers.refresh()
        loaded = self.policy.load_initial()
        # After the load: the kernel's counters start from the programs' values now.
        self.status = StatusReporter(
            self.ctx, self._kernel_counters, heartbeat_interval=cfg.heartbeat_interval,
            metrics_interval=cfg.metrics_interval,
            process_table_size=lambda: len(self.processes) if self.processes is not None else None)
        self.status.policy_enforcing(loaded)
        self.containers.start_events()
        self.policy.start(self._watch_interval)
        if self._shipper is not None:
            self._shipper.start()
        # Readiness for harnesses (the conformance suite waits for <events_dir>/.ready): written
        # last, once the policy is in the kernel and events are being collected.
        self._ready = True
        self._write_ready(loaded)
        return loaded

    def _accepted(self, loaded: LoadedPolicy) -> None:
        """A reload went into the kernel: the next heartbeat says so, .ready shows its digest."""
        if self.status is not None:
            self.status.policy_enforcing(loaded)
        self._write_ready(loaded)

    def _kernel_counters(self) -> Mapping[str, Mapping[str, int]]:
        counters = getattr(self.backend, "counters", None)  # a backend may have none
        return counters() if counters is not None else {}

    def _write_ready(self, loaded: LoadedPolicy) -> None:
        """<output_dir>/.ready = `PID GENERATION SHA256 POLICY-PATH`, replaced atomically on every
        accepted reload: a harness that loads a policy waits for its digest there."""
        if not self._ready:
            return  # the first policy: start() writes it once events are being collected
        ready = self.config.output_dir / READY_FILE
        tmp = ready.with_name(READY_FILE + ".tmp")
        tmp.write_text(f"{os.getpid()} {loaded.generation} {loaded.digest} {loaded.path.resolve()}\n")
        os.replace(tmp, ready)

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
        self.policy.stop()
        if self.status is not None:
            self._final_report()  # still enforcing, containers still known
        try:
            (self.config.output_dir / READY_FILE).unlink()
        except OSError:
            pass  # never started, or already removed
        self.containers.close()
        self.backend.close()
        if self.writer is not None:
            self.writer.close()
        if self._shipper is not None:
            self._shipper.close()

    def _final_report(self) -> None:
        """Before the programs go: write what the ring buffers still hold, then the last
        metrics document (its period ends now) and the exit summary, so every event is in a
        stream or in a count."""
        assert self.status is not None
        deadline = time.monotonic() + FINAL_DRAIN_S
        while True:
            values = list(self.backend.poll(0))
            if not values:
                break
            self.documents_written += self._process(values)
            if time.monotonic() >= deadline:
                log.warning("the ring buffers still deliver after %.0f s of draining at stop: what they "
                            "hold now is neither written nor counted", FINAL_DRAIN_S)
                break
        self._write(self.status.metrics(), event=False)
        self.exit_summary = self.status.summary()

    def _seeded_table(self) -> ProcessTable | None:
        """This host's process table, seeded from /proc before the policy is applied (so a
        process whose fork predates the agent is known by the first event)."""
        assert self.ctx is not None
        try:
            table = ProcessTable(self.ctx.agent.id, entity_ids=self.ctx.entity_id)
            table.seed()
        except (OSError, ValueError) as exc:  # no /proc or cgroup2: relatives are omitted
            log.warning("process table disabled: %s: %s", type(exc).__name__, exc)
            return None
        return table

    # -- policy and containers -------------------------------------------------------------

    def _masks(self, policy: Policy) -> dict[int, frozenset[str]]:
        return container_masks(policy, self.containers.containers(), self.cluster_id, self.config.cluster_name)

    def _apply(self, policy: Policy) -> None:
        """PolicyHolder's apply callback: the kernel gets the policy with fresh masks."""
        with self._apply_lock:
            self.backend.apply_policy(policy, self._masks(policy))

    def _refresh_containers(self) -> None:
        """Before a reload: a policy asked for now must cover every container running now,
        even one whose Docker start event is still on its way."""
        self.containers.refresh()

    def _containers_changed(self) -> None:
        """A container started or went away: re-send the enforcing policy with new masks."""
        try:
            self.policy.reapply()
        except Exception:  # the old masks stay; the next change or reload tries again
            log.exception("re-applying the policy for changed containers")

    # -- activities -> documents -------------------------------------------------------------

    def step(self, timeout: float) -> int:
        """Poll the backend once and write every resulting document; returns how many event
        documents (the heartbeat and metrics documents due are written too, not counted)."""
        written = self._process(self.backend.poll(timeout))
        if self.processes is not None and self._reconcile_due():
            self._last_reconcile, self._reconcile_at = time.monotonic(), None
            for doc in self.reconcile():
                written += self._write(doc)
        self.documents_written += written
        if self.status is not None:
            for doc in self.status.tick():
                self._write(doc, event=False)
        return written

    def _reconcile_due(self) -> bool:
        """The periodic comparison with /proc, or an early one once the kernel has skipped
        runs of the process programs (exits it never reported)."""
        now = time.monotonic()
        if now - self._last_skip_check >= SKIP_CHECK_INTERVAL_S:
            self._last_skip_check = now
            try:
                skipped = self.backend.counters().get("process", {}).get("skipped", 0)
            except OSError:  # programs closing: the periodic comparison remains
                skipped = self._skipped_seen
            if self._skipped_seen is not None and skipped is not None and skipped > self._skipped_seen:
                self._reconcile_at = now + SKIP_RECONCILE_DELAY_S
            self._skipped_seen = skipped
        if self._reconcile_at is not None and now >= self._reconcile_at:
            return True
        return now - self._last_reconcile >= self._reconcile_interval

    def _process(self, values: Iterable[Polled]) -> int:
        written = 0
        for value in values:
            for doc in self._documents_of(value):
                written += self._write(doc)
        return written

    def _write(self, doc: Document, *, event: bool = True) -> int:
        """Write one document; 1 if it was an event document and written. `event` False: the
        agent's own heartbeat/metrics documents, whose loss is logged but counts no event."""
        assert self.writer is not None, "start() first"
        try:
            self.writer.write(doc.data_stream, doc.nested())
        except OSError as exc:  # disk full, directory gone: keep enforcing, count the loss
            self.documents_dropped += event
            if self.status is not None:
                self.status.not_written(doc)
            if not self._output_failing:  # one line, not one per document of a full disk
                self._output_failing = True
                log.error("cannot write a %s document: %s (until writing works again, lost documents "
                          "are counted in the loss reports, not logged one by one)", doc.data_stream, exc)
            return 0
        except Exception:  # noqa: BLE001 - a document the writer cannot take must not stop the agent
            self.documents_dropped += event
            if self.status is not None:
                self.status.not_written(doc)
            if not self._encoding_failed:  # the first with its traceback; later ones counted only
                self._encoding_failed = True
                log.exception("cannot write a %s document (dropped; such losses are counted in the loss "
                              "reports)", doc.data_stream)
            return 0
        if self._output_failing:
            self._output_failing = False
            log.warning("writing documents again (%s)", doc.data_stream)
        if self.status is not None:
            self.status.written(doc)
        return int(event)

    def _documents_of(self, value: Polled) -> list[Document]:
        """One polled value -> its documents; a bad value is logged and dropped, never fatal."""
        try:
            if isinstance(value, ProcessLifecycle):
                return self.on_lifecycle(value)
            return self.documents_for(value)
        except Exception:  # a bug on one value must not stop enforcement's reporting
            log.exception("dropping %s", type(value).__name__)
            return []

    # -- process lifecycle (table, D20 ends) --------------------------------------------------

    def on_lifecycle(self, lc: ProcessLifecycle) -> list[Document]:
        """Apply a fork/exec/exit to the process table; the `end` documents an exit owes (D20)."""
        table = self.processes
        task = lc.task
        if lc.kind == "exit":
            return self._exit(lc)
        if table is None:  # no table (no /proc): nothing to keep
            return []
        if lc.kind == "fork":
            table.on_fork(task)
        elif lc.kind == "exec":
            # An unknown pid is learnt there, with no process.previous: /proc already shows the
            # new image, so the one before is unknown (never guessed).
            # "" = the kernel side could not read the new image: unknown (None), not empty.
            table.on_exec(task.pid, task.executable or None, lc.args, task=task)  # type: ignore[arg-type]
        else:
            log.error("unknown process lifecycle kind %r (pid %d)", lc.kind, task.pid)
        return []

    def _exit(self, lc: ProcessLifecycle) -> list[Document]:
        assert self.ctx is not None
        table, task = self.processes, lc.task
        owed = self.ledger.settle(self.ctx.entity_id(task.pid, task.start_time_ns))
        documents: list[Document] = []
        if owed is not None:
            # Built before on_exit: the table forgets the process (and maybe its relatives).
            image = table.image(task) if table is not None else None
            if image is not None and image.executable:
                task = dataclasses.replace(task, executable=image.executable)
            end = ProcessActivity(operation="end", selectors=owed.selectors, actions=owed.actions,
                                  blocked=False, task=task, timestamp_ns=lc.timestamp_ns,
                                  args=image.args if image is not None else (), trace_point=END_TRACE_POINT,
                                  exit_code=lc.exit_code)
            documents = self._build(end)
        if table is not None:
            table.on_exit(task.pid, end_ns=lc.timestamp_ns, start_ns=task.start_time_ns)
        return documents

    def reconcile(self) -> list[Document]:
        """End what the table holds but /proc no longer shows (exits lost by the ring buffer),
        with the end documents still owed for them (D20), stamped now."""
        assert self.ctx is not None
        if self.processes is None:
            return []
        documents: list[Document] = []
        now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        for facts in self.processes.reconcile():
            owed = self.ledger.settle(facts.entity_id)
            if owed is None:
                continue
            described = facts.process
            boot_start = described.start_ns - self.processes.boot_time_ns
            task = TaskInfo(pid=described.pid, tid=described.pid, ppid=facts.parent.pid if facts.parent else 0,
                            uid=described.user_id, gid=described.group_id, cgroup_id=facts.cgroup_id, comm="",
                            executable=described.executable or "", start_time_ns=boot_start,
                            tty=described.interactive)
            end = ProcessActivity(operation="end", selectors=owed.selectors, actions=owed.actions, blocked=False,
                                  task=task, timestamp_ns=now, args=described.args, trace_point=END_TRACE_POINT)
            documents.extend(self._build(end, ancestry=None))
        return documents

    # -- activities -> documents -------------------------------------------------------------

    def documents_for(self, activity: Activity) -> list[Document]:
        """The documents of one file or process activity; notes emitted fork/exec for D20."""
        assert self.ctx is not None, "start() first"
        if isinstance(activity, ProcessActivity) and activity.operation in ("fork", "exec"):
            activity = self._with_process_facts(activity)
        elif self.processes is not None and not activity.task.executable:
            # Short-lived processes are gone from /proc at decode time: the table saw their exec.
            self._know(activity.task)
            image = self.processes.image(activity.task)
            if image is not None and image.executable:
                activity = dataclasses.replace(
                    activity, task=dataclasses.replace(activity.task, executable=image.executable))
        documents = self._build(activity)
        # D20: this process's end is owed. A blocked fork created no process (its task is the
        # parent): nothing ends because of it. A blocked exec's process lives on.
        if (documents and isinstance(activity, ProcessActivity) and activity.operation in ("fork", "exec")
                and not (activity.blocked and activity.operation == "fork")):
            task = activity.task
            self.ledger.note_emitted(self.ctx.entity_id(task.pid, task.start_time_ns), task.pid,
                                     activity.selectors, activity.actions)
        return documents

    def _know(self, task: TaskInfo) -> None:
        """Learn a task the table missed (never raises: relatives are optional)."""
        if self.processes is None or self.processes.knows(task):
            return
        try:
            self.processes.learn(task)
        except (OSError, ValueError) as exc:
            log.warning("pid %d unknown to the process table: %s", task.pid, exc)

    def _with_process_facts(self, activity: ProcessActivity) -> ProcessActivity:
        """A fork/exec activity completed from the table: executable, args, process.previous."""
        table = self.processes
        if table is None:
            return activity
        task = activity.task
        self._know(task)
        image = table.image(task)
        changes: dict[str, Any] = {}
        if image is not None:
            if not task.executable and image.executable:
                changes["task"] = dataclasses.replace(task, executable=image.executable)
            if not activity.args and image.args and not (activity.operation == "exec" and activity.blocked):
                changes["args"] = image.args  # a fork's child runs its parent's program and args
        if activity.operation == "exec" and activity.previous_executable is None:
            # Applied exec: the table moved the old image to `previous`. Blocked exec: the
            # process still runs the image that attempted it.
            previous = image if activity.blocked else table.previous_image(task)
            if previous is not None and previous.executable is not None:
                changes["previous_executable"] = previous.executable
                changes["previous_args"] = previous.args
        return dataclasses.replace(activity, **changes) if changes else activity

    def _build(self, activity: Activity, *, ancestry: Ancestry | None | bool = True) -> list[Document]:
        assert self.ctx is not None
        container = self.containers.lookup(activity.task.cgroup_id)
        if container is None:
            # The kernel only reports what matched, and only container tasks match (D15): an
            # unknown cgroup means Docker could not tell us (yet). Report without container facts.
            log.warning("activity of pid %d in cgroup %d: container unknown", activity.task.pid, activity.task.cgroup_id)
        if ancestry is True:
            ancestry = self._relatives(activity.task)
        try:
            if isinstance(activity, FileActivity):
                return file_documents(self.ctx, activity, container, ancestry or None)
            return process_documents(self.ctx, activity, container, ancestry or None)
        except ValueError as exc:  # a malformed activity must not stop the agent
            log.error("dropping malformed activity %r: %s", activity, exc)
            return []

    def _relatives(self, task: TaskInfo) -> Ancestry | None:
        if self._ancestry is not None:
            return self._ancestry(task)
        if self.processes is None:
            return None
        self._know(task)
        return self.processes.ancestry(task)


def _docker_client(*, required: bool) -> Any:
    """Docker's SDK client. Without the Kubernetes API Docker is where containers come from, so
    its absence is fatal; with the API it only describes containers in no pod, and a node
    without Docker (containerd, CRI-O) runs without it."""
    import docker  # the agent extra; only needed for a real run

    try:
        return docker.from_env()
    except Exception as exc:  # no socket, permission denied: the SDK raises DockerException
        if required:
            raise
        log.info("docker: not reachable (%s); containers in no pod are known by their cgroup only", exc)
        return None


def _pod_source(config: AgentConfig) -> Any:
    """Pod labels from the Kubernetes API when the config has a `kubernetes:` section
    (metadata/kubernetes.py); None = from container labels only."""
    if config.kubernetes is None:
        return None
    from reference_agent.metadata.kubernetes import pod_directory  # the client is slow to import

    return pod_directory(config.kubernetes)


def load_agent_config(config_path: str | Path | None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """The config file (defaults without one), with `$KUBECONFIG` when it has no `kubernetes:`
    section. The Kubernetes client's own configuration is built here (the kubeconfig read, or
    the in-cluster service account found; no request is made), so an API that cannot be used
    is a located exit-2 ConfigError (`kubernetes.api`, or `$KUBECONFIG`) before anything starts."""
    config = load_config(config_path) if config_path is not None else AgentConfig()
    config = kubernetes_from_environment(config, environ)
    if config.kubernetes is not None:
        # The kubernetes client is the agent extra's, and slow to import: only when configured.
        from reference_agent.metadata.kubernetes import client_configuration

        client_configuration(config.kubernetes)
    return config


def run_agent(config_path: str | Path | None, policy_path: str | Path,
              backend_factory: Callable[[AgentConfig], KernelBackend], *, output_dir: Path | None = None,
              err: TextIO | None = None, install_signals: bool = True,
              on_started: Callable[[LoadedPolicy], None] | None = None, **agent_kwargs: Any) -> int:
    """Start and run the agent until SIGTERM/SIGINT; the exit code of `d4c agent run`.

    No config file = defaults; `output_dir` (the suite's `--output-dir`) overrides the config's.
    """
    err = err or sys.stderr
    try:
        config = load_agent_config(config_path)
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
    if install_signals:
        # Before start(): a harness may stop the agent the moment .ready appears, and that
        # SIGTERM must drain and summarise like any other, not kill the process.
        agent.install_signal_handlers()
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
        agent.run()
    finally:
        agent.close()
        if agent.exit_summary is not None:
            print(f"d4c agent: stopped: {agent.exit_summary}", file=err, flush=True)
    return 0
