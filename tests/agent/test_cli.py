"""`d4c agent run` where no BPF LSM is needed: argument parsing, the located one-line errors
for bad configuration and policy files, and the BPF-LSM refusal (the host cannot load lsm
programs; a fake probe stands in for it so the test means the same on any machine)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from d4c.cli import build_parser
from reference_agent import cli

GOOD_POLICY = """file:
  selectors:
    - name: binDir
      operation: [createFile]
      targetFilePath: [/usr/bin/**]
  responses:
    - match: [binDir]
      actions: [alert, block]
"""


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, probe: str | None = "lockdown") -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "bpf_lsm_problem", lambda preload=None: probe)
    args = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = cli.run_agent_command(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_policy_is_required() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["agent", "run"])
    assert exc.value.code == 2


def test_arguments_parse(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["agent", "run", "--policy", "p.yaml", "--config", "c.yaml", "--output-dir", str(tmp_path)])
    assert (args.policy, args.config, args.output_dir) == ("p.yaml", "c.yaml", tmp_path)
    assert args.func is cli.run_agent_command


def test_no_bpf_lsm_is_one_line_and_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY)
    code, out, err = run(["agent", "run", "--policy", str(policy), "--output-dir", str(tmp_path / "o")],
                         monkeypatch, probe="an lsm program does not load here (bpf_object__load: Operation not permitted)")
    assert code == cli.EXIT_NO_BPF_LSM
    assert err == ("d4c agent: BPF LSM programs cannot be loaded here: an lsm program does not load here "
                   "(bpf_object__load: Operation not permitted)\n")
    assert out == ""
    assert not (tmp_path / "o" / ".ready").exists()


def test_invalid_policy_is_located_and_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY.replace("createFile", "createFiles"))
    code, out, err = run(["agent", "run", "--policy", str(policy)], monkeypatch)
    assert code == 1
    lines = err.splitlines()
    assert lines and all(line.startswith(f"{policy}:") for line in lines)
    assert f"{policy}:4:19: file.selectors[0].operation[0]:" in lines[0]


def test_missing_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(["agent", "run", "--policy", str(tmp_path / "none.yaml")], monkeypatch)
    assert (code, err) == (1, f"{tmp_path / 'none.yaml'}: cannot read policy: No such file or directory\n")


def test_bad_config_is_located_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY)
    config = tmp_path / "c.yaml"
    config.write_text("stdout: false\nnamespace: Bad-Name\n")
    code, _, err = run(["agent", "run", "--policy", str(policy), "--config", str(config)], monkeypatch)
    assert code == 2
    assert err.startswith(f"{config}:2:12: namespace: ") and err.count("\n") == 1


def test_enforcing_line_counts_file_and_process_selectors(tmp_path: Path) -> None:
    from reference_agent.policy import load_policy_text
    from reference_agent.reload import LoadedPolicy

    text = GOOD_POLICY + """process:
  selectors:
    - name: anyExec
      operation: [exec]
  responses:
    - match: [anyExec]
      actions: [log]
"""
    result = load_policy_text(text)
    assert result.policy is not None, result.errors
    line = cli.enforcing_line(LoadedPolicy(result.policy, tmp_path / "p.yaml", "d", 1), started=0.0)
    assert line.startswith(f"d4c agent: enforcing policy {tmp_path / 'p.yaml'} (1 file selectors, "
                           "1 process selectors) in ")


def test_real_probe_on_a_kernel_without_bpf_lsm_never_tracebacks(tmp_path: Path) -> None:
    """The whole command as a process: on a kernel that can enforce this would block forever,
    so it only runs where the probe says no (this project's host)."""
    reason = cli.bpf_lsm_problem()
    if reason is None:
        pytest.skip("this kernel can load BPF LSM programs")
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD_POLICY)
    proc = subprocess.run([sys.executable, "-m", "d4c", "agent", "run", "--policy", str(policy),
                           "--output-dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert proc.stderr == f"d4c agent: BPF LSM programs cannot be loaded here: {reason}\n"

