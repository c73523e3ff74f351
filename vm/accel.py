"""KVM when it works for this guest, else TCG; the verdict is cached per host.

/dev/kvm existing is not enough: some hosts (nested PVM) expose a KVM that a stock Debian
kernel cannot boot on (it dies on an MSR or hangs after "Probing EDD"). So the first boot on
a host with a usable-looking /dev/kvm is a probe: if the guest does not come up quickly under
KVM, the machine is booted again under TCG and the verdict is remembered.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
from pathlib import Path

from vm.paths import cache_root

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
KVM_PROBE_SECONDS = 45.0  # KVM reaches the agent in a few seconds; TCG needs 8-15


def kvm_device_usable(device: str = "/dev/kvm") -> tuple[bool, str]:
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        return False, f"{device}: {error.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as error:
        return False, f"{device}: KVM_GET_API_VERSION: {error.strerror}"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return False, f"{device}: KVM API version {version}, expected {KVM_API_VERSION}"
    return True, f"{device} answers"


def host_id() -> str:
    """What the verdict depends on: host kernel and qemu build."""
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, check=False, text=True).stdout.split("\n")[0]
    return f"{platform.release()} | {qemu}"


def _verdict_file() -> Path:
    return cache_root() / "accel.json"


def cached_verdict() -> str | None:
    try:
        data = json.loads(_verdict_file().read_text())
    except (OSError, ValueError):
        return None
    return data.get("accel") if data.get("host") == host_id() else None


def save_verdict(accel: str, reason: str) -> None:
    _verdict_file().parent.mkdir(parents=True, exist_ok=True)
    _verdict_file().write_text(json.dumps({"host": host_id(), "accel": accel, "reason": reason}) + "\n")


def plan() -> tuple[str, bool, str]:
    """(accel to try first, whether that try is an unverified KVM probe, why).

    `D4C_VM_ACCEL=tcg|kvm` overrides the detection.
    """
    forced = os.environ.get("D4C_VM_ACCEL", "").strip().lower()
    if forced in ("tcg", "kvm"):
        return forced, False, f"forced by D4C_VM_ACCEL={forced}"
    verdict = cached_verdict()
    if verdict:
        return verdict, False, f"cached verdict for this host ({_verdict_file()})"
    usable, why = kvm_device_usable()
    if not usable:
        return "tcg", False, f"no usable KVM ({why})"
    return "kvm", True, f"{why}; probing whether the guest boots under KVM"
