#!/usr/bin/env python3
"""Generate the Python mirror of the kernel/userspace contract from the objects' BTF.

    python3 abi_from_btf.py OUT.py OBJECT.bpf.o...      (run by `make`; bpftool on PATH)

Every `struct d4c_*` and `enum d4c_*` in the BTF that clang emitted into the objects becomes a
ctypes structure or an IntEnum in OUT.py, with the sizes and offsets the compiler chose: the
headers in include/ are the only place the contract is written. A type that two objects both
carry must be the same in both. The header conventions (d4c_abi.h): an enum named `*_limits`
holds plain constants, an enumerator named `*_COUNT` is a size, not a member.

The generated module checks itself on import (every size and offset against the BTF numbers
written into it), and this script imports it once before it replaces OUT, so a layout ctypes
cannot reproduce fails the build rather than a decode at run time.

Standard library only: the objects' build machine (deploy/Dockerfile's bpf stage) has python3
but none of the project's packages.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PREFIX = "d4c_"

# BTF integer (size, signed) -> ctypes type; `char` arrays are byte strings (c_char).
_INTS = {
    (1, False): "ctypes.c_uint8", (1, True): "ctypes.c_int8",
    (2, False): "ctypes.c_uint16", (2, True): "ctypes.c_int16",
    (4, False): "ctypes.c_uint32", (4, True): "ctypes.c_int32",
    (8, False): "ctypes.c_uint64", (8, True): "ctypes.c_int64",
}


class AbiError(Exception):
    """The objects' BTF cannot be mirrored (conflicting definitions, an unsupported type)."""


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # bytes
    size: int
    ctype: str  # Python expression of its ctypes type


@dataclass(frozen=True)
class Struct:
    name: str  # C name, e.g. d4c_file_event
    size: int
    fields: tuple[Field, ...]
    needs: tuple[str, ...]  # d4c structs it embeds


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[tuple[str, int], ...]


def btf_types(obj: Path) -> list[dict]:
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(obj)], check=True, capture_output=True)
    return json.loads(out.stdout)["types"]


def class_name(c_name: str) -> str:
    """d4c_file_event -> FileEvent."""
    return "".join(part.capitalize() for part in c_name.removeprefix(PREFIX).split("_"))


class _Reader:
    """The d4c_ types of one object's BTF."""

    def __init__(self, types: list[dict]) -> None:
        self.by_id = {t["id"]: t for t in types}
        self.types = types

    def _resolve(self, type_id: int) -> dict:
        t = self.by_id[type_id]
        while t["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT"):
            t = self.by_id[t["type_id"]]
        return t

    def size(self, type_id: int) -> int:
        t = self._resolve(type_id)
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * self.size(t["type_id"])
        return t["size"]

    def ctype(self, type_id: int, needs: list[str]) -> str:
        t = self._resolve(type_id)
        kind = t["kind"]
        if kind == "INT":
            if t.get("name") == "char":
                return "ctypes.c_char"
            return _INTS[(t["size"], t["encoding"] == "SIGNED")]
        if kind == "ENUM":
            return _INTS[(t["size"], t.get("encoding") == "SIGNED")]
        if kind == "ARRAY":
            return f"({self.ctype(t['type_id'], needs)} * {t['nr_elems']})"
        if kind == "STRUCT" and t.get("name", "").startswith(PREFIX):
            needs.append(t["name"])
            return class_name(t["name"])
        raise AbiError(f"cannot mirror a member of BTF kind {kind} ({t.get('name') or 'anonymous'})")

    def structs(self) -> list[Struct]:
        out = []
        for t in self.types:
            if t["kind"] != "STRUCT" or not t.get("name", "").startswith(PREFIX):
                continue
            needs: list[str] = []
            fields = []
            for m in t["members"]:
                if m.get("bitfield_size"):
                    raise AbiError(f"struct {t['name']}.{m['name']}: bit fields are not mirrored")
                fields.append(Field(m["name"], m["bits_offset"] // 8, self.size(m["type_id"]),
                                    self.ctype(m["type_id"], needs)))
            out.append(Struct(t["name"], t["size"], tuple(fields), tuple(needs)))
        return out

    def enums(self) -> list[Enum]:
        return [Enum(t["name"], tuple((v["name"], v["val"]) for v in t["values"]))
                for t in self.types if t["kind"] == "ENUM" and t.get("name", "").startswith(PREFIX)]


