"""The kernel matcher's limits (D26), stated where the validator can check them.

A policy the validator accepts must be one the kernel compilers (reference_agent/kernel/
compiler.py, process_compiler.py) compile: otherwise `d4c policy validate` says yes and the agent
refuses the policy at load time. The validator cannot import the compilers (they need the
built BPF objects' ABI), so what both need lives here, and tests/kernel/test_compiler_limits.py
checks that these numbers are the ABI's and that validator and compilers agree at and just over
every limit.

The limits follow from how the kernel matches (bpf/include/d4c_paths.bpf.h):
- a pattern is a token string of at most D4C_PATTERN_MAX - 1 bytes where the bytes 1 and 2
  stand for `*` and `**` and 0 ends the string, so no pattern may contain the bytes 0x00-0x02;
- `/**/` also matches a single `/` (D11): the compiler writes two kernel patterns for it, so k
  of them in one pattern become 2**k patterns; more than three is refused;
- a processName or sessionLeaderName `n` is the pattern `**/n` (D16, D32): two token bytes
  more than the name;
- each pattern set (targetFilePath; processExecutable; sessionLeaderExecutable; processName;
  sessionLeaderName)
  holds at most D4C_MAX_PATTERNS distinct expanded patterns for all selectors of a section;
- processUserId values are keys of a map of D4C_MAX_USER_IDS uids per policy.
"""

from __future__ import annotations

from . import vocabulary

MAX_DOUBLE_SLASH_GLOBSTARS = 3
MAX_KERNEL_PATTERNS = 512  # D4C_MAX_PATTERNS
KERNEL_PATTERN_BYTES = 255  # D4C_PATTERN_MAX - 1
MAX_PROCESS_NAME_BYTES = KERNEL_PATTERN_BYTES - 2  # `**/` + name is 2 tokens + the name
MAX_USER_IDS = 2048  # D4C_MAX_USER_IDS
TOKEN_BYTES = frozenset({0, 1, 2})  # end of string, `*`, `**` in the kernel's token strings

# Which conditions share one kernel pattern set, per section. Conditions absent here are
# decided in userspace (image, orchestrator: once per container) or by a map (user ids).
PATTERN_SETS: dict[str, dict[str, str]] = {
    "file": {"targetFilePath": "targetFilePath"},
    "process": {
        "processExecutable": "processExecutable",
        "sessionLeaderExecutable": "sessionLeaderExecutable",
        "processName": "processName",
        "sessionLeaderName": "sessionLeaderName",
    },
}
# Matched as the basename: `**/` + the name (D16, D32).
NAME_CONDITIONS = frozenset(vocabulary.names(values=("name",)))

# Token values the validator counts with: any two bytes a pattern cannot contain give the same
# number of distinct patterns; these are the kernel's own (enum d4c_token).
STAR, GLOBSTAR = 1, 2


def has_token_byte(value: str) -> bool:
    return any(b in TOKEN_BYTES for b in value.encode("utf-8", "surrogatepass"))


def double_slash_globstars(pattern: str) -> int:
    """How many `**` stand between two `/` (each doubles the kernel patterns). `/**/**/`
    counts two: after the first, the second `**` again has a `/` on both sides."""
    count, i, n = 0, 0, len(pattern)
    while i < n:
        if pattern[i] != "*":
            i += 1
            continue
        j = i
        while j < n and pattern[j] == "*":
            j += 1
        if j - i >= 2 and i > 0 and pattern[i - 1] == "/" and j < n and pattern[j] == "/":
            count += 1
        i = j
    return count


def expand(pattern: str, star: int = STAR, globstar: int = GLOBSTAR) -> list[bytes]:
    """A D11 path pattern as kernel token strings: literal bytes, `star` for `*`, `globstar` for
    `**`. A `/**/` (which also matches a single `/`) becomes two patterns: one with `/**/` and
    one with `/`. Mirrors patterns.path_pattern_regex."""
    raw = pattern.encode("utf-8", "surrogatepass")
    variants = [bytearray()]
    i, n = 0, len(raw)
    while i < n:
        if raw[i] != ord("*"):
            for v in variants:
                v.append(raw[i])
            i += 1
            continue
        j = i
        while j < n and raw[j] == ord("*"):
            j += 1
        if j - i == 1:
            for v in variants:
                v.append(star)
        elif i > 0 and raw[i - 1] == ord("/") and j < n and raw[j] == ord("/"):
            # with `**/`: `/` `**` `/` …; without: the `/` already emitted, skip `**/`.
            variants = [v + bytes([globstar, ord("/")]) for v in variants] + [bytearray(v) for v in variants]
            j += 1
        else:
            for v in variants:
                v.append(globstar)
        i = j
    return [bytes(v) for v in variants]


def name_tokens(name: str, globstar: int = GLOBSTAR) -> list[bytes]:
    """D16: processName `n` is the pattern `**/n` on the executable. A name with a `/` is no
    basename and matches nothing: no pattern."""
    raw = name.encode("utf-8", "surrogatepass")
    if b"/" in raw or not raw:
        return []
    return [bytes([globstar, ord("/")]) + raw]


def kernel_uid(value: str) -> int | None:
    """The uid a processUserId value names, or None when it can never equal a kernel uid's
    decimal string (the reference evaluator compares strings: "00" is not "0")."""
    if not value.isdigit() or not value.isascii() or str(int(value)) != value:
        return None
    uid = int(value)
    return uid if uid < 2**32 else None
