"""The conformance matrix: spec clause x target -> pass / FAIL / skip, in Markdown and HTML.

Each run writes `results-<target>.json` into the report directory, then the matrix is rendered
from every results file there, so running the suite once per target fills one column each.
Every clause of the catalog (D1..D33 and the seed's conditions) is a row, with the scenarios
that pin it; a clause no scenario pins is flagged.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path
from typing import Any

from conformance import catalog, loader


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "target"


def pins(scenario_paths: list[Path]) -> dict[str, list[str]]:
    """clause id -> ids of the (loadable) scenarios whose `spec` lists it."""
    pinned: dict[str, list[str]] = {}
    for path in loader.discover(scenario_paths):
        try:
            scenario = loader.load(path)
        except loader.ScenarioError:
            continue
        for tag in loader.all_tags(scenario):
            pinned.setdefault(tag, []).append(scenario.id)
    return {tag: sorted(ids) for tag, ids in pinned.items()}


def cell(results: list[dict[str, Any]]) -> str:
    if not results:
        return "—"
    counts = {o: sum(1 for r in results if r["outcome"] == o) for o in ("passed", "failed", "skipped")}
    if counts["failed"]:
        return f"FAIL {counts['failed']}/{len(results)}"
    if counts["passed"]:
        extra = f" ({counts['skipped']} skip)" if counts["skipped"] else ""
        return f"pass {counts['passed']}{extra}"
    return f"skip {counts['skipped']}"


def write(directory: Path, target: str, outcomes: list[dict[str, Any]], scenario_paths: list[Path]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    results_file = directory / f"results-{_slug(target)}.json"
    results_file.write_text(json.dumps({
        "target": target,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": sorted(outcomes, key=lambda r: (r["id"], r["tier"])),
    }, indent=1))
    runs = []
    for path in sorted(directory.glob("results-*.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    pinned = pins(scenario_paths)
    rows = build_rows(pinned, runs)
    md, page = directory / "conformance.md", directory / "conformance.html"
    md.write_text(markdown(rows, runs))
    page.write_text(render_html(rows, runs))
    return [md, page, results_file]


def build_rows(pinned: dict[str, list[str]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clauses = list(catalog.CLAUSES) + [
        catalog.Clause(tag, catalog.section_of(tag), "(not in the clause catalog)")
        for tag in sorted(pinned) if tag not in catalog.BY_ID
    ]
    rows = []
    for clause in clauses:
        scenario_ids = pinned.get(clause.id, [])
        cells = []
        for run in runs:
            hits = [r for r in run["results"] if clause.id in r.get("spec", [])]
            cells.append(cell(hits))
        rows.append({"clause": clause, "scenarios": scenario_ids, "cells": cells})
    return rows


def markdown(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    targets = [run["target"] for run in runs]
    out = ["# D4C conformance matrix", ""]
    out.append("Each cell: the outcomes of the scenarios that pin the clause, on that target "
               "(`FAIL f/n`, `pass n`, `skip n`, `—` = none ran). Rows with **UNPINNED** have no scenario.")
    out.append("")
    for run in runs:
        counts = {o: sum(1 for r in run["results"] if r["outcome"] == o) for o in ("passed", "failed", "skipped")}
        out.append(f"- `{run['target']}` ({run.get('finished', '?')}): {counts['passed']} passed, "
                   f"{counts['failed']} failed, {counts['skipped']} skipped")
    unpinned = [r["clause"].id for r in rows if not r["scenarios"]]
    out += ["", f"Clauses pinned by no scenario: {', '.join(unpinned) if unpinned else 'none'}", ""]
    out.append("| Clause | Section | Title | Pinned by | " + " | ".join(f"`{t}`" for t in targets) + " |")
    out.append("|---|---|---|---|" + "---|" * len(targets))
    for row in rows:
        clause = row["clause"]
        pinned = ", ".join(row["scenarios"]) if row["scenarios"] else "**UNPINNED**"
        out.append(f"| {clause.id} | {clause.section} | {clause.title} | {pinned} | " + " | ".join(row["cells"]) + " |")
    out += ["", "## Scenarios", ""]
    out.append("| Scenario | Tier | " + " | ".join(f"`{t}`" for t in targets) + " |")
    out.append("|---|---|" + "---|" * len(targets))
    keys = sorted({(r["id"], r["tier"]) for run in runs for r in run["results"]})
    for sid, tier in keys:
        cells = []
        for run in runs:
            hit = next((r for r in run["results"] if (r["id"], r["tier"]) == (sid, tier)), None)
            cells.append(hit["outcome"] if hit else "—")
        out.append(f"| {sid} | {tier} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def render_html(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> str:
    targets = [run["target"] for run in runs]
    esc = html.escape

    def td(text: str) -> str:
        cls = "fail" if text.startswith("FAIL") else "pass" if text.startswith("pass") else "skip" if text.startswith("skip") else "none"
        return f'<td class="{cls}">{esc(text)}</td>'

    body = []
    for row in rows:
        clause = row["clause"]
        pinned = esc(", ".join(row["scenarios"])) if row["scenarios"] else '<b class="unpinned">UNPINNED</b>'
        body.append(f"<tr><td>{esc(clause.id)}</td><td>{esc(clause.section)}</td><td>{esc(clause.title)}</td>"
                    f"<td>{pinned}</td>{''.join(td(c) for c in row['cells'])}</tr>")
    head = "".join(f"<th>{esc(t)}</th>" for t in targets)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>D4C conformance matrix</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; font-size: 90%; }}
.pass {{ background: #d9f2d9; }} .fail {{ background: #f8d0d0; font-weight: bold; }}
.skip {{ background: #eee; }} .unpinned {{ color: #b00; }}
</style></head><body>
<h1>D4C conformance matrix</h1>
<p>Clause &times; target: outcomes of the scenarios pinning each clause.</p>
<table><thead><tr><th>Clause</th><th>Section</th><th>Title</th><th>Pinned by</th>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
