"""Loads bpf/build/process_hooks.bpf.o, fills its maps from a compiled process policy, attaches
its programs, registers containers and decodes its ring buffer into ProcessLifecycle and
ProcessActivity values.

Like FileEnforcer: two policy slots, the idle one written, then `active_policy` flipped. Unlike
it, a container with no applicable selector stays registered (mask 0): its tasks' lifecycle is
still reported (the agent's process table, D20). Registering a container also reads its
/etc/passwd (processUserName is per container) and seeds `exe_paths` with its processes'
executables (those that exec'd before the programs were attached: session leaders for
sessionLeaderExecutable, and exit records).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping

from reference_agent.activity import ProcessActivity, ProcessLifecycle
from reference_agent.kernel import abi
from reference_agent.kernel.libbpf import BpfError, BpfObject
from reference_agent.kernel.loaded_program import U32 as _U32
from reference_agent.kernel.loaded_program import U64 as _U64
from reference_agent.kernel.loaded_program import LoadedProgram
from reference_agent.kernel.process_compiler import CompiledProcessPolicy
from reference_agent.kernel.records import container_view_executable, decode_process_event
from reference_agent.kernel.support import CGROUP2_ROOT
from reference_agent.policy.operation import Container, Orchestrator
from reference_agent.system import procfs
from reference_agent.system.accounts import read_id_file
from reference_agent.system.cgroups import cgroup_id_of_pid

_BPF_NOEXIST = 1
ProcessValue = ProcessLifecycle | ProcessActivity


def cgroup_processes(cgroup_id: int, proc: str = "/proc") -> Iterator[int]:
    """Thread-group ids of the processes in a cgroup (by scanning /proc)."""
    try:
        pids = procfs.list_pids(proc)
    except OSError:
        return
    for pid in pids:
        if cgroup_id_of_pid(pid, proc, CGROUP2_ROOT) == cgroup_id:
            yield pid


def read_accounts(pid: int) -> dict[int, str]:
    """uid -> user name from the /etc/passwd of `pid`'s root (its container's own accounts)."""
    return read_id_file(f"/proc/{pid}/root/etc/passwd") or {}


def _start_time_ns(pid: int) -> int:
    try:
        return procfs.read_stat("/proc", pid).start_ns
    except procfs.ProcessGone:
        return 0


class ProcessEnforcer(LoadedProgram[ProcessValue]):
    """One loaded process_hooks object. Use as a context manager; `close()` detaches."""

    def __init__(self, compiled: CompiledProcessPolicy, object_path: str | None = None, *,
                 pin_dir: str | os.PathLike[str] | None = None, masks: Mapping[int, int] | None = None,
                 loaded: BpfObject | None = None) -> None:
        self._accounts: dict[int, dict[int, str]] = {}  # cgroup id -> its /etc/passwd
        self._user_keys: set[tuple[int, int, int]] = set()  # (cgroup, uid, slot) in user_names
        super().__init__("process_hooks", object_path, "process_events", compiled, pin_dir, masks, loaded)

    # -- policy ------------------------------------------------------------------------------

    def _write_policy(self, slot: int, c: CompiledProcessPolicy) -> None:
        self.obj.map("process_policy").update(_U32.pack(slot), bytes(c.policy))
        patterns = self.obj.map("process_patterns")
        for set_index, entries in enumerate(c.patterns):
            base = (slot * abi.D4C_PATTERN_SETS + set_index) * abi.D4C_MAX_PATTERNS
            for i, pattern in enumerate(entries):
                patterns.update(_U32.pack(base + i), bytes(pattern))
        self._write_responses(slot, c.responses)
        user_ids = self.obj.map("user_ids")
        for key in user_ids.keys():  # noqa: SIM118 - a BPF map, not a dict
            if abi.UserIdKey.from_buffer_copy(key).slot == slot:
                user_ids.delete(key)
        for uid, mask in c.user_ids.items():
            user_ids.update(bytes(abi.UserIdKey(uid=uid, slot=slot)), _U64.pack(mask))

    def _write_user_names(self, cgroup_id: int, slot: int, compiled: CompiledProcessPolicy) -> None:
        table = self.obj.map("user_names")
        for key in [k for k in self._user_keys if k[0] == cgroup_id and k[2] == slot]:
            table.delete(bytes(abi.UserNameKey(cgroup_id=key[0], uid=key[1], slot=key[2])))
            self._user_keys.discard(key)
        if not compiled.user_names:
            return
        for uid, mask in compiled.user_name_masks(self._accounts.get(cgroup_id, {})).items():
            table.update(bytes(abi.UserNameKey(cgroup_id=cgroup_id, uid=uid, slot=slot)), _U64.pack(mask))
            self._user_keys.add((cgroup_id, uid, slot))

    def set_policy(self, compiled: CompiledProcessPolicy, masks: Mapping[int, int] | None = None) -> None:
        """Switch policy atomically for the hooks. `masks` (cgroup id -> selector bits, every
        registered container, 0 included) defaults to recomputing from add_container facts."""
        with self._lock:
            if masks is None:
                masks = {cgid: compiled.container_mask(*facts) for cgid, facts in self._facts.items()}
            new = 1 - self._slot
            self.ring.consume()  # records of the slot about to be overwritten, named while we can
            self._write_policy(new, compiled)
            self._names[new] = compiled.names
            for cgid in masks:
                self._learn(cgid)
                self._write_user_names(cgid, new, compiled)
            self._write_container_selectors(self._slot, self._masks, new, masks)
            self._activate(new)
            for cgid in set(self._masks) - set(masks):
                self._forget(cgid)
            self._slot = new
            self.compiled = compiled
            self._masks = dict(masks)

    def _adopt(self) -> None:
        super()._adopt()
        for key in self.obj.map("user_names").keys():
            k = abi.UserNameKey.from_buffer_copy(key)
            self._user_keys.add((k.cgroup_id, k.uid, k.slot))

    # -- containers --------------------------------------------------------------------------

    def _learn(self, cgroup_id: int) -> None:
        """First sight of a container: its accounts, and its processes' executables."""
        if cgroup_id in self._accounts:
            return
        accounts: dict[int, str] | None = None
        exe_paths = self.obj.map("exe_paths")
        for pid in cgroup_processes(cgroup_id):
            if accounts is None:
                accounts = read_accounts(pid)
            exe = container_view_executable(pid)
            if not exe:
                continue
            value = abi.ExePath(start_time_ns=_start_time_ns(pid))
            raw = exe.encode("utf-8", "surrogateescape")[: abi.D4C_PATH_MAX - 1]
            value.path_len = len(raw)
            value.path = raw
            try:
                exe_paths.update(_U32.pack(pid), bytes(value), flags=_BPF_NOEXIST)
            except BpfError as exc:
                if exc.errno != errno.EEXIST:  # EEXIST: the kernel's own entry, newer
                    raise
        if accounts is not None:  # else no process yet: learnt at the next registration
            self._accounts[cgroup_id] = accounts

    def _forget(self, cgroup_id: int) -> None:
        self.obj.map("container_selectors").delete(_U64.pack(cgroup_id))
        table = self.obj.map("user_names")
        for key in [k for k in self._user_keys if k[0] == cgroup_id]:
            table.delete(bytes(abi.UserNameKey(cgroup_id=key[0], uid=key[1], slot=key[2])))
            self._user_keys.discard(key)
        self._accounts.pop(cgroup_id, None)
        self._masks.pop(cgroup_id, None)

    def set_container_mask(self, cgroup_id: int, mask: int) -> None:
        """Register a container's cgroup with its selector bits (0 = registered, nothing applies)."""
        with self._lock:
            self._learn(cgroup_id)
            self._write_user_names(cgroup_id, self._slot, self.compiled)
            value = abi.ContainerSelectors()
            value.selectors[self._slot] = mask
            self.obj.map("container_selectors").update(_U64.pack(cgroup_id), bytes(value))
            self._masks[cgroup_id] = mask

    def add_container(self, cgroup_id: int, container: Container, orchestrator: Orchestrator | None = None) -> int:
        with self._lock:
            self._facts[cgroup_id] = (container, orchestrator)
            mask = self.compiled.container_mask(container, orchestrator)
            self.set_container_mask(cgroup_id, mask)
            return mask

    def remove_container(self, cgroup_id: int) -> None:
        with self._lock:
            self._facts.pop(cgroup_id, None)
            self._forget(cgroup_id)

    def set_accounts(self, cgroup_id: int, accounts: Mapping[int, str]) -> None:
        """Give a container's uid -> user name table directly (instead of its /etc/passwd)."""
        with self._lock:
            self._accounts[cgroup_id] = dict(accounts)
            if cgroup_id in self._masks:
                self._write_user_names(cgroup_id, self._slot, self.compiled)

    def refresh_accounts(self, cgroup_id: int) -> None:
        """Re-read a container's /etc/passwd (e.g. after useradd in it)."""
        with self._lock:
            self._accounts.pop(cgroup_id, None)
            self._learn(cgroup_id)
            self._write_user_names(cgroup_id, self._slot, self.compiled)

    # -- events ------------------------------------------------------------------------------

    def _decode(self, raw: bytes, selector_names: tuple[str, ...]) -> ProcessValue:
        return decode_process_event(raw, selector_names)
