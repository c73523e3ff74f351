"""The operation a policy is evaluated against (cli-contract.md, `d4c policy evaluate`).

`parse_operation` turns the contract's JSON shape into a typed, immutable `Operation`, with
everything the matcher needs derived once: the image's name/tag/full reference (D13), the
process name (D16), normalised paths (D11). Unknown fields are errors, so that a typo in a
scenario's operation cannot silently change what it tests.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import FILE_OPERATIONS, OPERATIONS, PROCESS_OPERATIONS

MOUNTS: tuple[str, ...] = ("root", "volume", "file")  # D19


class OperationError(ValueError):
    """A malformed operation; the message is one line naming the bad field."""


@dataclass(frozen=True, slots=True)
class FileTarget:
    path: str  # absolute, normalised (D11)
    mount: str  # root | volume | file (D19)


@dataclass(frozen=True, slots=True)
class Container:
    image: str | None  # the reference as given; None: unknown (see UNKNOWN_IMAGE)
    name: str | None  # D13: last path component
    tag: str | None  # D13: `latest` when the reference has none
    full: str | None  # D13: registry/path/name:tag


# A container whose image the runtime cannot name (started from a bare image id it has no tag
# for). Its image facts are unknown, not empty: like every unknown fact, no condition on them
# holds, not even `*` (as D15 treats the orchestrator facts of a container outside Kubernetes).
UNKNOWN_IMAGE = Container(image=None, name=None, tag=None, full=None)


@dataclass(frozen=True)
class Orchestrator:
    type: str
    cluster_id: str | None = None
    cluster_name: str | None = None
    namespace: str | None = None
    resource_name: str | None = None
    labels: tuple[tuple[str, str], ...] = ()  # sorted (key, value) pairs
    label_map: dict[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_map", dict(self.labels))


@dataclass(frozen=True, slots=True)
class Process:
    executable: str | None = None  # absolute, normalised
    name: str | None = None  # D16: basename of the executable unless given
    user_id: str | None = None  # effective user (D16)
    user_name: str | None = None
    session_leader_executable: str | None = None
    session_leader_name: str | None = None  # D32: basename of its executable unless given
    session_leader_interactive: bool | None = None


# The attributes selectors test, flattened once per operation into `Operation.facts` so the
# matcher reads them by position (see matcher.py). None = unknown: no condition on it holds.
FACT_SLOTS: tuple[str, ...] = (
    "file.path",
    "file.mount",
    "container.name",
    "container.tag",
    "container.full",
    "orchestrator.type",
    "orchestrator.cluster_id",
    "orchestrator.cluster_name",
    "orchestrator.namespace",
    "orchestrator.resource_name",
    "orchestrator.label_map",
    "process.executable",
    "process.name",
    "process.user_id",
    "process.user_name",
    "process.session_leader_executable",
    "process.session_leader_name",
    "process.session_leader_interactive",
)
SLOT: dict[str, int] = {name: i for i, name in enumerate(FACT_SLOTS)}


@dataclass(frozen=True)
class Operation:
    kind: str  # file | process
    operation: str  # a file operation (D17) or fork/exec/execMemFd (D20, D32)
    file: FileTarget | None = None
    container: Container | None = None  # None: a host process, matches nothing (D15)
    orchestrator: Orchestrator | None = None  # None: not managed by Kubernetes (D15)
    process: Process | None = None
    # Derived: the FACT_SLOTS values, and a bit mask of those that are known (not None).
    facts: tuple[Any, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    known: int = field(default=0, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        facts = []
        for name in FACT_SLOTS:
            owner, attribute = name.split(".")
            obj = getattr(self, owner)
            facts.append(None if obj is None else getattr(obj, attribute))
        known = 0
        for i, value in enumerate(facts):
            if value is not None:
                known |= 1 << i
        object.__setattr__(self, "facts", tuple(facts))
        object.__setattr__(self, "known", known)


# --- D13: image references ------------------------------------------------------------------

_DEFAULT_REGISTRY = "docker.io"


def image_parts(reference: str) -> tuple[str, str, str]:
    """(name, tag, full) of an image reference, by D13.

    `nginx` -> (`nginx`, `latest`, `docker.io/library/nginx:latest`);
    `ghcr.io/org/app:1.2` -> (`app`, `1.2`, `ghcr.io/org/app:1.2`). A first component with a
    `.` or `:`, or `localhost`, is a registry (Docker's rule); otherwise the registry is
    docker.io and a single-component name gets `library/`. A `@digest` is kept at the end of
    the full reference. Raises ValueError for an empty reference or an empty component.
    """
    if not reference or reference != reference.strip():
        raise ValueError("must be a non-empty image reference without surrounding spaces")
    remainder, _, digest = reference.partition("@")
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        repository, tag = remainder[:colon], remainder[colon + 1 :]
        if not tag:
            raise ValueError(f"empty tag in image reference {reference!r}")
    else:
        repository, tag = remainder, "latest"
    components = repository.split("/")
    if any(not c for c in components):
        raise ValueError(f"empty component in image reference {reference!r}")
    first = components[0]
    if len(components) > 1 and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, components[1:]
    else:
        registry, path = _DEFAULT_REGISTRY, components
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = _DEFAULT_REGISTRY
    if registry == _DEFAULT_REGISTRY and len(path) == 1:
        path = ["library", *path]
    full = f"{registry}/{'/'.join(path)}:{tag}" + (f"@{digest}" if digest else "")
    return path[-1], tag, full


# --- parsing --------------------------------------------------------------------------------


def normalise_path(path: str) -> str:
    """Lexical normalisation of an absolute path: no `.`/`..`, no duplicate or trailing `/`."""
    collapsed = re.sub("/+", "/", path)
    normal = posixpath.normpath(collapsed)
    return "/" if normal in ("", "//") else normal


class _Fields:
    """Strict access to one JSON object of the operation, with the field path for errors."""

    def __init__(self, obj: Any, where: str, allowed: tuple[str, ...]):
        if not isinstance(obj, Mapping):
            raise OperationError(f"{where}: must be an object, not {_json_type(obj)}")
        for key in obj:
            if key not in allowed:
                raise OperationError(
                    f"{where}.{key}: unknown field (allowed: {', '.join(allowed)})"
                )
        self.obj = obj
        self.where = where

    def present(self, key: str) -> bool:
        return key in self.obj and self.obj[key] is not None

    def string(self, key: str, required: bool = False) -> str | None:
        if not self.present(key):
            if required:
                raise OperationError(f"{self.where}.{key}: required field is missing")
            return None
        value = self.obj[key]
        if not isinstance(value, str):
            raise OperationError(f"{self.where}.{key}: must be a string, not {_json_type(value)}")
        return value

    def path(self, key: str, required: bool = False) -> str | None:
        value = self.string(key, required)
        if value is None:
            return None
        if not value.startswith("/"):
            raise OperationError(f"{self.where}.{key}: must be an absolute path, got {value!r}")
        return normalise_path(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.string(key, required=default is None)
        if value is None:
            assert default is not None
            return default
        if value not in choices:
            raise OperationError(f"{self.where}.{key}: must be one of {', '.join(choices)}")
        return value

    def sub(self, key: str, allowed: tuple[str, ...]) -> _Fields | None:
        if not self.present(key):
            return None
        return _Fields(self.obj[key], f"{self.where}.{key}", allowed)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def parse_operation(obj: Any, where: str = "operation") -> Operation:
    """Parse one operation of the cli-contract.md shape; OperationError names the bad field."""
    top = _Fields(obj, where, ("kind", "operation", "file", "container", "orchestrator", "process"))
    kind = top.choice("kind", ("file", "process"))
    op = top.string("operation", required=True)
    assert op is not None
    if op not in OPERATIONS[kind]:
        other = "process" if kind == "file" else "file"
        if op in OPERATIONS[other]:
            raise OperationError(f"{where}.operation: {op} is a {other} operation but kind is {kind}")
        raise OperationError(f"{where}.operation: must be one of {', '.join(OPERATIONS[kind])}")

    file_target = None
    file_fields = top.sub("file", ("path", "mount"))
    if kind == "file":
        if file_fields is None:
            raise OperationError(f"{where}.file: required for a file operation")
        path = file_fields.path("path", required=True)
        assert path is not None
        file_target = FileTarget(path=path, mount=file_fields.choice("mount", MOUNTS, default="root"))
    elif file_fields is not None:
        raise OperationError(f"{where}.file: not allowed in a process operation")

    container = None
    container_fields = top.sub("container", ("image",))
    if container_fields is not None:
        image = container_fields.string("image", required=True)
        assert image is not None
        try:
            name, tag, full = image_parts(image)
        except ValueError as exc:
            raise OperationError(f"{where}.container.image: {exc}") from None
        container = Container(image=image, name=name, tag=tag, full=full)

    orchestrator = None
    orch = top.sub("orchestrator", ("type", "cluster", "namespace", "resource"))
    if orch is not None:
        cluster = orch.sub("cluster", ("id", "name"))
        resource = orch.sub("resource", ("name", "labels"))
        labels: list[tuple[str, str]] = []
        if resource is not None and resource.present("labels"):
            raw = resource.obj["labels"]
            if not isinstance(raw, Mapping):
                raise OperationError(f"{resource.where}.labels: must be an object, not {_json_type(raw)}")
            for key, value in raw.items():
                if not isinstance(key, str) or not key:
                    raise OperationError(f"{resource.where}.labels: keys must be non-empty strings")
                if not isinstance(value, str):
                    raise OperationError(
                        f"{resource.where}.labels.{key}: must be a string, not {_json_type(value)}"
                    )
                labels.append((key, value))
        orchestrator = Orchestrator(
            # Kubernetes is the only orchestrator the seed knows (D6), hence the default.
            type=orch.string("type") or "kubernetes",
            cluster_id=cluster.string("id") if cluster else None,
            cluster_name=cluster.string("name") if cluster else None,
            namespace=orch.string("namespace"),
            resource_name=resource.string("name") if resource else None,
            labels=tuple(sorted(labels)),
        )

    process = None
    proc = top.sub("process", ("executable", "name", "user", "session_leader"))
    if proc is not None:
        executable = proc.path("executable")
        name = proc.string("name")
        if name is None and executable is not None:
            name = posixpath.basename(executable)  # D16: not the 15-byte comm
        user = proc.sub("user", ("id", "name"))
        user_id = None
        if user is not None and user.present("id"):
            raw_id = user.obj["id"]
            if isinstance(raw_id, bool) or not isinstance(raw_id, (int, str)):
                raise OperationError(f"{user.where}.id: must be a string or an integer")
            user_id = str(raw_id)
        leader = proc.sub("session_leader", ("executable", "name", "interactive"))
        interactive = None
        if leader is not None and leader.present("interactive"):
            interactive = leader.obj["interactive"]
            if not isinstance(interactive, bool):
                raise OperationError(f"{leader.where}.interactive: must be true or false")
        leader_executable = leader.path("executable") if leader else None
        leader_name = leader.string("name") if leader else None
        if leader_name is None and leader_executable is not None:
            leader_name = posixpath.basename(leader_executable)  # D32, as D16 for the process
        process = Process(
            executable=executable,
            name=name,
            user_id=user_id,
            user_name=user.string("name") if user else None,
            session_leader_executable=leader_executable,
            session_leader_name=leader_name,
            session_leader_interactive=interactive,
        )

    return Operation(
        kind=kind,
        operation=op,
        file=file_target,
        container=container,
        orchestrator=orchestrator,
        process=process,
    )


def parse_operations(obj: Any) -> list[Operation]:
    """One operation or a JSON list of them -> a list (errors name `operation[i]...`)."""
    if isinstance(obj, list):
        return [parse_operation(item, f"operation[{i}]") for i, item in enumerate(obj)]
    return [parse_operation(obj)]


__all__ = [
    "FILE_OPERATIONS",
    "MOUNTS",
    "PROCESS_OPERATIONS",
    "Container",
    "FileTarget",
    "Operation",
    "OperationError",
    "Orchestrator",
    "Process",
    "UNKNOWN_IMAGE",
    "image_parts",
    "normalise_path",
    "parse_operation",
    "parse_operations",
]
