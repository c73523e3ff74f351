"""A thin ctypes binding to libbpf.so.1: open/load/attach BPF objects, maps, ring buffers.

Only the calls the agent needs, each wrapped so that failures raise `BpfError` with libbpf's
own log (verifier output included) instead of returning NULL or a negative errno. No compiler
and no BCC at run time: the objects are built on the host by `make -C bpf` (CO-RE), and
libbpf relocates them to the running kernel when they load.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from reference_agent.kernel.kernel_compat import (
    KernelFunctions,
    attach_target,
    left_out,
    missing_features,
    traced_function,
)

_LIBBPF_NAME = "libbpf.so.1"  # Debian 12 package libbpf1 (1.1.x); ABI-stable across 1.x


class BpfError(OSError):
    """A libbpf call failed; `log` holds what libbpf printed while it ran."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.what = what
        self.log = log

    def __str__(self) -> str:
        tail = "\n".join(self.log.strip().splitlines()[-25:])
        return f"{self.what}: {os.strerror(self.errno)}" + (f"\nlibbpf log:\n{tail}" if tail else "")


_BPF_MAP_TYPE_RINGBUF = 27  # enum bpf_map_type (uapi/linux/bpf.h)

class ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (uapi/linux/bpf.h, append-only ABI) up to `recursion_misses`: the
    kernel fills what both sides know and leaves the rest zero."""

    _fields_ = [
        ("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32), ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * 16), ("ifindex", ctypes.c_uint32),
        ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64), ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32), ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64), ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64), ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32), ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32), ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
    ]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _libc() -> ctypes.CDLL:
    # glibc's soname first: find_library runs `ldconfig -p` in a subprocess, a cost paid at
    # every agent start (noticeable under TCG); it is only the fallback for other C libraries.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class _Lib:
    """The loaded library with prototypes declared; one per process (see `lib()`)."""

    def __init__(self) -> None:
        try:
            self.c = ctypes.CDLL(_LIBBPF_NAME, use_errno=True)
        except OSError as exc:
            raise BpfError(errno_mod.ENOENT, f"cannot load {_LIBBPF_NAME} (Debian package libbpf1)") from exc
        self.libc = _libc()
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        self._print_buf = ctypes.create_string_buffer(16 << 20)
        self._print_cb = _PRINT_FN(self._on_print)  # kept referenced: libbpf holds the pointer
        c, vp, cp, i, u32 = self.c, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32
        protos: dict[str, tuple[object, list[object]]] = {
            "libbpf_set_print": (vp, [_PRINT_FN]),
            "bpf_object__open_file": (vp, [cp, vp]),
            "bpf_object__load": (i, [vp]),
            "bpf_object__close": (None, [vp]),
            "bpf_object__find_program_by_name": (vp, [vp, cp]),
            "bpf_object__find_map_by_name": (vp, [vp, cp]),
            "bpf_object__next_program": (vp, [vp, vp]),
            "bpf_program__name": (cp, [vp]),
            "bpf_program__attach": (vp, [vp]),
            "bpf_program__set_autoload": (i, [vp, ctypes.c_bool]),
            "bpf_program__section_name": (cp, [vp]),
            "bpf_program__autoload": (ctypes.c_bool, [vp]),
            "bpf_program__set_attach_target": (i, [vp, i, cp]),
            "bpf_program__fd": (i, [vp]),
            "bpf_obj_get_info_by_fd": (i, [i, vp, ctypes.POINTER(u32)]),
            "btf__load_vmlinux_btf": (vp, []),
            "btf__find_by_name_kind": (i, [vp, cp, u32]),
            "btf__type_by_id": (vp, [vp, u32]),
            "libbpf_probe_bpf_helper": (i, [i, i, vp]),
            "bpf_link__destroy": (i, [vp]),
            "bpf_link__pin": (i, [vp, cp]),
            "bpf_obj_get": (i, [cp]),
            "bpf_object__next_map": (vp, [vp, vp]),
            "bpf_map__name": (cp, [vp]),
            "bpf_map__type": (i, [vp]),
            "bpf_map__is_internal": (ctypes.c_bool, [vp]),
            "bpf_map__set_pin_path": (i, [vp, cp]),
            "bpf_map__fd": (i, [vp]),
            "bpf_map__key_size": (u32, [vp]),
            "bpf_map__value_size": (u32, [vp]),
            "bpf_map__max_entries": (u32, [vp]),
            "bpf_map_update_elem": (i, [i, vp, vp, ctypes.c_uint64]),
            "bpf_map_lookup_elem": (i, [i, vp, vp]),
            "bpf_map_delete_elem": (i, [i, vp]),
            "bpf_map_get_next_key": (i, [i, vp, vp]),
            "ring_buffer__new": (vp, [i, _SAMPLE_FN, vp, vp]),
            "ring_buffer__poll": (i, [vp, i]),
            "ring_buffer__consume": (i, [vp]),
            "ring_buffer__free": (None, [vp]),
            "ring_buffer__epoll_fd": (i, [vp]),
        }
        for name, (restype, argtypes) in protos.items():
            fn = getattr(c, name)
            fn.restype = restype
            fn.argtypes = argtypes
        self.libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        self.libc.vsnprintf.restype = ctypes.c_int
        c.libbpf_set_print(self._print_cb)
        self.functions = KernelFunctions(c)
        self._missing: list[str] | None = None

    def missing_features(self) -> list[str]:
        """What the default objects need and this kernel lacks (probed once)."""
        with self._log_lock:
            known = self._missing
        if known is None:
            with self.capture():  # a probe's refused load is an answer, not an error to show
                known = missing_features(self.c, self.functions)
            with self._log_lock:
                self._missing = known
        return list(known)

    def _on_print(self, level: int, fmt: bytes, args: int) -> int:
        # va_list is an array type on x86-64, so it arrives as a pointer vsnprintf accepts.
        # A verifier log arrives as ONE message of up to 16 MiB (libbpf's largest log buffer); the buffer is reused.
        with self._log_lock:
            buf = self._print_buf
            n = self.libc.vsnprintf(buf, len(buf), fmt, args)
            self._log.append(buf.value.decode(errors="replace"))
            del self._log[:-2000]  # bounded: a verifier log can be long
        return max(n, 0)

    @contextmanager
    def capture(self) -> Iterator[list[str]]:
        """Collect what libbpf prints during the block (for error messages)."""
        with self._log_lock:
            start = len(self._log)
        captured: list[str] = []
        try:
            yield captured
        finally:
            with self._log_lock:
                captured.extend(self._log[start:])


_lib: _Lib | None = None
_lib_lock = threading.Lock()


def lib() -> _Lib:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _Lib()
        return _lib


def _errno_of(ret: int | None = None) -> int:
    if ret is not None and ret < 0:
        return -ret
    return ctypes.get_errno() or errno_mod.EINVAL


class Map:
    """A map of a loaded object, addressed by its fd; keys and values are ctypes values or bytes."""

    def __init__(self, obj: BpfObject, name: str, ptr: int) -> None:
        self.obj = obj
        self.name = name
        self._ptr = ptr
        L = lib().c
        self.fd = L.bpf_map__fd(ptr)
        self.key_size = L.bpf_map__key_size(ptr)
        self.value_size = L.bpf_map__value_size(ptr)
        self.max_entries = L.bpf_map__max_entries(ptr)

    def _buf(self, value: object, size: int, what: str) -> ctypes.Array[ctypes.c_char]:
        raw = bytes(value)  # bytes, or a ctypes structure's bytes
        if len(raw) != size:
            raise ValueError(f"map {self.name}: {what} is {len(raw)} bytes, the map expects {size}")
        return ctypes.create_string_buffer(raw, size)

    def update(self, key: object, value: object, flags: int = 0) -> None:
        k = self._buf(key, self.key_size, "key")
        v = self._buf(value, self.value_size, "value")
        ret = lib().c.bpf_map_update_elem(self.fd, k, v, flags)
        if ret < 0:
            raise BpfError(_errno_of(ret), f"update of map {self.name}")

    def lookup(self, key: object) -> bytes | None:
        k = self._buf(key, self.key_size, "key")
        v = ctypes.create_string_buffer(self.value_size)
        ret = lib().c.bpf_map_lookup_elem(self.fd, k, v)
        if ret < 0:
            err = _errno_of(ret)
            if err == errno_mod.ENOENT:
                return None
            raise BpfError(err, f"lookup in map {self.name}")
        return v.raw

    def delete(self, key: object) -> bool:
        k = self._buf(key, self.key_size, "key")
        ret = lib().c.bpf_map_delete_elem(self.fd, k)
        if ret < 0:
            err = _errno_of(ret)
            if err == errno_mod.ENOENT:
                return False
            raise BpfError(err, f"delete from map {self.name}")
        return True

    def keys(self) -> list[bytes]:
        out: list[bytes] = []
        cur: ctypes.Array[ctypes.c_char] | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while lib().c.bpf_map_get_next_key(self.fd, cur, nxt) == 0:
            out.append(nxt.raw)
            cur = ctypes.create_string_buffer(nxt.raw, self.key_size)
        return out


class Link:
    """An attached program; `destroy()` closes it, which detaches it unless it is pinned."""

    def __init__(self, program: str, ptr: int) -> None:
        self.program = program
        self._ptr: int | None = ptr

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link in bpffs at `path` (which must not exist): it then stays attached
        after this process closes it or dies, until the pin is removed."""
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, f"link of {self.program} is destroyed")
        ret = lib().c.bpf_link__pin(self._ptr, os.fsencode(path))
        if ret < 0:
            raise BpfError(_errno_of(ret), f"pin of link {self.program} at {path}")

    def destroy(self) -> None:
        if self._ptr is not None:
            lib().c.bpf_link__destroy(self._ptr)
            self._ptr = None

    @property
    def attached(self) -> bool:
        return self._ptr is not None


