"""policy/vocabulary.py is the one table of conditions, operations and actions: everything that
lists them again (the model, the JSON Schema, docs/spec.md, the kernel ABI's names, the
conformance suite's clause catalog) says the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conformance import catalog
from reference_agent.kernel import abi
from reference_agent.policy import (
    ALIASES,
    OPERATIONS,
    SECTION_CONDITIONS,
    Selector,
    limits,
    policy_schema,
    vocabulary,
)
from reference_agent.policy.operation import FACT_SLOTS

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
# The docs' "wildcards" column for each kind of values.
DOC_WILDCARDS = {"path": "path", "string": "string", "exact": "none", "name": "none", "labels": "string, values only",
                 "operations": "none", "boolean": "—"}


def test_selector_attributes_are_the_canonical_condition_names():
    fields = {f.name for f in dataclasses.fields(Selector)} - {"name", "kind", "index", "line", "column"}
    assert fields == (set(vocabulary.names()) - {"operation"}) | {"operations"}


def test_every_fact_a_condition_reads_is_an_operation_fact():
    assert {c.fact for c in vocabulary.CONDITIONS} - {None} <= set(FACT_SLOTS)


def test_the_json_schema_lists_each_condition_and_alias_with_its_definition():
    defs = policy_schema()["$defs"]
    for section in ("file", "process"):
        selector = defs[f"{section}Selector"]
        expected = {"name": {"$ref": "#/$defs/name"}}
        for condition in vocabulary.CONDITIONS:
            if section not in condition.sections:
                continue
            shape = ({"type": "boolean"} if condition.schema == "boolean"
                     else {"$ref": "#/$defs/" + condition.schema.format(section=section)})
            for name in (condition.name, *condition.aliases):
                expected[name] = shape
        got = {name: {k: v for k, v in prop.items() if k != "description"}
               for name, prop in selector["properties"].items()}
        assert got == expected, section
        exclusive = {tuple(sorted(rule["not"]["required"])) for rule in selector["allOf"]}
        assert {tuple(sorted(pair)) for pair in ALIASES.items()} <= exclusive
        assert defs[f"{section}Operations"]["items"]["enum"] == list(OPERATIONS[section])
    assert defs["response"]["properties"]["actions"]["items"]["enum"] == list(vocabulary.ACTIONS)
    assert defs["orchestratorTypes"]["items"]["enum"] == list(vocabulary.ORCHESTRATOR_TYPES)


def _doc_rows(heading: str) -> list[list[str]]:
    """The cells of the rows naming a `name` in the table under `### <heading>` in docs/spec.md."""
    text = SPEC.read_text(encoding="utf-8")
    body = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return [[cell.strip().strip("`") for cell in line.strip("|").split("|")]
            for line in body.splitlines() if line.startswith("| `")]


def test_docs_spec_tables_say_what_the_vocabulary_says():
    headings = {"common": "Common conditions (file and process selectors)", "file": "File conditions",
                "process": "Process conditions"}
    for group, heading in headings.items():
        if group == "common":
            rows = [c for c in vocabulary.CONDITIONS if c.scope == "container"]
        else:
            rows = [c for c in vocabulary.CONDITIONS if c.scope == "operation" and group in c.sections]
        table = {cells[0]: cells[2] for cells in _doc_rows(heading)}
        assert table == {c.name: DOC_WILDCARDS[c.values] for c in rows}, group
    assert dict(_doc_rows("D9 — aliases")) == ALIASES


def test_the_kernel_abi_names_the_same_operations_and_actions():
    assert tuple(abi.FILE_OP_BITS) == OPERATIONS["file"]
    assert tuple(abi.PROCESS_OP_BITS) == OPERATIONS["process"]
    assert tuple(abi.ACTION_BITS) == vocabulary.ACTIONS


def test_the_suites_clause_catalog_has_the_seed_conditions_and_aliases():
    seed = [c for c in vocabulary.CONDITIONS if c.since == "seed"]
    assert set(catalog.SEED_CONDITIONS["common"]) == {c.name for c in seed if c.scope == "container"}
    for section in ("file", "process"):
        assert set(catalog.SEED_CONDITIONS[section]) == {
            c.name for c in seed if c.scope == "operation" and section in c.sections}
    assert catalog.ALIASES == ALIASES


def test_section_conditions_follow_the_table_order():
    for section, conditions in SECTION_CONDITIONS.items():
        assert conditions == vocabulary.names(section=section, scope="container") + vocabulary.names(
            section=section, scope="operation")


def test_the_kernel_pattern_sets_hold_exactly_the_path_and_name_conditions():
    for section, sets in limits.PATTERN_SETS.items():
        assert set(sets) == set(vocabulary.names(section=section, values=("path", "name")))
