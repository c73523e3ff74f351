"""Why an operation gets its verdict: per selector, each condition matched or failed; per
response, fired, excluded, or not matched (`d4c policy explain`, docs/cli.md).

Each condition is judged by the evaluator itself, on a selector holding that one condition, so
the explanation cannot disagree with `evaluate` (a selector matches exactly when all of its
conditions do: D5, D10-D16 are ANDs).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .matcher import evaluate, selector_matches
from .model import Policy, Section, Selector
from .operation import Operation


def _only(selector: Selector, condition: str, value: Any) -> Selector:
    """A selector with one condition of `selector` (same name, kind and index)."""
    bare = Selector(name=selector.name, kind=selector.kind, index=selector.index)
    if condition == "operation":
        return replace(bare, operations=frozenset(value))
    return replace(bare, **{condition: value})


def _value_text(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def explain_selector(selector: Selector, operation: Operation) -> dict[str, Any]:
    conditions = [
        {"condition": name, "value": _value_text(value), "matched": selector_matches(_only(selector, name, value), operation)}
        for name, value in selector.conditions.items()
    ]
    out: dict[str, Any] = {"name": selector.name, "index": selector.index,
                           "matched": selector_matches(selector, operation), "conditions": conditions}
    if operation.container is None:
        out["reason"] = "a host process (no container) matches no selector (D15)"
    return out


def explain_section(section: Section, operation: Operation) -> dict[str, Any]:
    selectors = [explain_selector(s, operation) for s in section.selectors]
    matched = {s["name"] for s in selectors if s["matched"]}
    responses = []
    for response in section.responses:
        hits = [name for name in response.match if name in matched]
        excluded_by = [name for name in response.exclude if name in matched]
        state = "fired" if hits and not excluded_by else ("excluded" if hits else "not matched")
        responses.append({"index": response.index, "match": list(response.match), "exclude": list(response.exclude),
                          "actions": sorted(response.actions), "state": state,
                          "matched": hits, "excluded_by": excluded_by})
    return {"section": section.kind, "selectors": selectors, "responses": responses}


def explain(policy: Policy, operation: Operation) -> dict[str, Any]:
    section = policy.file if operation.kind == "file" else policy.process
    out: dict[str, Any] = {"operation": {"kind": operation.kind, "operation": operation.operation},
                           "verdict": evaluate(policy, operation).to_json()}
    if section is None:
        out["reason"] = f"the policy has no `{operation.kind}` section"
        return out
    out.update(explain_section(section, operation))
    return out


def explain_text(report: dict[str, Any]) -> str:
    op = report["operation"]
    lines = [f"operation: {op['kind']} {op['operation']}"]
    if "reason" in report:
        lines.append(report["reason"])
    for s in report.get("selectors", []):
        lines.append(f"{report['section']}.selectors[{s['index']}] {s['name']}: {'MATCHED' if s['matched'] else 'not matched'}")
        if "reason" in s:
            lines.append(f"  {s['reason']}")
        for c in s["conditions"]:
            lines.append(f"  {'ok  ' if c['matched'] else 'FAIL'} {c['condition']}: {c['value']}")
        if not s["conditions"]:
            lines.append("  (no condition: every operation of the section)")
    for r in report.get("responses", []):
        detail = {"fired": f"fired by {r['matched']} -> {', '.join(r['actions'])}",
                  "excluded": f"excluded by {r['excluded_by']} (match {r['matched']} matched)",
                  "not matched": f"none of match {r['match']} matched"}[r["state"]]
        lines.append(f"{report['section']}.responses[{r['index']}]: {detail}")
    v = report["verdict"]
    lines.append(f"verdict: actions {v['actions'] or 'none'}, matched_selectors {v['matched_selectors']}, responses {v['responses']}")
    return "\n".join(lines)
