"""`d4c vm build|run|up|down|status|console`: the BPF-LSM VM from the command line.

Thin: argument parsing and messages here, the work in vm.build / vm.machine / vm.agent.
Every failure is one line on stderr (plus a log tail where it helps) and an exit code:
2 usage, 1 failure, 3 `status` of a stopped VM, the command's own code for `run`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vm import agent, kernels, machine
from vm.build import ensure_image
from vm.errors import VmError
from vm.paths import cache_root, checkout_root
from vm.progress import say

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not ENV_NAME.match(name):
            raise VmError(f"--env {item!r}: expected NAME=VALUE with NAME a shell variable name", exit_code=2)
        env[name] = value
    return env


def command_argv(rest: list[str]) -> list[str]:
    argv = rest[1:] if rest[:1] == ["--"] else rest
    if not argv:
        raise VmError("no command given: d4c vm run [--env K=V] -- CMD [ARG...]", exit_code=2)
    return argv


def guest_cwd(checkout: Path, cwd: Path) -> str:
    """The host's cwd when it is inside the checkout (shared at the same path), else the checkout."""
    cwd = cwd.resolve()
    return str(cwd) if cwd == checkout or checkout in cwd.parents else str(checkout)


def _preflight(build: bool) -> None:
    needed = ["qemu-system-x86_64", "qemu-img"] + (["debootstrap", "mkfs.ext4", "chroot"] if build else [])
    missing = [tool for tool in needed if not shutil.which(tool)]
    if missing:
        raise VmError(f"missing tools: {', '.join(missing)} (run scripts/bootstrap.sh)")
    if build and os.geteuid() != 0:
        raise VmError("building the VM image needs root (debootstrap, chroot, mount)")


def _image(rebuild: bool = False):
    from vm.build import cached_image

    image = None if rebuild else cached_image()
    if image is None:
        _preflight(build=True)
        image = ensure_image(rebuild=rebuild)
    return image


def _bundle(release: str, rebuild: bool = False):
    """The --kernel bundle (None for the image's own kernel); building one needs no root."""
    if release != kernels.DEFAULT and (rebuild or kernels.cached_bundle(release) is None):
        missing = [tool for tool in ("apt-get", "dpkg-deb", "depmod", "mkfs.ext4") if not shutil.which(tool)]
        if missing:
            raise VmError(f"missing tools: {', '.join(missing)} (run scripts/bootstrap.sh)")
    return kernels.ensure_bundle(release, rebuild)


def cmd_build(args: argparse.Namespace) -> int:
    release = kernels.selected(args.kernel)
    _preflight(build=True)
    image = ensure_image(rebuild=args.rebuild)
    bundle = _bundle(release, args.rebuild)
    if bundle:
        print(f"{image.directory} (image {image.key}) with {bundle.directory} (kernel {release}: {bundle.version})")
    else:
        print(f"{image.directory} (image {image.key}, kernel {image.kernel_version})")
    return 0


