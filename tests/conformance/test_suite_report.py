"""The conformance matrix: clause x target cells, every clause listed, runs accumulate per target."""

from __future__ import annotations

import re
from pathlib import Path

from conformance import report
from suite_run import FIXTURES

ENGINE = FIXTURES / "engine"


def outcome(sid: str, tier: str, outcome: str, spec: list[str]) -> dict:
    return {"id": sid, "tier": tier, "spec": spec, "path": f"{sid}.yaml", "outcome": outcome, "detail": ""}


def test_two_targets_two_columns_and_cell_values(tmp_path: Path) -> None:
    report.write(tmp_path, "engine:d4c", [
        outcome("fx-union", "engine", "passed", ["D22"]),
        outcome("fx-exclude-wins", "engine", "failed", ["D22", "seed.responses"]),
    ], [ENGINE])
    written = report.write(tmp_path, "command:fake", [
        outcome("fx-union", "engine", "skipped", ["D22"]),
    ], [ENGINE])
    md = written[0].read_text()
    assert "| Clause | Section | Title | Pinned by | `command:fake` | `engine:d4c` |" in md
    row = next(line for line in md.splitlines() if line.startswith("| D22 |"))
    assert row.endswith("| skip 1 | FAIL 1/2 |")
    assert "fx-exclude-wins, fx-union" in row  # pinned by, from the scenario files themselves
    assert re.search(r"^\| D10 \| .* \| fx-labels-all-required \| — \| — \|$", md, re.M)
    assert re.search(r"^\| D1 \| .* \| \*\*UNPINNED\*\* \|", md, re.M)
    # seed conditions are pinned by the policies that use them
    assert re.search(r"^\| seed\.conditions\.file\.ignoreVolumeMounts \| .* \| fx-volume-ignored \|", md, re.M)
    assert "| fx-union | engine | skipped | passed |" in md
    html = written[1].read_text()
    assert '<td class="fail">FAIL 1/2</td>' in html and '<b class="unpinned">UNPINNED</b>' in html
    assert sorted(p.name for p in tmp_path.glob("results-*.json")) == ["results-command_fake.json",
                                                                      "results-engine_d4c.json"]
