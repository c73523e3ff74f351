#!/usr/bin/env bash
# THE main job (README "Run the main job"): the whole conformance suite — engine tier and
# kernel tier, every scenario — against the reference agent inside a BPF-LSM VM.
# On a fresh Debian 12 machine (as root): installs what is missing, builds the BPF objects and
# the VM image (cached after the first time), runs the suite in the VM, and exits with
# pytest's status. Extra arguments go to pytest (e.g. -k file, -m D10, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT=reports/conformance-reference

bash scripts/bootstrap.sh

echo "== BPF objects (built on the host; the VM guest has no compiler)"
make -s -C bpf

echo "== BPF-LSM VM image (docs/vm.md; reused when up to date)"
d4c vm build

echo "== conformance suite in the VM: --target reference, engine + kernel tiers"
rc=0
d4c vm run -- python3 -m pytest -p no:cacheprovider conformance/ --target reference \
    --conformance-report "$REPORT" "$@" || rc=$?
echo "conformance report: $(pwd)/$REPORT (pytest exit status $rc)"
exit "$rc"
