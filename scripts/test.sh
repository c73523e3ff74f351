#!/usr/bin/env bash
# THE test command (README, .ci/run): installs what is missing, then runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== BPF objects (built on the host; the VM guest has no compiler and loads them)"
make -s -C bpf

echo "== unit and engine-tier tests (host)"
python3 -m pytest -q -p no:cacheprovider tests/
