/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel/userspace contract of the reference agent: map keys and values and ring-buffer
 * records, defined once here with fixed-width types. reference_agent/kernel/abi.py mirrors
 * every struct with ctypes; tests/kernel/test_abi_layout.py checks the two agree by reading
 * the layout the compiler emitted into the object's BTF.
 */
#ifndef D4C_ABI_H
#define D4C_ABI_H

#ifndef EPERM
#define EPERM 1
#endif

/* A file identity as the kernel stores it: dev is the kernel's dev_t (major << 20 | minor),
 * not the userspace st_dev encoding; the Python side converts. */
struct d4c_inode_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

#endif /* D4C_ABI_H */
