#!/usr/bin/env bash
# Shows that the test command needs nothing installed by hand: a Debian 12 root as debootstrap
# leaves it (--variant=minbase: not even python3), the committed HEAD of this checkout copied
# in, then scripts/bootstrap.sh and the host tiers of scripts/test.sh run inside it as root.
# The host tier builds the VM image from nothing inside that root and boots it
# (tests/vm/test_e2e.py); the longer in-VM tiers that follow are left out (D4C_TEST_HOST_ONLY=1):
# they run in that image, which holds only what `d4c vm build` put there.
#
#   bash scripts/fresh-debian.sh [DIR]      # DIR defaults to /var/tmp/d4c-fresh; removed first
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
root=${1:-/var/tmp/d4c-fresh}
minbase_cache=${D4C_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/d4c/vm}/debootstrap/bookworm-minbase

mounted=()
unmount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
    mounted=()
}
trap unmount_all EXIT

remove_root() {
    # Never rm -rf through a mount point (the host's /sys, say).
    if findmnt -rn -o TARGET | grep -q "^$root/"; then
        echo "fresh-debian: $root still has mounts inside; not removing it" >&2
        exit 1
    fi
    rm -rf "$root"
}

remove_root
if [[ -e $minbase_cache/.d4c-complete ]]; then
    # `d4c vm build` keeps the same debootstrap output, never modified: copying it saves a download.
    echo "fresh-debian: copying the cached minbase $minbase_cache"
    mkdir -p "$root"
    cp -a "$minbase_cache/." "$root/"
    rm -f "$root/.d4c-complete"
else
    echo "fresh-debian: debootstrap --variant=minbase bookworm $root"
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network as this machine has it: its DNS and the local CAs it trusts (an egress proxy may
# sign for the package registries); ca-certificates, which bootstrap installs, adds them.
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi

# Fresh proc and sysfs (the BPF build reads the kernel's BTF from /sys), and a /dev of our own
# nodes rather than a bind of the host's, which an rm -rf of the tree could reach.
for spec in "proc proc" "sysfs sys" "tmpfs dev" "tmpfs tmp"; do
    set -- $spec
    mkdir -p "$root/$2"
    mount -t "$1" "$1" "$root/$2"
    mounted+=("$root/$2")
done
for node in "null c 1 3" "zero c 1 5" "full c 1 7" "random c 1 8" "urandom c 1 9" "tty c 5 0"; do
    set -- $node
    mknod -m 666 "$root/dev/$1" "$2" "$3" "$4"
done
# cgroup2 where systemd mounts it on a booted machine: the private dockerd of `d4c vm build` needs it.
mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"
mounted+=("$root/sys/fs/cgroup")
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
mounted+=("$root/dev/pts")
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"

echo "fresh-debian: $(git rev-parse --short HEAD) into $root/src/d4c"
mkdir -p "$root/src/d4c"
git archive HEAD | tar -x -C "$root/src/d4c"

started=$SECONDS
# A clean environment: nothing of this host's Python or pip setup leaks in.
rc=0
env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" D4C_TEST_HOST_ONLY=1 ${D4C_VM_MEMORY_MB:+D4C_VM_MEMORY_MB=$D4C_VM_MEMORY_MB} \
    chroot "$root" bash -c 'cd /src/d4c && bash scripts/test.sh' || rc=$?
echo "fresh-debian: bootstrap + host tiers exited $rc after $((SECONDS - started))s in a fresh Debian 12 root"
unmount_all
[[ -n ${D4C_FRESH_KEEP:-} ]] || remove_root
exit "$rc"
