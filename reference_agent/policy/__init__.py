"""The D4C policy language: typed model, strict loader/validator, and the reference evaluator.

The language is described in docs/spec.md (decision ids D1–D27); the `d4c policy` commands
in docs/cli.md. This package is the oracle other parts of the project agree with.
"""

from .loader import (
    PolicyFileError,
    load_policy_file,
    load_policy_text,
    validate_policy_document,
    validate_policy_node,
)
from .matcher import Verdict, evaluate, selector_matches
from .model import (
    ACTIONS,
    ALIASES,
    CONDITION_NAMES,
    FILE_OPERATIONS,
    OPERATIONS,
    PROCESS_OPERATIONS,
    SECTION_CONDITIONS,
    Diagnostic,
    Policy,
    Response,
    Section,
    Selector,
    ValidationResult,
    split_label,
)
from .operation import (
    Container,
    FileTarget,
    Operation,
    OperationError,
    Orchestrator,
    Process,
    image_parts,
    normalise_path,
    parse_operation,
    parse_operations,
)
from .patterns import path_pattern_matches, string_pattern_matches
from .schema import policy_schema, schema_path
from . import vocabulary

__all__ = [
    "ACTIONS",
    "ALIASES",
    "CONDITION_NAMES",
    "FILE_OPERATIONS",
    "OPERATIONS",
    "PROCESS_OPERATIONS",
    "SECTION_CONDITIONS",
    "Container",
    "Diagnostic",
    "FileTarget",
    "Operation",
    "OperationError",
    "Orchestrator",
    "Policy",
    "PolicyFileError",
    "Process",
    "Response",
    "Section",
    "Selector",
    "ValidationResult",
    "Verdict",
    "evaluate",
    "image_parts",
    "load_policy_file",
    "load_policy_text",
    "normalise_path",
    "parse_operation",
    "parse_operations",
    "path_pattern_matches",
    "policy_schema",
    "schema_path",
    "selector_matches",
    "split_label",
    "string_pattern_matches",
    "validate_policy_document",
    "validate_policy_node",
    "vocabulary",
]
