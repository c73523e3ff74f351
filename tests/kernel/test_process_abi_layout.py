"""bpf/include/d4c_process_abi.h and reference_agent/kernel/process_abi.py describe the same
bytes: compared against the BTF that clang emitted into bpf/build/process_hooks.bpf.o (host)."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import pytest

from reference_agent.kernel import abi, process_abi
from reference_agent.kernel.support import bpf_object_path

from .test_abi_layout import _size


@pytest.fixture(scope="module")
def btf_types() -> dict[str, dict]:
    obj = bpf_object_path("process_hooks")
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (scripts/bootstrap.sh installs it)")
    if not obj.is_file():
        pytest.skip(f"{obj} is missing: run `make -C bpf`")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(obj)], check=True, capture_output=True)
    types = json.loads(out.stdout)["types"]
    return {"by_id": {t["id"]: t for t in types}, "by_name": {t.get("name"): t for t in types if t.get("name")}}


SHARED = {"d4c_path_pattern": abi.PathPattern, "d4c_response": abi.Response,
          "d4c_container_selectors": abi.ContainerSelectors}


@pytest.mark.parametrize("name", sorted(process_abi.STRUCTS) + sorted(SHARED))
def test_struct_layout_matches_header(btf_types, name):
    c_struct = btf_types["by_name"].get(name)
    assert c_struct is not None and c_struct["kind"] == "STRUCT", f"struct {name} not in the object's BTF"
    py = process_abi.STRUCTS.get(name) or SHARED[name]
    c_fields = [(m["name"], m["bits_offset"] // 8, _size(btf_types, m["type_id"])) for m in c_struct["members"]]
    py_fields = [(f, getattr(py, f).offset, getattr(py, f).size) for f, _ in py._fields_]
    assert py_fields == c_fields
    assert ctypes.sizeof(py) == c_struct["size"]


@pytest.mark.parametrize("name", sorted(process_abi.ENUMS) + ["d4c_process_limits"])
def test_enum_values_match_header(btf_types, name):
    c_enum = btf_types["by_name"].get(name)
    assert c_enum is not None and c_enum["kind"] == "ENUM", f"enum {name} not in the object's BTF"
    c_values = {v["name"]: v["val"] for v in c_enum["values"]}
    if name == "d4c_process_limits":
        py_values = dict(process_abi.LIMITS)
    else:
        py_values = {m.name: int(m.value) for m in process_abi.ENUMS[name]}
        if name == "d4c_process_op":
            py_values["D4C_PROCESS_OP_COUNT"] = process_abi.D4C_PROCESS_OP_COUNT
    assert py_values == c_values


def test_every_hook_has_a_trace_point_name():
    assert set(process_abi.TRACE_POINTS) == set(process_abi.ProcessHook)
