"""`--kernel 5.10|6.1|6.12|7.2`: boot the one image with another Debian release's own kernel.

The image (vm/build.py) carries bookworm's kernel, 6.1, the default. Any other kernel is a
bundle cached in kernels/<key>/ next to the images: the uncompressed kernel ELF, an
initramfs that loads that kernel's virtio/ext4 modules, and modules.img, an ext4 disk of
its /lib/modules that the initramfs mounts read-only over the root's. So the root
filesystem (Python, docker, libbpf, containers) is the same bytes under every kernel, and
only the kernel differs between runs.

The .debs come from the Debian mirror through a private apt configuration under the
bundle's work directory: the host's apt sources, lists and status are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vm import kernel
from vm.build import build_lock  # one lock for every build: they share the mirror and the disk
from vm.errors import VmError
from vm.paths import cache_root
from vm.progress import say, step
from vm.recipe import MIRROR

# Release -> the Debian suite whose linux-image-amd64 provides it.
SUITES = {"5.10": "bullseye", "6.1": "bookworm", "6.12": "trixie", "7.2": "sid"}
DEFAULT = "6.1"  # the image's own kernel: no bundle
ENV = "D4C_VM_KERNEL"
# Bump when this module or vm/kernel.py change what ends up in a bundle.
FORMAT = 1
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def selected(option: str | None) -> str:
    """The release asked for: --kernel, else $D4C_VM_KERNEL, else the default."""
    value = option or os.environ.get(ENV) or DEFAULT
    if value not in SUITES:
        origin = "--kernel" if option else ENV
        raise VmError(f"{origin} {value!r}: expected one of {', '.join(SUITES)}", exit_code=2)
    return value


@dataclass(frozen=True)
class Bundle:
    release: str
    key: str
    directory: Path
    version: str  # uname -r
    lsm: str | None  # lsm= for the command line when the kernel's default list lacks bpf

    @property
    def vmlinux(self) -> Path:
        return self.directory / "vmlinux"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.cpio"

    @property
    def modules(self) -> Path:
        return self.directory / "modules.img"

    @classmethod
    def load(cls, directory: Path) -> Bundle | None:
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            bundle = cls(manifest["release"], manifest["key"], directory, manifest["version"], manifest["lsm"])
        except (OSError, ValueError, KeyError):
            return None
        return bundle if all(p.exists() for p in (bundle.vmlinux, bundle.initrd, bundle.modules)) else None


def bundle_key(release: str) -> str:
    canonical = json.dumps({"suite": SUITES[release], "mirror": MIRROR, "format": FORMAT,
                            "init": kernel.init_script(True), "modules": kernel.ROOT_MODULES}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cached_bundle(release: str) -> Bundle | None:
    return Bundle.load(cache_root() / "kernels" / bundle_key(release))


def lsm_argument(config: str) -> str | None:
    """`lsm=<default>,bpf` when the kernel's CONFIG_LSM (its default order) lacks bpf."""
    match = re.search(r'^CONFIG_LSM="([^"]*)"', config, re.M)
    if not match:
        raise VmError("kernel config has no CONFIG_LSM: cannot tell whether bpf is enabled")
    names = [n for n in match.group(1).split(",") if n]
    return None if "bpf" in names else ",".join([*names, "bpf"])


