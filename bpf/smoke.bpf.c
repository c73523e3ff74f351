// SPDX-License-Identifier: GPL-2.0
// Smallest proof that enforcement works: deny opening the files listed in `deny_inodes`
// to tasks whose cgroup v2 id is listed in `deny_cgroups`. Used by the in-VM smoke test
// (tests/kernel/test_smoke_enforcement.py) and as the "can this kernel run BPF LSM" probe.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "d4c_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* A file identity as the kernel stores it: dev is the kernel's dev_t (major << 20 | minor),
 * not the userspace st_dev encoding; kernel.support.kernel_dev converts. */
struct d4c_inode_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

// A handful of entries is all the smoke test needs; 64 leaves room for ad-hoc probing.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} deny_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct d4c_inode_key);
	__type(value, __u8);
} deny_inodes SEC(".maps");

// Number of denials, so a test can tell the program (not something else) returned EPERM.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} deny_count SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(smoke_file_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	__u64 cgid = bpf_get_current_cgroup_id();
	if (!bpf_map_lookup_elem(&deny_cgroups, &cgid))
		return 0;
	struct d4c_inode_key key = {
		.ino = BPF_CORE_READ(file, f_inode, i_ino),
		.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev),
	};
	if (!bpf_map_lookup_elem(&deny_inodes, &key))
		return 0;
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&deny_count, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	return -EPERM;
}
