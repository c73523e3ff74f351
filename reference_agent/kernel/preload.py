"""The agent's BPF objects opened and loaded in background threads, first thing at start-up.

Loading (BTF parsing, verification, map creation) is the kernel's work and does not depend on
the policy: ctypes releases the GIL during bpf_object__load, so both objects are verified on
the other CPU while the interpreter imports the rest of the agent and validates the policy. The
result doubles as the check that this kernel can enforce at all (an lsm program really loads:
a locked-down kernel lists `bpf` in its LSMs yet refuses the load with EPERM), so no separate
probe object is loaded. Only the standard library and the libbpf binding are imported here.

    preload = Preload()                      # starts loading file_hooks and process_hooks
    problem = preload.lsm_problem()          # None, or why this kernel cannot enforce
    obj = preload.take("file_hooks")         # a loaded, not yet attached BpfObject (or raises)
    preload.close()                          # closes what nobody took
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from reference_agent.kernel.libbpf import BpfError, BpfObject
from reference_agent.kernel.support import bpf_object_path, lsm_list_problem

OBJECTS = ("file_hooks", "process_hooks")


class _Loading:
    """One object being opened and loaded in a daemon thread (a bad policy found meanwhile
    must not wait for it at exit)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.obj: BpfObject | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"bpf-load-{os.path.basename(path)}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            obj = BpfObject(self.path)
        except BaseException as exc:  # handed to whoever takes the object
            self.error = exc
            return
        try:
            obj.load()
        except BaseException as exc:
            obj.close()
            self.error = exc
            return
        self.obj = obj

    def result(self) -> BpfObject:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.obj is not None
        return self.obj


class Preload:
    def __init__(self, paths: Mapping[str, str | None] | None = None) -> None:
        """`paths`: object name -> file (None or absent: bpf/build/<name>.bpf.o)."""
        paths = paths or {}
        self._loading = {name: _Loading(str(paths.get(name) or bpf_object_path(name))) for name in OBJECTS}
        self._taken: set[str] = set()

    def lsm_problem(self) -> str | None:
        """Why this kernel cannot enforce (BPF LSM not active, or an lsm program does not
        load), or None. Waits for file_hooks' load."""
        problem = lsm_list_problem()
        if problem is not None:
            return problem
        loading = self._loading["file_hooks"]
        if not os.path.isfile(loading.path):
            return f"{loading.path} is missing: run `make -C bpf` on the host"
        try:
            loading.result()
        except BpfError as exc:
            return f"an lsm program does not load here ({exc.what}: {os.strerror(exc.errno)})"
        except OSError as exc:  # libbpf.so missing: the ctypes binding cannot load
            return f"libbpf cannot be loaded: {exc}"
        return None

    def take(self, name: str) -> BpfObject:
        """The loaded object `name`, now the caller's to attach and close; raises what its
        load raised."""
        obj = self._loading[name].result()
        self._taken.add(name)
        return obj

    def close(self) -> None:
        """Close every object nobody took (waiting for loads still running)."""
        for name, loading in self._loading.items():
            if name in self._taken:
                continue
            self._taken.add(name)
            try:
                loading.result().close()
            except BaseException:  # its error was never asked for: nothing to close
                pass
