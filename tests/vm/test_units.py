"""Unit tests of the vm package: cache keys, argument handling, boot files, qemu command line."""

from __future__ import annotations

import dataclasses
import lzma
import os
import subprocess
from pathlib import Path

import pytest

from vm import accel, cli, kernel, machine, recipe
from vm.build import Image
from vm.containers import CONTAINER_IMAGES
from vm.errors import VmError

CHECKOUT = Path(__file__).resolve().parents[2]


# --- cache key -------------------------------------------------------------------------------

def test_key_is_stable_for_the_same_inputs():
    assert recipe.image_inputs(CHECKOUT).key() == recipe.image_inputs(CHECKOUT).key()


@pytest.mark.parametrize("change", [
    lambda i: dataclasses.replace(i, files=i.files[:-1] + (("vm/guest/agent.py", "0" * 64),)),
    lambda i: dataclasses.replace(i, requirements=i.requirements + ("extra-package>=1",)),
    lambda i: dataclasses.replace(i, containers=i.containers[:-1]),
    lambda i: dataclasses.replace(i, suite="trixie"),
    lambda i: dataclasses.replace(i, format=i.format + 1),
])
def test_key_changes_with_every_input(change):
    inputs = recipe.image_inputs(CHECKOUT)
    assert change(inputs).key() != inputs.key()


