"""Hardened YAML reading for untrusted files: policies, scenario files, the agent's config.

`compose(text)` gives PyYAML's node tree (every node keeps its line and column), `construct(node)`
the plain data, `load(text)` both steps; each raises `YamlError` (message, line, column) and
nothing else. See loader.py for what is refused and why.
"""

from .loader import (
    ALLOWED_TAGS,
    MAX_ALIAS_NODES,
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_INT_BITS,
    StrictLoader,
    YamlError,
    compose,
    construct,
    construct_scalar,
    decode,
    load,
)

__all__ = [
    "ALLOWED_TAGS",
    "MAX_ALIAS_NODES",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "StrictLoader",
    "YamlError",
    "compose",
    "construct",
    "construct_scalar",
    "decode",
    "load",
]
