#!/usr/bin/env bash
# THE test command (README, .ci/run): installs what is missing, then runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

echo "== BPF objects (built on the host; the VM guest has no compiler and loads them)"
make -s -C bpf

# The kernels other than the default (docs/vm.md, "Kernels"; 5.10 last, the slowest) run alongside every tier below, in
# VMs of their own (scripts/newer-kernels.sh): TCG runs a VM on one host thread, so one VM at
# a time leaves a core idle. Their output goes to a log, printed at the end. D4C_TEST_KERNELS=""
# leaves them out; scripts/kernel-matrix.sh runs everything on every kernel.
other_kernels=${D4C_TEST_KERNELS-6.12 7.2 5.10}
other_pid=
other_log=reports/newer-kernels.log
if [[ ${D4C_TEST_HOST_ONLY:-} != 1 && -n $other_kernels ]]; then
    mkdir -p reports
    # shellcheck disable=SC2086  # the kernels are words
    setsid bash scripts/newer-kernels.sh $other_kernels >"$other_log" 2>&1 &
    other_pid=$!
    # When a tier below fails, this script ends, and the newer kernels' VMs with it.
    trap '[[ -n $other_pid ]] && kill -- -"$other_pid" 2>/dev/null; true' EXIT
    echo "== kernels $other_kernels: tests/kernel + smoke subset, alongside the tiers below (log: $other_log)"
fi

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
echo "   (every scenario with a kernel part: real containers, \`d4c agent run\`, EPERM and ECS events),"
echo "   then \`d4c events check\` over everything the agent wrote (heartbeat and metrics included)"
# --agent-dir keeps the one agent's output (all four data streams) in the checkout, which the
# guest shares, so the check sees every document of the run, not only each scenario's events.
d4c vm run -- sh -c 'rm -rf reports/kernel-agent &&
    python3 -m pytest -q -p no:cacheprovider conformance/ --target reference -m kernel \
        --conformance-report reports/conformance-kernel --agent-dir reports/kernel-agent &&
    python3 -m d4c events check reports/kernel-agent/events'

echo "== kernels ${other_kernels:-(none)}: tests/kernel + smoke subset (ran alongside the tiers above)"
if [[ -n $other_pid ]]; then
    other_rc=0
    wait "$other_pid" || other_rc=$?
    other_pid=
    cat "$other_log"
    if ((other_rc != 0)); then
        echo "the newer kernels' tier failed (exit $other_rc): $other_log"
        exit "$other_rc"
    fi
fi