def test_key_covers_the_provisioning_script(tmp_path):
    for name in (*recipe.GUEST_FILES, "pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((CHECKOUT / name).read_bytes())
    before = recipe.image_inputs(tmp_path).key()
    with (tmp_path / "vm/provision.sh").open("a") as script:
        script.write("\n# changed\n")
    assert recipe.image_inputs(tmp_path).key() != before


def test_requirements_come_from_pyproject_without_self_references(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\ndependencies = ["a>=1"]\n'
        '[project.optional-dependencies]\ntest = ["b"]\nagent = ["c<2"]\ndev = ["demo[test]", "ruff"]\n')
    assert recipe.requirements(tmp_path / "pyproject.toml") == ("a>=1", "b", "c<2")


def test_unreadable_pyproject_is_a_one_line_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(VmError, match="pyproject.toml: cannot read"):
        recipe.requirements(tmp_path / "pyproject.toml")


def test_container_recipes_are_the_scenario_images():
    assert {c.ref for c in CONTAINER_IMAGES} == {"nginx:latest", "busybox:latest", "debian:bookworm"}


# --- CLI arguments ---------------------------------------------------------------------------

def test_env_pairs_are_parsed():
    assert cli.parse_env(["A=1", "B_2=x=y", "EMPTY="]) == {"A": "1", "B_2": "x=y", "EMPTY": ""}


@pytest.mark.parametrize("bad", ["NOEQUALS", "1A=2", "=v", "A-B=1"])
def test_bad_env_is_a_usage_error(bad):
    with pytest.raises(VmError) as error:
        cli.parse_env([bad])
    assert error.value.exit_code == 2


def test_command_after_double_dash_keeps_its_own_options():
    assert cli.command_argv(["--", "ls", "-l", "--", "x"]) == ["ls", "-l", "--", "x"]
    assert cli.command_argv(["ls", "-l"]) == ["ls", "-l"]


def test_missing_command_is_a_usage_error():
    with pytest.raises(VmError) as error:
        cli.command_argv(["--"])
    assert error.value.exit_code == 2


def test_run_usage_errors_exit_2_without_traceback(capsys):
    parser = cli_parser()
    assert parser.parse_args(["vm", "run", "--env", "1=2", "--", "true"]).func(
        parser.parse_args(["vm", "run", "--env", "1=2", "--", "true"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("d4c vm: --env '1=2'") and "Traceback" not in err and err.count("\n") == 1


def cli_parser():
    import argparse

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser


def test_remainder_collects_the_command():
    args = cli_parser().parse_args(["vm", "run", "--env", "A=1", "--", "python3", "-m", "pytest", "-q"])
    assert args.env == ["A=1"] and cli.command_argv(args.cmd) == ["python3", "-m", "pytest", "-q"]


def test_guest_cwd_follows_the_host_cwd_inside_the_checkout(tmp_path):
    assert cli.guest_cwd(CHECKOUT, CHECKOUT / "tests") == str(CHECKOUT / "tests")
    assert cli.guest_cwd(CHECKOUT, CHECKOUT) == str(CHECKOUT)
    assert cli.guest_cwd(CHECKOUT, tmp_path) == str(CHECKOUT)


# --- boot files ------------------------------------------------------------------------------

DEP = """kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
"""


def test_modules_load_after_their_dependencies():
    deps = kernel.parse_modules_dep(DEP)
    order = kernel.module_load_order(deps, ("virtio_pci", "ext4"))
    assert set(order) == set(deps)
    for module, needs in deps.items():
        for dep in needs:
            assert order.index(dep) < order.index(module), (dep, module)


def test_builtin_modules_are_skipped_and_unknown_ones_rejected():
    deps = kernel.parse_modules_dep(DEP)
    assert kernel.module_load_order(deps, ("crc32c_generic",), frozenset({"crc32c_generic"})) == []
    with pytest.raises(VmError, match="no_such_module"):
        kernel.module_load_order(deps, ("no_such_module",))


def test_vmlinux_is_found_after_the_bzimage_stub():
    elf = b"\x7fELF" + os.urandom(4096)
    bzimage = b"MZ" + b"\0" * 1000 + kernel.XZ_MAGIC + b"junk" + lzma.compress(elf, format=lzma.FORMAT_XZ) + b"\0" * 64
    assert kernel.extract_vmlinux(bzimage) == elf


def test_non_kernel_is_rejected():
    with pytest.raises(VmError, match="no XZ- or zstd-compressed ELF"):
        kernel.extract_vmlinux(b"MZ" + lzma.compress(b"not an elf", format=lzma.FORMAT_XZ))


def test_initramfs_is_a_newc_archive_with_init_modules_and_console(tmp_path):
    moddir = tmp_path / "lib/modules/6.1.0-test"
    for path in kernel.parse_modules_dep(DEP):
        (moddir / path).parent.mkdir(parents=True, exist_ok=True)
        (moddir / path).write_bytes(path.encode())
    (moddir / "modules.dep").write_text(DEP + "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n")
    (moddir / "kernel/drivers/block").mkdir(parents=True)
    (moddir / "kernel/drivers/block/virtio_blk.ko").write_bytes(b"blk")
    (moddir / "modules.builtin").write_text("kernel/crypto/crc32c_generic.ko\n")
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF busybox")
    archive = kernel.build_initramfs(tmp_path, "6.1.0-test", busybox)
    listing = subprocess.run(["cpio", "-itv"], input=archive, capture_output=True, check=True).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines()]
    assert {"init", "bin/busybox", "dev/console", "modules", "lib/modules/ext4.ko", "lib/modules/virtio_blk.ko"} <= set(names)
    assert any(line.startswith("crw") and line.endswith("dev/console") for line in listing.splitlines())
    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"], input=archive, cwd=extracted,
                   check=True, capture_output=True)
    order = (extracted / "modules").read_text().split()
    assert order.index("virtio.ko") < order.index("virtio_blk.ko")
    assert order.index("jbd2.ko") < order.index("ext4.ko")


# --- qemu command line -----------------------------------------------------------------------

def test_qemu_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("D4C_VM_MEMORY_MB", raising=False)
    image = Image("k", tmp_path, "6.1")
    checkout = Path("/some where/checkout")
    cmd = machine.qemu_command(image, tmp_path / "o.qcow2", checkout, 40000, "tcg", 2, tmp_path / "c.log")
    joined = " ".join(cmd)
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=single" and cmd[cmd.index("-cpu") + 1] == "max"
    assert cmd[cmd.index("-m") + 1] == "4096" and cmd[cmd.index("-smp") + 1] == "2"
    assert f"local,path={checkout},mount_tag=checkout" in joined
    assert "hostfwd=tcp:127.0.0.1:40000-10.0.2.15:7000" in joined and "restrict=on" in joined
    assert cmd[cmd.index("-kernel") + 1] == str(tmp_path / "vmlinux")
    append = cmd[cmd.index("-append") + 1]
    assert "d4c.checkout=/some%20where/checkout" in append.split()
    kvm = machine.qemu_command(image, tmp_path / "o.qcow2", checkout, 1, "kvm", 4, tmp_path / "c.log")
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"


def test_persistent_vm_dir_depends_on_checkout_and_name(monkeypatch):
    monkeypatch.delenv("D4C_VM_NAME", raising=False)
    default = machine.persistent_dir(Path("/a"))
    assert default != machine.persistent_dir(Path("/b"))
    monkeypatch.setenv("D4C_VM_NAME", "tests")
    assert machine.persistent_dir(Path("/a")) != default


# --- acceleration ----------------------------------------------------------------------------

def test_accel_override(monkeypatch):
    monkeypatch.setenv("D4C_VM_ACCEL", "tcg")
    assert accel.plan()[:2] == ("tcg", False)


def test_accel_verdict_is_cached_per_host(monkeypatch, tmp_path):
    monkeypatch.delenv("D4C_VM_ACCEL", raising=False)
    monkeypatch.setenv("D4C_VM_CACHE", str(tmp_path))
    monkeypatch.setattr(accel, "kvm_device_usable", lambda device="/dev/kvm": (True, "fake"))
    assert accel.plan()[:2] == ("kvm", True)  # unverified: a probe
    accel.save_verdict("tcg", "did not boot")
    assert accel.plan()[:2] == ("tcg", False)
    monkeypatch.setattr(accel, "host_id", lambda: "another host")
    assert accel.plan()[:2] == ("kvm", True)


def test_missing_kvm_device_means_tcg(monkeypatch, tmp_path):
    monkeypatch.delenv("D4C_VM_ACCEL", raising=False)
    monkeypatch.setenv("D4C_VM_CACHE", str(tmp_path))
    usable, why = accel.kvm_device_usable(str(tmp_path / "no-kvm"))
    assert not usable and "no-kvm" in why


# --- provisioning script ---------------------------------------------------------------------

def test_provision_script_parses_and_rejects_a_bad_mode():
    script = CHECKOUT / "vm/provision.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run(["bash", str(script)], env={**os.environ, "D4C_PROVISION_MODE": "bogus"},
                            capture_output=True, check=False, text=True)
    assert result.returncode == 2 and "D4C_PROVISION_MODE" in result.stderr


# --- a failed boot ---------------------------------------------------------------------------

def test_failed_boot_is_one_error_with_the_logs(monkeypatch, tmp_path):
    """A kernel qemu cannot boot: a VmError naming the console log, with its tail attached."""
    monkeypatch.setenv("D4C_VM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("D4C_VM_ACCEL", "tcg")
    image_dir = tmp_path / "image"
    image_dir.mkdir()
    (image_dir / "vmlinux").write_bytes(b"not a kernel")
    (image_dir / "initrd.cpio").write_bytes(b"")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image_dir / "rootfs.img"), "1M"], check=True)
    state = tmp_path / "machine"
    with pytest.raises(VmError) as error:
        machine.boot(Image("k", image_dir, "6.1"), CHECKOUT, state)
    assert "boot failed: qemu exited" in str(error.value) and str(state / "console.log") in str(error.value)
    assert error.value.detail  # the console tail (or a note that it is empty) is shown


def test_guest_memory_follows_the_environment(monkeypatch, tmp_path):
    image = Image("k", tmp_path, "6.1")
    monkeypatch.setenv("D4C_VM_MEMORY_MB", "2048")
    cmd = machine.qemu_command(image, tmp_path / "o.qcow2", tmp_path, 1, "tcg", 2, tmp_path / "c.log")
    assert cmd[cmd.index("-m") + 1] == "2048"
    monkeypatch.setenv("D4C_VM_MEMORY_MB", "lots")
    with pytest.raises(VmError, match="D4C_VM_MEMORY_MB"):
        machine.memory_mb()
