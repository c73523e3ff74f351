"""Run `pytest conformance/` as users do, and read its outcomes from the results JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MUTANT = Path(__file__).resolve().parent / "mutants" / "evaluate.py"


@dataclass(frozen=True)
class SuiteRun:
    returncode: int
    output: str
    outcomes: dict[str, str]  # "<scenario id>[<tier>]" -> passed | failed | skipped

    def ids(self, outcome: str, tier: str | None = None) -> set[str]:
        return {k.split("[")[0] for k, v in self.outcomes.items() if v == outcome and (tier is None or k.endswith(f"[{tier}]"))}


def suite_command(report: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "conformance/", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--conformance-report", str(report), "--library", "none", *args]


def collect(done: subprocess.CompletedProcess, report: Path) -> SuiteRun:
    results = list(report.glob("results-*.json"))
    outcomes: dict[str, str] = {}
    for path in results:
        for r in json.loads(path.read_text())["results"]:
            outcomes[f"{r['id']}[{r['tier']}]"] = r["outcome"]
    return SuiteRun(done.returncode, done.stdout + done.stderr, outcomes)


