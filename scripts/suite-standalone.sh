#!/usr/bin/env bash
# The conformance suite as its own distribution (suite/pyproject.toml): build its wheel, install
# it alone into an empty venv, show that reference_agent cannot be imported there, then run the
# shipped library's engine tier from /tmp against `d4c policy evaluate` of this checkout.
# Usage: scripts/suite-standalone.sh [WORKDIR]   (default: a fresh temporary directory)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/d4c-suite.XXXXXX)}"
mkdir -p "$work"
stage="$work/stage" venv="$work/venv" wheels="$work/wheels"
rm -rf "$stage" "$venv" "$wheels"

echo "== stage suite/ + conformance/ + d4c_yaml/ + scenarios/ (as conformance/library/) in $stage"
mkdir -p "$stage"
cp "$repo/suite/pyproject.toml" "$repo/suite/README.md" "$stage/"
cp -r "$repo/conformance" "$stage/conformance"
cp -r "$repo/d4c_yaml" "$stage/d4c_yaml"
cp -r "$repo/scenarios" "$stage/conformance/library"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +

echo "== build the wheel (setuptools from PyPI, in pip's isolated build environment)"
python3 -m pip wheel -q --no-deps -w "$wheels" "$stage"
wheel="$(ls "$wheels"/d4c_conformance_suite-*.whl)"
if python3 -m zipfile -l "$wheel" | grep -q 'reference_agent/'; then
    echo "suite-standalone: $wheel contains reference_agent" >&2; exit 1
fi

echo "== an empty venv with only the suite (and its dependencies from PyPI)"
python3 -m venv "$venv"
# The checkout must not leak into the venv's interpreter (`python -c` puts the cwd on sys.path).
unset PYTHONPATH
cd /tmp
"$venv/bin/python" -m pip install -q "$wheel"
if "$venv/bin/python" -c 'import reference_agent' 2>/dev/null; then
    echo "suite-standalone: reference_agent is importable in the suite's venv" >&2; exit 1
fi
echo "reference_agent is not importable in $venv (as expected)"
"$venv/bin/python" -m pip list --format=freeze | grep -i -e d4c -e pytest

# The engine under test is this checkout's `d4c`, with its own interpreter and path: an
# implementation separate from the suite, as any other would be.
mkdir -p "$work/bin"
cat > "$work/bin/d4c" <<SH
#!/bin/sh
PYTHONPATH="$repo" exec "$(python3 -c 'import sys; print(sys.executable)')" -m d4c "\$@"
SH
chmod +x "$work/bin/d4c"

echo "== pytest --pyargs conformance --target engine --engine-command d4c (from /tmp)"
PATH="$venv/bin:$work/bin:$PATH" "$venv/bin/pytest" -q -p no:cacheprovider --pyargs conformance \
    --target engine --engine-command d4c --conformance-report "$work/report" "${@:2}"
