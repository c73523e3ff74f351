"""bpf/include/d4c_abi.h and reference_agent/kernel/abi.py describe the same bytes: compared
against the BTF that clang emitted into bpf/build/file_hooks.bpf.o (runs on the host)."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import pytest

from reference_agent.kernel import abi
from reference_agent.kernel.support import bpf_object_path


@pytest.fixture(scope="module")
def btf_types() -> dict[str, dict]:
    obj = bpf_object_path("file_hooks")
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (scripts/bootstrap.sh installs it)")
    if not obj.is_file():
        pytest.skip(f"{obj} is missing: run `make -C bpf`")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(obj)], check=True, capture_output=True)
    types = json.loads(out.stdout)["types"]
    return {"by_id": {t["id"]: t for t in types}, "by_name": {t.get("name"): t for t in types if t.get("name")}}


def _size(btf: dict, type_id: int) -> int:
    t = btf["by_id"][type_id]
    if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
        return _size(btf, t["type_id"])
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _size(btf, t["type_id"])
    return t["size"]


@pytest.mark.parametrize("name", sorted(abi.STRUCTS))
def test_struct_layout_matches_header(btf_types, name):
    c_struct = btf_types["by_name"].get(name)
    assert c_struct is not None and c_struct["kind"] == "STRUCT", f"struct {name} not in the object's BTF"
    py = abi.STRUCTS[name]
    c_fields = [(m["name"], m["bits_offset"] // 8, _size(btf_types, m["type_id"])) for m in c_struct["members"]]
    py_fields = [(f, getattr(py, f).offset, getattr(py, f).size) for f, _ in py._fields_]
    assert py_fields == c_fields
    assert ctypes.sizeof(py) == c_struct["size"]


@pytest.mark.parametrize("name", sorted(abi.ENUMS) + ["d4c_limits"])
def test_enum_values_match_header(btf_types, name):
    c_enum = btf_types["by_name"].get(name)
    assert c_enum is not None and c_enum["kind"] == "ENUM", f"enum {name} not in the object's BTF"
    c_values = {v["name"]: v["val"] for v in c_enum["values"]}
    if name == "d4c_limits":
        py_values = dict(abi.LIMITS)
    else:
        py_values = {m.name: int(m.value) for m in abi.ENUMS[name]}
        if name == "d4c_file_op":
            py_values["D4C_FILE_OP_COUNT"] = abi.D4C_FILE_OP_COUNT
    assert py_values == c_values
