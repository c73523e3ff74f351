#!/usr/bin/env bash
# Installs everything the tests and the main job need on a fresh Debian 12 machine (as root).
# Idempotent and quiet when everything is already there, so every entry script calls it first.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
    # policy language and conformance suite: Python (the project and its extras: pip below)
    python3 python3-pip python3-venv make ca-certificates  # venv: scripts/suite-standalone.sh
    openssl  # tests/agent: a self-signed TLS API server
    # VM: kernel + rootfs from Debian packages, booted under qemu
    qemu-system-x86 qemu-utils debootstrap e2fsprogs cpio xz-utils zstd busybox-static
    kmod  # --kernel: depmod for another release's modules (dpkg-deb -x runs none)
    docker.io  # vm: a private host dockerd imports the container images into the VM image
    # eBPF: CO-RE objects and the libbpf the loader links against
    clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev gcc
    # Vagrantfile check: `vagrant validate` needs a usable provider, and libvirt is Debian's
    vagrant vagrant-libvirt
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own python3 refuses pip installs into it (PEP 668, EXTERNALLY-MANAGED). The entry
# scripts run `python3 -m pytest` and `d4c` from PATH, as the VM guest does, so the project goes
# into that interpreter rather than a venv the scripts would have to activate.
pip_flags=(-q --disable-pip-version-check)
if python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip_flags+=(--break-system-packages)
fi
# Always re-run pip: the editable install is cheap when satisfied and picks up new dependencies.
python3 -m pip install "${pip_flags[@]}" -e '.[test,agent]'
