"""Which build of the BPF objects the running kernel gets (bpf/README.md, "Kernel variants"):
the v510 build exactly on kernels before 5.19 (and the agent says so when it starts), the
v610 build on 6.10 and later, the default build in between."""

from __future__ import annotations

import os
import re

from reference_agent.kernel import kernel_compat
from reference_agent.kernel.libbpf import BpfObject, lib
from reference_agent.kernel.support import bpf_object_path
from .running_agent import start_agent

POLICY_YAML = """\
file:
  selectors:
    - name: srv-creates
      operation: [createFile]
      targetFilePath: [/srv/**]
  responses:
    - match: [srv-creates]
      actions: [alert]
"""


def _release() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", os.uname().release).groups()
    return int(major), int(minor)


def _expected_build(name: str) -> str:
    release = _release()
    if release < (5, 19):
        return f"{name}.v510.bpf.o"
    if release >= (6, 10):
        return f"{name}.v610.bpf.o"
    return f"{name}.bpf.o"


def test_each_kernel_gets_the_build_of_its_release_and_it_loads(bpf_lsm):
    missing = lib().missing_features()
    assert bool(missing) == (_release() < (5, 19)), f"kernel {os.uname().release}: probed as lacking {missing}"
    for name in kernel_compat.VARIANT_OBJECTS:
        path = bpf_object_path(name)
        assert path.name == _expected_build(name)
        with BpfObject(path) as obj:  # the chosen build loads and attaches here
            obj.load()
            obj.attach_all()


def test_the_agent_says_at_start_which_build_it_loads(bpf_lsm, tmp_path):
    events = tmp_path / "events"
    agent = start_agent(tmp_path, POLICY_YAML, "", events)
    # Read while it enforces: the notice comes before the policy is loaded.
    stderr = agent.log.read_text()  # type: ignore[attr-defined]
    agent.kill()
    agent.wait()
    notices = [line for line in stderr.splitlines() if "loading the v510 objects" in line]
    if _release() < (5, 19):
        assert len(notices) == 1, stderr
        assert "bpf_loop (5.17)" in notices[0] or "path_rename flags (5.19)" in notices[0]
        assert "security_path_rename" in notices[0]  # what differs is said, not only that
    else:
        assert notices == [], stderr
