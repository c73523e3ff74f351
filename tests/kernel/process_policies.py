"""Process policies built directly from the model (no YAML), for the process kernel tests."""

from __future__ import annotations

from reference_agent.policy.model import Policy, Response, Section, Selector


def process_policy(selectors: list[dict], responses: list[dict]) -> Policy:
    sels = tuple(
        Selector(kind="process", index=i, **{k: (frozenset(v) if k == "operations" else v) for k, v in s.items()})
        for i, s in enumerate(selectors)
    )
    resps = tuple(
        Response(index=i, match=tuple(r["match"]), exclude=tuple(r.get("exclude", ())),
                 actions=frozenset(r["actions"]), kind="process")
        for i, r in enumerate(responses)
    )
    return Policy(process=Section(kind="process", selectors=sels, responses=resps))
