"""Booting, finding and stopping the BPF-LSM VM (qemu), one machine directory per VM.

A machine directory holds: overlay.qcow2 (copy-on-write over the immutable base image, so
runs never pollute it), console.log (the guest's serial console), qemu.log (qemu's own
stderr), machine.json (pid, port, accel, image key, checkout). `d4c vm up` keeps its VM in
machines/<hash of the checkout path>/ so every later `d4c vm run` from that checkout reuses
it; a `d4c vm run` without one boots a throw-away VM in machines/run-<pid>/.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path

from vm import accel as accel_mod
from vm import agent
from vm.agent import console_tail
from vm.build import Image
from vm.kernels import DEFAULT as DEFAULT_KERNEL
from vm.kernels import Bundle
from vm.errors import VmError
from vm.paths import cache_root
from vm.progress import say

def memory_mb() -> int:
    """Guest RAM: `$D4C_VM_MEMORY_MB`, default 4096; less lets several VMs share one host."""
    value = os.environ.get("D4C_VM_MEMORY_MB", "4096")
    if not value.isdigit() or int(value) < 512:
        raise VmError(f"D4C_VM_MEMORY_MB={value!r}: expected a number of megabytes >= 512")
    return int(value)

BOOT_TIMEOUT = 300.0  # TCG on a loaded 2-core CI runner; a normal boot takes 8-15 s
GUEST_AGENT_PORT = 7000


@dataclass(frozen=True)
class Machine:
    state_dir: str
    pid: int
    port: int
    accel: str
    image_key: str
    checkout: str
    started: float
    kernel: str = DEFAULT_KERNEL  # the --kernel release it booted

    @property
    def console_log(self) -> Path:
        return Path(self.state_dir) / "console.log"


class BootFailed(Exception):
    pass


def persistent_dir(checkout: Path) -> Path:
    """Where `d4c vm up` keeps its VM: one per checkout, and per `$D4C_VM_NAME` (default
    "default") so tests can bring up their own without touching a developer's VM."""
    name = os.environ.get("D4C_VM_NAME", "default")
    return cache_root() / "machines" / hashlib.sha256(f"{checkout}\0{name}".encode()).hexdigest()[:12]


def kernel_cmdline(checkout: Path, bundle: Bundle | None = None) -> str:
    # Values may contain spaces: the guest agent percent-decodes d4c.* values.
    words = [f"d4c.checkout={urllib.parse.quote(str(checkout), safe='/')}"]
    if bundle and bundle.lsm:
        words.insert(0, f"lsm={bundle.lsm}")
    if os.environ.get("D4C_VM_DOCKERD_ARGS"):
        words.append(f"d4c.dockerd={urllib.parse.quote(os.environ['D4C_VM_DOCKERD_ARGS'], safe='')}")
    return "console=ttyS0 root=/dev/vda rw panic=-1 " + " ".join(words)


