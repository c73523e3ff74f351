"""Scenario files -> `Scenario` values, or problems located at `file:line:column`.

Only structure is checked here (the JSON Schema plus rules a schema cannot say); whether the
embedded policy and operations are valid is the implementation's language, checked by lint
through the adapter layer (conformance/lint.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

import d4c_yaml

from conformance import catalog, yamlpos
from conformance.model import (
    ContainerSpec,
    ExpectedEvent,
    FileCheck,
    Location,
    OperationCase,
    Pod,
    Scenario,
    Step,
    StepExpect,
    Volume,
)

SCHEMA_PATH = Path(__file__).with_name("schema") / "scenario.schema.json"


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    column: int
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.path}:{self.line}:{self.column}: {prefix}{self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


POLICY_DIR = "policies"  # policy files referenced by `policy_file` live in such directories


def discover(paths: Iterable[Path]) -> list[Path]:
    """Scenario files under the given files/directories, sorted (stable xdist collection).
    YAML files below a `policies/` directory are policies, not scenarios; a file named
    explicitly is always taken."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(
                p for p in path.rglob("*.y*ml")
                if p.suffix in (".yaml", ".yml") and p.is_file() and POLICY_DIR not in p.relative_to(path).parts[:-1]
            )
        else:
            found.add(path)
    return sorted(found)


def parse(path: Path) -> tuple[yamlpos.Located, list[Problem]]:
    """Read and structurally check one file. The Located document is returned for lint."""
    try:
        text = d4c_yaml.decode(path.read_bytes())
    except OSError as error:
        return yamlpos.Located(None, None), [Problem(path, 1, 1, f"cannot read: {error}")]
    except d4c_yaml.YamlError as error:
        return yamlpos.Located(None, None), [Problem(path, error.line, error.column, error.message)]
    try:
        doc = yamlpos.load(text)
    except yamlpos.YamlSyntaxError as error:
        return yamlpos.Located(None, None), [Problem(path, error.line, error.column, f"YAML syntax: {error.message}")]
    problems = [
        Problem(path, line, column, f"{yamlpos.dotted(key)}: duplicate key")
        for key, line, column in doc.duplicates
    ]
    if not isinstance(doc.data, dict):
        problems.append(Problem(path, 1, 1, "a scenario is a YAML mapping"))
        return doc, problems
    problems += _schema_problems(path, doc)
    scenario_id = doc.data.get("id")
    if problems and isinstance(scenario_id, str) and scenario_id != path.stem:
        line, column = doc.position(("id",))  # worth saying even when the rest is broken
        problems.append(Problem(path, line, column, f"id: {scenario_id!r} must equal the file name stem {path.stem!r}"))
    if not problems:
        problems += _semantic_problems(path, doc)
    return doc, sorted(problems, key=lambda p: (p.line, p.column))


def load(path: Path) -> Scenario:
    """A usable scenario, or ScenarioError listing why not."""
    doc, problems = parse(path)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ScenarioError(errors)
    return build(path, doc)


def _schema_problems(path: Path, doc: yamlpos.Located) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
        # oneOf/anyOf errors are vague by nature; the best_match leaf names the real field.
        leaf = jsonschema.exceptions.best_match([error]) if error.context else error
        where = tuple(leaf.absolute_path)
        if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
            allowed = set(leaf.schema.get("properties", {}))
            extra = [key for key in leaf.instance if key not in allowed]
            if extra:  # point at the unknown key itself, not at its enclosing mapping
                where = where + (extra[0],)
                line, column = doc.position(where)
                problems.append(Problem(path, line, column, f"{yamlpos.dotted(where)}: unknown key"
                                        f" (allowed: {', '.join(sorted(allowed))})"))
                continue
        line, column = doc.position(where)
        field_name = yamlpos.dotted(where) or "(scenario)"
        problems.append(Problem(path, line, column, f"{field_name}: {_schema_message(leaf)}"))
    return problems


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key")
    if error.validator in ("oneOf", "anyOf") and error.schema_path and error.schema_path[0] in ("oneOf", "anyOf"):
        if error.schema_path[0] == "oneOf":
            return "exactly one of `policy` (inline) or `policy_file` is required"
        return "needs `operations` (engine tier) or `containers` + `steps` (kernel tier)"
    if error.validator == "not" and "then" in error.schema_path:
        return "content/mode only apply to files that exist (state present / type file)"
    if error.validator == "not":
        return "give `blocked` or `exit`, not both"
    if error.validator == "type" and error.absolute_path and error.absolute_path[-1] in ("mode", "user"):
        # Unquoted 0644 is an (octal) integer in YAML, 1000 an integer: both must be strings.
        return f"must be a quoted string, e.g. \"0644\" / \"1000\" (YAML read {error.instance!r})"
    if error.validator == "pattern" and len(error.absolute_path) == 2 and error.absolute_path[0] == "spec":
        return f"{error.instance!r} is neither a decision id (D1..D33) nor a seed tag (seed.<section>...)"
    return error.message


