"""`d4c scenario lint`: every problem of every scenario file, located at file:line:column.

Beyond the loader's structural checks, lint asks the policy language itself: each embedded
policy goes through the policy validator and each operation through the operation parser,
and their findings are reported at the scenario file's own lines. The language is reached
through the reference adapter (the only door to reference_agent); when that cannot be
imported, `d4c policy validate` is run as a subprocess instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

import d4c_yaml

from conformance import catalog, yamlpos
from conformance.adapters import reference
from conformance.loader import Problem, discover, parse


def lint(paths: Iterable[Path]) -> tuple[list[Problem], int]:
    """(problems, number of files checked)."""
    files = discover(paths)
    problems: list[Problem] = []
    ids: dict[str, Path] = {}
    use_reference = reference.unavailable_reason() is None
    for path in files:
        doc, found = parse(path)
        problems += found
        if doc.data is None or not isinstance(doc.data, dict):
            continue
        data = doc.data
        scenario_id = data.get("id")
        if isinstance(scenario_id, str):
            if scenario_id in ids:
                line, column = doc.position(("id",))
                problems.append(Problem(path, line, column, f"id: {scenario_id!r} is also the id of {ids[scenario_id]}"))
            ids.setdefault(scenario_id, path)
        spec = data.get("spec")
        for index, tag in enumerate(spec if isinstance(spec, list) else []):  # else: a schema error
            if isinstance(tag, str) and catalog.TAG_PATTERN.match(tag) and tag not in catalog.BY_ID:
                line, column = doc.position(("spec", index))
                problems.append(Problem(path, line, column,
                                        f"spec[{index}]: {tag!r} is not in the clause catalog (conformance/catalog.py)",
                                        "warning"))
        if any(p.severity == "error" and p.path == path for p in found):
            continue  # the language checks assume a structurally sound file
        problems += _policy_problems(path, doc, use_reference)
        problems += _operation_problems(path, doc, use_reference)
    order = {path: index for index, path in enumerate(files)}
    problems.sort(key=lambda p: (order.get(p.path, -1), p.line, p.column))
    return problems, len(files)


def _policy_problems(path: Path, doc: yamlpos.Located, use_reference: bool) -> list[Problem]:
    data = doc.data
    if "policy" in data:
        node = doc.node_at(("policy",))
        if use_reference:
            findings = reference.validate_policy_node(node, "policy")
            return [_finding(path, doc, f) for f in findings]
        return _validate_by_cli(path, doc, yamlpos_dump(data["policy"]), inline=True)
    policy_path = (path.parent / data["policy_file"]).resolve()
    text = policy_path.read_text(encoding="utf-8")
    line, column = doc.position(("policy_file",))
    if use_reference:
        found = []
        for f in reference.validate_policy_text(text):
            where = f"{policy_path}:{f.line or '?'}:{f.column or '?'}"
            found.append(Problem(path, line, column,
                                 f"policy_file: {where}: {f.path or '(policy)'}: {f.message} [{f.code}]", f.severity))
        return found
    return _validate_by_cli(path, doc, text, inline=False)


def _finding(path: Path, doc: yamlpos.Located, f: reference.Finding) -> Problem:
    if f.line is None:
        line, column = doc.position(_path_tuple(f.path))
    else:
        line, column = f.line, f.column or 1
    return Problem(path, line, column, f"{f.path or 'policy'}: {f.message} [{f.code}]", f.severity)


def yamlpos_dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def _validate_by_cli(path: Path, doc: yamlpos.Located, text: str, inline: bool) -> list[Problem]:
    """Fallback through the CLI contract; lines of a temporary file cannot be mapped back, so
    findings are placed by their policy path in the scenario."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        done = subprocess.run([sys.executable, "-m", "d4c", "policy", "validate", handle.name, "--format", "json"],
                              capture_output=True, text=True, timeout=120)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        line, column = doc.position(("policy",) if inline else ("policy_file",))
        return [Problem(path, line, column, f"policy: `d4c policy validate` failed: {done.stderr.strip()[:300]}")]
    problems = []
    for severity, key in (("error", "errors"), ("warning", "warnings")):
        for d in result.get(key, []):
            where = ("policy",) + _path_tuple(d["path"]) if inline else ("policy_file",)
            line, column = doc.position(where)
            problems.append(Problem(path, line, column, f"policy.{d['path']}: {d['message']} [{d['code']}]", severity))
    return problems


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _path_tuple(dotted: str) -> tuple:
    return tuple(int(index) if index else name for name, index in _PART.findall(dotted))


def _operation_problems(path: Path, doc: yamlpos.Located, use_reference: bool) -> list[Problem]:
    data = doc.data
    problems = []
    policy = data.get("policy")
    if "policy_file" in data:
        try:
            policy = d4c_yaml.load(d4c_yaml.decode((path.parent / data["policy_file"]).read_bytes()))
        except (OSError, d4c_yaml.YamlError):
            policy = None  # already reported by the policy check
    selectors = _selector_names(policy) if isinstance(policy, dict) else None
    for index, op in enumerate(data.get("operations") or []):
        where = f"operations[{index}].input"
        if use_reference:
            message = reference.parse_operation(op["input"], where)
            if message:
                located = _path_tuple(message.split(":", 1)[0])
                line, column = doc.position(located)
                problems.append(Problem(path, line, column, message))
        kind = op["input"].get("kind")
        if selectors is not None and kind in selectors:
            for s_index, name in enumerate(op["expect"]["matched_selectors"]):
                if name not in selectors[kind]:
                    line, column = doc.position(("operations", index, "expect", "matched_selectors", s_index))
                    problems.append(Problem(path, line, column,
                                            f"operations[{index}].expect.matched_selectors[{s_index}]: "
                                            f"the policy has no {kind} selector named {name!r}"))
    for stream, entries in ((data.get("expect") or {}).get("events") or {}).items():
        for e_index, entry in enumerate(entries):
            names = entry.get("cloud_defend.matched_selectors")
            if selectors is None or not isinstance(names, list):
                continue
            known = selectors["file"] | selectors["process"]
            for s_index, name in enumerate(names):
                if name not in known:
                    where = ("expect", "events", stream, e_index, "cloud_defend.matched_selectors", s_index)
                    line, column = doc.position(where)
                    problems.append(Problem(path, line, column, f"{yamlpos.dotted(where)}: the policy has no "
                                                                f"selector named {name!r}"))
    return problems


def _selector_names(policy: dict) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for section in ("file", "process"):
        body = policy.get(section)
        selectors = body.get("selectors") if isinstance(body, dict) else None
        names[section] = {s.get("name") for s in selectors if isinstance(s, dict)} if isinstance(selectors, list) else set()
    return names
