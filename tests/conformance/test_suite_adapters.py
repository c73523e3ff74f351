"""Adapter files and the BPF-LSM probe: one-line located errors, clear skip reasons."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from conformance import probe
from conformance.adapters.command import AdapterError, AgentProcess, AgentSpec, expand, load_adapter
from suite_run import FIXTURES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adapter.yaml"
    path.write_text(text)
    return path


def test_fixture_adapters_load() -> None:
    spec = load_adapter(FIXTURES / "adapters" / "fake-reload.yaml")
    assert spec.name == "fake-reload" and spec.evaluate is None
    assert spec.agent is not None and spec.agent.load_policy is not None and not spec.agent.requires_bpf_lsm
    assert spec.events is not None and spec.events.ndjson == "{events_dir}/{data_stream}.ndjson"
    assert spec.base_dir == (FIXTURES / "adapters").resolve()


@pytest.mark.parametrize("text, message", [
    ("name: x\n", "adapter.yaml:1:1: (adapter): give `evaluate` (engine tier) and/or `agent` (kernel tier)"),
    ("name: x\nevaluate: my-tool evaluate\n", "adapter.yaml:2:1: evaluate: must be a non-empty list of strings"),
    ("name: x\nagent: {start: [a]}\n", "adapter.yaml:2:1: agent: an agent needs `events:`"),
    ("name: x\nagent: {ready: {}}\nevents: {elasticsearch: true}\n", "adapter.yaml:2:1: agent: `start` is required"),
    ("name: x\nagent: {start: [a], ready: {delay: -1}}\nevents: {elasticsearch: true}\n",
     "adapter.yaml:2:29: agent.ready.delay: must be a non-negative number"),
    ("name: x\nagent: {start: [a]}\nevents: {ndjson: /tmp/events.ndjson}\n",
     "adapter.yaml:3:10: events.ndjson: the path template must contain {data_stream}"),
    ("name: x\nagent: {start: [a]}\nevents: {ndjson: '{data_stream}', elasticsearch: true}\n",
     "adapter.yaml:3:1: events: give exactly one of"),
    ("name: x\nevaluate: [a]\nextra: 1\n", "adapter.yaml:3:1: extra: unknown key"),
    ("name: [x\n", "adapter.yaml:2:1: YAML syntax"),
    ("name: x\nagent: {start: [a], loaded: {path: s}}\nevents: {elasticsearch: true}\n",
     "adapter.yaml:2:21: agent.loaded: only means something with `load_policy`"),
    ("name: x\nagent: {start: [a], load_policy: [b], loaded: {timeout: 3}}\nevents: {elasticsearch: true}\n",
     "adapter.yaml:2:39: agent.loaded: `path` is required"),
])
def test_bad_adapter_files_are_one_located_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AdapterError) as error:
        load_adapter(write(tmp_path, text))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_loaded_confirmation_is_read_from_the_adapter() -> None:
    spec = load_adapter(FIXTURES / "adapters" / "fake-confirm.yaml")
    assert spec.agent is not None
    assert spec.agent.loaded_path == "{workdir}/status" and spec.agent.loaded_timeout == 10.0


def _agent(tmp_path: Path, confirm: str) -> AgentProcess:
    """A load_policy command that writes `confirm` into the `loaded` file."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("file: {}\n")
    spec = AgentSpec(start=("true",), load_policy=("sh", "-c", f"printf %s '{confirm}' > {tmp_path}/status"),
                     loaded_path="{workdir}/status", loaded_timeout=0.5)
    return AgentProcess(spec, {"workdir": str(tmp_path), "policy": str(policy)})


def test_load_policy_returns_once_the_policy_digest_is_shown(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"file: {}\n").hexdigest()
    _agent(tmp_path, f"1234 2 {digest} /x").load_policy()  # returns: confirmed


def test_load_policy_not_confirmed_is_an_adapter_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match=r"policy not confirmed: .*status did not show its SHA-256"):
        _agent(tmp_path, "1234 1 0000 /x").load_policy()


def test_placeholders_expand_known_names_only() -> None:
    assert expand("{python} --policy {policy} {other}", {"python": "/py", "policy": "/p.yaml"}) == \
        "/py --policy /p.yaml {other}"


@pytest.fixture
def lsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    probe.bpf_lsm_missing.cache_clear()
    lsm_file = tmp_path / "lsm"
    monkeypatch.setattr(probe, "LSM_FILE", lsm_file)
    yield lsm_file
    probe.bpf_lsm_missing.cache_clear()


def test_probe_without_securityfs(lsm: Path) -> None:
    assert "no BPF-LSM kernel: cannot read" in probe.bpf_lsm_missing()


def test_probe_bpf_not_an_active_lsm(lsm: Path) -> None:
    lsm.write_text("lockdown,capability,yama,apparmor\n")
    assert "`bpf` is not among the active LSMs (lockdown,capability,yama,apparmor)" in probe.bpf_lsm_missing()


def test_probe_bpf_listed_but_programs_cannot_load(lsm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lsm.write_text("lockdown,capability,bpf\n")
    monkeypatch.setattr(probe.shutil, "which", lambda name: "/usr/sbin/bpftool")
    monkeypatch.setattr(probe.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "eBPF program_type lsm is NOT available\n", ""))
    assert "BPF LSM programs cannot be loaded here" in probe.bpf_lsm_missing()


def test_probe_bpf_lsm_usable(lsm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lsm.write_text("lockdown,capability,bpf\n")
    monkeypatch.setattr(probe.shutil, "which", lambda name: "/usr/sbin/bpftool")
    monkeypatch.setattr(probe.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "eBPF program_type lsm is available\n", ""))
    assert probe.bpf_lsm_missing() is None


def test_reference_agent_contract_for_the_kernel_tier() -> None:
    # What `d4c agent run` must accept: docs/scenarios.md "The reference agent's
    # kernel-tier contract". The agent writes <output dir>/.ready and <data stream>.ndjson there.
    from conformance.adapters import reference

    spec = reference.agent_adapter()
    assert spec.agent is not None and spec.events is not None
    assert spec.agent.start[1:] == ("agent", "run", "--policy", "{policy}", "--output-dir", "{events_dir}")
    assert spec.agent.ready_path == "{events_dir}/.ready"
    assert spec.agent.requires_bpf_lsm and spec.agent.stop_signal == "TERM"
    assert spec.events.ndjson == "{events_dir}/{data_stream}.ndjson"
