"""The Python mirror of the contract is the objects' own: every `struct d4c_*` and `enum d4c_*`
in the BTF of each object in bpf/build has the same size, field offsets and values in the
generated module (a mirror older than the objects, or a generator bug, fails here), and the
generator refuses what it cannot mirror (runs on the host)."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reference_agent.kernel import abi
from reference_agent.kernel.support import bpf_object_path

GENERATOR = Path(__file__).resolve().parents[2] / "bpf" / "abi_from_btf.py"
OBJECTS = ("abi", "file_hooks", "process_hooks", "file_hooks.v510", "process_hooks.v510")


def _generator():
    spec = importlib.util.spec_from_file_location("abi_from_btf", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules["abi_from_btf"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gen = _generator()


@pytest.fixture(scope="module", params=OBJECTS)
def btf(request) -> dict[str, dict]:
    obj = bpf_object_path(request.param)
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (scripts/bootstrap.sh installs it)")
    if not obj.is_file():
        pytest.skip(f"{obj} is missing: run `make -C bpf`")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(obj)], check=True, capture_output=True)
    types = json.loads(out.stdout)["types"]
    return {"by_id": {t["id"]: t for t in types}, "types": types, "object": request.param}


def _size(btf: dict, type_id: int) -> int:
    t = btf["by_id"][type_id]
    if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
        return _size(btf, t["type_id"])
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _size(btf, t["type_id"])
    return t["size"]


def test_every_struct_of_the_object_is_mirrored_with_its_layout(btf):
    structs = [t for t in btf["types"] if t["kind"] == "STRUCT" and t.get("name", "").startswith("d4c_")]
    assert structs or btf["object"] != "abi"
    for c_struct in structs:
        py = abi.STRUCTS[c_struct["name"]]
        c_fields = [(m["name"], m["bits_offset"] // 8, _size(btf, m["type_id"])) for m in c_struct["members"]]
        py_fields = [(f, getattr(py, f).offset, getattr(py, f).size) for f, _ in py._fields_ if not f.startswith("_pad")]
        assert py_fields == c_fields, c_struct["name"]
        assert ctypes.sizeof(py) == c_struct["size"], c_struct["name"]


def test_every_enum_of_the_object_is_mirrored_with_its_values(btf):
    enums = [t for t in btf["types"] if t["kind"] == "ENUM" and t.get("name", "").startswith("d4c_")]
    assert enums or btf["object"] != "abi"
    for c_enum in enums:
        for value in c_enum["values"]:
            name, val = value["name"], value["val"]
            if c_enum["name"].endswith("_limits") or name.endswith("_COUNT"):
                assert abi.CONSTANTS[name] == val
            else:
                assert int(abi.ENUMS[c_enum["name"]][name]) == val


def test_the_words_of_the_enumerators():
    assert abi.FILE_OP_BITS["createExecutable"] == abi.FileOp.D4C_OP_CREATE_EXECUTABLE
    assert abi.PROCESS_OP_BITS == {"fork": abi.ProcessOp.D4C_OP_FORK, "exec": abi.ProcessOp.D4C_OP_EXEC,
                                   "execMemFd": abi.ProcessOp.D4C_OP_EXEC_MEM_FD}
    assert abi.MOUNT_NAMES == {0: "root", 1: "volume", 2: "file"}
    assert set(abi.ACTION_BITS) == {"log", "alert", "block"}


def _btf_struct(type_id, name, size, members):
    return {"id": type_id, "kind": "STRUCT", "name": name, "size": size,
            "members": [{"name": n, "type_id": t, "bits_offset": o * 8} for n, t, o in members]}


INT32 = {"id": 1, "kind": "INT", "name": "unsigned int", "size": 4, "encoding": "(none)"}
INT64 = {"id": 2, "kind": "INT", "name": "unsigned long long", "size": 8, "encoding": "(none)"}
CHAR = {"id": 3, "kind": "INT", "name": "char", "size": 1, "encoding": "SIGNED"}
CHARS = {"id": 4, "kind": "ARRAY", "type_id": 3, "nr_elems": 6}


def test_generator_mirrors_nesting_arrays_padding_and_constants(tmp_path, monkeypatch):
    inner = _btf_struct(10, "d4c_inner", 8, [("a", 1, 0)])
    # `b` at 16, not 12: a padding ctypes would not insert (e.g. an aligned attribute in C).
    outer = _btf_struct(11, "d4c_outer", 32, [("in", 10, 0), ("x", 1, 8), ("b", 2, 16), ("name", 4, 24)])
    limits = {"id": 12, "kind": "ENUM", "name": "d4c_limits", "size": 4, "values": [{"name": "D4C_N", "val": 6}]}
    colour = {"id": 13, "kind": "ENUM", "name": "d4c_colour", "size": 4,
              "values": [{"name": "D4C_RED", "val": 1}, {"name": "D4C_COLOUR_COUNT", "val": 1}]}
    monkeypatch.setattr(gen, "btf_types", lambda obj: [INT32, INT64, CHAR, CHARS, outer, inner, limits, colour])
    out = tmp_path / "mirror.py"
    assert gen.main(["abi_from_btf.py", str(out), "x.bpf.o"]) == 0
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    outer_cls = namespace["Outer"]
    assert (outer_cls.b.offset, outer_cls.name.size, ctypes.sizeof(outer_cls)) == (16, 6, 32)
    assert namespace["Outer"].__dict__["in"].offset == 0
    assert (namespace["D4C_N"], namespace["D4C_COLOUR_COUNT"], list(namespace["Colour"])) == (6, 1, [namespace["Colour"].D4C_RED])


def test_generator_refuses_two_objects_that_disagree(tmp_path, monkeypatch):
    versions = iter([[INT32, _btf_struct(10, "d4c_a", 4, [("x", 1, 0)])],
                     [INT32, _btf_struct(10, "d4c_a", 8, [("x", 1, 0), ("y", 1, 4)])]])
    monkeypatch.setattr(gen, "btf_types", lambda obj: next(versions))
    out = tmp_path / "mirror.py"
    assert gen.main(["abi_from_btf.py", str(out), "one.bpf.o", "two.bpf.o"]) == 1
    assert not out.exists()
