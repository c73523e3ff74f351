#!/usr/bin/env bash
# The in-VM tiers of the test command on every kernel `d4c vm --kernel` offers, one kernel at a
# time (each boots its own VM), then a table kernel x tier of passed/failed/skipped and the time
# each cell took. Exit 0 only when no cell has a failure or error.
#   D4C_MATRIX_KERNELS="6.12 7.2"   a subset of the kernels (default: all four)
#   D4C_MATRIX_TIERS="kernel"       a subset of the tiers (kernel, suite-runner, conformance)
# Reports (JUnit XML per cell) go to reports/kernel-matrix/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
make -s -C bpf

kernels=(${D4C_MATRIX_KERNELS:-5.10 6.1 6.12 7.2})
tiers=(${D4C_MATRIX_TIERS:-kernel suite-runner conformance})
out=reports/kernel-matrix
rm -rf "$out"
mkdir -p "$out"

tier_command() {  # the pytest arguments of one tier, as scripts/test.sh runs it
    case "$1" in
        kernel) echo "tests/kernel" ;;
        suite-runner) echo "tests/conformance/test_suite_kernel.py" ;;
        conformance) echo "conformance/ --target reference -m kernel" ;;
        *) echo "kernel-matrix: unknown tier $1 (expected kernel, suite-runner, conformance)" >&2; exit 2 ;;
    esac
}

started=$(date +%s)
for k in "${kernels[@]}"; do
    d4c vm build --kernel "$k" >/dev/null
    for t in "${tiers[@]}"; do
        echo "== kernel $k, tier $t"
        args=$(tier_command "$t")
        t0=$(date +%s)
        rc=0
        # shellcheck disable=SC2086  # the tier's arguments are words
        d4c vm run --kernel "$k" -- python3 -m pytest -q -p no:cacheprovider $args \
            --junitxml="$out/$k-$t.xml" || rc=$?
        echo "$(($(date +%s) - t0)) $rc" >"$out/$k-$t.time"
    done
done
total=$(($(date +%s) - started))

python3 - "$out" "$total" "${kernels[*]}" "${tiers[*]}" <<'EOF'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, total, kernels, tiers = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
bad = False
print(f"\n{'kernel':8} " + " ".join(f"{t:46}" for t in tiers))
for k in kernels:
    cells = []
    for t in tiers:
        seconds, rc = (out / f"{k}-{t}.time").read_text().split()
        try:
            suites = ET.parse(out / f"{k}-{t}.xml").getroot()
            suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
            n = {a: int(suite.get(a, 0)) for a in ("tests", "failures", "errors", "skipped")}
            failed = n["failures"] + n["errors"]
            passed = n["tests"] - failed - n["skipped"]
            cell = f"{passed} passed, {failed} failed, {n['skipped']} skipped"
            bad |= failed > 0 or rc not in ("0", "5")
        except (OSError, ET.ParseError, AttributeError):
            cell = f"no report (exit {rc})"
            bad = True
        cells.append(f"{cell} ({int(seconds) // 60}m{int(seconds) % 60:02d}s)")
    print(f"{k:8} " + " ".join(f"{c:46}" for c in cells))
print(f"total {total // 60} min {total % 60} s")
sys.exit(1 if bad else 0)
EOF
