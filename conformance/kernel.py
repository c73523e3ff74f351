"""Kernel tier: real containers through the Docker SDK, steps via `docker exec`, file checks.

A container of a pod is created as kubelet would leave it (conformance/pods.py): below a pod
cgroup, with kubelet's CRI labels, its pod in the suite's Kubernetes API server with the
container's status. Pod labels are only in the API (docs/scenarios.md, "Kubernetes").
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.model import ContainerSpec, FileCheck, Scenario, Step
from conformance.pods import SCENARIO_LABEL, ScenarioPods, cgroup_parent, container_labels, pod_uid
# The idle main process of a scenario container: only steps should cause activity.
IDLE_COMMAND = ("sleep", "2147483647")
EPERM_TEXTS = ("Operation not permitted", "EPERM")


class DockerUnavailable(Exception):
    pass


class SetupError(Exception):
    """A scenario's containers could not be created (missing image, bad mount...)."""


def docker_client() -> Any:
    try:
        import docker  # the `agent` extra
    except ImportError as error:
        raise DockerUnavailable(f"the docker SDK is not installed: {error}") from None
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as error:  # noqa: BLE001 - the SDK raises several types for "no daemon"
        raise DockerUnavailable(f"no Docker daemon reachable: {error}") from None
    return client


@dataclass(frozen=True)
class StepResult:
    step: Step
    exit_code: int
    stdout: str
    stderr: str

    def problems(self) -> list[str]:
        e = self.step.expect
        wrong = []
        output = self.stdout + self.stderr
        denied = any(text in output for text in EPERM_TEXTS)
        if e.blocked is True and not (self.exit_code != 0 and denied):
            wrong.append("expected the command to be blocked (nonzero exit and \"Operation not permitted\")")
        if e.blocked is False and (self.exit_code != 0 or denied):
            wrong.append("expected the command not to be blocked (exit 0, no \"Operation not permitted\")")
        if e.exit is not None and self.exit_code != e.exit:
            wrong.append(f"expected exit {e.exit}, got {self.exit_code}")
        if e.stdout is not None and e.stdout not in self.stdout:
            wrong.append(f"expected stdout to contain {e.stdout!r}")
        if e.stderr is not None and e.stderr not in (self.stderr if not self.step.tty else output):
            wrong.append(f"expected stderr to contain {e.stderr!r}")
        if wrong:
            wrong.append(f"  exit {self.exit_code}; stdout {self.stdout[-300:]!r}; stderr {self.stderr[-300:]!r}")
        return wrong