def unpin_link(path: str | os.PathLike[str]) -> None:
    """Remove a pinned link and return only once its program is detached.

    Unlinking the pin alone drops the kernel's reference from a workqueue (6.4 and later), so
    the program can still run for a moment after `unlink` returns. Holding an fd across the
    unlink makes the close of that fd the last reference, and the kernel releases a link
    synchronously when its last fd is closed."""
    fd = lib().c.bpf_obj_get(os.fsencode(path))
    try:
        os.unlink(path)
    finally:
        if fd >= 0:
            os.close(fd)


class BpfObject:
    """One `.bpf.o`: open → (maps are sized/created) → load → attach; `close()` frees it all."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        L = lib()
        if not self.path.is_file():
            raise BpfError(errno_mod.ENOENT, f"BPF object {self.path} (build it with `make -C bpf`)")
        with L.capture() as log:
            ptr = L.c.bpf_object__open_file(os.fsencode(self.path), None)
        if not ptr:
            raise BpfError(_errno_of(), f"open of {self.path}", "\n".join(log))
        self._ptr: int | None = ptr
        self.links: list[Link] = []
        self._maps: dict[str, Map] = {}

    @property
    def ptr(self) -> int:
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, f"BPF object {self.path} is closed")
        return self._ptr

    def program_names(self) -> list[str]:
        names: list[str] = []
        prog = lib().c.bpf_object__next_program(self.ptr, None)
        while prog:
            names.append(lib().c.bpf_program__name(prog).decode())
            prog = lib().c.bpf_object__next_program(self.ptr, prog)
        return names

    def recursion_misses(self) -> dict[str, int]:
        """Per loaded program, the runs the kernel skipped because the program was already
        running on that CPU (the recursion guard of tracing programs: tp_btf, fentry/fexit;
        an LSM program is never skipped). A preempted program keeps its CPU's guard taken, so
        on a preemptible kernel another task's event there finds the program "running"."""
        L = lib().c
        out: dict[str, int] = {}
        prog = L.bpf_object__next_program(self.ptr, None)
        while prog:
            fd = L.bpf_program__fd(prog)
            if fd >= 0:
                info = ProgInfo()
                size = ctypes.c_uint32(ctypes.sizeof(info))
                ret = L.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size))
                if ret < 0:
                    raise BpfError(_errno_of(ret), f"info of program {L.bpf_program__name(prog).decode()}")
                out[L.bpf_program__name(prog).decode()] = info.recursion_misses
            prog = L.bpf_object__next_program(self.ptr, prog)
        return out

    def map_names(self, pinnable: bool = False) -> list[str]:
        """The object's maps; `pinnable`: only those worth sharing with a later agent (no
        ring buffer: its records are decoded by whoever reads them, so each agent has its
        own; no internal .rodata/.bss: they belong to one build of the programs)."""
        L = lib().c
        names: list[str] = []
        m = L.bpf_object__next_map(self.ptr, None)
        while m:
            if not pinnable or not (L.bpf_map__is_internal(m) or L.bpf_map__type(m) == _BPF_MAP_TYPE_RINGBUF):
                names.append(L.bpf_map__name(m).decode())
            m = L.bpf_object__next_map(self.ptr, m)
        return names

    def set_pin_path(self, map_name: str, path: str | os.PathLike[str]) -> None:
        """Before load: reuse the map pinned at `path` (libbpf checks it is compatible and
        fails the load otherwise), or create the map and pin it there."""
        ptr = lib().c.bpf_object__find_map_by_name(self.ptr, map_name.encode())
        if not ptr:
            raise BpfError(errno_mod.ENOENT, f"map {map_name} in {self.path.name}")
        ret = lib().c.bpf_map__set_pin_path(ptr, os.fsencode(path))
        if ret < 0:
            raise BpfError(_errno_of(ret), f"pin path of map {map_name}")

    def set_autoload(self, program: str, autoload: bool) -> None:
        prog = lib().c.bpf_object__find_program_by_name(self.ptr, program.encode())
        if not prog:
            raise BpfError(errno_mod.ENOENT, f"program {program} in {self.path.name}")
        lib().c.bpf_program__set_autoload(prog, autoload)

    def _fit_to_kernel(self) -> None:
        """fentry/fexit programs whose function this kernel knows by another name, and lsm
        programs on a hook this kernel does not have yet (kernel_compat)."""
        L = lib()
        prog = L.c.bpf_object__next_program(self.ptr, None)
        while prog:
            section = L.c.bpf_program__section_name(prog).decode()
            if L.c.bpf_program__autoload(prog) and left_out(section, L.functions.has):
                L.c.bpf_program__set_autoload(prog, False)
            function = traced_function(section)
            if function and L.c.bpf_program__autoload(prog):
                other = attach_target(function, L.functions.has)
                if other:
                    ret = L.c.bpf_program__set_attach_target(prog, 0, other.encode())
                    if ret < 0:
                        raise BpfError(_errno_of(ret), f"retarget of {function} to {other}")
            prog = L.c.bpf_object__next_program(self.ptr, prog)

    def load(self) -> None:
        L = lib()
        self._fit_to_kernel()
        with L.capture() as log:
            ret = L.c.bpf_object__load(self.ptr)
        if ret < 0:
            raise BpfError(_errno_of(ret), f"load of {self.path.name}", "\n".join(log))

    def attach(self, program: str) -> Link:
        L = lib()
        prog = L.c.bpf_object__find_program_by_name(self.ptr, program.encode())
        if not prog:
            raise BpfError(errno_mod.ENOENT, f"program {program} in {self.path.name}")
        with L.capture() as log:
            link = L.c.bpf_program__attach(prog)
        if not link:
            raise BpfError(_errno_of(), f"attach of {program}", "\n".join(log))
        result = Link(program, link)
        self.links.append(result)
        return result

    def attach_all(self) -> list[Link]:
        """Attach every program that was loaded (not those left out of the load)."""
        L = lib().c
        return [self.attach(name) for name in self.program_names()
                if L.bpf_program__autoload(L.bpf_object__find_program_by_name(self.ptr, name.encode()))]

    def detach_all(self) -> None:
        for link in self.links:
            link.destroy()
        self.links.clear()

    def map(self, name: str) -> Map:
        if name not in self._maps:
            ptr = lib().c.bpf_object__find_map_by_name(self.ptr, name.encode())
            if not ptr:
                raise BpfError(errno_mod.ENOENT, f"map {name} in {self.path.name}")
            self._maps[name] = Map(self, name, ptr)
        return self._maps[name]

    def close(self) -> None:
        if self._ptr is not None:
            self.detach_all()
            lib().c.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RingBuffer:
    """Polls one BPF_MAP_TYPE_RINGBUF map; `callback(bytes)` runs for every record."""

    def __init__(self, ring_map: Map, callback: Callable[[bytes], None]) -> None:
        self.map = ring_map
        self._callback = callback
        self._error: BaseException | None = None
        self._sample_cb = _SAMPLE_FN(self._on_sample)  # kept referenced while the buffer lives
        ptr = lib().c.ring_buffer__new(ring_map.fd, self._sample_cb, None, None)
        if not ptr:
            raise BpfError(_errno_of(), f"ring buffer on map {ring_map.name}")
        self._ptr: int | None = ptr

    def _on_sample(self, _ctx: int, data: int, size: int) -> int:
        try:
            self._callback(ctypes.string_at(data, size))
        except BaseException as exc:  # noqa: BLE001 - re-raised from poll(), not lost in C
            self._error = exc
            return -1
        return 0

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for records, deliver them; returns how many were delivered."""
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, "ring buffer is closed")
        ret = lib().c.ring_buffer__poll(self._ptr, timeout_ms)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret < 0 and -ret != errno_mod.EINTR:
            raise BpfError(-ret, f"poll of ring buffer {self.map.name}")
        return max(ret, 0)

    def fileno(self) -> int:
        """The ring buffer's epoll fd: readable when records are waiting (select/poll on it
        without holding the consumer's lock, then consume())."""
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, "ring buffer is closed")
        return lib().c.ring_buffer__epoll_fd(self._ptr)

    def consume(self) -> int:
        """Deliver every record already committed, without waiting; returns how many."""
        if self._ptr is None:
            raise BpfError(errno_mod.EBADF, "ring buffer is closed")
        ret = lib().c.ring_buffer__consume(self._ptr)
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        if ret < 0:
            raise BpfError(-ret, f"consume of ring buffer {self.map.name}")
        return ret

    def close(self) -> None:
        if self._ptr is not None:
            lib().c.ring_buffer__free(self._ptr)
            self._ptr = None
