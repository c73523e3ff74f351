"""The agent's own documents: a heartbeat (is enforcement alive, with which policy) and metrics
(what was written and what was lost), in the two metrics data streams of Elastic's
`cloud_defend` package.

- `metrics-cloud_defend.heartbeat-<namespace>`: `cloud_defend.block_action_enabled`, the one
  field the package declares there (Kibana counts nodes by it and `agent.id`), beside the
  policy in force: its SHA-256 (the digest of `.ready`), the agent's generation of it, the
  Kibana `version`, the selectors and responses loaded per section, when it started enforcing,
  and the package policy id/revision when configured.
- `metrics-cloud_defend.metrics-<namespace>`: counts over the period since the previous
  metrics document (`event.start`..`event.end`, `event.duration` in ns): documents written per
  event stream, events lost (ring buffer full in the kernel, per program; documents that could
  not be written), operations blocked, records the kernel committed, runs of the BPF programs the kernel skipped
(`d4c.kernel.skipped`, their recursion guard), and the agent's memory
  and process-table size at the end of the period.

The package declares no field for the metrics stream and only block_action_enabled for the
heartbeat; the others are the project's own (`d4c.*`, declared with their types in
conformance/fields/d4c.json and mapped by `d4c es templates`). host.* (host.os.kernel) and
agent.* (agent.version) are ECS, as on every event.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reference_agent.ecs.common import ECS_VERSION, Document, EventContext, iso_ns
from reference_agent.policy import Policy

DATASET_HEARTBEAT = "cloud_defend.heartbeat"
DATASET_METRICS = "cloud_defend.metrics"
EVENT_DATASETS = ("file", "process", "alerts")  # cloud_defend.<name>: the event streams counted
PROGRAMS = ("file", "process")  # the BPF programs, one ring buffer each


def metrics_stream_name(dataset: str, namespace: str) -> str:
    return f"metrics-{dataset}-{namespace}"


def block_enabled(policy: Policy) -> bool:
    """Whether any response of the policy blocks: what cloud_defend.block_action_enabled says."""
    return any("block" in r.actions for s in policy.sections for r in s.responses)


@dataclass(frozen=True)
class PolicyFacts:
    """The policy in force, as the heartbeat reports it."""

    policy: Policy
    digest: str  # sha256 of the policy file's bytes
    generation: int  # 1 = the policy the agent started with, +1 per accepted reload
    enforcing_since_ns: int  # wall clock ns when it went into the kernel


@dataclass(frozen=True)
class Period:
    """Counts over one metrics period (wall clock ns at both ends)."""

    start_ns: int
    end_ns: int
    written: Mapping[str, int] = field(default_factory=dict)  # event dataset -> documents written
    not_written: int = 0  # documents the output refused (disk full, directory gone)
    ring_buffer_full: Mapping[str, int] = field(default_factory=dict)  # program -> records lost
    records: Mapping[str, int] = field(default_factory=dict)  # program -> records committed
    blocked: int = 0  # operations the kernel refused (EPERM)
    skipped: Mapping[str, int] = field(default_factory=dict)  # program -> BPF runs the kernel skipped
    memory_rss_bytes: int | None = None
    process_table_size: int | None = None


def _base(ctx: EventContext, dataset: str, timestamp_ns: int, message: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "@timestamp": iso_ns(timestamp_ns),
        "ecs.version": ECS_VERSION,
        "message": message,
        "event.id": str(uuid.uuid4()),  # the shipper's _id: a re-sent batch stays one document
        "event.kind": "metric",
        "event.module": "cloud_defend",
        "event.dataset": dataset,
        "data_stream.type": "metrics",
        "data_stream.dataset": dataset,
        "data_stream.namespace": ctx.namespace,
    }
    fields.update(ctx.node_fields)
    if ctx.package_policy_id is not None:
        fields["cloud_defend.package_policy_id"] = ctx.package_policy_id
    if ctx.package_policy_version is not None:
        fields["cloud_defend.package_policy_revision"] = ctx.package_policy_version
    return fields


def heartbeat_document(ctx: EventContext, facts: PolicyFacts, now_ns: int) -> Document:
    policy = facts.policy
    fields = _base(ctx, DATASET_HEARTBEAT, now_ns, "cloud-defend heartbeat")
    fields.update({
        "cloud_defend.block_action_enabled": block_enabled(policy),
        "d4c.policy.sha256": facts.digest,
        "d4c.policy.generation": facts.generation,
        "d4c.policy.enforcing_since": iso_ns(facts.enforcing_since_ns),
    })
    if policy.version is not None:
        fields["d4c.policy.version"] = policy.version
    for kind in ("file", "process"):
        section = policy.section(kind)
        fields[f"d4c.policy.{kind}.selectors"] = len(section.selectors) if section else 0
        fields[f"d4c.policy.{kind}.responses"] = len(section.responses) if section else 0
    return Document(metrics_stream_name(DATASET_HEARTBEAT, ctx.namespace), fields)


def metrics_document(ctx: EventContext, period: Period) -> Document:
    fields = _base(ctx, DATASET_METRICS, period.end_ns, "cloud-defend metrics")
    lost_kernel = sum(period.ring_buffer_full.values())
    fields.update({
        "event.start": iso_ns(period.start_ns),
        "event.end": iso_ns(period.end_ns),
        "event.duration": max(0, period.end_ns - period.start_ns),
        "d4c.events.written": sum(period.written.values()),
        "d4c.events.dropped": lost_kernel + period.not_written,
        "d4c.events.not_written": period.not_written,
        "d4c.ring_buffer.dropped": lost_kernel,
        "d4c.kernel.blocked": period.blocked,
        "d4c.kernel.skipped": sum(period.skipped.values()),
    })
    for name in EVENT_DATASETS:
        fields[f"d4c.events.{name}.written"] = period.written.get(f"cloud_defend.{name}", 0)
    for program in PROGRAMS:
        fields[f"d4c.ring_buffer.{program}.dropped"] = period.ring_buffer_full.get(program, 0)
        fields[f"d4c.ring_buffer.{program}.records"] = period.records.get(program, 0)
        fields[f"d4c.kernel.{program}.skipped"] = period.skipped.get(program, 0)
    if period.memory_rss_bytes is not None:
        fields["d4c.agent.memory.rss_bytes"] = period.memory_rss_bytes
    if period.process_table_size is not None:
        fields["d4c.agent.process_table.size"] = period.process_table_size
    return Document(metrics_stream_name(DATASET_METRICS, ctx.namespace), fields)
