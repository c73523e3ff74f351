"""`d4c vm build`: a bootable BPF-LSM image from Debian packages only, cached by input hash.

Layout of the cache (vm.paths.cache_root()):
  debootstrap/<suite>-minbase/   debootstrap --variant=minbase, shared by the VM rootfs and
                                 the container images (copied, never modified)
  images/<key>/                  vmlinux, initrd.cpio, rootfs.img (ext4, raw, sparse),
                                 manifest.json; immutable once renamed into place
  build.lock                     serialises builds (several `d4c vm run` may start at once)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vm import containers, kernel
from vm.errors import VmError
from vm.paths import cache_root, checkout_root
from vm.progress import say, step
from vm.recipe import GUEST_FILES, ImageInputs, image_inputs

FREE_SPACE = 3 * 1024**3  # room for containers, BPF objects and test output inside the guest


@dataclass(frozen=True)
class Image:
    key: str
    directory: Path
    kernel_version: str

    @property
    def vmlinux(self) -> Path:
        return self.directory / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.cpio"

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs.img"

    @classmethod
    def load(cls, directory: Path) -> Image | None:
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        image = cls(manifest["key"], directory, manifest["kernel_version"])
        if not all(p.exists() for p in (image.vmlinux, image.initrd, image.rootfs)):
            return None
        return image


def cached_image(checkout: Path | None = None) -> Image | None:
    key = image_inputs(checkout or checkout_root()).key()
    return Image.load(cache_root() / "images" / key)


@contextmanager
def build_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another build to finish ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_image(rebuild: bool = False, checkout: Path | None = None) -> Image:
    """The cached image for the current inputs, building it first when missing (or asked)."""
    checkout = checkout or checkout_root()
    inputs = image_inputs(checkout)
    final = cache_root() / "images" / inputs.key()
    if not rebuild and (image := Image.load(final)):
        return image
    with build_lock(cache_root() / "build.lock"):
        if not rebuild and (image := Image.load(final)):
            return image  # built by whoever held the lock
        return _build(inputs, checkout, final, rebuild)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts anything left mounted inside (a chroot's /proc...)."""
    if not path.exists():
        return
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    if _mounts_under(path):
        raise VmError(f"{path}: still has mounts inside; not removing it")
    shutil.rmtree(path)


