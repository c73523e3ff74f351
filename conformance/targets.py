"""--target: what the scenarios run against. Each target answers the engine tier, the kernel
tier, or both, and says why when it cannot (the item is then skipped with that reason)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.adapters import reference
from conformance.adapters.command import AdapterSpec, base_values, expand, load_adapter, run_evaluate
from conformance.probe import bpf_lsm_missing

TARGETS = ("reference", "command", "engine")


class Target(ABC):
    name: str = "?"

    def engine_unavailable(self) -> str | None:
        return None

    @abstractmethod
    def evaluate(self, policy_text: str, policy_file: Path, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The engine tier: one verdict per operation, in the `d4c policy evaluate` shape."""

    def kernel_unavailable(self) -> str | None:
        return None

    def describe(self) -> str:
        """The target as the report header names it."""
        return self.name

    def agent_adapter(self) -> AdapterSpec:
        # Only called when kernel_unavailable() returned None, which targets without a kernel
        # tier never do; reaching this is a bug in the plugin, not a user error.
        raise RuntimeError(f"target {self.name!r} has no kernel tier")


@dataclass
class ReferenceTarget(Target):
    name: str = "reference"

    def engine_unavailable(self) -> str | None:
        return reference.unavailable_reason()

    def evaluate(self, policy_text, policy_file, operations):
        return reference.evaluate(policy_text, operations)

    def kernel_unavailable(self) -> str | None:
        return reference.agent_unavailable_reason() or bpf_lsm_missing()

    def agent_adapter(self) -> AdapterSpec:
        return reference.agent_adapter()


@dataclass
class CommandTarget(Target):
    spec: AdapterSpec
    name: str = "command"

    def engine_unavailable(self) -> str | None:
        if self.spec.evaluate is None:
            return f"adapter {self.spec.name!r} has no `evaluate` command (engine tier)"
        return None

    def evaluate(self, policy_text, policy_file, operations):
        assert self.spec.evaluate is not None
        values = {**base_values(self.spec), "policy": str(policy_file)}
        return run_evaluate([expand(a, values) for a in self.spec.evaluate], operations)

    def kernel_unavailable(self) -> str | None:
        if self.spec.agent is None:
            return f"adapter {self.spec.name!r} has no `agent` (kernel tier)"
        if self.spec.agent.requires_bpf_lsm:
            return bpf_lsm_missing()
        return None

    def agent_adapter(self) -> AdapterSpec:
        return self.spec


@dataclass
class EngineTarget(Target):
    command: tuple[str, ...] = ("d4c",)
    name: str = "engine"

    def evaluate(self, policy_text, policy_file, operations):
        argv = [*self.command, "policy", "evaluate", str(policy_file), "--operation", "-"]
        return run_evaluate(argv, operations)

    def kernel_unavailable(self) -> str | None:
        return "--target engine runs the engine tier only"

    def describe(self) -> str:
        """Which program answers: the command resolved on PATH, and what its --version says."""
        found = shutil.which(self.command[0])
        if found is None:
            return f"engine: {shlex.join(self.command)} (not found on PATH)"
        try:
            out = subprocess.run([found, *self.command[1:], "--version"], capture_output=True, text=True,
                                 timeout=30, check=False)
            version = (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired, IndexError):
            version = ""
        return f"engine: {shlex.join(self.command)} -> {found}" + (f" ({version})" if version else "")


def make_target(name: str, adapter: str | None, engine_command: str) -> Target:
    """Raises ValueError (a usage error) for an inconsistent choice."""
    if name == "reference":
        return ReferenceTarget()
    if name == "engine":
        command = tuple(shlex.split(engine_command))
        if not command:
            raise ValueError("--engine-command is empty")
        return EngineTarget(command)
    if name == "command":
        if not adapter:
            raise ValueError("--target command needs --adapter FILE")
        return CommandTarget(load_adapter(Path(adapter)))
    raise ValueError(f"unknown --target {name!r} (choose from {', '.join(TARGETS)})")
