"""`--kernel`: release selection, the .debs a release needs, its LSM argument, its boot files."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from reference_agent.kernel import kernel_compat
from reference_agent.kernel.kernel_compat import attach_target, traced_function
from vm import cli, kernel, kernels, machine
from vm.build import Image
from vm.errors import VmError


def test_kernel_option_beats_the_environment_which_beats_the_default(monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    assert kernels.selected(None) == "6.1"
    monkeypatch.setenv(kernels.ENV, "7.2")
    assert kernels.selected(None) == "7.2"
    assert kernels.selected("5.10") == "5.10"


@pytest.mark.parametrize("option, env, origin", [("4.19", None, "--kernel"), (None, "6.6", "D4C_VM_KERNEL")])
def test_unknown_kernel_is_a_usage_error_naming_where_it_came_from(monkeypatch, option, env, origin):
    monkeypatch.delenv(kernels.ENV, raising=False)
    if env:
        monkeypatch.setenv(kernels.ENV, env)
    with pytest.raises(VmError) as error:
        kernels.selected(option)
    assert error.value.exit_code == 2 and str(error.value).startswith(origin)


def test_cli_rejects_an_unknown_kernel_with_exit_2(capsys, monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    parser = __import__("argparse").ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["vm", "run", "--kernel", "5.4", "--", "true"])
    assert args.func(args) == 2
    assert "--kernel '5.4': expected one of 5.10, 6.1, 6.12, 7.2" in capsys.readouterr().err


def test_bundle_keys_differ_per_release_and_are_stable():
    keys = {kernels.bundle_key(r) for r in kernels.SUITES}
    assert len(keys) == len(kernels.SUITES)
    assert kernels.bundle_key("6.12") == kernels.bundle_key("6.12")


@pytest.mark.parametrize("config, expected", [
    ('CONFIG_LSM="lockdown,yama,apparmor,tomoyo"\n', "lockdown,yama,apparmor,tomoyo,bpf"),
    ('CONFIG_X=y\nCONFIG_LSM="landlock,lockdown,yama,apparmor,bpf"\n', None),
])
def test_lsm_argument_adds_bpf_only_where_the_default_list_lacks_it(config, expected):
    assert kernels.lsm_argument(config) == expected


def test_lsm_argument_without_config_lsm_fails():
    with pytest.raises(VmError, match="CONFIG_LSM"):
        kernels.lsm_argument("CONFIG_BPF_LSM=y\n")


DEPENDS = {
    # 6.12 (trixie): one package carries kernel and modules
    "trixie": {"linux-image-amd64": ["linux-image-6.12.9+deb13-amd64"],
               "linux-image-6.12.9+deb13-amd64": ["kmod", "linux-base", "initramfs-tools"]},
    # 7.x (sid): the image package is split into binary, modules and base parts
    "sid": {"linux-image-amd64": ["linux-base-amd64", "linux-image-7.2.1+deb14-amd64"],
            "linux-image-7.2.1+deb14-amd64": ["dracut", "linux-base-7.2.1+deb14-amd64",
                                              "linux-binary-7.2.1+deb14-amd64", "linux-modules-7.2.1+deb14-amd64"]},
}


def test_kernel_packages_follow_the_split_of_newer_releases():
    assert kernels.kernel_packages(DEPENDS["trixie"].__getitem__) == ["linux-image-6.12.9+deb13-amd64"]
    assert kernels.kernel_packages(DEPENDS["sid"].__getitem__) == [
        "linux-image-7.2.1+deb14-amd64", "linux-base-7.2.1+deb14-amd64",
        "linux-binary-7.2.1+deb14-amd64", "linux-modules-7.2.1+deb14-amd64"]


def test_kernel_packages_without_a_kernel_fail():
    with pytest.raises(VmError, match="linux-image-amd64"):
        kernels.kernel_packages({"linux-image-amd64": ["linux-base-amd64"]}.__getitem__)


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd tool missing (scripts/bootstrap.sh installs it)")
def test_zstd_bzimage_yields_its_elf():
    elf = b"\x7fELF" + bytes(range(256)) * 64
    payload = subprocess.run(["zstd", "-q", "-c"], input=elf, capture_output=True, check=True).stdout
    payload += struct.pack("<I", len(elf))  # the size the kernel build appends
    setup_sects = 3
    header = bytearray((setup_sects + 1) * 512)
    header[0x1F1] = setup_sects
    header[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", header, 0x248, 16, len(payload))
    vmlinuz = bytes(header) + b"\0" * 16 + payload
    assert kernel.extract_vmlinux(vmlinuz) == elf


def test_initramfs_of_another_kernel_mounts_its_modules_disk_and_decompresses_modules(tmp_path):
    import lzma

    moddir = tmp_path / "lib/modules/7.2.0-test"
    (moddir / "kernel").mkdir(parents=True)
    (moddir / "kernel/virtio_blk.ko.xz").write_bytes(lzma.compress(b"\x7fELF blk", format=lzma.FORMAT_XZ))
    (moddir / "kernel/ext4.ko.xz").write_bytes(lzma.compress(b"\x7fELF ext4", format=lzma.FORMAT_XZ))
    (moddir / "modules.dep").write_text("kernel/virtio_blk.ko.xz:\nkernel/ext4.ko.xz:\n")
    (moddir / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")  # no crc32c_generic at all
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF busybox")
    archive = kernel.build_initramfs(tmp_path, "7.2.0-test", busybox, modules_disk=True)
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=archive, cwd=out, check=True, capture_output=True)
    assert (out / "lib/modules/ext4.ko").read_bytes() == b"\x7fELF ext4"
    assert (out / "modules").read_text().split() == ["virtio_blk.ko", "ext4.ko"]
    init = (out / "init").read_text()
    assert "mount -t ext4 -o ro /dev/vdb /newroot/lib/modules" in init
    assert init.index("/dev/vda /newroot") < init.index("/dev/vdb /newroot") < init.index("switch_root")
    plain = kernel.build_initramfs(tmp_path, "7.2.0-test", busybox)
    assert b"/dev/vdb" not in plain


def test_qemu_boots_the_bundle_with_its_modules_disk_read_only_and_lsm(tmp_path, monkeypatch):
    monkeypatch.delenv("D4C_VM_MEMORY_MB", raising=False)
    image = Image("k", tmp_path / "image", "6.1.0-test")
    bundle = kernels.Bundle("5.10", "b", tmp_path / "k510", "5.10.0-test", "lockdown,yama,apparmor,bpf")
    cmd = machine.qemu_command(image, tmp_path / "o.qcow2", tmp_path, 1, "tcg", 2, tmp_path / "c.log", bundle)
    assert cmd[cmd.index("-kernel") + 1] == str(bundle.vmlinux)
    assert cmd[cmd.index("-initrd") + 1] == str(bundle.initrd)
    drives = [cmd[i + 1] for i, word in enumerate(cmd) if word == "-drive"]
    assert drives[0].startswith(f"file={tmp_path / 'o.qcow2'}")  # the root disk stays /dev/vda
    assert drives[1] == f"file={bundle.modules},if=virtio,format=raw,readonly=on"
    assert "lsm=lockdown,yama,apparmor,bpf" in cmd[cmd.index("-append") + 1].split()
    default = machine.qemu_command(image, tmp_path / "o.qcow2", tmp_path, 1, "tcg", 2, tmp_path / "c.log")
    assert "lsm=" not in default[default.index("-append") + 1]
    assert sum(word == "-drive" for word in default) == 1


def test_a_renamed_traced_function_is_retargeted_only_when_missing():
    on_7 = {"do_file_open": True, "do_filp_open": False}.get
    on_6 = {"do_file_open": False, "do_filp_open": True}.get
    assert traced_function("fexit/do_filp_open") == "do_filp_open"
    assert traced_function("lsm/file_open") is None
    assert attach_target("do_filp_open", on_7) == "do_file_open"
    assert attach_target("do_filp_open", on_6) is None
    assert attach_target("do_filp_open", lambda name: None) is None  # BTF unreadable: keep it
    assert attach_target("vfs_open", on_7) is None


class _Probes:
    """libbpf's helper probe as a kernel with the helpers `present` answers it (1 supported,
    0 not, a negative errno when no program may be loaded at all)."""

    def __init__(self, present: set[int] | None) -> None:
        self.present = present
        self.asked: list[int] = []

    def libbpf_probe_bpf_helper(self, prog_type: int, helper_id: int, opts: object) -> int:
        self.asked.append(helper_id)
        if self.present is None:
            return -1
        return 1 if helper_id in self.present else 0


class _Functions:
    def __init__(self, rename_parameters: int | None) -> None:
        self.rename_parameters = rename_parameters

    def parameters(self, name: str) -> int | None:
        return self.rename_parameters if name == "bpf_lsm_path_rename" else None


ALL_HELPERS = {helper_id for helper_id, _since in kernel_compat.HELPERS.values()}
_KFUNC = {kernel_compat.PREEMPT_KFUNC: True}.get
_NO_KFUNC = {kernel_compat.PREEMPT_KFUNC: False}.get


# Each kernel as the loader sees it: the helpers its probes find, the parameters of
# bpf_lsm_path_rename in its BTF (None: BTF unreadable), whether its BTF has bpf_preempt_disable.
@pytest.mark.parametrize("helpers, rename_parameters, has, variant, hooks_file", [
    pytest.param(set(), 4, _NO_KFUNC, "v510", "file_hooks.v510.bpf.o", id="5.10"),
    pytest.param({158}, 4, _NO_KFUNC, "v510", "file_hooks.v510.bpf.o", id="5.11"),
    pytest.param(ALL_HELPERS, 4, _NO_KFUNC, "v510", "file_hooks.v510.bpf.o", id="5.18"),
    pytest.param(ALL_HELPERS, 5, _NO_KFUNC, None, "file_hooks.bpf.o", id="6.1"),
    pytest.param(ALL_HELPERS, 5, _KFUNC, "v610", "file_hooks.v610.bpf.o", id="6.12"),
    pytest.param(ALL_HELPERS, None, lambda name: None, None, "file_hooks.bpf.o", id="btf-unreadable"),
    # Never v610 without the helpers its objects call too, whatever the BTF says.
    pytest.param({158, 175}, 5, _KFUNC, "v510", "file_hooks.v510.bpf.o", id="no-bpf_loop-with-kfunc"),
])
def test_each_kernel_gets_one_build_of_the_hook_objects(helpers, rename_parameters, has, variant, hooks_file):
    missing = kernel_compat.missing_features(_Probes(helpers), _Functions(rename_parameters))
    chosen = kernel_compat.variant_for(missing, has)
    assert chosen == variant
    assert kernel_compat.object_file("file_hooks", chosen) == hooks_file
    assert kernel_compat.object_file("process_hooks", chosen) == hooks_file.replace("file_", "process_")
    assert kernel_compat.object_file("smoke", chosen) == "smoke.bpf.o"  # no variants: one build serves all
    assert (kernel_compat.variant_notice(missing) is not None) == (chosen == "v510")


def test_a_kernel_without_the_newer_helpers_is_told_what_it_lacks_and_what_changes():
    missing = kernel_compat.missing_features(_Probes(set()), _Functions(4))  # 5.10
    assert missing == ["bpf_get_current_task_btf (5.11)", "bpf_task_pt_regs (5.15)", "bpf_loop (5.17)"]
    notice = kernel_compat.variant_notice(missing)
    assert "bpf_loop (5.17)" in notice and "v510" in notice and "security_path_rename" in notice
    assert kernel_compat.missing_features(_Probes(ALL_HELPERS), _Functions(4)) == ["path_rename flags (5.19)"]


def test_a_kernel_that_refuses_every_probe_gets_the_default_objects():
    """No privilege to load even a probe (a locked-down kernel): the default objects' own load
    then says why, rather than a variant chosen on no evidence."""
    probes = _Probes(None)
    missing = kernel_compat.missing_features(probes, _Functions(None))
    assert missing == []
    assert sorted(probes.asked) == sorted(ALL_HELPERS)
    assert kernel_compat.variant_for(missing, _NO_KFUNC) is None


def test_every_variant_object_is_built_beside_its_default_build():
    from reference_agent.kernel.support import bpf_object_path

    for name in kernel_compat.VARIANT_OBJECTS:
        default = bpf_object_path(name, None)
        if not default.is_file():
            pytest.skip(f"{default} is missing: run `make -C bpf`")
        for variant in (kernel_compat.V510, kernel_compat.V610):
            path = bpf_object_path(name, variant)
            assert path.is_file(), f"{path} missing: bpf/Makefile builds it with `make -C bpf`"
            assert path.parent == default.parent


def _helper_calls(path: Path) -> set[int]:
    """The BPF helper ids an object's programs call: every `call` (opcode 0x85) with src_reg 0
    in its executable sections (ELF64 little-endian, as clang writes BPF objects)."""
    data = path.read_bytes()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    calls: set[int] = set()
    for i in range(shnum):
        _name, _type, flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        if not flags & 0x4:  # SHF_EXECINSTR
            continue
        for at in range(offset, offset + size, 8):
            opcode, regs, _off, imm = struct.unpack_from("<BBhi", data, at)
            if opcode == 0x85 and regs >> 4 == 0:
                calls.add(imm)
    return calls


def test_the_v510_objects_call_no_helper_a_5_10_kernel_lacks():
    """Every program of a v510 object, a new one included, must do without the newer helpers
    (d4c_current_task, d4c_task_pt_regs, D4C_LOOP): one call of them and 5.10 refuses the whole
    object. The default objects do call them (the check sees calls at all)."""
    from reference_agent.kernel.support import bpf_object_path

    newer = {helper_id: name for name, (helper_id, _since) in kernel_compat.HELPERS.items()}
    for name in kernel_compat.VARIANT_OBJECTS:
        default = bpf_object_path(name, None)
        if not default.is_file():
            pytest.skip(f"{default} is missing: run `make -C bpf`")
        assert _helper_calls(default) & set(newer)
        called = _helper_calls(bpf_object_path(name, kernel_compat.V510)) & set(newer)
        assert not called, f"{name}.v510.bpf.o calls {sorted(newer[h] for h in called)}"