def _debootstrap(inputs: ImageInputs, rebuild: bool, log: Path) -> Path:
    target = cache_root() / "debootstrap" / f"{inputs.suite}-minbase"
    if (target / ".d4c-complete").exists() and not rebuild:
        say(f"debootstrap: reusing {target}")
        return target
    if not shutil.which("debootstrap"):
        raise VmError("debootstrap not found: run scripts/bootstrap.sh (Debian package debootstrap)")
    _remove_tree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with step(f"debootstrap --variant=minbase {inputs.suite}"):
        containers.run_logged(["debootstrap", "--variant=minbase", inputs.suite, str(target), inputs.mirror],
                              log, "debootstrap")
    (target / ".d4c-complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return target


def _build(inputs: ImageInputs, checkout: Path, final: Path, rebuild: bool) -> Image:
    started = time.monotonic()
    work = final.parent / f"{final.name}.build-{os.getpid()}"
    _remove_tree(work)
    work.mkdir(parents=True)
    log = work.parent / f"{final.name}.build.log"
    log.write_text("")
    say(f"building image {inputs.key()} in {work} (log: {log})")
    try:
        minbase = _debootstrap(inputs, rebuild, log)
        rootfs = work / "rootfs"
        stage = rootfs / "tmp" / "d4c-provision"

        with step("Python wheels (pip download on the host)"):
            wheels = work / "wheels"
            (work / "requirements.txt").write_text("\n".join(inputs.requirements) + "\n")
            containers.run_logged(["python3", "-m", "pip", "download", "-q", "--prefer-binary", "-d", str(wheels),
                                   "-r", str(work / "requirements.txt")], log, "pip download")

        with step("packages (vm/provision.sh in a chroot: kernel, python3, docker.io, libbpf, bpftool)"):
            containers.run_logged(["cp", "-a", "--reflink=auto", f"{minbase}/.", str(rootfs)], log, "copy of the minbase")
            for name in (*GUEST_FILES, "pyproject.toml"):
                (stage / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(checkout / name, stage / name)
            shutil.copytree(wheels, stage / "wheels")
            shutil.copy2(work / "requirements.txt", stage / "requirements.txt")
            shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
            env = {**containers.CHROOT_ENV, "D4C_PROVISION_MODE": "image",
                   "D4C_CHECKOUT": "/tmp/d4c-provision", "D4C_WHEELS": "/tmp/d4c-provision/wheels",
                   "D4C_REQUIREMENTS": "/tmp/d4c-provision/requirements.txt"}
            with containers.chroot_mounts(rootfs):
                containers.run_logged(["chroot", str(rootfs), "bash", "/tmp/d4c-provision/vm/provision.sh"],
                                      log, "vm/provision.sh", env=env)
            shutil.rmtree(stage)
            (rootfs / "etc" / "resolv.conf").write_text("nameserver 10.0.2.3\n")  # qemu user-net DNS

        with step(f"container images ({', '.join(c.ref for c in inputs.containers)})"):
            trees = {}
            for image in inputs.containers:
                tree = work / "containers" / image.ref.replace(":", "_")
                tree.mkdir(parents=True)
                containers.build_rootfs(image, minbase, tree, log)
                trees[image] = tree
            containers.import_into_data_root(trees, rootfs / "var" / "lib" / "docker", log)
            _remove_tree(work / "containers")

        with step("kernel and initramfs"):
            version = kernel.kernel_version(rootfs)
            (work / "vmlinux").write_bytes(kernel.extract_vmlinux((rootfs / "boot" / f"vmlinuz-{version}").read_bytes()))
            (work / "initrd.cpio").write_bytes(kernel.build_initramfs(rootfs, version))

        with step("root filesystem image (mkfs.ext4 -d)"):
            used = int(subprocess.run(["du", "-sxb", str(rootfs)], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
            size_mb = (used + FREE_SPACE) // 1024**2
            containers.run_logged(["mkfs.ext4", "-q", "-F", "-L", "d4croot", "-d", str(rootfs),
                                   str(work / "rootfs.img"), f"{size_mb}M"], log, "mkfs.ext4")
        _remove_tree(rootfs)
        _remove_tree(wheels)
        manifest = {
            "key": inputs.key(),
            "kernel_version": version,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
            "containers": [c.ref for c in inputs.containers],
            "requirements": list(inputs.requirements),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            _remove_tree(final)
        work.rename(final)
    except BaseException:
        _remove_tree(work)
        raise
    say(f"image {inputs.key()} built in {time.monotonic() - started:.0f}s: {final}")
    _prune(keep=final)
    image = Image.load(final)
    assert image is not None
    return image


KEEP_IMAGES = 8  # other checkouts/branches (a team of them) use other keys of the same cache


def _prune(keep: Path) -> None:
    """Delete all but the newest KEEP_IMAGES images, never one a live VM still boots from."""
    images = cache_root() / "images"
    in_use = set()
    for record in (cache_root() / "machines").glob("*/machine.json"):
        try:
            in_use.add(json.loads(record.read_text())["image_key"])
        except (OSError, ValueError, KeyError):
            pass
    built = sorted((d for d in images.iterdir() if (d / "manifest.json").exists()),
                   key=lambda d: d.stat().st_mtime, reverse=True)
    for old in built[KEEP_IMAGES:]:
        if old != keep and old.name not in in_use:
            say(f"removing old image {old.name}")
            _remove_tree(old)
            (images / f"{old.name}.build.log").unlink(missing_ok=True)