def qemu_command(image: Image, overlay: Path, checkout: Path, port: int, accel: str, cpus: int,
                 console_log: Path, bundle: Bundle | None = None) -> list[str]:
    cpu = "host" if accel == "kvm" else "max"
    # Single-threaded TCG: with thread=multi the guest livelocked (soft lockups in
    # __alloc_pages at a jump-label NOP) when runc's first cgroup flipped kernel static keys,
    # i.e. cross-vCPU code patching; BPF program attach flips static keys too. On 2 host
    # cores under load it measured no slower (docs/vm.md).
    accel_opt = "kvm" if accel == "kvm" else "tcg,thread=single"
    return [
        "qemu-system-x86_64",
        "-accel", accel_opt, "-cpu", cpu, "-m", str(memory_mb()), "-smp", str(cpus),
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{console_log}",
        # The uncompressed ELF boots through PVH: no XZ decompression under TCG.
        "-kernel", str((bundle or image).vmlinux), "-initrd", str((bundle or image).initrd),
        "-append", kernel_cmdline(checkout, bundle),
        "-drive", f"file={overlay},if=virtio,format=qcow2,cache=unsafe",
        # The other kernel's modules, /dev/vdb; read-only, so VMs booted at once share it.
        *(["-drive", f"file={bundle.modules},if=virtio,format=raw,readonly=on"] if bundle else []),
        "-virtfs", f"local,path={checkout},mount_tag=checkout,security_model=none,multidevs=remap",
        # User-mode network, restricted (no route out), with the agent's port forwarded.
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-10.0.2.15:{GUEST_AGENT_PORT}",
        "-device", "virtio-net-pci,netdev=net0",
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child, now reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load(state_dir: Path) -> Machine | None:
    """The machine recorded in `state_dir` if its qemu is still alive and the agent answers."""
    try:
        machine = Machine(**json.loads((state_dir / "machine.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    try:
        cmdline = Path(f"/proc/{machine.pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"qemu-system" not in cmdline or str(state_dir).encode() not in cmdline:
        return None  # pid reused by something else
    return machine


def _start(image: Image, checkout: Path, state_dir: Path, accel: str, timeout: float,
           bundle: Bundle | None) -> Machine:
    state_dir.mkdir(parents=True, exist_ok=True)
    overlay = state_dir / "overlay.qcow2"
    overlay.unlink(missing_ok=True)
    result = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.rootfs),
                             str(overlay)], capture_output=True, check=False, text=True)
    if result.returncode != 0:
        raise VmError(f"qemu-img create failed: {result.stderr.strip()}")
    console = state_dir / "console.log"
    console.write_text("")
    port = _free_port()
    command = qemu_command(image, overlay, checkout, port, accel, os.cpu_count() or 1, console, bundle)
    with (state_dir / "qemu.log").open("wb") as qemu_log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    started = time.time()
    try:
        _wait_for_agent(proc, port, state_dir, timeout)
    except BaseException:  # a failed boot, or the command interrupted while it boots
        proc.kill()
        proc.wait()
        raise
    machine = Machine(str(state_dir), proc.pid, port, accel, image.key, str(checkout), started,
                      bundle.release if bundle else DEFAULT_KERNEL)
    (state_dir / "machine.json").write_text(json.dumps(asdict(machine), indent=2) + "\n")
    return machine


def _wait_for_agent(proc: subprocess.Popen[bytes], port: int, state_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            qemu_err = (state_dir / "qemu.log").read_text(errors="replace").strip()
            raise BootFailed(f"qemu exited with status {code}" + (f": {qemu_err.splitlines()[-1]}" if qemu_err else ""))
        if agent.ping(port, timeout=2.0) is not None:
            return
        if time.monotonic() > deadline:
            raise BootFailed(f"the guest agent did not answer within {timeout:.0f}s")
        time.sleep(0.25)


def boot(image: Image, checkout: Path, state_dir: Path, bundle: Bundle | None = None) -> Machine:
    """Boot a VM and wait for its agent; KVM if it works here (probed once), else TCG."""
    accel, probing, why = accel_mod.plan()
    began = time.monotonic()
    if probing:
        say(f"acceleration: trying kvm ({why})")
        try:
            machine = _start(image, checkout, state_dir, "kvm", accel_mod.KVM_PROBE_SECONDS, bundle)
        except BootFailed as failure:
            accel_mod.save_verdict("tcg", f"guest did not boot under KVM: {failure}")
            say(f"acceleration: tcg (the guest did not boot under KVM: {failure}; verdict cached)")
            accel = "tcg"
        else:
            accel_mod.save_verdict("kvm", "guest booted under KVM")
            say(f"acceleration: kvm; booted in {time.monotonic() - began:.1f}s")
            return machine
    else:
        say(f"acceleration: {accel} ({why})")
    say(f"boot ({accel}, {os.cpu_count()} vCPUs, {memory_mb()} MB, "
        f"kernel {bundle.version if bundle else image.kernel_version}) ...")
    t0 = time.monotonic()
    try:
        machine = _start(image, checkout, state_dir, accel, BOOT_TIMEOUT, bundle)
    except BootFailed as failure:
        raise VmError(f"boot failed: {failure}; serial console log: {state_dir / 'console.log'}",
                      detail=console_tail(state_dir / "console.log")) from None
    say(f"boot: agent ready in {time.monotonic() - t0:.1f}s")
    return machine


def stop(machine: Machine, timeout: float = 20.0) -> None:
    """Power the guest off cleanly (agent), then make sure qemu is gone."""
    agent.poweroff(machine.port)
    deadline = time.monotonic() + timeout
    while _alive(machine.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _alive(machine.pid):
            break
        try:
            os.kill(machine.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(1.0)
    _alive(machine.pid)  # reap it if it was our child
    state_dir = Path(machine.state_dir)
    (state_dir / "overlay.qcow2").unlink(missing_ok=True)
    (state_dir / "machine.json").unlink(missing_ok=True)
