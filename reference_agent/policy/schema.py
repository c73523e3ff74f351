"""The JSON Schema of a policy, shipped in the package (policy.schema.json).

Editors use it through a modeline on the policy's first line:
`# yaml-language-server: $schema=<path or URL of policy.schema.json>`. It expresses what a
schema can (keys, types, enumerations, name and path shapes, D26 limits in characters,
block-requires-alert, exclusive conditions); the validator additionally checks what it
cannot (unique names, selector references, byte lengths). tests/policy/test_policy_schema.py keeps
the two in step.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any


def schema_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("policy.schema.json")))


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files(__package__).joinpath("policy.schema.json").read_text(encoding="utf-8")


def policy_schema() -> dict[str, Any]:
    """A fresh copy of the policy JSON Schema (draft 2020-12)."""
    return json.loads(_schema_text())