@dataclass
class Containers:
    """The containers of one scenario; a context manager that always removes them."""

    client: Any
    scenario: Scenario
    pods: ScenarioPods | None = None  # None: no API server (the pods are then only cgroups and labels)
    cgroup_driver: str = "systemd"  # Docker's (`docker info`): how a pod cgroup parent is named
    handles: dict[str, Any] = field(default_factory=dict)
    _volumes: list[Any] = field(default_factory=list)
    _tmp: Path | None = None

    def __enter__(self) -> Containers:
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"d4c-{self.scenario.id}-"))
            if self.pods is not None:  # scheduled first, as a pod is before kubelet starts anything
                self.pods.announce()
            for spec in self.scenario.containers:
                try:
                    self.handles[spec.name] = self._create(spec)
                except Exception as error:  # noqa: BLE001 - docker raises many types
                    raise SetupError(f"container {spec.name!r} ({spec.image}): {error}") from None
            if self.pods is not None:
                self.pods.running({name: (c.id, c.attrs.get("Image") or "") for name, c in self.handles.items()})
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ids(self) -> dict[str, str]:
        return {name: c.id for name, c in self.handles.items()}

    def _create(self, spec: ContainerSpec) -> Any:
        assert self._tmp is not None
        mounts = []
        from docker.types import Mount

        for index, volume in enumerate(spec.volumes):
            if volume.type == "directory":
                # A named volume, as Kubernetes' emptyDir/PVC are directory mounts (D19 `volume`).
                vol = self.client.volumes.create(
                    name=f"d4c-{uuid.uuid4().hex[:12]}", labels={SCENARIO_LABEL: self.scenario.id}
                )
                self._volumes.append(vol)
                mounts.append(Mount(volume.path, vol.name, type="volume", read_only=volume.read_only))
            else:
                # A single-file bind mount, as /etc/hosts, configMap subPath (D19 `file`).
                host = self._tmp / f"{spec.name}-{index}"
                host.write_text(volume.content)
                host.chmod(int(volume.mode, 8))
                mounts.append(Mount(volume.path, str(host), type="bind", read_only=volume.read_only))
        command = spec.command or IDLE_COMMAND
        container = self.client.containers.run(
            spec.image,
            entrypoint=[command[0]],
            command=list(command[1:]),
            name=f"d4c-{self.scenario.id[:40]}-{spec.name}-{uuid.uuid4().hex[:6]}",
            labels=container_labels(spec, self.scenario.id),
            cgroup_parent=cgroup_parent(self.cgroup_driver, pod_uid(self.scenario.id, spec.pod)) if spec.pod else None,
            mounts=mounts,
            user=spec.user or None,
            # A Kubernetes pod without a seccompProfile runs unconfined; Docker's default profile
            # would hide syscalls such a pod has (clone3 answers ENOSYS there). Likewise a pod on a
            # node without AppArmor (or with appArmorProfile Unconfined) may mount(2) in a mount
            # namespace of its own, which Docker's docker-default profile refuses.
            security_opt=[f"{name}=unconfined" for name, value in (("seccomp", spec.seccomp), ("apparmor", spec.apparmor))
                          if value == "unconfined"] or None,
            detach=True,
            network_mode="none",
        )
        container.reload()
        if container.status != "running":
            logs = container.logs(tail=20).decode(errors="replace")
            container.remove(force=True)
            raise RuntimeError(f"container {spec.name} ({spec.image}) is {container.status}: {logs}")
        return container

    def run(self, step: Step, default_user: str | None) -> StepResult:
        container = self.handles[step.container]
        result = container.exec_run(
            list(step.argv),
            user=step.user or default_user or "",
            tty=step.tty,
            workdir=step.workdir,
            demux=not step.tty,
        )
        if step.tty:
            return StepResult(step, result.exit_code, (result.output or b"").decode(errors="replace"), "")
        out, err = result.output
        return StepResult(step, result.exit_code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))

    def check_file(self, check: FileCheck) -> list[str]:
        container = self.handles[check.container]
        try:
            bits, stat = container.get_archive(check.path)
        except Exception as error:  # noqa: BLE001 - docker.errors.NotFound and API errors
            exists = False
            reason = "not found" if getattr(getattr(error, "response", None), "status_code", None) == 404 else str(error)
        else:
            exists = True
        where = f"{check.location}: {check.container}:{check.path}"
        if check.state == "absent":
            return [] if not exists else [f"{where}: expected absent, but it exists"]
        if not exists:
            return [f"{where}: expected present, but it does not exist ({reason.splitlines()[0][:160]})"]
        wrong = []
        if check.mode is not None:
            actual_mode = stat["mode"] & 0o7777
            if actual_mode != int(check.mode, 8):
                wrong.append(f"{where}: mode: expected {check.mode}, got {actual_mode:04o}")
        if check.content is not None:
            archive = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
            member = archive.getmembers()[0]
            handle = archive.extractfile(member)
            content = handle.read().decode(errors="replace") if handle else None
            if content != check.content:
                wrong.append(f"{where}: content: expected {check.content!r}, got {content!r}")
        return wrong

    def close(self) -> None:
        for container in self.handles.values():
            try:
                container.remove(force=True, v=True)
            except Exception:  # noqa: BLE001 - best effort cleanup; the daemon may be gone
                pass
        self.handles.clear()
        for volume in self._volumes:
            try:
                volume.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        self._volumes.clear()
        if self.pods is not None:
            self.pods.remove()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
