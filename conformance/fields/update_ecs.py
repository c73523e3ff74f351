"""Refresh ecs_flat.json, the suite's pinned copy of the ECS flat schema, from npm @elastic/ecs.

    python3 -m conformance.fields.update_ecs [VERSION]     # default: the version pinned now

The npm package ships the schema only as JavaScript (EcsFlat in build/commonjs/ecs_flat.js),
so `npm pack` fetches it and `node` evaluates it; both come with Debian's `npm` package.
Only what the checker uses is kept: type, whether ECS normalizes the field to an array, and the
allowed values of the categorization fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINNED = HERE / "ecs_flat.json"
CATEGORIZATION = ("event.kind", "event.category", "event.type", "event.outcome")


def reduce_schema(flat: dict, version: str) -> dict:
    fields = {}
    for name, spec in sorted(flat.items()):
        entry = {"type": spec["type"]}
        if "array" in spec.get("normalize", []):
            entry["array"] = True
        if name in CATEGORIZATION and spec.get("allowed_values"):
            entry["allowed"] = sorted(v["name"] for v in spec["allowed_values"])
        fields[name] = entry
    return {"source": f"npm @elastic/ecs {version} (build/commonjs/ecs_flat.js)", "version": version,
            "fields": fields}


def dump(schema: dict) -> str:
    """One field a line, so an ECS update reads as a diff of the fields it changed."""
    head = {k: v for k, v in schema.items() if k != "fields"}
    lines = [json.dumps(name) + ": " + json.dumps(spec, sort_keys=True) for name, spec in schema["fields"].items()]
    return (json.dumps(head, sort_keys=True)[:-1] + ', "fields": {\n' + ",\n".join(lines) + "\n}}\n")


def fetch(version: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", f"@elastic/ecs@{version}"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as archive:
            archive.extractall(tmp, filter="data")
        script = Path(tmp) / "package/build/commonjs/ecs_flat.js"
        out = subprocess.run(["node", "-e", f"process.stdout.write(JSON.stringify(require({json.dumps(str(script))}).EcsFlat))"],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv: list[str]) -> int:
    version = argv[0] if argv else json.loads(PINNED.read_text())["version"]
    try:
        schema = reduce_schema(fetch(version), version)
    except (OSError, subprocess.CalledProcessError, StopIteration) as error:
        print(f"update_ecs: cannot fetch @elastic/ecs@{version}: {error}", file=sys.stderr)
        return 1
    PINNED.write_text(dump(schema))
    print(f"{PINNED}: ECS {version}, {len(schema['fields'])} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
