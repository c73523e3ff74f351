#!/usr/bin/env bash
# The test command's tier for the kernels other than the default (docs/vm.md, "Kernels"):
# tests/kernel and a few kernel-tier scenarios (a file block, a rename, an exec and a fork
# block) on each kernel given, one VM at a time. scripts/kernel-matrix.sh runs everything on
# every kernel (the older 5.10 too, despite the name).   Usage: scripts/newer-kernels.sh 6.12 7.2 5.10
set -euo pipefail
cd "$(dirname "$0")/.."
smoke="file-create-file or file-rename-blocked-either-side or process-exec-blocked or process-fork-blocked"
for k in "$@"; do
    echo "== kernel $k: tests/kernel and the kernel-tier smoke subset, in the VM (d4c vm run --kernel $k)"
    started=$(date +%s)
    d4c vm build --kernel "$k" >/dev/null
    d4c vm run --kernel "$k" -- python3 -m pytest -q -p no:cacheprovider tests/kernel
    d4c vm run --kernel "$k" -- python3 -m pytest -q -p no:cacheprovider conformance/ --target reference -m kernel \
        -k "$smoke" --conformance-report "reports/conformance-kernel-$k"
    echo "== kernel $k: passed in $(( $(date +%s) - started )) s"
done
