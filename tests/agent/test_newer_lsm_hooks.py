"""An lsm program on a hook only newer kernels have is left out where the kernel lacks it."""

from __future__ import annotations

from reference_agent.kernel.kernel_compat import NEWER_LSM_HOOKS, left_out


def test_inode_set_acl_is_left_out_only_on_a_kernel_without_it():
    on_6_1 = {"bpf_lsm_inode_set_acl": False, "bpf_lsm_inode_setxattr": True}.get
    on_6_2 = {"bpf_lsm_inode_set_acl": True, "bpf_lsm_inode_setxattr": True}.get
    assert left_out("lsm/inode_set_acl", on_6_1)
    assert not left_out("lsm/inode_set_acl", on_6_2)
    assert not left_out("lsm/inode_set_acl", lambda name: None)  # BTF unreadable: load, fail loudly
    assert NEWER_LSM_HOOKS["inode_set_acl"] == "inode_setxattr"


def test_hooks_every_supported_kernel_has_are_never_left_out():
    nothing = {}.get  # a kernel whose BTF names no hook at all
    assert not left_out("lsm/inode_setxattr", lambda name: False)
    assert not left_out("lsm/file_open", lambda name: False)
    assert not left_out("fexit/do_filp_open", nothing)
