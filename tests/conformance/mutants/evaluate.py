"""Deliberately wrong policy evaluators, to prove the conformance suite catches them.

Each mutant is the reference evaluator with exactly ONE rule broken, exposed as a command that
speaks the `d4c policy evaluate` contract, so the suite tests it with `--target engine`:

    python tests/conformance/mutants/evaluate.py MUTANT policy evaluate FILE --operation -

Mutants are built from the reference's public API only (selector_matches, the Policy model,
parse_operation): per-selector matching and the response rule (D22) are recomposed here,
so one rule can be swapped. `none` breaks nothing: the harness itself must pass everything.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any, Callable

from reference_agent.policy import (
    Container,
    Operation,
    OperationError,
    Policy,
    Selector,
    load_policy_file,
    parse_operations,
    selector_matches,
)

Matches = Callable[[Selector, Operation], bool]


def reference_matches(selector: Selector, operation: Operation) -> bool:
    return selector_matches(selector, operation)


def labels_or(selector: Selector, operation: Operation) -> bool:
    """Breaks D10: label entries ORed (any one entry suffices) instead of ALL required."""
    entries = selector.orchestratorResourceLabel
    if len(entries) < 2:
        return selector_matches(selector, operation)
    return any(
        selector_matches(dataclasses.replace(selector, orchestratorResourceLabel=(entry,)), operation)
        for entry in entries
    )


_LONE_STAR = re.compile(r"(?<!\*)\*(?!\*)")


def star_crosses_slash(selector: Selector, operation: Operation) -> bool:
    """Breaks D11: a single `*` in a path pattern also matches `/` (treated as `**`)."""
    changed = {
        name: tuple(_LONE_STAR.sub("**", p) for p in getattr(selector, name))
        for name in ("targetFilePath", "processExecutable", "sessionLeaderExecutable")
        if getattr(selector, name)
    }
    return selector_matches(dataclasses.replace(selector, **changed), operation)


def volumes_not_ignored(selector: Selector, operation: Operation) -> bool:
    """Breaks D19 / ignoreVolumeMounts, ignoreVolumeFiles: the flags have no effect."""
    return selector_matches(
        dataclasses.replace(selector, ignoreVolumeMounts=None, ignoreVolumeFiles=None), operation
    )


def host_processes_match(selector: Selector, operation: Operation) -> bool:
    """Breaks D15: a host process (no container) is matched as if it ran in a container."""
    if operation.container is None:
        operation = dataclasses.replace(
            operation, container=Container("host", "host", "latest", "docker.io/library/host:latest")
        )
    return selector_matches(selector, operation)


def verdict(policy: Policy, operation: Operation, matches: Matches, use_exclude: bool = True,
            union: bool = True) -> dict[str, Any]:
    """D22, recomposed: a response fires when a `match` selector matches and no `exclude`
    selector does; actions are the union over fired responses; matched_selectors are the
    matched `match` selectors of fired responses, deduplicated, in policy order."""
    section = policy.section(operation.kind)
    if section is None:
        return {"matched_selectors": [], "actions": [], "responses": []}
    matched = {s.name for s in section.selectors if matches(s, operation)}
    fired = [
        r for r in section.responses
        if matched & set(r.match) and not (use_exclude and matched & set(r.exclude))
    ]
    if not union:
        fired = fired[:1]
    names = {n for r in fired for n in r.match if n in matched}
    return {
        "matched_selectors": [s.name for s in section.selectors if s.name in names],
        "actions": sorted({a for r in fired for a in r.actions}),
        "responses": [r.index for r in fired],
    }


MUTANTS: dict[str, Callable[[Policy, Operation], dict[str, Any]]] = {
    "none": lambda p, o: verdict(p, o, reference_matches),
    "labels-or": lambda p, o: verdict(p, o, labels_or),
    "ignore-exclude": lambda p, o: verdict(p, o, reference_matches, use_exclude=False),
    "star-crosses-slash": lambda p, o: verdict(p, o, star_crosses_slash),
    "volumes-not-ignored": lambda p, o: verdict(p, o, volumes_not_ignored),
    "host-processes-match": lambda p, o: verdict(p, o, host_processes_match),
    "first-response-only": lambda p, o: verdict(p, o, reference_matches, union=False),
}


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] not in MUTANTS or argv[1:3] != ["policy", "evaluate"] or argv[4] != "--operation":
        print(f"usage: evaluate.py {{{','.join(MUTANTS)}}} policy evaluate FILE --operation OP.json|-", file=sys.stderr)
        return 2
    mutant, policy_file, op_file = argv[0], argv[3], argv[5]
    result = load_policy_file(policy_file)
    if not result.valid:
        for d in result.errors:
            print(d.format(policy_file), file=sys.stderr)
        return 1
    raw = json.load(sys.stdin if op_file == "-" else open(op_file))
    try:
        operations = parse_operations(raw)
    except OperationError as error:
        print(f"d4c policy evaluate: {error}", file=sys.stderr)
        return 2
    verdicts = [MUTANTS[mutant](result.policy, op) for op in operations]
    print(json.dumps(verdicts if isinstance(raw, list) else verdicts[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
