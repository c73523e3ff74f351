"""Loads bpf/build/file_hooks.bpf.o, fills its maps from a compiled policy, attaches the LSM
programs, registers containers and turns ring-buffer records into FileActivity values.

Policy changes are atomic for the hooks: the maps hold two policy slots; a new policy is
written into the slot not in use, container masks get their value for it, and only then is
`active_policy` flipped. A hook reads the slot once and sees one whole policy.

D19 mount classes the kernel cannot see: a configMap, secret, downwardAPI or projected volume
is a directory mount like any other to the kernel, yet its files are class `file`. Whenever the
set of containers changes, the enforcer asks system.mounts.KubeletVolumeMounts which mount
ids of those containers are such volumes and keeps exactly those in the `file_mounts` map.

Thread safety (agent.KernelBackend): poll() may run in one thread while set_policy() and the
container calls run in another; one lock serialises ring-buffer consumption and map writes,
and poll() waits for records without holding it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from reference_agent.activity import FileActivity
from reference_agent.kernel import abi
from reference_agent.kernel.compiler import CompiledFilePolicy
from reference_agent.kernel.libbpf import BpfObject
from reference_agent.kernel.loaded_program import U32 as _U32
from reference_agent.kernel.loaded_program import U64 as _U64
from reference_agent.kernel.loaded_program import LoadedProgram, StartTimes
from reference_agent.kernel.records import decode_file_event
from reference_agent.system.mounts import KubeletVolumeMounts
from reference_agent.policy.operation import Container, Orchestrator

__all__ = ["FileEnforcer", "StartTimes"]


class FileEnforcer(LoadedProgram[FileActivity]):
    """One loaded file_hooks object. Use as a context manager; `close()` detaches."""

    def __init__(self, compiled: CompiledFilePolicy, object_path: str | None = None,
                 volume_mounts: KubeletVolumeMounts | None = None, *,
                 pin_dir: str | os.PathLike[str] | None = None, masks: Mapping[int, int] | None = None,
                 loaded: BpfObject | None = None) -> None:
        self._volume_mounts = volume_mounts if volume_mounts is not None else KubeletVolumeMounts()
        self._file_mounts: frozenset[int] = frozenset()  # mount ids in the file_mounts map
        super().__init__("file_hooks", object_path, "file_events", compiled, pin_dir, masks, loaded)

    # -- policy ------------------------------------------------------------------------------

    def _write_policy(self, slot: int, c: CompiledFilePolicy) -> None:
        self.obj.map("file_policy").update(_U32.pack(slot), bytes(c.policy))
        patterns = self.obj.map("path_patterns")
        for i, pattern in enumerate(c.patterns):
            patterns.update(_U32.pack(slot * abi.D4C_MAX_PATTERNS + i), bytes(pattern))
        self._write_responses(slot, c.responses)

    def set_policy(self, compiled: CompiledFilePolicy, masks: Mapping[int, int] | None = None) -> None:
        """Switch to another policy without reloading the programs, atomically for the hooks.
        `masks` (cgroup id -> selector bits of `compiled`) defaults to recomputing the masks of
        the containers registered with add_container()."""
        with self._lock:
            self._set_policy(compiled, masks)

    def _set_policy(self, compiled: CompiledFilePolicy, masks: Mapping[int, int] | None) -> None:
        if masks is None:
            masks = {cgid: compiled.container_mask(*facts) for cgid, facts in self._facts.items()}
        new = 1 - self._slot
        self.ring.consume()  # records of the slot about to be overwritten, named while we can
        self._write_policy(new, compiled)
        self._names[new] = compiled.names
        self._write_container_selectors(self._slot, self._masks, new, masks)
        self._activate(new)
        table = self.obj.map("container_selectors")
        for cgid in set(self._masks) - {c for c, m in masks.items() if m}:
            table.delete(_U64.pack(cgid))
        self._slot = new
        self.compiled = compiled
        self._masks = {cgid: m for cgid, m in masks.items() if m}
        self._sync_file_mounts()

    def _adopt(self) -> None:
        super()._adopt()
        self._masks = {cgid: m for cgid, m in self._masks.items() if m}
        self._file_mounts = frozenset(_U32.unpack(k)[0] for k in self.obj.map("file_mounts").keys())

    # -- containers --------------------------------------------------------------------------

    def set_container_mask(self, cgroup_id: int, mask: int) -> None:
        """Selector bits (of the live policy) for a container's cgroup; 0 removes it."""
        with self._lock:
            self._set_container_mask(cgroup_id, mask)

    def _set_container_mask(self, cgroup_id: int, mask: int) -> None:
        if mask:
            value = abi.ContainerSelectors()
            value.selectors[self._slot] = mask
            self.obj.map("container_selectors").update(_U64.pack(cgroup_id), bytes(value))
            self._masks[cgroup_id] = mask
        else:
            self.obj.map("container_selectors").delete(_U64.pack(cgroup_id))
            self._masks.pop(cgroup_id, None)
        self._sync_file_mounts()

    def _sync_file_mounts(self) -> None:
        """D19: the file_mounts map holds exactly the kubelet file-class volume mounts of the
        containers the kernel knows (a mount id is freed with its mount and may be reused, so
        ids of containers gone are removed). Only containers with a mask matter: no selector
        can match anywhere else."""
        per_cgroup = self._volume_mounts.mount_ids(self._masks)
        wanted = frozenset().union(*per_cgroup.values()) if per_cgroup else frozenset()
        table = self.obj.map("file_mounts")
        for mount_id in wanted - self._file_mounts:
            table.update(_U32.pack(mount_id), _U32.pack(int(abi.MountClass.D4C_MOUNT_FILE)))
        for mount_id in self._file_mounts - wanted:
            table.delete(_U32.pack(mount_id))
        self._file_mounts = wanted

    def file_mount_ids(self) -> frozenset[int]:
        """Mount ids the kernel currently classifies as D19 `file` volumes."""
        with self._lock:
            return self._file_mounts

    def add_container(self, cgroup_id: int, container: Container, orchestrator: Orchestrator | None = None) -> int:
        """Register a container's cgroup; returns its selector mask (0: no selector can match,
        and then nothing is stored: the kernel treats it like a host process)."""
        with self._lock:
            self._facts[cgroup_id] = (container, orchestrator)
            mask = self.compiled.container_mask(container, orchestrator)
            self._set_container_mask(cgroup_id, mask)
            return mask

    def remove_container(self, cgroup_id: int) -> None:
        with self._lock:
            self._facts.pop(cgroup_id, None)
            self._set_container_mask(cgroup_id, 0)

    # -- events ------------------------------------------------------------------------------

    def _decode(self, raw: bytes, selector_names: tuple[str, ...]) -> FileActivity:
        return decode_file_event(raw, selector_names)