class _Apt:
    """apt-get/apt-cache on one suite with everything (sources, lists, cache) in `root`."""

    def __init__(self, root: Path, suite: str, log: Path):
        self.root, self.log = root, log
        for sub in ("lists/partial", "cache/archives/partial"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n")
        self.options = [
            "-o", f"Dir::Etc::sourcelist={root / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::Cache={root / 'cache'}",
            "-o", "Dir::State::status=/dev/null", "-o", "APT::Architecture=amd64",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
        ]

    def run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run([tool, *self.options, *args], capture_output=True, text=True, cwd=cwd, check=False)
        with self.log.open("a") as log:
            log.write(f"\n$ {tool} {' '.join(args)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise VmError(f"{tool} {args[0]} failed (exit {result.returncode}): {tail}; full log: {self.log}")
        return result.stdout

    def depends(self, package: str) -> list[str]:
        return re.findall(r"^\s+Depends: (\S+)$", self.run("apt-cache", "depends", package), re.M)


def kernel_packages(depends_of) -> list[str]:
    """linux-image-amd64's kernel package, plus the parts it is split into since 7.x
    (linux-binary-/linux-modules-/linux-base-<abi>), resolved through `depends_of`."""
    images = [d for d in depends_of("linux-image-amd64") if d.startswith("linux-image-")]
    if len(images) != 1:
        raise VmError(f"linux-image-amd64: expected one linux-image-* dependency, got {images or 'none'}")
    abi = images[0].removeprefix("linux-image-")
    parts = [d for d in depends_of(images[0]) if d.endswith(f"-{abi}") and d.startswith("linux-")]
    return [images[0], *parts]


def _files(tree: Path, version: str) -> tuple[Path, Path, Path]:
    """vmlinuz, config and the modules dir of an extracted kernel, /boot or usr-merged layout."""
    moddir = next((d for d in (tree / "usr/lib/modules" / version, tree / "lib/modules" / version) if d.is_dir()), None)
    if moddir is None:
        raise VmError(f"no lib/modules/{version} in the kernel packages")
    found = []
    for name in ("vmlinuz", "config"):
        candidates = (tree / "boot" / f"{name}-{version}", moddir / name)
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise VmError(f"no {name} for {version} in the kernel packages")
        found.append(path)
    return found[0], found[1], moddir


def _build(release: str, final: Path) -> Bundle:
    started = time.monotonic()
    work = final.parent / f"{final.name}.build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = final.parent / f"{final.name}.build.log"
    log.write_text("")
    say(f"building kernel {release} ({SUITES[release]}) in {work} (log: {log})")
    try:
        apt = _Apt(work / "apt", SUITES[release], log)
        with step(f"kernel .debs from {SUITES[release]} (private apt lists)"):
            apt.run("apt-get", "update")
            packages = kernel_packages(apt.depends)
            debs = work / "debs"
            debs.mkdir()
            apt.run("apt-get", "download", *packages, cwd=debs)
        tree = work / "tree"
        with step(f"unpack {', '.join(packages)} and depmod"):
            for deb in sorted(debs.glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
            version = packages[0].removeprefix("linux-image-")
            vmlinuz, config, moddir = _files(tree, version)
            vmlinuz_bytes, config_text = vmlinuz.read_bytes(), config.read_text()  # 7.x: inside moddir
            modroot = work / "modroot"  # depmod -b wants <base>/lib/modules/<version>
            (modroot / "lib" / "modules").mkdir(parents=True)
            moddir.rename(modroot / "lib" / "modules" / version)
            subprocess.run(["depmod", "-b", str(modroot), version], check=True, capture_output=True)
        with step("kernel ELF, initramfs, modules disk"):
            (work / "vmlinux").write_bytes(kernel.extract_vmlinux(vmlinuz_bytes))
            (work / "initrd.cpio").write_bytes(kernel.build_initramfs(modroot, version, modules_disk=True))
            lsm = lsm_argument(config_text)
            used = int(subprocess.run(["du", "-sxb", str(modroot)], capture_output=True, text=True,
                                      check=True).stdout.split()[0])
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "d4cmods", "-d", str(modroot / "lib" / "modules"),
                            str(work / "modules.img"), f"{used * 5 // 4 // 1024**2 + 64}M"], check=True,
                           capture_output=True)
        manifest = {"release": release, "key": final.name, "suite": SUITES[release], "version": version,
                    "packages": packages, "lsm": lsm, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for leftover in ("apt", "debs", "tree", "modroot"):
            shutil.rmtree(work / leftover)
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    except subprocess.CalledProcessError as error:
        shutil.rmtree(work, ignore_errors=True)
        output = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        raise VmError(f"{error.cmd[0]} failed (exit {error.returncode}): {output[-1] if output else ''}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"kernel {release} ({version}) ready in {time.monotonic() - started:.0f}s: {final}")
    bundle = Bundle.load(final)
    assert bundle is not None
    return bundle


def ensure_bundle(release: str, rebuild: bool = False) -> Bundle | None:
    """The bundle for `release` (None for the image's own kernel), built when missing."""
    if release == DEFAULT:
        return None
    final = cache_root() / "kernels" / bundle_key(release)
    if not rebuild and (bundle := Bundle.load(final)):
        return bundle
    with build_lock(cache_root() / "build.lock"):
        if not rebuild and (bundle := Bundle.load(final)):
            return bundle
        return _build(release, final)
