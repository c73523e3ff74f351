"""docs/spec.md stays true: every complete policy it shows validates, or gives the error or
warning its `# error CODE` / `# warning CODE` comment announces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reference_agent.policy import load_policy_text

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", SPEC.read_text(encoding="utf-8"), flags=re.DOTALL) if SPEC.exists() else []
MARKER = re.compile(r"# (error|warning) ([a-z]+(?:-[a-z]+)*)")


def _policies() -> list[str]:
    out = []
    for block in BLOCKS:
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and doc and set(doc) <= {"file", "process"}:
            out.append(block)
    return out


POLICIES = _policies()


def test_the_spec_shows_policies() -> None:
    assert len(POLICIES) >= 8


@pytest.mark.parametrize("block", POLICIES, ids=[f"block{i}" for i in range(len(POLICIES))])
def test_spec_policy(block: str) -> None:
    result = load_policy_text(block)
    markers = MARKER.findall(block)
    errors = {e.code for e in result.errors}
    warnings = {w.code for w in result.warnings}
    if not markers:
        assert result.valid, result.errors
        assert not warnings, result.warnings
    for kind, code in markers:
        assert code in (errors if kind == "error" else warnings), (code, result.errors, result.warnings)


def test_the_seed_response_example_is_shown_invalid_and_corrected() -> None:
    invalid = [b for b in BLOCKS if "- match: [allProcesses] exclude:" in b]
    assert len(invalid) == 1
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(invalid[0])
    assert load_policy_text("process:\n" + invalid[0].replace("\n", "\n  ")).errors[0].code == "yaml-syntax"


def test_the_d22_example_outcomes() -> None:
    from reference_agent.policy import evaluate

    (block,) = [b for b in POLICIES if "-> responses [0, 1]" in b]
    policy = load_policy_text(block).policy
    base = {"kind": "file", "operation": "createFile", "container": {"image": "nginx"}}
    verdict = evaluate(policy, {**base, "file": {"path": "/usr/bin/x"}})
    assert verdict.to_json() == {"matched_selectors": ["bins", "creates"], "actions": ["alert", "block", "log"], "responses": [0, 1]}
    assert evaluate(policy, {**base, "file": {"path": "/tmp/x"}}).responses == ()
