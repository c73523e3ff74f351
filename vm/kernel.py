"""The guest's boot files: the uncompressed kernel and a tiny initramfs.

Why not Debian's own: (1) the kernel ELF inside vmlinuz boots through PVH and skips the XZ
decompression that costs ~4.5 s under TCG; (2) initramfs-tools' initrd runs udev and takes
seconds more; ours loads the few modules needed to reach the root disk, in the order the
kernel's own modules.dep dictates, and switches to the real root.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

from vm.errors import VmError

XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Modules needed to mount the ext4 root on a virtio disk (their dependencies come from
# modules.dep). crc32c_generic first: ext4/jbd2 ask for "crypto-crc32c" by softdep.
ROOT_MODULES = ("crc32c_generic", "virtio_pci", "virtio_blk", "ext4")
# Since 7.x ext4 computes crc32c through the built-in lib/crc; the crypto module is gone.
OPTIONAL_MODULES = frozenset({"crc32c_generic"})

INIT_SCRIPT = """#!/bin/busybox sh
# initramfs of the d4c BPF-LSM VM (vm/kernel.py): load the root disk's modules, switch root.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "initramfs: $*"; echo o > /proc/sysrq-trigger; sleep 5; }
for m in $(cat /modules); do insmod "/lib/modules/$m" || echo "initramfs: insmod $m failed"; done
init=/usr/local/sbin/d4c-guest-init
for word in $(cat /proc/cmdline); do
    case "$word" in d4c.init=*) init="${word#d4c.init=}" ;; esac
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || fail "no /dev/vda (virtio disk) after 10s"
mount -t ext4 -o rw /dev/vda /newroot || fail "cannot mount /dev/vda"
{modules_disk}mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot "$init"
"""


def _zstd_payload(vmlinuz: bytes) -> bytes | None:
    """The ELF from a zstd-compressed bzImage (Debian since 6.12), via the zstd tool (Python
    3.11 has no zstd). The x86 boot header locates the payload; its last 4 bytes are the
    size the kernel's build appends, which zstd would reject as a truncated frame."""
    if len(vmlinuz) < 0x250 or vmlinuz[0x202:0x206] != b"HdrS":
        return None
    setup = (vmlinuz[0x1F1] + 1) * 512
    offset, length = struct.unpack_from("<II", vmlinuz, 0x248)
    payload = vmlinuz[setup + offset:setup + offset + length]
    if not payload.startswith(ZSTD_MAGIC):
        return None
    if not shutil.which("zstd"):
        raise VmError("this kernel is zstd-compressed and the zstd tool is missing (run scripts/bootstrap.sh)")
    result = subprocess.run(["zstd", "-dc"], input=payload[:-4], capture_output=True, check=False)
    return result.stdout if result.returncode == 0 else None


def extract_vmlinux(vmlinuz: bytes) -> bytes:
    """The ELF kernel image inside a Debian bzImage (XZ payload up to 6.1, zstd from 6.12)."""
    elf = _zstd_payload(vmlinuz)
    if elf and elf.startswith(b"\x7fELF"):
        return elf
    start = vmlinuz.find(XZ_MAGIC)
    while start != -1:
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(vmlinuz[start:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(b"\x7fELF"):
            return elf
        start = vmlinuz.find(XZ_MAGIC, start + 1)
    raise VmError("no XZ- or zstd-compressed ELF kernel found in vmlinuz (not a Debian amd64 kernel?)")


def parse_modules_dep(text: str) -> dict[str, tuple[str, ...]]:
    """modules.dep: `path.ko: dep1.ko dep2.ko` -> {path: deps} (deps listed nearest-first)."""
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if ":" in line:
            path, rest = line.split(":", 1)
            deps[path.strip()] = tuple(rest.split())
    return deps


def module_load_order(deps: dict[str, tuple[str, ...]], wanted: tuple[str, ...],
                      builtin: frozenset[str] = frozenset()) -> list[str]:
    """Paths of `wanted` modules and their dependencies, each after everything it needs."""
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    order: list[str] = []

    def visit(path: str, trail: tuple[str, ...]) -> None:
        if path in order:
            return
        if path in trail:
            raise VmError(f"modules.dep: dependency cycle through {path}")
        for dep in reversed(deps.get(path, ())):
            visit(dep, trail + (path,))
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name and key in OPTIONAL_MODULES:
            continue
        if key not in by_name:
            raise VmError(f"module {name} is neither in modules.dep nor built in")
        visit(by_name[key], ())
    return order


def _cpio_entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0), ino: int = 0) -> bytes:
    # nlink=1 everywhere: the kernel's unpacker only pairs inode numbers for hard links.
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    pad = lambda n: b"\0" * (-n % 4)  # newc pads header+name and data to 4 bytes
    return header + encoded + pad(len(header) + len(encoded)) + data + pad(len(data))


