"""Container images for scenarios, built locally from Debian packages (no registry reachable).

Each recipe gives a root filesystem that `docker import` turns into an image of the guest's
docker. The rootfs trees come from the same debootstrap minbase as the VM itself, so building
them costs a copy plus (for nginx) one apt-get in a chroot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vm.errors import VmError


@dataclass(frozen=True)
class ContainerImage:
    ref: str  # name:tag in the guest's docker
    base: str  # "minbase" (debootstrap --variant=minbase) or "busybox" (busybox-static only)
    packages: tuple[str, ...] = ()  # extra Debian packages installed in a chroot
    cmd: tuple[str, ...] = ("sh",)
    expose: tuple[str, ...] = ()


CONTAINER_IMAGES: tuple[ContainerImage, ...] = (
    ContainerImage("debian:bookworm", "minbase", cmd=("bash",)),
    ContainerImage("busybox:latest", "busybox", cmd=("sh",)),
    ContainerImage("nginx:latest", "minbase", packages=("nginx",),
                   cmd=("nginx", "-g", "daemon off;"), expose=("80/tcp",)),
)

CHROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
              "DEBIAN_FRONTEND": "noninteractive"}


def run_logged(argv: list[str], log: Path, what: str, **kwargs) -> None:
    """Run a build command with its output appended to `log`; fail with the log's tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise VmError(f"{what} failed (exit {result.returncode}); full log: {log}", detail=tail)


@contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """proc and sysfs for package scripts in a chroot. Fresh instances, never a bind of the
    host's /dev: a later rm -rf of the tree must not be able to reach host device nodes."""
    mounted: list[Path] = []
    try:
        for fstype, point in (("proc", "proc"), ("sysfs", "sys")):
            (root / point).mkdir(exist_ok=True)
            result = subprocess.run(["mount", "-t", fstype, fstype, str(root / point)], capture_output=True, check=False, text=True)
            if result.returncode != 0:
                raise VmError(f"mount -t {fstype} on {root / point} failed: {result.stderr.strip()}")
            mounted.append(root / point)
        yield
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "-l", str(point)], check=False)


def build_rootfs(image: ContainerImage, minbase: Path, dest: Path, log: Path) -> None:
    if image.base == "busybox":
        busybox = Path("/bin/busybox")
        if not busybox.exists():
            raise VmError("/bin/busybox not found: install Debian's busybox-static (scripts/bootstrap.sh)")
        for sub in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(busybox, dest / "bin" / "busybox")
        applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (dest / "bin" / applet).symlink_to("busybox")
        (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        (dest / "tmp").chmod(0o1777)
        return
    run_logged(["cp", "-a", "--reflink=auto", f"{minbase}/.", str(dest)], log, f"copy of the minbase for {image.ref}")
    if image.packages:
        shutil.copy2("/etc/resolv.conf", dest / "etc" / "resolv.conf")
        (dest / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (dest / "usr/sbin/policy-rc.d").chmod(0o755)
        script = ("apt-get update -q && apt-get install -y -q --no-install-recommends "
                  + " ".join(image.packages) + " && apt-get clean")
        with chroot_mounts(dest):
            run_logged(["chroot", str(dest), "sh", "-c", script], log, f"apt-get install for {image.ref}",
                       env=CHROOT_ENV)
        (dest / "usr/sbin/policy-rc.d").unlink()
    # Images carry no apt lists or logs (like the registry's debian images).
    for junk in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
        shutil.rmtree(dest / junk, ignore_errors=True)
        (dest / junk).mkdir(parents=True, exist_ok=True)
    (dest / "etc" / "resolv.conf").write_text("")


def import_into_data_root(images: dict[ContainerImage, Path], data_root: Path, log: Path) -> None:
    """Import rootfs trees into a docker data dir, using a private dockerd on the host.

    The guest runs the same docker.io (Debian 12), so the data dir is baked into the VM image
    and the images are there at every boot for free (no `docker load` per boot).
    """
    if not shutil.which("dockerd"):
        raise VmError("dockerd not found on the host: install Debian's docker.io (scripts/bootstrap.sh)")
    run = Path(tempfile.mkdtemp(prefix="d4c-dockerd-", dir="/tmp"))  # short: unix socket paths
    sock = run / "docker.sock"
    data_root.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            ["dockerd", "--data-root", str(data_root), "--exec-root", str(run / "exec"),
             "--pidfile", str(run / "dockerd.pid"), "--host", f"unix://{sock}",
             "--iptables=false", "--bridge=none", "--storage-driver=overlay2"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        docker = ["docker", "-H", f"unix://{sock}"]
        deadline = time.monotonic() + 60
        while subprocess.run([*docker, "version"], capture_output=True, check=False).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise VmError(f"private dockerd did not start; log: {log}",
                              detail="\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            time.sleep(0.3)
        for image, rootfs in images.items():
            changes = ["--change", f"CMD {json.dumps(list(image.cmd))}"]
            for port in image.expose:
                changes += ["--change", f"EXPOSE {port}"]
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", "-", "."],
                                   stdout=subprocess.PIPE)
            run_logged([*docker, "import", *changes, "-", image.ref], log, f"docker import {image.ref}", stdin=tar.stdout)
            tar.wait()
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(run, ignore_errors=True)
    # Host-specific state the guest's dockerd must recreate for itself.
    for stale in ("network", "containerd", "runtimes", "tmp"):
        shutil.rmtree(data_root / stale, ignore_errors=True)
    os.sync()
