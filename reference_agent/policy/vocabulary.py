"""The policy vocabulary, once: every condition, operation and action, with its aliases.

Each condition row says where it may appear (D4), whether it is decided once per container
(image and orchestrator facts, D12-D15: policy/scope.py) or per operation, what kind of values
it takes (which also says its wildcard rule, D11/D12), which fact of an operation it reads
(operation.FACT_SLOTS), which definition of the JSON Schema describes it, its aliases (D9) and
whether the seed has it or Kibana's later vocabulary added it (D32).

model.py derives its name tuples from these rows, the matcher its per-value tests, scope.py
the conditions it keeps; tests/policy/test_vocabulary.py checks the JSON Schema, docs/spec.md,
the kernel ABI's operation names and the conformance suite's clause catalog (which must not
import this package) against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["container", "operation"]
# path: D11 patterns; string: D12 `*` allowed; exact: D12 no `*`; name: an exact basename (D16,
# D32); labels: D14 `key:value` entries; operations: D5 names; boolean: true/false.
Values = Literal["path", "string", "exact", "name", "labels", "operations", "boolean"]
BOTH = ("file", "process")


@dataclass(frozen=True)
class Condition:
    name: str  # canonical: the seed's name (D9), and the Selector attribute
    sections: tuple[str, ...]
    scope: Scope
    values: Values
    fact: str | None  # the operation fact it reads (operation.FACT_SLOTS); None: the operation itself
    schema: str  # its JSON Schema $defs entry; "{section}" stands for the section's kind
    aliases: tuple[str, ...] = ()
    since: Literal["seed", "D32"] = "seed"


# Order: the order error messages list them in ("allowed: ...") and Selector.conditions keeps.
CONDITIONS: tuple[Condition, ...] = (
    Condition("containerImageName", BOTH, "container", "string", "container.name", "stringPatterns"),
    Condition("containerImageTag", BOTH, "container", "string", "container.tag", "stringPatterns"),
    Condition("fullContainerImageName", BOTH, "container", "string", "container.full", "stringPatterns",
              aliases=("containerImageFullName",)),
    Condition("orchestratorClusterId", BOTH, "container", "exact", "orchestrator.cluster_id", "exactValues",
              aliases=("kubernetesClusterId",)),
    Condition("orchestratorClusterName", BOTH, "container", "exact", "orchestrator.cluster_name", "exactValues",
              aliases=("kubernetesClusterName",)),
    Condition("orchestratorNamespace", BOTH, "container", "string", "orchestrator.namespace", "stringPatterns",
              aliases=("kubernetesNamespace",)),
    Condition("orchestratorResourceName", BOTH, "container", "string", "orchestrator.resource_name",
              "stringPatterns", aliases=("kubernetesPodName",)),
    Condition("orchestratorResourceLabel", BOTH, "container", "labels", "orchestrator.label_map", "labels",
              aliases=("kubernetesPodLabel",)),
    Condition("orchestratorType", BOTH, "container", "exact", "orchestrator.type", "orchestratorTypes"),
    Condition("operation", BOTH, "operation", "operations", None, "{section}Operations"),
    Condition("targetFilePath", ("file",), "operation", "path", "file.path", "pathPatterns"),
    Condition("ignoreVolumeMounts", ("file",), "operation", "boolean", "file.mount", "boolean"),
    Condition("ignoreVolumeFiles", ("file",), "operation", "boolean", "file.mount", "boolean"),
    Condition("processExecutable", ("process",), "operation", "path", "process.executable", "pathPatterns"),
    Condition("processName", ("process",), "operation", "name", "process.name", "processNames"),
    Condition("processUserName", ("process",), "operation", "exact", "process.user_name", "exactValues"),
    Condition("processUserId", ("process",), "operation", "exact", "process.user_id", "userIds"),
    Condition("sessionLeaderInteractive", ("process",), "operation", "boolean",
              "process.session_leader_interactive", "boolean"),
    Condition("sessionLeaderExecutable", ("process",), "operation", "path", "process.session_leader_executable",
              "pathPatterns"),
    Condition("sessionLeaderName", ("process",), "operation", "name", "process.session_leader_name",
              "processNames", since="D32"),
)


@dataclass(frozen=True)
class OperationName:
    name: str
    section: str
    covers: tuple[str, ...] = ()  # other operations a selector with this one also applies to
    since: Literal["seed", "D32"] = "seed"


# D5, D32: an `exec` selector also applies to an exec of a memfd file, not the other way round.
OPERATION_NAMES: tuple[OperationName, ...] = (
    OperationName("createExecutable", "file"),
    OperationName("modifyExecutable", "file"),
    OperationName("createFile", "file"),
    OperationName("modifyFile", "file"),
    OperationName("deleteFile", "file"),
    OperationName("fork", "process"),
    OperationName("exec", "process", covers=("execMemFd",)),
    OperationName("execMemFd", "process", since="D32"),
)

ACTIONS: tuple[str, ...] = ("log", "alert", "block")  # D7
ORCHESTRATOR_TYPES: tuple[str, ...] = ("kubernetes",)  # D6

BY_NAME: dict[str, Condition] = {c.name: c for c in CONDITIONS}


def names(*, section: str | None = None, scope: Scope | None = None,
          values: tuple[Values, ...] | None = None) -> tuple[str, ...]:
    """Canonical condition names with these properties, in table order."""
    return tuple(c.name for c in CONDITIONS
                 if (section is None or section in c.sections) and (scope is None or c.scope == scope)
                 and (values is None or c.values in values))