@contextlib.contextmanager
def _terminated_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command as an exception would, so that its `finally` stops
    the throw-away VM: qemu runs in a session of its own (a terminal's Ctrl-C must not reach
    it first), so a `timeout` or a CI runner killing this process would otherwise leave the
    VM running."""
    def exit_on(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # only there can it be set
        yield
        return
    previous = {sig: signal.signal(sig, exit_on) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_run(args: argparse.Namespace) -> int:
    with _terminated_as_exit():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    argv = command_argv(args.cmd)
    env = parse_env(args.env)
    release = kernels.selected(args.kernel)
    _preflight(build=False)
    checkout = checkout_root()
    image = _image(args.rebuild)
    bundle = _bundle(release, args.rebuild)
    env.setdefault("PYTHONPATH", str(checkout))
    running = machine.load(machine.persistent_dir(checkout))
    if running and (running.image_key, running.kernel) != (image.key, release):
        say(f"the running VM (d4c vm up) has image {running.image_key}, kernel {running.kernel}; this command "
            f"wants {image.key}, kernel {release}: booting a fresh VM for it (d4c vm down; d4c vm up to switch)")
        running = None
    if running:
        return agent.run(running.port, argv, env, guest_cwd(checkout, Path.cwd()), wait_docker=not args.no_docker,
                         console_log=running.console_log)
    _remove_stale_run_dirs()
    state_dir = cache_root() / "machines" / f"run-{os.getpid()}"
    try:
        vm = machine.boot(image, checkout, state_dir, bundle)
    except VmError:
        if (state_dir / "console.log").exists():  # `d4c vm console --log` shows it afterwards
            shutil.copyfile(state_dir / "console.log", cache_root() / "machines" / "last-run.console.log")
        raise
    try:
        return agent.run(vm.port, argv, env, guest_cwd(checkout, Path.cwd()), wait_docker=not args.no_docker,
                         console_log=vm.console_log)
    finally:
        machine.stop(vm)
        # Keep the serial log of the last throw-away VM for debugging, drop the rest.
        log = state_dir / "console.log"
        if log.exists():
            log.replace(cache_root() / "machines" / "last-run.console.log")
        shutil.rmtree(state_dir, ignore_errors=True)


def _remove_stale_run_dirs() -> None:
    """Throw-away VM dirs of `d4c vm run`s that were killed before cleaning up."""
    for stale in (cache_root() / "machines").glob("run-*"):
        pid = stale.name.removeprefix("run-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)


def cmd_up(args: argparse.Namespace) -> int:
    release = kernels.selected(args.kernel)
    _preflight(build=False)
    checkout = checkout_root()
    image = _image(args.rebuild)
    bundle = _bundle(release, args.rebuild)
    state_dir = machine.persistent_dir(checkout)
    running = machine.load(state_dir)
    if running and (running.image_key, running.kernel) == (image.key, release):
        print(f"already running: pid {running.pid}, port {running.port}, kernel {release} ({state_dir})")
        return 0
    if running:
        say(f"stopping the running VM: its image {running.image_key}, kernel {running.kernel} is not "
            f"the wanted {image.key}, kernel {release}")
        machine.stop(running)
    vm = machine.boot(image, checkout, state_dir, bundle)
    print(f"up: pid {vm.pid}, accel {vm.accel}, port {vm.port}, console log {vm.console_log}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    running = machine.load(machine.persistent_dir(checkout_root()))
    if not running:
        print("not running")
        return 0
    machine.stop(running)
    print(f"down (console log kept: {running.console_log})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = machine.persistent_dir(checkout_root())
    running = machine.load(state_dir)
    if not running:
        print(f"not running ({state_dir})")
        return 3
    info = agent.ping(running.port) or {}
    print(f"running: pid {running.pid}, accel {running.accel}, port {running.port}, "
          f"up {time.time() - running.started:.0f}s, image {running.image_key}, --kernel {running.kernel}")
    print(f"  checkout {running.checkout}, console log {running.console_log}")
    if info:
        print(f"  kernel {info.get('kernel')}, lsm {info.get('lsm')}, docker ready: {info.get('docker')}")
    else:
        print("  the guest agent does not answer (see the console log)")
    return 0 if info else 1


def cmd_console(args: argparse.Namespace) -> int:
    state_dir = machine.persistent_dir(checkout_root())
    running = machine.load(state_dir)
    if args.log:
        log = running.console_log if running else cache_root() / "machines" / "last-run.console.log"
        if not log.exists():
            raise VmError(f"no console log at {log}")
        sys.stdout.write(log.read_text(errors="replace"))
        return 0
    if not running:
        raise VmError("no VM is up: start one with `d4c vm up` (or see a log with `d4c vm console --log`)")
    return agent.shell(running.port, guest_cwd(checkout_root(), Path.cwd()))


def _guarded(func):
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except VmError as error:
            print(f"d4c vm: {error}", file=sys.stderr)
            if error.detail:
                print(error.detail, file=sys.stderr)
            return error.exit_code
        except OSError as error:
            print(f"d4c vm: {error.filename or ''}{': ' if error.filename else ''}{error.strerror or error}",
                  file=sys.stderr)
            return 1
        except Exception as error:  # noqa: BLE001 - a bug: still one line, never a traceback
            print(f"d4c vm: unexpected {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    return wrapper


def _kernel_option(parser: argparse.ArgumentParser) -> None:
    # No argparse choices: an unknown value (option or $D4C_VM_KERNEL) gets kernels.selected's message.
    parser.add_argument("--kernel", metavar="|".join(kernels.SUITES), default=None,
                        help=f"Debian kernel to boot (default ${kernels.ENV}, else {kernels.DEFAULT}): "
                        + ", ".join(f"{k} {s}" for k, s in kernels.SUITES.items()))


def register(subparsers: argparse._SubParsersAction) -> None:
    vm = subparsers.add_parser("vm", help="BPF-LSM virtual machine: build, run commands, up/down",
                               description="A Debian VM whose kernel enforces BPF LSM (docs/vm.md).")
    sub = vm.add_subparsers(dest="vm_command", metavar="VM_COMMAND", required=True)

    build = sub.add_parser("build", help="build (or reuse) the cached VM image")
    build.add_argument("--rebuild", action="store_true", help="build even if a cached image exists")
    _kernel_option(build)
    build.set_defaults(func=_guarded(cmd_build))

    run = sub.add_parser("run", help="run a command as root in the VM, exit with its exit code",
                         usage="d4c vm run [--env K=V]... [--no-docker] [--rebuild] [--kernel K] [--] CMD [ARG...]")
    run.add_argument("--env", action="append", default=[], metavar="K=V", help="environment for CMD (repeatable)")
    run.add_argument("--rebuild", action="store_true", help="rebuild the image first")
    run.add_argument("--no-docker", action="store_true",
                     help="start CMD without waiting for the guest's dockerd (saves ~15 s after a boot)")
    _kernel_option(run)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command and its arguments")
    run.set_defaults(func=_guarded(cmd_run))

    up = sub.add_parser("up", help="boot a VM that later `d4c vm run` commands reuse")
    up.add_argument("--rebuild", action="store_true", help="rebuild the image first")
    _kernel_option(up)
    up.set_defaults(func=_guarded(cmd_up))

    down = sub.add_parser("down", help="power off the VM started by `d4c vm up`")
    down.set_defaults(func=_guarded(cmd_down))

    status = sub.add_parser("status", help="is a VM up (exit 0) or not (exit 3)")
    status.set_defaults(func=_guarded(cmd_status))

    console = sub.add_parser("console", help="interactive root shell in the VM started by `d4c vm up`")
    console.add_argument("--log", action="store_true", help="print the serial console log instead")
    console.set_defaults(func=_guarded(cmd_console))
