"""What validates, compiles (D26): policies at and just over every limit of the kernel compilers,
through the validator and through both compilers (host side: compiling needs the ABI mirror,
not a BPF-LSM kernel). The validator accepts a policy exactly when both compilers compile it,
and when it refuses, the error names the field that goes over."""

from __future__ import annotations

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_agent.kernel import abi
from reference_agent.kernel.compiler import CompileError, compile_file_section
from reference_agent.kernel.process_compiler import compile_process_section
from reference_agent.policy import limits, load_policy_text
from reference_agent.policy.schema import policy_schema
from reference_agent.policy.model import (
    MAX_PATH_PATTERN_BYTES,
    MAX_RESPONSES,
    MAX_SELECTORS,
    Policy,
    Response,
    Section,
    Selector,
)


def _model(data: dict) -> Policy:
    """The policy as the model, built without the validator (so that the compilers see what
    the validator refuses, too)."""
    sections = {}
    for kind, section in data.items():
        selectors = tuple(
            Selector(kind=kind, index=i, name=s["name"], operations=frozenset(s.get("operation", ())),
                     **{k: tuple(str(x) for x in v) if isinstance(v, list) else v
                        for k, v in s.items() if k not in ("name", "operation")})
            for i, s in enumerate(section["selectors"])
        )
        responses = tuple(
            Response(index=i, match=tuple(r["match"]), exclude=(), actions=frozenset(r["actions"]), kind=kind)
            for i, r in enumerate(section["responses"])
        )
        sections[kind] = Section(kind=kind, selectors=selectors, responses=responses)
    return Policy(**sections)


def _compiles(policy: Policy) -> bool:
    try:
        compile_file_section(policy)
        compile_process_section(policy)
    except CompileError:
        return False
    return True


def _policy(kind: str, conditions: list[dict], responses: int = 1) -> dict:
    selectors = [{"name": f"s{i}", **c} for i, c in enumerate(conditions)]
    return {kind: {"selectors": selectors,
                   "responses": [{"match": ["s0"], "actions": ["log"]} for _ in range(responses)]}}


def _paths(n: int, prefix: str = "/p") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _names(n: int) -> list[str]:
    return [f"n{i}" for i in range(n)]


def _uids(n: int) -> list[int]:
    return list(range(n))


