"""`d4c scenario new`: the scenario it writes lints and its engine part passes as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from conformance.lint import lint
from conformance.scaffold import concrete_path
from d4c.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_concrete_paths_match_their_patterns():
    assert concrete_path("/usr/bin/**") == "/usr/bin/a/b"
    assert concrete_path("/etc/*.conf") == "/etc/x.conf"
    assert concrete_path("/tmp/") == "/tmp"


def test_new_scenarios_from_the_librarys_policies_lint_and_pass(tmp_path, capsys):
    sources = sorted((ROOT / "scenarios").glob("*/*.yaml"))[::4]  # a spread of sections and conditions
    written = []
    for source in sources:
        policy = yaml.safe_load(source.read_text()).get("policy")
        if not policy:
            continue
        policy_file = tmp_path / f"{source.stem}.policy.yaml"
        policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
        out = tmp_path / "new" / f"new-{source.stem}.yaml"
        out.parent.mkdir(exist_ok=True)
        assert main(["scenario", "new", "--policy", str(policy_file), "-o", str(out)]) == 0
        written.append(out)
    assert len(written) >= 8
    problems, count = lint([tmp_path / "new"])
    assert count == len(written) and [p for p in problems if p.severity == "error"] == []
    assert main(["scenario", "new", "--policy", str(policy_file), "-o", str(written[-1])]) == 2  # never overwrites
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "conformance"),
                          "--target", "reference", "-m", "engine", "--library", str(tmp_path / "new")],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:]
    assert f"{len(written)} passed" in run.stdout


def test_an_invalid_policy_is_reported_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("file:\n  selectors:\n    - name: x\n      targetFilePath: [relative]\n  responses:\n    - match: [x]\n      actions: [log]\n")
    assert main(["scenario", "new", "--policy", str(bad)]) == 1
    assert f"{bad}:4:" in capsys.readouterr().err
