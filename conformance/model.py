"""The parsed scenario: frozen values the runner executes (format: docs/scenarios.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE = "engine"
KERNEL = "kernel"
ANY = "$any"  # expected event value: the field is present, any value


@dataclass(frozen=True)
class Location:
    path: Path
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class OperationCase:
    """Engine tier: one synthetic operation and the verdict it must get."""

    name: str
    input: dict[str, Any]  # the `d4c policy evaluate` operation JSON, untouched
    matched_selectors: tuple[str, ...]
    actions: frozenset[str]
    responses: tuple[int, ...] | None  # None: not checked
    location: Location


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    uid: str | None
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Volume:
    path: str
    type: str  # directory | file (D19 classes volume | file)
    content: str = ""
    mode: str = "0644"
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    pod: Pod | None
    user: str | None
    volumes: tuple[Volume, ...]
    command: tuple[str, ...] | None
    seccomp: str | None = None  # "unconfined": without the runtime's default seccomp profile
    apparmor: str | None = None  # "unconfined": without the runtime's default AppArmor profile


@dataclass(frozen=True)
class StepExpect:
    blocked: bool | None = None
    exit: int | None = None
    stdout: str | None = None
    stderr: str | None = None


@dataclass(frozen=True)
class Step:
    container: str
    argv: tuple[str, ...]  # a `run` string becomes ("sh", "-c", run)
    user: str | None
    tty: bool
    workdir: str | None
    expect: StepExpect
    location: Location

    @property
    def display(self) -> str:
        return self.argv[2] if self.argv[:2] == ("sh", "-c") and len(self.argv) == 3 else " ".join(self.argv)


@dataclass(frozen=True)
class ExpectedEvent:
    fields: tuple[tuple[str, Any], ...]  # dotted ECS name -> value or ANY
    location: Location


@dataclass(frozen=True)
class FileCheck:
    container: str
    path: str
    state: str  # present | absent
    content: str | None
    mode: str | None
    location: Location


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    spec: tuple[str, ...]
    path: Path
    policy_text: str  # YAML text handed to the implementation
    policy_path: Path | None  # the referenced policy file, when not inline
    operations: tuple[OperationCase, ...]
    containers: tuple[ContainerSpec, ...]
    steps: tuple[Step, ...]
    events: tuple[tuple[str, tuple[ExpectedEvent, ...]], ...]  # data stream -> exact list
    files: tuple[FileCheck, ...]
    location: Location
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False, default_factory=dict)
    # `requires.kernel`: the lowest (major, minor) Linux that has what the steps use.
    min_kernel: tuple[int, int] | None = None

    @property
    def tiers(self) -> tuple[str, ...]:
        tiers = []
        if self.operations:
            tiers.append(ENGINE)
        if self.containers and self.steps:
            tiers.append(KERNEL)
        return tuple(tiers)