N = limits.MAX_KERNEL_PATTERNS
# (id, policy at the limit, policy just over it, the path of the error over it, its code)
LIMITS = [
    ("file-selectors", _policy("file", [{"operation": ["deleteFile"]}] * MAX_SELECTORS),
     _policy("file", [{"operation": ["deleteFile"]}] * (MAX_SELECTORS + 1)), "file.selectors[64]", "too-many"),
    ("process-selectors", _policy("process", [{"operation": ["exec"]}] * MAX_SELECTORS),
     _policy("process", [{"operation": ["exec"]}] * (MAX_SELECTORS + 1)), "process.selectors[64]", "too-many"),
    ("file-responses", _policy("file", [{"operation": ["deleteFile"]}], MAX_RESPONSES),
     _policy("file", [{"operation": ["deleteFile"]}], MAX_RESPONSES + 1), "file.responses[64]", "too-many"),
    ("process-responses", _policy("process", [{"operation": ["fork"]}], MAX_RESPONSES),
     _policy("process", [{"operation": ["fork"]}], MAX_RESPONSES + 1), "process.responses[64]", "too-many"),
    ("globstars", _policy("file", [{"targetFilePath": ["/a/**/b/**/c/**/d"]}]),
     _policy("file", [{"targetFilePath": ["/a/**/b/**/c/**/d/**/e"]}]),
     "file.selectors[0].targetFilePath[0]", "too-many"),
    # `/**/**/` holds two `/**/` that share a `/`: each still doubles the kernel patterns.
    ("adjacent-globstars", _policy("process", [{"processExecutable": ["/a/**/**/**/x"]}]),
     _policy("process", [{"processExecutable": ["/a/**/**/**/**/x"]}]),
     "process.selectors[0].processExecutable[0]", "too-many"),
    ("pattern-bytes", _policy("file", [{"targetFilePath": ["/" + "a" * (MAX_PATH_PATTERN_BYTES - 1)]}]),
     _policy("file", [{"targetFilePath": ["/" + "a" * MAX_PATH_PATTERN_BYTES]}]),
     "file.selectors[0].targetFilePath[0]", "too-long"),
    ("pattern-bytes-utf8", _policy("process", [{"sessionLeaderExecutable": ["/" + "é" * 127]}]),
     _policy("process", [{"sessionLeaderExecutable": ["/" + "é" * 127 + "a"]}]),
     "process.selectors[0].sessionLeaderExecutable[0]", "too-long"),
    ("path-token-byte", _policy("file", [{"targetFilePath": ["/a\x03"]}]),
     _policy("file", [{"targetFilePath": ["/a\x01"]}]), "file.selectors[0].targetFilePath[0]", "bad-path-pattern"),
    ("name-token-byte", _policy("process", [{"processName": ["a\x03"]}]),
     _policy("process", [{"processName": ["a\x02"]}]), "process.selectors[0].processName[0]", "bad-type"),
    ("name-bytes", _policy("process", [{"processName": ["n" * limits.MAX_PROCESS_NAME_BYTES]}]),
     _policy("process", [{"processName": ["n" * (limits.MAX_PROCESS_NAME_BYTES + 1)]}]),
     "process.selectors[0].processName[0]", "too-long"),
    ("file-patterns", _policy("file", [{"targetFilePath": _paths(N)}]),
     _policy("file", [{"targetFilePath": _paths(N + 1)}]), f"file.selectors[0].targetFilePath[{N}]", "too-many"),
    # Spread over selectors, with `/**/` counting twice and a repeated pattern once.
    ("file-patterns-expanded",
     _policy("file", [{"targetFilePath": _paths(N // 4, "/a/**/x")}, {"targetFilePath": _paths(N // 2) + ["/a/**/x0"]}]),
     _policy("file", [{"targetFilePath": _paths(N // 4, "/a/**/x")}, {"targetFilePath": _paths(N // 2) + ["/c"]}]),
     f"file.selectors[1].targetFilePath[{N // 2}]", "too-many"),
    ("executable-patterns", _policy("process", [{"processExecutable": _paths(N)}]),
     _policy("process", [{"processExecutable": _paths(N + 1)}]),
     f"process.selectors[0].processExecutable[{N}]", "too-many"),
    ("leader-patterns", _policy("process", [{"sessionLeaderExecutable": _paths(N - 1)}, {"sessionLeaderExecutable": ["/p0", "/q"]}]),
     _policy("process", [{"sessionLeaderExecutable": _paths(N)}, {"sessionLeaderExecutable": ["/q"]}]),
     "process.selectors[1].sessionLeaderExecutable[0]", "too-many"),
    # A name with `/` is no basename: no kernel pattern, so it does not count.
    ("name-patterns", _policy("process", [{"processName": _names(N) + ["a/b"]}]),
     _policy("process", [{"processName": _names(N + 1)}]), f"process.selectors[0].processName[{N}]", "too-many"),
    # Sets are counted apart: the limit in each set at once is within the limits.
    ("every-set-full", _policy("process", [{"processExecutable": _paths(N), "sessionLeaderExecutable": _paths(N),
                                            "processName": _names(N)}]),
     _policy("process", [{"processExecutable": _paths(N), "sessionLeaderExecutable": _paths(N),
                          "processName": _names(N + 1)}]), f"process.selectors[0].processName[{N}]", "too-many"),
    # "007" can never equal a kernel uid's decimal string: no map entry, so it does not count.
    ("user-ids", _policy("process", [{"processUserId": _uids(limits.MAX_USER_IDS // 2)},
                                     {"processUserId": _uids(limits.MAX_USER_IDS)[limits.MAX_USER_IDS // 2:] + ["007", 0]}]),
     _policy("process", [{"processUserId": _uids(limits.MAX_USER_IDS // 2)},
                         {"processUserId": _uids(limits.MAX_USER_IDS + 1)[limits.MAX_USER_IDS // 2:]}]),
     f"process.selectors[1].processUserId[{limits.MAX_USER_IDS // 2}]", "too-many"),
]


SCHEMA = jsonschema.Draft202012Validator(policy_schema())
# Limits on one value, which the JSON Schema states too (counts across selectors it cannot).
SCHEMA_STATES = {"globstars", "adjacent-globstars", "pattern-bytes", "path-token-byte", "name-token-byte", "name-bytes"}


@pytest.mark.parametrize("case", LIMITS, ids=lambda c: c[0])
def test_the_schema_agrees_where_it_can_say_it(case):
    name, at, over, _, _ = case
    assert SCHEMA.is_valid(at)
    if name in SCHEMA_STATES:
        assert not SCHEMA.is_valid(over)


@pytest.mark.parametrize("case", LIMITS, ids=lambda c: c[0])
def test_validator_and_compilers_agree_at_and_over_the_limit(case):
    _, at, over, path, code = case
    at_result = load_policy_text(yaml.safe_dump(at, allow_unicode=True))
    assert at_result.valid, [e.format("p.yaml") for e in at_result.errors]
    assert _compiles(_model(at))

    over_result = load_policy_text(yaml.safe_dump(over, allow_unicode=True), "p.yaml")
    assert not _compiles(_model(over))
    assert not over_result.valid
    hits = [e for e in over_result.errors if e.path == path and e.code == code]
    assert hits, [e.format("p.yaml") for e in over_result.errors]
    assert hits[0].line is not None and hits[0].column is not None


def test_the_validators_numbers_are_the_kernels():
    assert limits.MAX_KERNEL_PATTERNS == abi.D4C_MAX_PATTERNS
    assert limits.KERNEL_PATTERN_BYTES == abi.D4C_PATTERN_MAX - 1 >= MAX_PATH_PATTERN_BYTES
    assert limits.MAX_USER_IDS == abi.D4C_MAX_USER_IDS
    assert MAX_SELECTORS == abi.D4C_MAX_SELECTORS and MAX_RESPONSES == abi.D4C_MAX_RESPONSES
    assert (limits.STAR, limits.GLOBSTAR) == (int(abi.Token.D4C_TOKEN_STAR), int(abi.Token.D4C_TOKEN_GLOBSTAR))
    assert len(limits.PATTERN_SETS["process"]) == abi.D4C_PATTERN_SETS


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab/*", max_size=24).map(lambda s: "/" + s))
def test_counted_globstars_are_the_doublings_of_the_expansion(pattern):
    assert len(limits.expand(pattern)) == 2 ** limits.double_slash_globstars(pattern)


# Random policies near the limits: counts of patterns, `/**/` and uids drawn around them.
_SEGMENT = st.sampled_from(["a", "b", "**", "*", "c*"])


@st.composite
def _near_limit_policies(draw):
    n_sel = draw(st.integers(1, 3))
    selectors = []
    for _ in range(n_sel):
        n = draw(st.sampled_from([1, N // 2 - 1, N // 2, N // 2 + 1, N - 1, N, N + 1]))
        tail = "/".join(draw(st.lists(_SEGMENT, min_size=1, max_size=6)))
        base = draw(st.sampled_from(["/x{}", "/x{}/**/y", "/x{}/**/**/y"]))
        field = draw(st.sampled_from(["processExecutable", "sessionLeaderExecutable"]))
        selectors.append({field: [base.format(i) for i in range(n)] + ["/" + tail]})
    return _policy("process", selectors)


@settings(max_examples=60, deadline=None)
@given(_near_limit_policies())
def test_random_policies_near_the_limits_validate_exactly_when_they_compile(data):
    result = load_policy_text(yaml.safe_dump(data))
    assert result.valid == _compiles(_model(data)), [e.format("p.yaml") for e in result.errors][:3]
