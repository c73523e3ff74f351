"""The shipped JSON Schema stays in step with the validator."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from reference_agent.policy import (
    load_policy_text,
    policy_schema,
    schema_path,
    validate_policy_document,
)

from .cases import ERROR_CASES, VALID_CASES, ErrorCase
from .strategies import documents, valid_policies

VALIDATOR = jsonschema.Draft202012Validator(policy_schema())
# What a JSON Schema cannot say: names unique across the policy, references between
# responses and selectors, lengths in bytes rather than characters.
NOT_EXPRESSIBLE = {"duplicate-name", "unknown-selector", "cross-section-selector", "too-long", "yaml-syntax"}


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())
    assert json.loads(schema_path().read_text())["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda c: c.id)
def test_every_valid_example_validates_against_the_schema(case) -> None:
    errors = list(VALIDATOR.iter_errors(yaml.safe_load(case.text)))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("case", [c for c in ERROR_CASES if c.schema], ids=lambda c: c.id)
def test_every_schema_expressible_error_is_rejected(case: ErrorCase) -> None:
    assert not VALIDATOR.is_valid(yaml.safe_load(case.text)), case.id


def test_cases_flagged_unexpressible_really_need_the_validator() -> None:
    for case in ERROR_CASES:
        if not case.schema:
            codes = {e.code for e in load_policy_text(case.text).errors}
            assert codes <= NOT_EXPRESSIBLE | {"no-condition"}, (case.id, codes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_policies())
def test_generated_valid_policies_satisfy_the_schema(doc) -> None:
    assert VALIDATOR.is_valid(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_schema_and_validator_agree_on_arbitrary_documents(doc) -> None:
    result = validate_policy_document(doc)
    schema_ok = VALIDATOR.is_valid(doc)
    if result.valid:
        assert schema_ok
    if schema_ok:
        assert {e.code for e in result.errors} <= NOT_EXPRESSIBLE, result.errors
