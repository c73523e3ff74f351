#!/usr/bin/env bash
# In-guest installation of a BPF-LSM machine. ONE script for both ways of getting a machine:
#   - `d4c vm build` runs it in a debootstrap chroot (D4C_PROVISION_MODE=image);
#   - the Vagrantfile runs it on a booted Debian 12 box (D4C_PROVISION_MODE=system, default).
# Everything the guest needs is installed here, because a booted VM has no registry access.
#
# Environment:
#   D4C_PROVISION_MODE  image | system (default system)
#   D4C_CHECKOUT        directory holding the project's pyproject.toml and vm/guest/
#                       (image mode: a copy of those files inside the chroot)
#   D4C_REQUIREMENTS    optional requirements file to install instead of the one derived
#                       from pyproject.toml (`d4c vm build` passes the list it hashed)
#   D4C_WHEELS          optional directory of wheels to install the Python packages from,
#                       without an index (`d4c vm build` downloads them on the host, whose pip
#                       is configured for this network; the chroot's is not)
set -euo pipefail

MODE=${D4C_PROVISION_MODE:-system}
CHECKOUT=${D4C_CHECKOUT:-$(cd "$(dirname "$0")/.." && pwd)}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

case "$MODE" in image | system) ;; *)
    echo "provision.sh: D4C_PROVISION_MODE must be image or system, not '$MODE'" >&2
    exit 2
    ;;
esac
[[ -f "$CHECKOUT/pyproject.toml" ]] || {
    echo "provision.sh: $CHECKOUT/pyproject.toml: not found (set D4C_CHECKOUT)" >&2
    exit 2
}

# Debian packages of a BPF-LSM machine. The kernel is Debian's stock one: CONFIG_BPF_LSM=y,
# BTF in /sys/kernel/btf/vmlinux, and bpf already in its default LSM list.
PACKAGES=(
    linux-image-amd64 kmod
    python3 python3-pip
    docker.io containerd runc tini iptables
    apparmor  # apparmor_parser: dockerd loads its docker-default profile (AppArmor is in the LSM list)
    libbpf1 bpftool
    iproute2 procps util-linux ca-certificates less
)

APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)

if [[ $MODE == image ]]; then
    # A chroot must not start daemons, and the VM boots its kernel with a tiny initramfs that
    # `d4c vm build` makes itself, so Debian's initramfs generator (slow, unused) is diverted.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    if ! dpkg-divert --list /usr/sbin/update-initramfs | grep -q .; then
        dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
    fi
    ln -sf /bin/true /usr/sbin/update-initramfs
fi

apt-get update -q
apt-get install "${APT_OPTS[@]}" "${PACKAGES[@]}"

# Python packages: exactly the project's runtime + test + agent dependencies from its
# pyproject.toml (Debian's versions are older than the project's floors), from PyPI or D4C_WHEELS.
if [[ -n ${D4C_REQUIREMENTS:-} ]]; then
    cp "$D4C_REQUIREMENTS" /tmp/d4c-requirements.txt
else
    python3 - "$CHECKOUT/pyproject.toml" >/tmp/d4c-requirements.txt <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
reqs = list(project.get("dependencies", []))
for extra in ("test", "agent"):
    reqs += project.get("optional-dependencies", {}).get(extra, [])
# Self-references such as "d4c-conformance[test]" are not installable from an index.
print("\n".join(r for r in reqs if not r.startswith(project["name"])))
EOF
fi
PIP_SOURCE=()
[[ -n ${D4C_WHEELS:-} ]] && PIP_SOURCE=(--no-index --find-links "$D4C_WHEELS")
python3 -m pip install -q --break-system-packages --no-cache-dir --root-user-action=ignore \
    "${PIP_SOURCE[@]}" -r /tmp/d4c-requirements.txt
rm -f /tmp/d4c-requirements.txt

if [[ $MODE == image ]]; then
    # PID 1 and the command agent of the VM (see vm/guest/).
    install -D -m 0755 "$CHECKOUT/vm/guest/init.sh" /usr/local/sbin/d4c-guest-init
    install -D -m 0755 "$CHECKOUT/vm/guest/agent.py" /usr/local/lib/d4c/agent.py
    echo d4c-vm >/etc/hostname
    # Smaller image: nothing below is needed at run time.
    apt-get clean
    rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/* \
        /var/cache/debconf/*-old /usr/sbin/policy-rc.d
fi

# `d4c` inside the machine runs the shared checkout's CLI (PYTHONPATH points at it).
cat >/usr/local/bin/d4c <<'EOF'
#!/bin/sh
exec python3 -c 'import sys; from d4c.cli import main; sys.exit(main())' "$@"
EOF
chmod 0755 /usr/local/bin/d4c

if [[ $MODE == system ]]; then
    # A box whose kernel was built without bpf in its default LSM list needs it on the command
    # line; the change takes effect at the next boot (`vagrant reload`).
    if [[ -r /sys/kernel/security/lsm ]] && ! grep -qw bpf /sys/kernel/security/lsm; then
        lsms="$(cat /sys/kernel/security/lsm),bpf"
        echo "GRUB_CMDLINE_LINUX=\"\$GRUB_CMDLINE_LINUX lsm=$lsms\"" >/etc/default/grub.d/d4c-bpf-lsm.cfg
        update-grub
        echo "provision.sh: added lsm=$lsms to the kernel command line; run 'vagrant reload'"
    fi
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || true
    systemctl enable --now docker >/dev/null 2>&1 || true
fi
echo "provision.sh: done ($MODE)"