# A kernel other than the image's own brings its modules on a second, read-only disk: the
# root filesystem stays one image for every kernel, and the guest's modprobe finds them at
# the usual place.
MODULES_DISK_MOUNT = """[ -b /dev/vdb ] || fail "no /dev/vdb (the kernel's modules disk)"
mount -t ext4 -o ro /dev/vdb /newroot/lib/modules || fail "cannot mount the modules disk /dev/vdb"
"""


def init_script(modules_disk: bool) -> str:
    return INIT_SCRIPT.replace("{modules_disk}", MODULES_DISK_MOUNT if modules_disk else "")


def _module_bytes(path: Path) -> bytes:
    """A module as busybox insmod needs it: plain ELF (Debian compresses them with xz since 6.x)."""
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".ko.xz") else data


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0] + ".ko"


def build_initramfs(rootfs: Path, kernel_version: str, busybox: Path = Path("/bin/busybox"),
                    modules_disk: bool = False) -> bytes:
    """An uncompressed newc cpio (nothing to decompress under TCG) with busybox and modules.
    `rootfs` is any tree with lib/modules/<version>; `modules_disk` mounts /dev/vdb over the
    root's /lib/modules."""
    moddir = rootfs / "lib" / "modules" / kernel_version
    try:
        deps = parse_modules_dep((moddir / "modules.dep").read_text())
        builtin = frozenset(Path(line).name.split(".ko")[0].replace("-", "_")
                            for line in (moddir / "modules.builtin").read_text().split())
        busybox_bytes = busybox.read_bytes()
    except OSError as error:
        raise VmError(f"{error.filename}: {error.strerror}") from None
    order = module_load_order(deps, ROOT_MODULES, builtin)
    entries = [
        _cpio_entry("bin", stat.S_IFDIR | 0o755),
        _cpio_entry("dev", stat.S_IFDIR | 0o755),
        # The kernel opens /dev/console before /init runs: without it init has no output.
        _cpio_entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        _cpio_entry("lib", stat.S_IFDIR | 0o755),
        _cpio_entry("lib/modules", stat.S_IFDIR | 0o755),
        _cpio_entry("bin/busybox", stat.S_IFREG | 0o755, busybox_bytes),
        _cpio_entry("init", stat.S_IFREG | 0o755, init_script(modules_disk).encode()),
        _cpio_entry("modules", stat.S_IFREG | 0o644, "\n".join(_module_name(p) for p in order).encode() + b"\n"),
    ]
    for path in order:
        entries.append(_cpio_entry(f"lib/modules/{_module_name(path)}", stat.S_IFREG | 0o644,
                                   _module_bytes(moddir / path)))
    return b"".join(entries) + _cpio_entry("TRAILER!!!", 0)


def kernel_version(rootfs: Path) -> str:
    versions = sorted(os.listdir(rootfs / "lib" / "modules"))
    if len(versions) != 1:
        raise VmError(f"expected one kernel in {rootfs}/lib/modules, found {versions or 'none'}")
    return versions[0]
