"""What the agent says about itself: the heartbeat and metrics documents when they are due, a
log line whenever events were lost, and the exit summary.

Nothing is lost silently. An event is lost in one of two places: in the kernel, when a
program's ring buffer is full (the `ringbuf_full` counter of its `stats` map, incremented
where bpf_ringbuf_output fails, bpf/include/d4c_policy.bpf.h), or in the agent, when the
output refuses a document (disk full). Both are counted here per period and since the start;
the kernel's counters are read as differences from the values at the agent's start (pinned
maps, D33, keep counting across agents).

A third count is the kernel's own: runs of a tracing program (tp_btf, fentry/fexit) it
skipped because that program was already running on the CPU (`recursion_misses`). On a
preemptible kernel (7.x) a preempted program keeps that guard taken, so another task's
exit or exec on the CPU goes unseen. They are reported per BPF program beside the losses
(log line, metrics, exit summary); the process ends among them are recovered from /proc
(agent.py).

The reporter is driven from the agent's main loop (`tick()`): the counters of its documents
are those of the loop that wrote the events, so a metrics period is exact. Policy changes come
from the watcher thread and only set facts and a flag (the next tick writes the heartbeat).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reference_agent.config import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_METRICS_INTERVAL_S
from reference_agent.ecs.common import Document, EventContext
from reference_agent.ecs.status import (
    EVENT_DATASETS,
    PROGRAMS,
    Period,
    PolicyFacts,
    heartbeat_document,
    metrics_document,
)
from reference_agent.reload import LoadedPolicy

log = logging.getLogger(__name__)

# Losses are looked for this often (two small map reads) and logged when there were any: a
# flood is visible in the log within seconds, whatever the metrics interval.
LOSS_CHECK_INTERVAL_S = 10.0

KernelCounters = Mapping[str, Mapping[str, int]]  # program -> counter name -> value


@dataclass(frozen=True)
class Totals:
    """Since the agent started."""

    written: Mapping[str, int]  # event dataset (cloud_defend.file...) -> documents
    not_written: int
    ring_buffer_full: Mapping[str, int]  # program -> records lost
    skipped: Mapping[str, int]  # BPF program (d4c_sched_process_exit...) -> runs the kernel skipped

    @property
    def dropped(self) -> int:
        return sum(self.ring_buffer_full.values()) + self.not_written


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _delta(now: KernelCounters, then: KernelCounters, name: str) -> dict[str, int]:
    return {p: max(0, now.get(p, {}).get(name, 0) - then.get(p, {}).get(name, 0)) for p in PROGRAMS}


def _skipped(now: KernelCounters, then: KernelCounters) -> dict[str, int]:
    """BPF program -> runs skipped in between (the `skipped.<program>` counters), nonzero only."""
    out: dict[str, int] = {}
    for program in PROGRAMS:
        for name, value in now.get(program, {}).items():
            if name.startswith("skipped."):
                delta = value - then.get(program, {}).get(name, 0)
                if delta > 0:
                    out[name.removeprefix("skipped.")] = delta
    return out


class StatusReporter:
    def __init__(self, ctx: EventContext, kernel_counters: Callable[[], KernelCounters], *,
                 heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL_S,
                 metrics_interval: float = DEFAULT_METRICS_INTERVAL_S,
                 loss_check_interval: float = LOSS_CHECK_INTERVAL_S,
                 process_table_size: Callable[[], int | None] = lambda: None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._ctx = ctx
        self._kernel_counters = kernel_counters
        self._intervals = (heartbeat_interval, metrics_interval, loss_check_interval)
        self._table_size = process_table_size
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._facts: PolicyFacts | None = None
        self._heartbeat_now = False
        start = monotonic()
        self._last = [start, start, start]  # heartbeat, metrics, loss check
        self._start_kernel = self._read_kernel()
        self._period_kernel = self._start_kernel
        self._logged_kernel = self._start_kernel
        self._period_start_ns = wall_ns()
        self._written: Counter[str] = Counter()  # since start
        self._period_written: Counter[str] = Counter()
        self._not_written = 0
        self._period_not_written = 0
        self._logged_not_written = 0

    # -- what the agent tells it ----------------------------------------------------------------

    def policy_enforcing(self, loaded: LoadedPolicy) -> None:
        """A policy went into the kernel (the first, or an accepted reload): heartbeat soon."""
        with self._lock:
            self._facts = PolicyFacts(loaded.policy, loaded.digest, loaded.generation, self._wall_ns())
            self._heartbeat_now = True

    def written(self, doc: Document) -> None:
        dataset = _event_dataset(doc)
        if dataset is not None:
            self._written[dataset] += 1
            self._period_written[dataset] += 1

    def not_written(self, doc: Document) -> None:
        """An event document the output refused (the agent's own documents are not events)."""
        if _event_dataset(doc) is not None:
            self._not_written += 1
            self._period_not_written += 1

    # -- what it gives back ----------------------------------------------------------------------

    def tick(self) -> list[Document]:
        """The heartbeat and metrics documents due now; logs new losses when it is time."""
        now = self._monotonic()
        heartbeat_every, metrics_every, check_every = self._intervals
        docs: list[Document] = []
        with self._lock:
            facts, forced, self._heartbeat_now = self._facts, self._heartbeat_now, False
        if facts is not None and (forced or now - self._last[0] >= heartbeat_every):
            self._last[0] = now
            docs.append(heartbeat_document(self._ctx, facts, self._wall_ns()))
        if now - self._last[1] >= metrics_every:
            self._last[1] = now
            docs.append(self.metrics())
        if now - self._last[2] >= check_every:
            self._last[2] = now
            self.log_losses()
        return docs

    def metrics(self) -> Document:
        """The metrics document of the period ending now; the next period starts."""
        kernel = self._read_kernel()
        end_ns = self._wall_ns()
        period = Period(
            start_ns=self._period_start_ns, end_ns=end_ns, written=dict(self._period_written),
            not_written=self._period_not_written,
            ring_buffer_full=_delta(kernel, self._period_kernel, "ringbuf_full"),
            records=_delta(kernel, self._period_kernel, "events"),
            blocked=sum(_delta(kernel, self._period_kernel, "blocks").values()),
            skipped=_delta(kernel, self._period_kernel, "skipped"),
            memory_rss_bytes=_rss_bytes(), process_table_size=self._table_size())
        self._period_kernel, self._period_start_ns = kernel, end_ns
        self._period_written.clear()
        self._period_not_written = 0
        return metrics_document(self._ctx, period)

    def log_losses(self) -> None:
        """One warning line when events were lost since the last one (else nothing)."""
        kernel = self._read_kernel()
        logged_before = self._logged_kernel
        ring = _delta(kernel, self._logged_kernel, "ringbuf_full")
        not_written = self._not_written - self._logged_not_written
        self._logged_kernel, self._logged_not_written = kernel, self._not_written
        lost = sum(ring.values()) + not_written
        if lost:
            log.warning("%d events lost since the last report (%s); %d since start", lost,
                        _loss_detail(ring, not_written), self.totals().dropped)
        skipped = _skipped(kernel, logged_before)
        if skipped:
            log.warning("%d BPF program runs skipped by the kernel since the last report (%s); %d since start",
                        sum(skipped.values()), _skip_detail(skipped), sum(self.totals().skipped.values()))

    def totals(self) -> Totals:
        kernel = self._read_kernel()
        return Totals(dict(self._written), self._not_written, _delta(kernel, self._start_kernel, "ringbuf_full"),
                      _skipped(kernel, self._start_kernel))

    def summary(self) -> str:
        """The exit summary: what was written and what was lost since the start."""
        totals = self.totals()
        written = ", ".join(f"{d.removeprefix('cloud_defend.')} {totals.written.get('cloud_defend.' + d, 0)}"
                            for d in EVENT_DATASETS)
        text = (f"{sum(totals.written.values())} event documents written ({written}), "
                f"{totals.dropped} events lost ({_loss_detail(totals.ring_buffer_full, totals.not_written)})")
        if totals.skipped:
            text += (f"; {sum(totals.skipped.values())} BPF program runs skipped by the kernel "
                     f"({_skip_detail(totals.skipped)})")
        return text

    def _read_kernel(self) -> KernelCounters:
        try:
            return self._kernel_counters()
        except OSError as exc:  # programs gone (closing): the last values stand
            log.warning("kernel counters unreadable: %s", exc)
            return getattr(self, "_period_kernel", {})


def _event_dataset(doc: Document) -> str | None:
    dataset = doc.fields.get("data_stream.dataset")
    if isinstance(dataset, str) and dataset.removeprefix("cloud_defend.") in EVENT_DATASETS:
        return dataset
    return None


def _skip_detail(skipped: Mapping[str, int]) -> str:
    return ", ".join(f"{program} {n}" for program, n in sorted(skipped.items()))


def _loss_detail(ring: Mapping[str, int], not_written: int) -> str:
    programs = ", ".join(f"{p} {ring.get(p, 0)}" for p in PROGRAMS)
    return f"ring buffer full: {programs}; not written: {not_written}"
