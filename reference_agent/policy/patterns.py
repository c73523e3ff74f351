"""Wildcard semantics of the policy language: path patterns (D11) and string patterns (D12).

Written here rather than taken from fnmatch/glob/wcmatch because none of them implements
these rules exactly:

- D11: `*` matches any run of characters except `/`, `**` any run including `/`, and a
  `/**/` inside a pattern ALSO matches a single `/` (`/var/**/secrets/*` matches
  `/var/secrets/x`). wcmatch's GLOBSTAR only treats `**` as special when it is a whole path
  segment (so `/usr/lib**` would not cross `/`), and fnmatch's `*` crosses `/`.
- D11/D12: nothing else is special. fnmatch and wcmatch give `?`, `[...]` (and wcmatch
  `{a,b}`, `!`, `\\`) a meaning; here `/tmp/a?b[1]` matches exactly that path.
- Matching is case-sensitive everywhere and a pattern must match the WHOLE value.

Each pattern becomes a regular expression once (`compile_*`, cached); the matcher combines the
patterns of one condition into a single alternation compiled once per policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def path_pattern_regex(pattern: str) -> str:
    """The regular expression (for `re.fullmatch`, DOTALL) equivalent to a D11 path pattern.

    Runs of three or more `*` are rejected by the validator; should one reach this function it
    is read as `**`.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char != "*":
            out.append(re.escape(char))
            i += 1
            continue
        j = i
        while j < n and pattern[j] == "*":
            j += 1
        if j - i == 1:
            out.append("[^/]*")  # `*`: within one path component
        elif i > 0 and pattern[i - 1] == "/" and j < n and pattern[j] == "/":
            # `/**/`: the `/` before is already emitted; `**/` may match nothing at all, so
            # the pair of slashes can collapse into one (`/var/**/x` matches `/var/x`).
            out.append("(?:.*/)?")
            j += 1
        else:
            out.append(".*")  # `**`: across components
        i = j
    return "".join(out)


def string_pattern_regex(pattern: str) -> str:
    """The regular expression for a D12 string pattern: `*` is any run of characters."""
    return ".*".join(re.escape(part) for part in pattern.split("*"))


@lru_cache(maxsize=4096)
def compile_path_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(path_pattern_regex(pattern), re.DOTALL)


@lru_cache(maxsize=4096)
def compile_string_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(string_pattern_regex(pattern), re.DOTALL)


def path_pattern_matches(pattern: str, path: str) -> bool:
    """Whether a D11 path pattern matches a (normalised, absolute) path."""
    return compile_path_pattern(pattern).fullmatch(path) is not None


def string_pattern_matches(pattern: str, value: str) -> bool:
    """Whether a D12 string pattern matches a value (case-sensitive, whole value)."""
    return compile_string_pattern(pattern).fullmatch(value) is not None


def compile_alternation(regexes: Iterable[str]) -> re.Pattern[str]:
    """One compiled regex matching (fullmatch) when any of the given regexes does."""
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL)


def has_wildcard(value: str) -> bool:
    return "*" in value
