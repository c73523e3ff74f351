"""The spec clauses a scenario can pin: decisions D1..D33 and the seed's conditions.

The conformance report lists every clause here, with the scenarios that pin it, so a clause
that no scenario pins is visible. Tags in a scenario's `spec:` list use these ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Clause:
    id: str  # the tag scenarios use: "D10" or "seed.file.targetFilePath"
    section: str  # allure feature / report grouping
    title: str


_DECISIONS: tuple[tuple[str, str], ...] = (
    ("Policy document", "policy document shape: file/process sections, strict keys"),
    ("Policy document", "selector names: required, pattern, length, unique"),
    ("Policy document", "selector conditions: at least one, list/boolean types, exclusive ignores"),
    ("Policy document", "conditions allowed per section"),
    ("Policy document", "operation values; no operation = every operation"),
    ("Policy document", "orchestratorType is kubernetes only"),
    ("Policy document", "responses: match/exclude/actions, same-section selectors"),
    ("Policy document", "block requires alert"),
    ("Policy document", "kubernetes* aliases of the seed's names"),
    ("Matching", "conditions ANDed, list values ORed, label entries ALL required"),
    ("Matching", "path patterns: *, **, /**/, normalisation, symlinks"),
    ("Matching", "string wildcards: where allowed, case-sensitive"),
    ("Matching", "image name / tag / full name"),
    ("Matching", "label entries key:value, key:*, key:, prefixes"),
    ("Matching", "containers only; non-Kubernetes containers vs orchestrator conditions"),
    ("Matching", "processName basename, effective user, session leader"),
    ("File operations", "file operation classification"),
    ("File operations", "rename = delete + create/modify"),
    ("File operations", "volume classes root / volume / file"),
    ("Process operations", "fork / exec / end events"),
    ("Process operations", "process blocking with EPERM"),
    ("Responses and events", "responses independent; matched_selectors; union of actions"),
    ("Responses and events", "log / alert / block: data streams, denied"),
    ("Responses and events", "dataset and category corrections"),
    ("Responses and events", "event.action values, ECS types"),
    ("Limits and warnings", "limits: too-many / too-long"),
    ("Limits and warnings", "broad-block warnings"),
    ("Matching", "paths resolved against the container's root"),
    ("File operations", "every change that grants an execute bit is createExecutable"),
    ("Matching", "complete paths; an incomplete one is flagged and decided fail-closed"),
    ("Responses and events", "the seed's field names and Elastic's package names, ECS types"),
    ("Policy document", "Kibana's later vocabulary: version, sessionLeaderName, execMemFd"),
    ("Process operations", "enforcement outlives the agent process"),
)

DECISIONS: tuple[Clause, ...] = tuple(
    Clause(f"D{number}", f"Decisions: {section}", title)
    for number, (section, title) in enumerate(_DECISIONS, start=1)
)

# Seed sections, as the scenario library tags them (docs/scenarios.md: `seed.<section>`).
_SEED_SECTIONS: tuple[tuple[str, str], ...] = (
    ("seed.policy", "a policy has file and/or process selectors and responses"),
    ("seed.selectors", "a selector has a name and at least one condition, ANDed"),
    ("seed.conditions.common", "common conditions (file and process selectors)"),
    ("seed.conditions.file", "file-specific conditions"),
    ("seed.conditions.process", "process-specific conditions"),
    ("seed.responses", "responses: match ORed, exclude ORed, actions"),
    ("seed.actions.log", "log: file/process data stream"),
    ("seed.actions.alert", "alert: alerts data stream"),
    ("seed.actions.block", "block: prevented before it happens, requires alert"),
    ("seed.events.file", "file event fields"),
    ("seed.events.process", "process event fields"),
)

# The seed's selector conditions, one clause each. A scenario pins one when it tags it OR when
# its policy uses the condition (derived, see `derived_tags`), so the report shows which
# conditions the library exercises without every scenario listing them by hand.
SEED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "common": (
        "containerImageName", "containerImageTag", "fullContainerImageName", "orchestratorClusterId",
        "orchestratorClusterName", "orchestratorNamespace", "orchestratorResourceName", "orchestratorType",
        "orchestratorResourceLabel",
    ),
    "file": ("operation", "ignoreVolumeMounts", "ignoreVolumeFiles", "targetFilePath"),
    "process": (
        "operation", "processExecutable", "processName", "processUserName", "processUserId",
        "sessionLeaderInteractive", "sessionLeaderExecutable",
    ),
}

# D9 aliases count as the seed name they stand for.
ALIASES: dict[str, str] = {
    "kubernetesClusterId": "orchestratorClusterId",
    "kubernetesClusterName": "orchestratorClusterName",
    "kubernetesNamespace": "orchestratorNamespace",
    "kubernetesPodName": "orchestratorResourceName",
    "kubernetesPodLabel": "orchestratorResourceLabel",
    "containerImageFullName": "fullContainerImageName",
}


def _seed_section(tag: str) -> str:
    parts = tag.split(".")
    return "Seed: " + " ".join(parts[1:3])


SEED: tuple[Clause, ...] = tuple(Clause(tag, _seed_section(tag), title) for tag, title in _SEED_SECTIONS) + tuple(
    Clause(f"seed.conditions.{group}.{name}", _seed_section(f"seed.conditions.{group}"), f"condition `{name}`")
    for group, names in SEED_CONDITIONS.items()
    for name in names
)


def derived_tags(policy: object) -> set[str]:
    """Seed condition clauses a (parsed) policy exercises: every condition its selectors use."""
    tags: set[str] = set()
    if not isinstance(policy, dict):
        return tags
    for section in ("file", "process"):
        body = policy.get(section)
        selectors = body.get("selectors") if isinstance(body, dict) else None
        for selector in selectors if isinstance(selectors, list) else []:
            if not isinstance(selector, dict):
                continue
            for key in selector:
                name = ALIASES.get(key, key)
                group = "common" if name in SEED_CONDITIONS["common"] else section
                if name in SEED_CONDITIONS[group]:
                    tags.add(f"seed.conditions.{group}.{name}")
    return tags


CLAUSES: tuple[Clause, ...] = DECISIONS + SEED
BY_ID: dict[str, Clause] = {clause.id: clause for clause in CLAUSES}

# Any D-id or seed.* tag is well-formed; whether it is in the catalog is a separate (lint
# warning) question, so a new seed clause does not break scenarios before the catalog knows it.
TAG_PATTERN = re.compile(r"^(D[1-9][0-9]*|seed(\.[A-Za-z][A-Za-z0-9_-]*)+)$")


def section_of(tag: str) -> str:
    clause = BY_ID.get(tag)
    if clause is not None:
        return clause.section
    return _seed_section(tag) if tag.startswith("seed.") else "Decisions"

