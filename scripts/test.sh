#!/usr/bin/env bash
# THE test command (README, .ci/run): installs what is missing, then runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== BPF objects (built on the host; the VM guest has no compiler and loads them)"
make -s -C bpf

echo "== unit and engine-tier tests (host)"
python3 -m pytest -q -p no:cacheprovider tests/

echo "== scenario library lint, and the conformance suite's engine tier (host)"
d4c scenario lint scenarios/
python3 -m pytest -q -p no:cacheprovider conformance/ --target engine --conformance-report reports/conformance

echo "== the suite as its own distribution: wheel, alone in an empty venv, engine tier from /tmp"
bash scripts/suite-standalone.sh

if [[ ${D4C_TEST_HOST_ONLY:-} == 1 ]]; then
    echo "== D4C_TEST_HOST_ONLY=1: the VM tiers are left out"
    exit 0
fi

echo "== BPF-LSM VM: build (or reuse) the image, then the in-VM tests (docs/vm.md)"
echo "   (tests/kernel: BPF enforcement; test_suite_kernel.py: the suite's container runner, which needs docker)"
d4c vm build
rc=0
d4c vm run -- python3 -m pytest -q -p no:cacheprovider tests/kernel tests/conformance/test_suite_kernel.py || rc=$?
# pytest's 5 = no tests collected (an empty tests/kernel): nothing failed in this tier.
if ((rc == 5)); then
    echo "(no in-VM kernel tests collected)"
elif ((rc != 0)); then
    exit "$rc"
fi

echo "== the conformance suite's kernel tier against the reference agent, in the VM"
echo "   (every scenario with a kernel part: real containers, \`d4c agent run\`, EPERM and ECS events)"
d4c vm run -- python3 -m pytest -q -p no:cacheprovider conformance/ --target reference -m kernel \
    --conformance-report reports/conformance-kernel

# The newer kernels users run (docs/vm.md, "Kernels"): tests/kernel and a few kernel-tier
# scenarios (a file block, a rename, an exec and a fork block) on each. D4C_TEST_KERNELS=""
# leaves the tier out; scripts/kernel-matrix.sh runs everything on every kernel.
other_kernels=${D4C_TEST_KERNELS-6.12 7.2}
smoke="file-create-file or file-rename-blocked-either-side or process-exec-blocked or process-fork-blocked"
for k in $other_kernels; do
    echo "== kernel $k: tests/kernel and the kernel-tier smoke subset, in the VM (d4c vm run --kernel $k)"
    d4c vm build --kernel "$k" >/dev/null
    d4c vm run --kernel "$k" -- python3 -m pytest -q -p no:cacheprovider tests/kernel
    d4c vm run --kernel "$k" -- python3 -m pytest -q -p no:cacheprovider conformance/ --target reference -m kernel \
        -k "$smoke" --conformance-report "reports/conformance-kernel-$k"
done