def _semantic_problems(path: Path, doc: yamlpos.Located) -> list[Problem]:
    data = doc.data
    problems = []

    def problem(where: tuple, message: str) -> None:
        line, column = doc.position(where)
        problems.append(Problem(path, line, column, f"{yamlpos.dotted(where)}: {message}"))

    if data["id"] != path.stem:
        problem(("id",), f"id {data['id']!r} must equal the file name stem {path.stem!r}")
    if "policy_file" in data:
        policy_path = (path.parent / data["policy_file"]).resolve()
        if not policy_path.is_file():
            problem(("policy_file",), f"policy file not found: {policy_path}")
    names = [c["name"] for c in data.get("containers", [])]
    for index, name in enumerate(names):
        if name in names[:index]:
            problem(("containers", index, "name"), f"duplicate container name {name!r}")
    for index, container in enumerate(data.get("containers", [])):
        paths = [v["path"] for v in container.get("volumes", [])]
        for v_index, volume_path in enumerate(paths):
            if volume_path in paths[:v_index]:
                problem(("containers", index, "volumes", v_index, "path"), f"duplicate volume path {volume_path!r}")
    for index, step in enumerate(data.get("steps", [])):
        if step["container"] not in names:
            problem(("steps", index, "container"), f"no container named {step['container']!r} (have: {', '.join(names)})")
    for index, check in enumerate(data.get("expect", {}).get("files", [])):
        if check["container"] not in names:
            problem(("expect", "files", index, "container"), f"no container named {check['container']!r}")
    return problems


def build(path: Path, doc: yamlpos.Located) -> Scenario:
    data = doc.data

    def loc(*where: Any) -> Location:
        line, column = doc.position(tuple(where))
        return Location(path, line, column)

    if "policy_file" in data:
        policy_path = (path.parent / data["policy_file"]).resolve()
        policy_text = policy_path.read_text(encoding="utf-8")
    else:
        policy_path = None
        policy_text = yaml.safe_dump(data["policy"], sort_keys=False)
    operations = tuple(
        OperationCase(
            name=op["name"],
            input=op["input"],
            matched_selectors=tuple(op["expect"]["matched_selectors"]),
            actions=frozenset(op["expect"]["actions"]),
            responses=tuple(op["expect"]["responses"]) if "responses" in op["expect"] else None,
            location=loc("operations", index),
        )
        for index, op in enumerate(data.get("operations", []))
    )
    containers = tuple(_container(c) for c in data.get("containers", []))
    steps = tuple(
        Step(
            container=step["container"],
            argv=("sh", "-c", step["run"]) if isinstance(step["run"], str) else tuple(step["run"]),
            user=step.get("user"),
            tty=bool(step.get("tty", False)),
            workdir=step.get("workdir"),
            expect=StepExpect(**step.get("expect", {})),
            location=loc("steps", index),
        )
        for index, step in enumerate(data.get("steps", []))
    )
    expect = data.get("expect", {})
    events = tuple(
        (
            stream,
            tuple(
                ExpectedEvent(tuple(entry.items()), loc("expect", "events", stream, index))
                for index, entry in enumerate(entries)
            ),
        )
        for stream, entries in expect.get("events", {}).items()
    )
    files = tuple(
        FileCheck(
            container=check["container"],
            path=check["path"],
            state=check["state"],
            content=check.get("content"),
            mode=check.get("mode"),
            location=loc("expect", "files", index),
        )
        for index, check in enumerate(expect.get("files", []))
    )
    return Scenario(
        id=data["id"],
        title=data["title"],
        spec=tuple(data["spec"]),
        path=path,
        policy_text=policy_text,
        policy_path=policy_path,
        operations=operations,
        containers=containers,
        steps=steps,
        events=events,
        files=files,
        location=loc(),
        raw=data,
        min_kernel=_version(data["requires"]["kernel"]) if "kernel" in data.get("requires", {}) else None,
    )


def _version(text: str) -> tuple[int, int]:
    """"5.19" -> (5, 19); the schema has checked the form."""
    major, minor = text.split(".")
    return int(major), int(minor)


def all_tags(scenario: Scenario) -> tuple[str, ...]:
    """The scenario's `spec` tags plus the seed conditions its policy uses (catalog.derived_tags)."""
    try:
        policy = d4c_yaml.load(scenario.policy_text)
    except d4c_yaml.YamlError:
        policy = None
    derived = sorted(catalog.derived_tags(policy) - set(scenario.spec))
    return scenario.spec + tuple(derived)


def _container(data: dict[str, Any]) -> ContainerSpec:
    pod = data.get("pod")
    return ContainerSpec(
        name=data["name"],
        image=data["image"],
        pod=Pod(pod["name"], pod["namespace"], pod.get("uid"), tuple(sorted(pod.get("labels", {}).items())))
        if pod
        else None,
        user=data.get("user"),
        volumes=tuple(
            Volume(v["path"], v["type"], v.get("content", ""), v.get("mode", "0644"), v.get("read_only", False))
            for v in data.get("volumes", [])
        ),
        command=tuple(data["command"]) if "command" in data else None,
        seccomp=data.get("seccomp"),
        apparmor=data.get("apparmor"),
    )
