#!/bin/sh
# PID 1 of the BPF-LSM VM (switched to by the initramfs of vm/initramfs.py).
# No systemd: under TCG every service costs seconds, and the machine has one job, running
# commands for `d4c vm run`. The shell sets up the kernel filesystems, then tini (reaps
# orphans, forwards signals) runs the agent, which mounts the checkout, starts dockerd and
# serves commands. When the agent exits the machine powers off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t securityfs securityfs /sys/kernel/security
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf -o mode=700 bpf /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
ln -sf /proc/self/fd /dev/fd
hostname d4c-vm
# host.id of the agent's events is the machine id. One per boot, not baked into the image:
# every VM booted from one cached image would otherwise share it.
[ -s /etc/machine-id ] || tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id
echo "d4c-guest: init done, starting agent" >/dev/console

tini -s -- python3 /usr/local/lib/d4c/agent.py </dev/null >/dev/console 2>&1
echo "d4c-guest: agent exited ($?); powering off" >/dev/console
sync
echo o >/proc/sysrq-trigger
sleep 10