def collect(objects: list[Path]) -> tuple[list[Struct], list[Enum]]:
    """The union of the objects' d4c types; a name defined differently twice is an error."""
    structs: dict[str, Struct] = {}
    enums: dict[str, Enum] = {}
    for obj in objects:
        reader = _Reader(btf_types(obj))
        for kind, found, known in (("struct", reader.structs(), structs), ("enum", reader.enums(), enums)):
            for item in found:
                if item.name in known and known[item.name] != item:
                    raise AbiError(f"{kind} {item.name} differs between the objects ({obj})")
                known[item.name] = item
    return _dependency_order(structs), sorted(enums.values(), key=lambda e: e.name)


def _dependency_order(structs: dict[str, Struct]) -> list[Struct]:
    """Embedded structs before the structs that embed them (ctypes needs the class first)."""
    done: dict[str, Struct] = {}

    def visit(s: Struct) -> None:
        if s.name in done:
            return
        for name in s.needs:
            visit(structs[name])
        done[s.name] = s

    for name in sorted(structs):
        visit(structs[name])
    return list(done.values())


def _is_constants(enum: Enum) -> bool:
    return enum.name.endswith("_limits")


def render(structs: list[Struct], enums: list[Enum], sources: list[str]) -> str:
    lines = [
        f'"""GENERATED by bpf/abi_from_btf.py from the BTF of {", ".join(sources)}: do not edit.',
        "",
        "The contract is written in bpf/include/*.h; `make -C bpf` regenerates this file. Every",
        "size and offset below is checked against the BTF numbers on import.",
        '"""',
        "",
        "import ctypes",
        "import enum",
        "",
    ]
    constants: dict[str, int] = {}
    enum_names = []
    for e in enums:
        sizes = {n: v for n, v in e.values if _is_constants(e) or n.endswith("_COUNT")}
        constants.update(sizes)
        members = [(n, v) for n, v in e.values if n not in sizes]
        lines.append(f"# enum {e.name}")
        lines.extend(f"{n} = {v}" for n, v in sizes.items())
        if members:
            enum_names.append(e.name)
            lines.append(f"class {class_name(e.name)}(enum.IntEnum):")
            lines.extend(f"    {n} = {v}" for n, v in members)
        lines.append("")
    for s in structs:
        lines.append(f"class {class_name(s.name)}(ctypes.Structure):  # struct {s.name}")
        lines.append("    _fields_ = [")
        at = 0
        for f in s.fields:
            if f.offset > at:  # padding the compiler inserted where ctypes would not
                lines.append(f'        ("_pad_{at}", ctypes.c_uint8 * {f.offset - at}),')
            lines.append(f'        ("{f.name}", {f.ctype}),')
            at = f.offset + f.size
        if s.size > at:  # trailing padding, explicit: ctypes may not align the same way
            lines.append(f'        ("_pad_{at}", ctypes.c_uint8 * {s.size - at}),')
        lines.append("    ]")
        lines.append("")
    lines.append("STRUCTS = {" + ", ".join(f'"{s.name}": {class_name(s.name)}' for s in structs) + "}")
    lines.append("ENUMS = {" + ", ".join(f'"{n}": {class_name(n)}' for n in enum_names) + "}")
    lines.append("CONSTANTS = {" + ", ".join(f'"{n}": {n}' for n in constants) + "}")
    # (name, size, ((field, offset, size), ...)) as BTF says: checked below.
    layout = [(s.name, s.size, tuple((f.name, f.offset, f.size) for f in s.fields)) for s in structs]
    lines.append(f"BTF_LAYOUT = {layout!r}")
    lines += [
        "",
        "for _name, _size, _fields in BTF_LAYOUT:",
        "    _cls = STRUCTS[_name]",
        "    for _field, _offset, _fsize in _fields:",
        "        _got = getattr(_cls, _field)",
        "        if (_got.offset, _got.size) != (_offset, _fsize):",
        '            raise ImportError(f"{_name}.{_field}: ctypes puts it at {_got.offset}+{_got.size}, BTF at {_offset}+{_fsize}")',
        "    if ctypes.sizeof(_cls) != _size:",
        '        raise ImportError(f"{_name}: ctypes size {ctypes.sizeof(_cls)}, BTF size {_size}")',
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, objects = Path(argv[1]), [Path(a) for a in argv[2:]]
    try:
        structs, enums = collect(objects)
    except (AbiError, subprocess.CalledProcessError, OSError) as exc:
        print(f"abi_from_btf: {exc}", file=sys.stderr)
        return 1
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(structs, enums, [o.name for o in objects]))
    loader = importlib.machinery.SourceFileLoader("d4c_abi_check", str(tmp))
    try:
        loader.exec_module(importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader)))
    except ImportError as exc:
        print(f"abi_from_btf: {tmp}: {exc}", file=sys.stderr)
        return 1
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
