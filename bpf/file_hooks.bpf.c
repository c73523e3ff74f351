// SPDX-License-Identifier: GPL-2.0
// File drift prevention (D17-D19, D22): LSM hooks classify each file operation of a process
// in a container, resolve the target to a path inside the container's root, match it against
// the policy's file selectors, evaluate the responses, report to the ring buffer and block
// with -EPERM. Static selector conditions (image, orchestrator) are evaluated in userspace
// per container and arrive here as the `container_selectors` bitmask of its cgroup
// (d4c_policy.bpf.h, shared with process_hooks.bpf.c).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "d4c_compat.bpf.h"
#include "d4c_file_abi.h"
#include "d4c_policy.bpf.h"
#include "d4c_paths.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define S_IFMT 00170000
#define S_IFREG 0100000
#define S_IFDIR 0040000
#define S_IFLNK 0120000
#define S_IXUGO 00111
#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define O_TRUNC 00001000
#define __O_TMPFILE 020000000 /* include/uapi/asm-generic/fcntl.h */
#define RENAME_EXCHANGE (1 << 1) /* include/uapi/linux/fs.h */
/* include/uapi/linux/posix_acl.h and posix_acl_xattr.h */
#define ACL_USER_OBJ 0x01
#define ACL_GROUP_OBJ 0x04
#define ACL_MASK 0x10
#define ACL_OTHER 0x20
#define ACL_EXECUTE 0x01
#define ACL_MAX_ENTRIES 32 /* entries looked at; an ACL with more is judged by these */

/* The d_flags bit of a dentry whose name is still being looked up (d_alloc_parallel). Its
 * value is not stable: 0x10000000 (BIT(28)) as a #define from 4.7 through 6.14, which is not
 * in BTF; BIT(24) since 6.15, where the flags became `enum dentry_flags` and so are in the
 * kernel's BTF. Source of truth: the running kernel's BTF when it has the enum (a CO-RE
 * enum-value relocation, resolved by libbpf at load time against /sys/kernel/btf/vmlinux);
 * otherwise the one value all earlier kernels share. Never vmlinux.h's value: that is the
 * build machine's kernel (bpf/README.md). The ___d4c flavour keeps this local definition
 * apart from a vmlinux.h that has the real enum; libbpf ignores the suffix when matching. */
enum dentry_flags___d4c {
	DCACHE_PAR_LOOKUP___d4c = 0x10000000,
};
#define DCACHE_PAR_LOOKUP_BEFORE_6_15 0x10000000

static __always_inline __u32 dcache_par_lookup(void)
{
	if (bpf_core_enum_value_exists(enum dentry_flags___d4c, DCACHE_PAR_LOOKUP___d4c))
		return bpf_core_enum_value(enum dentry_flags___d4c, DCACHE_PAR_LOOKUP___d4c);
	return DCACHE_PAR_LOOKUP_BEFORE_6_15;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct d4c_file_policy);
} file_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_POLICY_SLOTS * D4C_MAX_PATTERNS); /* slot s: [s * MAX, (s+1) * MAX) */
	__type(key, __u32);
	__type(value, struct d4c_path_pattern);
} path_patterns SEC(".maps");

/* 4 MiB: ~950 full-size records before userspace must have drained some. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} file_events SEC(".maps");

/* D19: mount ids (struct mount.mnt_id) of Kubernetes configMap, secret, downwardAPI and
 * projected volumes: directory mounts whose files are class `file`. Userspace keeps exactly
 * the ones of the registered containers here (system/mounts.py, FileEnforcer). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* mount id */
	__type(value, __u32); /* enum d4c_mount_class */
} file_mounts SEC(".maps");

/* The two markers below keep one open to one event. Each is set and consumed by hooks of the
 * same open (do_filp_open) and is forgotten when any open of the thread starts or ends
 * (d4c_open_enter / d4c_open_exit), so that a marker of an open that failed after setting it
 * (a later LSM, a fanotify permission denial) can never hide a later operation.
 *
 * An O_TRUNC open is reported once, by file_open: it records the inode here so that the
 * path_truncate that follows in the same open is not reported a second time. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);   /* pid_tgid */
	__type(value, __u64); /* struct inode * */
} truncating_open SEC(".maps");

/* A creation path_mknod reported (pid_tgid -> struct dentry *), so that file_open, seeing
 * FMODE_CREATED for the same dentry, does not report it again. mknod(2) sets it too, outside
 * any open: the next open's start forgets it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} mknod_reported SEC(".maps");

/* A creation denied at path_mknod while the name was being looked up (pid_tgid -> record):
 * reported by d4c_open_exit if the open failed, dropped if it succeeded (the file existed). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct d4c_file_event);
} deferred_denial SEC(".maps");

/* Per-CPU scratch: two records (rename decides both sides before reporting either); their
 * paths are path buffers 0 and 1. Too large for the 512-byte BPF stack. */
struct scratch {
	struct d4c_file_event ev[2];
};
D4C_PERCPU_SCRATCH(struct scratch, scratch_map, get_scratch)

/* The accessors d4c_paths.bpf.h needs: paths are resolved into, and matched in, the path of
 * scratch record `which`; patterns are those of path_patterns. */
static __always_inline char *d4c_path_buf(__u32 which)
{
	struct scratch *sc = get_scratch();
	return sc ? sc->ev[which & 1].path : 0;
}

static __always_inline struct d4c_path_pattern *d4c_pattern(__u32 key)
{
	return bpf_map_lookup_elem(&path_patterns, &key);
}

/* Whether (mnt, dentry) is a file of the container at all: not on a pseudo filesystem and
 * not on a kernel-private mount (overlayfs copy-up writes its upper layer through one: that
 * is the kernel carrying out the syscall already reported, not a second operation). */
static __always_inline int container_file(struct vfsmount *mnt, struct dentry *dentry)
{
	if (pseudo_fs(BPF_CORE_READ(dentry, d_sb, s_magic))) {
		d4c_stat_add(D4C_STAT_NOT_CONTAINER_FILE);
		return 0;
	}
	if ((__u64)BPF_CORE_READ(real_mount(mnt), mnt_ns) == MNT_NS_INTERNAL) {
		d4c_stat_add(D4C_STAT_NOT_CONTAINER_FILE);
		return 0;
	}
	return 1;
}

/*
 * The one path helper of every hook: writes into record `which` the path of `dentry` (on
 * mount `vfsmnt`) as seen from the current task's root and its mount class (D19), via
 * d4c_resolve_path (d4c_paths.bpf.h). Returns 0, or -1 when the path is incomplete (too deep,
 * too long, or not under the task's root): flagged and counted; the caller decides fail-closed.
 */
static __always_inline int resolve_path(struct d4c_file_event *ev, __u32 which,
					struct vfsmount *vfsmnt, struct dentry *dentry)
{
	__u32 len = 0, mount = 0;
	int rc = d4c_resolve_path(which, vfsmnt, dentry, &len, &mount);
	if (mount == D4C_MOUNT_VOLUME) {
		/* D19: a directory mount that is a configMap/secret/downwardAPI/projected volume. */
		__u32 id = BPF_CORE_READ(real_mount(vfsmnt), mnt_id);
		__u32 *cls = bpf_map_lookup_elem(&file_mounts, &id);
		if (cls)
			mount = *cls;
	}
	ev->path_len = len;
	ev->mount = mount;
	if (rc) {
		ev->head.flags |= D4C_FLAG_PATH_INCOMPLETE;
		d4c_stat_add(D4C_STAT_PATH_INCOMPLETE);
		return -1;
	}
	return 0;
}

/*
 * D22 in the kernel: which selectors match the operation in ev (operation, mount, path), which
 * responses fire, with which actions. Sets the head's selectors and actions; returns the
 * actions.
 */
static __noinline __u32 decide(struct d4c_file_event *ev, __u32 which, __u64 container_mask,
			       __u32 slot)
{
	slot &= 1;
	if (slot)
		ev->head.flags |= D4C_FLAG_POLICY_SLOT1;
	struct d4c_file_policy *pol = bpf_map_lookup_elem(&file_policy, &slot);
	if (!pol)
		return 0;
	__u32 op_idx = 0;
	switch (ev->operation) {
	case D4C_OP_CREATE_EXECUTABLE: op_idx = 0; break;
	case D4C_OP_MODIFY_EXECUTABLE: op_idx = 1; break;
	case D4C_OP_CREATE_FILE: op_idx = 2; break;
	case D4C_OP_MODIFY_FILE: op_idx = 3; break;
	default: op_idx = 4; break;
	}
	__u64 cand = container_mask & pol->op_selectors[op_idx];
	if (ev->mount != D4C_MOUNT_ROOT)
		cand &= ~pol->ignore_volume_mounts;
	if (ev->mount == D4C_MOUNT_FILE)
		cand &= ~pol->ignore_volume_files;
	if (!cand)
		return 0;

	__u64 matched = cand & ~pol->path_selectors;
	/* Fail closed (path unknown): path selectors count as matched where they are `match`
	 * selectors and as not matched where they are `exclude` selectors. */
	__u64 unsure = 0;
	__u64 need = cand & pol->path_selectors;
	if (need) {
		if (ev->head.flags & D4C_FLAG_PATH_INCOMPLETE) {
			unsure = need;
		} else {
			__u64 hit = 0;
			if (!d4c_match_path(which, ev->path_len, need, pol->n_patterns,
					    slot * D4C_MAX_PATTERNS, &hit)) {
				ev->head.flags |= D4C_FLAG_MATCH_INCOMPLETE;
				d4c_stat_add(D4C_STAT_MATCH_INCOMPLETE);
				unsure = need & ~hit;
			}
			matched |= hit & need;
		}
	}

	ev->head.actions = d4c_fire_responses(matched, unsure, pol->n_responses, slot,
					      &ev->head.selectors);
	return ev->head.actions;
}

/* The common part of every hook: the container's selector mask, or 0 for a host task (the
 * file side registers only containers where some selector can apply). */
static __always_inline __u64 container_mask(__u32 *slot)
{
	__u64 mask = 0;
	if (!d4c_container_mask(&mask, slot))
		return 0;
	return mask;
}

static __always_inline struct d4c_file_event *begin(struct scratch *sc, __u32 which, __u32 op,
						    __u32 event_action, __u32 hook)
{
	struct d4c_file_event *ev = &sc->ev[which & 1];
	ev->operation = op;
	ev->event_action = event_action;
	ev->head.hook = hook;
	ev->head.flags = 0;
	ev->head.selectors = 0;
	ev->head.actions = 0;
	ev->head.blocked = 0;
	return ev;
}

static __always_inline void output(struct d4c_file_event *ev)
{
	d4c_submit(&file_events, ev, __builtin_offsetof(struct d4c_file_event, path), ev->path_len);
}

static __always_inline void emit(struct d4c_file_event *ev, __u32 blocked)
{
	ev->head.blocked = blocked;
	d4c_fill_task(&ev->head, d4c_current_task());
	output(ev);
}

static __always_inline __u32 modify_op(umode_t mode)
{
	return (mode & S_IXUGO) ? D4C_OP_MODIFY_EXECUTABLE : D4C_OP_MODIFY_FILE;
}

static __always_inline __u32 create_op(umode_t mode)
{
	return (mode & S_IXUGO) ? D4C_OP_CREATE_EXECUTABLE : D4C_OP_CREATE_FILE;
}

/* One operation on one path: decide, report, and the hook's return value. */
enum report_mode {
	REPORT = 0,      /* report what fires, block what blocks */
	/* Act only when the decision is to block, and report the denial only if the open then
	 * fails (d4c_open_exit): if the file existed, nothing was denied. */
	BLOCK_DEFER_REPORT = 1,
	NEVER_BLOCK = 2, /* report what fires, never block (decided earlier) */
};

static __always_inline int single(struct vfsmount *mnt, struct dentry *dentry, __u64 mask,
				  __u32 op, __u32 event_action, __u32 hook, enum report_mode how, __u32 slot)
{
	struct scratch *sc = get_scratch();
	if (!sc)
		return 0;
	if (!container_file(mnt, dentry))
		return 0;
	struct d4c_file_event *ev = begin(sc, 0, op, event_action, hook);
	resolve_path(ev, 0, mnt, dentry);
	__u32 actions = decide(ev, 0, mask, slot);
	if (!actions)
		return 0;
	__u32 block = how != NEVER_BLOCK && (actions & D4C_ACTION_BLOCK) != 0;
	if (how == BLOCK_DEFER_REPORT) {
		if (!block)
			return 0;
		ev->head.blocked = 1;
		d4c_fill_task(&ev->head, d4c_current_task());
		__u64 key = bpf_get_current_pid_tgid();
		bpf_map_update_elem(&deferred_denial, &key, ev, BPF_ANY);
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	emit(ev, block);
	if (block) {
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(d4c_file_open, struct file *file, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	__u32 fmode = BPF_CORE_READ(file, f_mode);
	__u32 flags = BPF_CORE_READ(file, f_flags);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	umode_t mode = BPF_CORE_READ(inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG)
		return 0;
	/* One syscall, one operation, one event: a stacked filesystem (overlayfs, the container
	 * root) opens the real file of a file being opened with the user's path but the real
	 * inode (open_with_fake_path). That inner open is the outer one carried out, already
	 * judged above it: it is not an operation of its own. */
	if ((__u64)inode != (__u64)BPF_CORE_READ(file, f_path.dentry, d_inode)) {
		d4c_stat_add(D4C_STAT_INNER_OPEN);
		return 0;
	}
	/* open(dir, O_TMPFILE) makes a file with no name ("#<ino>" in the dcache): no path
	 * changes, so no operation. It gets a name, and is created (D17), at linkat:
	 * path_link decides that. */
	if (flags & __O_TMPFILE)
		return 0;
	if (fmode & FMODE_CREATED) {
		/* This open created the file (a creation, not a modification, D17). path_mknod
		 * decided it before the file existed; it reported it too unless the name was still
		 * being looked up, when it could not know whether the open would create anything. */
		__u64 key = bpf_get_current_pid_tgid();
		__u64 *reported = bpf_map_lookup_elem(&mknod_reported, &key);
		struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
		if (reported) {
			__u64 same = *reported == (__u64)dentry;
			bpf_map_delete_elem(&mknod_reported, &key);
			if (same)
				return 0;
		}
		return single(BPF_CORE_READ(file, f_path.mnt), dentry, mask, create_op(mode),
			      D4C_EVENT_CREATION, D4C_HOOK_PATH_MKNOD, NEVER_BLOCK, slot);
	}
	if (!(fmode & FMODE_WRITE) && !(flags & O_TRUNC))
		return 0;
	int rc = single(BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), mask,
			modify_op(mode), D4C_EVENT_MODIFICATION, D4C_HOOK_FILE_OPEN, REPORT, slot);
	if (!rc && (flags & O_TRUNC)) {
		__u64 key = bpf_get_current_pid_tgid();
		__u64 val = (__u64)inode;
		bpf_map_update_elem(&truncating_open, &key, &val, BPF_ANY);
	}
	return rc;
}

SEC("lsm/path_truncate")
int BPF_PROG(d4c_path_truncate, const struct path *path, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	struct inode *inode = BPF_CORE_READ(path, dentry, d_inode);
	__u64 key = bpf_get_current_pid_tgid();
	__u64 *opened = bpf_map_lookup_elem(&truncating_open, &key);
	if (opened) {
		__u64 same = *opened == (__u64)inode;
		bpf_map_delete_elem(&truncating_open, &key);
		if (same)
			return 0; /* the O_TRUNC of an open already reported by file_open */
	}
	umode_t mode = BPF_CORE_READ(inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG)
		return 0;
	return single(BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), mask, modify_op(mode),
		      D4C_EVENT_MODIFICATION, D4C_HOOK_PATH_TRUNCATE, REPORT, slot);
}

SEC("lsm/path_mknod")
int BPF_PROG(d4c_path_mknod, const struct path *dir, struct dentry *dentry, umode_t mode,
	     unsigned int dev, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	if ((mode & S_IFMT) != S_IFREG && (mode & S_IFMT) != 0)
		return 0; /* D17: only regular files (mknod of type 0 makes one) */
	/* An O_CREAT open calls this hook before looking the name up when its dentry is not
	 * cached (DCACHE_PAR_LOOKUP): the file may exist, and then nothing is created. Such a
	 * creation is blocked here (an existing file then opens without O_CREAT) but reported by
	 * file_open once it happened (FMODE_CREATED), so that an existing file is not reported as
	 * created unless the creation would have been blocked. */
	__u32 dflags = BPF_CORE_READ(dentry, d_flags);
	if (dflags & dcache_par_lookup()) {
		d4c_stat_add(D4C_STAT_CREATE_IN_LOOKUP);
		return single(BPF_CORE_READ(dir, mnt), dentry, mask, create_op(mode),
			      D4C_EVENT_CREATION, D4C_HOOK_PATH_MKNOD, BLOCK_DEFER_REPORT, slot);
	}
	int rc = single(BPF_CORE_READ(dir, mnt), dentry, mask, create_op(mode), D4C_EVENT_CREATION,
			D4C_HOOK_PATH_MKNOD, REPORT, slot);
	if (!rc) {
		__u64 key = bpf_get_current_pid_tgid();
		__u64 val = (__u64)dentry;
		bpf_map_update_elem(&mknod_reported, &key, &val, BPF_ANY);
	}
	return rc;
}

SEC("lsm/path_unlink")
int BPF_PROG(d4c_path_unlink, const struct path *dir, struct dentry *dentry, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	umode_t mode = BPF_CORE_READ(dentry, d_inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG && (mode & S_IFMT) != S_IFLNK)
		return 0;
	return single(BPF_CORE_READ(dir, mnt), dentry, mask, D4C_OP_DELETE_FILE, D4C_EVENT_DELETION,
		      D4C_HOOK_PATH_UNLINK, REPORT, slot);
}

SEC("lsm/path_link")
int BPF_PROG(d4c_path_link, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	umode_t mode = BPF_CORE_READ(old_dentry, d_inode, i_mode);
	if ((mode & S_IFMT) != S_IFREG)
		return 0;
	return single(BPF_CORE_READ(new_dir, mnt), new_dentry, mask, create_op(mode), D4C_EVENT_LINK,
		      D4C_HOOK_PATH_LINK, REPORT, slot);
}

SEC("lsm/path_chmod")
int BPF_PROG(d4c_path_chmod, const struct path *path, umode_t mode, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	umode_t old = BPF_CORE_READ(path, dentry, d_inode, i_mode);
	if ((old & S_IFMT) != S_IFREG)
		return 0;
	/* D17: adding an execute bit to a file that had none creates an executable. */
	if (!(old & S_IXUGO) && (mode & S_IXUGO))
		return single(BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), mask,
			      D4C_OP_CREATE_EXECUTABLE, D4C_EVENT_CREATION, D4C_HOOK_PATH_CHMOD, REPORT, slot);
	return single(BPF_CORE_READ(path, mnt), BPF_CORE_READ(path, dentry), mask, modify_op(old),
		      D4C_EVENT_MODIFICATION, D4C_HOOK_PATH_CHMOD, REPORT, slot);
}

/* x86_64 syscall numbers of setxattr(2), lsetxattr(2), fsetxattr(2): the value is their third
 * argument in each. */
#define NR_SETXATTR 188
#define NR_FSETXATTR 190

/* Whether the POSIX access ACL being set (struct posix_acl_xattr_header + entries, little
 * endian) gives the file an execute bit: the mode bits it sets are those of the owner
 * (ACL_USER_OBJ), the group class (ACL_MASK when present, else ACL_GROUP_OBJ) and others
 * (ACL_OTHER), as posix_acl_update_mode computes them. The value is read from the calling
 * syscall's buffer (the kernel copied it from there just before); a setxattr that did not
 * come from one of the setxattr syscalls (io_uring) cannot be read so and counts as granting
 * execute (fail closed). */
static __always_inline int acl_grants_exec(struct task_struct *task, __u64 size)
{
	struct pt_regs *regs = d4c_task_pt_regs(task);
	__u64 nr = BPF_CORE_READ(regs, orig_ax);
	if (nr < NR_SETXATTR || nr > NR_FSETXATTR)
		return 1;
	const void *value = (const void *)BPF_CORE_READ(regs, dx);
	if (!value || size < 4)
		return 0;
	__u32 n = (size - 4) / 8;
	__u32 owner = 0, group = 0, mask = 0, has_mask = 0, other = 0;
	for (__u32 i = 0; i < ACL_MAX_ENTRIES; i++) {
		if (i >= n)
			break;
		__u16 e[2] = {};
		if (bpf_probe_read_user(e, sizeof(e), value + 4 + i * 8))
			return 1;
		__u32 x = e[1] & ACL_EXECUTE;
		switch (e[0]) {
		case ACL_USER_OBJ: owner = x; break;
		case ACL_GROUP_OBJ: group = x; break;
		case ACL_MASK: mask = x; has_mask = 1; break;
		case ACL_OTHER: other = x; break;
		}
	}
	return owner || other || (has_mask ? mask : group);
}

/*
 * D29: an access ACL set through setxattr(2) sets the file's mode bits without chmod(2) (the
 * filesystem's set_acl calls posix_acl_update_mode, no setattr hook runs): adding an execute
 * bit so is createExecutable, any other access ACL a modification, as with chmod. An inode
 * hook gets no mount: the file is named from the container's root mount when it is on that
 * filesystem, else (a volume) its path is incomplete and decided fail-closed (D30). The
 * setxattr a stacked filesystem (overlayfs) does on its real file runs with the mounter's
 * credentials overriding the task's (ovl_override_creds): that is the outer call carried out,
 * already judged, not an operation of its own.
 */
static __noinline int setxattr_hook(struct dentry *dentry, const char *name, __u64 size, int ret)
{
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	/* "system.posix_acl_access" with its NUL, as three little-endian words: no memcmp in BPF. */
	__u64 xname[3] = {};
	bpf_probe_read_kernel_str(xname, sizeof(xname), name);
	if (xname[0] != 0x702e6d6574737973ULL || xname[1] != 0x6c63615f7869736fULL ||
	    xname[2] != 0x007373656363615fULL)
		return 0;
	struct task_struct *task = d4c_current_task();
	if (BPF_CORE_READ(task, cred) != BPF_CORE_READ(task, real_cred)) {
		d4c_stat_add(D4C_STAT_INNER_OPEN);
		return 0;
	}
	umode_t old = BPF_CORE_READ(dentry, d_inode, i_mode);
	if ((old & S_IFMT) != S_IFREG)
		return 0;
	__u64 root_mnt = 0, root_dentry = 0;
	d4c_container_root(task, 0, &root_mnt, &root_dentry);
	struct vfsmount *mnt = (struct vfsmount *)root_mnt;
	if (!mnt || !container_file(mnt, dentry))
		return 0;
	struct scratch *sc = get_scratch();
	if (!sc)
		return 0;
	__u32 op = modify_op(old), action = D4C_EVENT_MODIFICATION;
	if (!(old & S_IXUGO) && acl_grants_exec(task, size)) {
		op = D4C_OP_CREATE_EXECUTABLE;
		action = D4C_EVENT_CREATION;
	}
	struct d4c_file_event *ev = begin(sc, 0, op, action, D4C_HOOK_INODE_SETXATTR);
	resolve_path(ev, 0, mnt, dentry);
	if (BPF_CORE_READ(dentry, d_sb) != BPF_CORE_READ(mnt, mnt_sb)) {
		/* Not on the root filesystem: a volume, whose mount this hook cannot name. */
		ev->mount = D4C_MOUNT_VOLUME;
		if (!(ev->head.flags & D4C_FLAG_PATH_INCOMPLETE)) {
			ev->head.flags |= D4C_FLAG_PATH_INCOMPLETE;
			d4c_stat_add(D4C_STAT_PATH_INCOMPLETE);
		}
	}
	__u32 actions = decide(ev, 0, mask, slot);
	if (!actions)
		return 0;
	__u32 block = (actions & D4C_ACTION_BLOCK) != 0;
	emit(ev, block);
	if (block) {
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	return 0;
}

/* The hook's arguments in each layout, each read at constant ctx slots in a function of its
 * own (inlined, the compiler would merge both into computed ctx offsets, which the verifier
 * refuses). The other layout's call is dead code on the kernel that loads it, so the verifier
 * never sees a slot past the hook's arguments. */
static __noinline int setxattr_with_idmap(unsigned long long *ctx)
{
	return setxattr_hook((struct dentry *)ctx[1], (const char *)ctx[2], ctx[4], (int)ctx[6]);
}

static __noinline int setxattr_without_idmap(unsigned long long *ctx)
{
	return setxattr_hook((struct dentry *)ctx[0], (const char *)ctx[1], ctx[3], (int)ctx[5]);
}

SEC("lsm/inode_setxattr")
int d4c_inode_setxattr(unsigned long long *ctx)
{
	D4C_HOOK_ENTRY;
	/* ([idmap,] dentry, name, value, size, flags) and the return value so far. Raw ctx: the
	 * verifier refuses any read of the `const void *value` argument (not a pointer to a
	 * struct or an int), so the value is read from the syscall's own argument instead. */
	if (d4c_setxattr_has_idmap())
		return setxattr_with_idmap(ctx);
	return setxattr_without_idmap(ctx);
}

/* Whether an access ACL with these entries (ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER
 * tags and their permissions, already read) gives the file an execute bit: the mode bits it
 * sets are those of the owner, the group class (ACL_MASK when present, else ACL_GROUP_OBJ) and
 * others, as posix_acl_update_mode computes them. */
struct acl_bits {
	__u32 owner, group, mask, has_mask, other;
};

static __always_inline void acl_entry(struct acl_bits *b, __u16 tag, __u16 perm)
{
	__u32 x = perm & ACL_EXECUTE;
	switch (tag) {
	case ACL_USER_OBJ: b->owner = x; break;
	case ACL_GROUP_OBJ: b->group = x; break;
	case ACL_MASK: b->mask = x; b->has_mask = 1; break;
	case ACL_OTHER: b->other = x; break;
	}
}

static __always_inline int acl_bits_exec(const struct acl_bits *b)
{
	return b->owner || b->other || (b->has_mask ? b->mask : b->group);
}

/* Whether the kernel's own ACL being set (struct posix_acl, decoded by the VFS already) gives
 * the file an execute bit. An unreadable entry counts as granting execute (fail closed). */
static __always_inline int kernel_acl_grants_exec(struct posix_acl *acl)
{
	__u32 n = BPF_CORE_READ(acl, a_count);
	void *entries = (void *)acl + bpf_core_field_offset(struct posix_acl, a_entries);
	__u32 esize = bpf_core_type_size(struct posix_acl_entry);
	struct acl_bits b = {};
	for (__u32 i = 0; i < ACL_MAX_ENTRIES; i++) {
		if (i >= n)
			break;
		struct posix_acl_entry e = {};
		if (bpf_probe_read_kernel(&e, sizeof(e), entries + i * esize))
			return 1;
		acl_entry(&b, e.e_tag, e.e_perm);
	}
	return acl_bits_exec(&b);
}

/* "system.posix_acl_access" with its NUL, as three little-endian words: no memcmp in BPF. */
static __always_inline int is_access_acl(const char *name)
{
	__u64 xname[3] = {};
	bpf_probe_read_kernel_str(xname, sizeof(xname), name);
	return xname[0] == 0x702e6d6574737973ULL && xname[1] == 0x6c63615f7869736fULL &&
	       xname[2] == 0x007373656363615fULL;
}

/* The file whose access ACL is being set, when it is an operation to judge: a regular file
 * (*old gets its mode), and not the call a stacked filesystem (overlayfs) makes on its real
 * file with the mounter's credentials overriding the task's (ovl_override_creds): that is the
 * outer call carried out, already judged, not an operation of its own. */
static __always_inline int acl_target(struct task_struct *task, struct dentry *dentry, umode_t *old)
{
	if (BPF_CORE_READ(task, cred) != BPF_CORE_READ(task, real_cred)) {
		d4c_stat_add(D4C_STAT_INNER_OPEN);
		return 0;
	}
	*old = BPF_CORE_READ(dentry, d_inode, i_mode);
	return (*old & S_IFMT) == S_IFREG;
}

/* D29, the decision once the ACL is known: an ACL that adds an execute bit to a file that had
 * none is createExecutable, any other a modification, as with chmod. An inode hook gets no
 * mount: the file is named from the container's root mount when it is on that filesystem,
 * else (a volume) its path is incomplete and decided fail-closed (D30). */
static __always_inline int judge_acl(struct task_struct *task, struct dentry *dentry, umode_t old,
				     int grants_exec, __u64 mask, __u32 slot, __u32 hook)
{
	__u64 root_mnt = 0, root_dentry = 0;
	d4c_container_root(task, 0, &root_mnt, &root_dentry);
	struct vfsmount *mnt = (struct vfsmount *)root_mnt;
	if (!mnt || !container_file(mnt, dentry))
		return 0;
	struct scratch *sc = get_scratch();
	if (!sc)
		return 0;
	__u32 op = modify_op(old), action = D4C_EVENT_MODIFICATION;
	if (!(old & S_IXUGO) && grants_exec) {
		op = D4C_OP_CREATE_EXECUTABLE;
		action = D4C_EVENT_CREATION;
	}
	struct d4c_file_event *ev = begin(sc, 0, op, action, hook);
	resolve_path(ev, 0, mnt, dentry);
	if (BPF_CORE_READ(dentry, d_sb) != BPF_CORE_READ(mnt, mnt_sb)) {
		/* Not on the root filesystem: a volume, whose mount this hook cannot name. */
		ev->mount = D4C_MOUNT_VOLUME;
		if (!(ev->head.flags & D4C_FLAG_PATH_INCOMPLETE)) {
			ev->head.flags |= D4C_FLAG_PATH_INCOMPLETE;
			d4c_stat_add(D4C_STAT_PATH_INCOMPLETE);
		}
	}
	__u32 actions = decide(ev, 0, mask, slot);
	if (!actions)
		return 0;
	__u32 block = (actions & D4C_ACTION_BLOCK) != 0;
	emit(ev, block);
	if (block) {
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	return 0;
}

/*
 * D29 from 6.2 on: every way of setting an ACL (setxattr(2), and in-kernel callers) goes
 * through vfs_set_acl and this hook, with the ACL already decoded. The loader leaves this
 * program out on kernels without the hook (reference_agent/kernel/kernel_compat.py), where
 * inode_setxattr above sees ACLs instead. A NULL ACL removes one: it can add no execute bit.
 */
SEC("lsm/inode_set_acl")
int d4c_inode_set_acl(unsigned long long *ctx)
{
	D4C_HOOK_ENTRY;
	/* (idmap, dentry, acl_name, kacl) and the return value so far. */
	struct dentry *dentry = (struct dentry *)ctx[1];
	const char *name = (const char *)ctx[2];
	struct posix_acl *acl = (struct posix_acl *)ctx[3];
	int ret = (int)ctx[4];
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask || !is_access_acl(name))
		return 0;
	struct task_struct *task = d4c_current_task();
	umode_t old = 0;
	if (!acl_target(task, dentry, &old))
		return 0;
	int grants = !(old & S_IXUGO) && acl && kernel_acl_grants_exec(acl);
	return judge_acl(task, dentry, old, grants, mask, slot, D4C_HOOK_INODE_SET_ACL);
}

/*
 * D17: file capabilities (security.capability, set here on every kernel) change what a program
 * may do when it runs, as its setuid bit does: setting them is a modification of the file,
 * modifyExecutable on an executable, as chmod is. A program of its own beside
 * d4c_inode_setxattr, so that each is verified alone (together they exceed 6.1's verifier
 * budget). The overlayfs inner call is skipped as for ACLs (acl_target).
 */
static __noinline int fcaps_hook(struct dentry *dentry, const char *name, int ret)
{
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	/* "security.capability" with its NUL, as three little-endian words. */
	__u64 xname[3] = {};
	bpf_probe_read_kernel_str(xname, sizeof(xname), name);
	if (xname[0] != 0x7974697275636573ULL || xname[1] != 0x6c6962617061632eULL ||
	    xname[2] != 0x0000000000797469ULL)
		return 0;
	struct task_struct *task = d4c_current_task();
	umode_t old = 0;
	if (!acl_target(task, dentry, &old))
		return 0;
	return judge_acl(task, dentry, old, 0, mask, slot, D4C_HOOK_INODE_SETXATTR);
}

/* Each argument layout at constant ctx slots, as for d4c_inode_setxattr. */
static __noinline int fcaps_with_idmap(unsigned long long *ctx)
{
	return fcaps_hook((struct dentry *)ctx[1], (const char *)ctx[2], (int)ctx[6]);
}

static __noinline int fcaps_without_idmap(unsigned long long *ctx)
{
	return fcaps_hook((struct dentry *)ctx[0], (const char *)ctx[1], (int)ctx[5]);
}

SEC("lsm/inode_setxattr")
int d4c_inode_setxattr_fcaps(unsigned long long *ctx)
{
	D4C_HOOK_ENTRY;
	/* ([idmap,] dentry, name, value, size, flags) and the return value so far. */
	if (d4c_setxattr_has_idmap())
		return fcaps_with_idmap(ctx);
	return fcaps_without_idmap(ctx);
}

/* What happens to a name that held an inode of mode `there` (exists = 0: no inode) when a file
 * of mode `arriving` takes it (D17): an existing regular file is modified ("rename onto an
 * existing file", executable by the existing file's bits); a name that held no regular file
 * gets a creation by the arriving regular file's bits; 0 when no regular file is involved. */
static __always_inline __u32 put_op(umode_t there, int exists, umode_t arriving)
{
	if (exists && (there & S_IFMT) == S_IFREG)
		return modify_op(there);
	if ((arriving & S_IFMT) == S_IFREG)
		return create_op(arriving);
	return 0;
}

/*
 * D18: rename(a, b) is deleteFile on a and createX or modifyX on b; blocked if either is.
 * RENAME_EXCHANGE swaps two existing names: no name and no file goes away, so there is no
 * deleteFile; each name now holds the other's file, which is put_op on each side (bpf/README.md,
 * "RENAME_EXCHANGE"). Side 0 is always a's, side 1 b's; each side that fires reports its own
 * event with event.action rename.
 */
SEC(D4C_SEC_PATH_RENAME)
int BPF_PROG(d4c_path_rename, const struct path *old_dir, struct dentry *old_dentry,
	     const struct path *new_dir, struct dentry *new_dentry, unsigned int flags, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u32 slot = 0;
	__u64 mask = container_mask(&slot);
	if (!mask)
		return 0;
	umode_t old_mode = BPF_CORE_READ(old_dentry, d_inode, i_mode);
	__u32 old_type = old_mode & S_IFMT;
	struct inode *target = BPF_CORE_READ(new_dentry, d_inode);
	umode_t new_mode = target ? BPF_CORE_READ(target, i_mode) : 0;
	__u32 op_a, op_b;
	if (flags & RENAME_EXCHANGE) {
		op_a = put_op(old_mode, 1, new_mode);
		op_b = put_op(new_mode, 1, old_mode);
	} else {
		/* Directories are not files (D17). A symlink moved onto a new name is a deletion
		 * only, but onto an existing file it replaces that file, which is modified (D29):
		 * put_op judges the replaced file whatever the source is. */
		op_a = (old_type == S_IFREG || old_type == S_IFLNK) ? D4C_OP_DELETE_FILE : 0;
		op_b = (old_type == S_IFREG || old_type == S_IFLNK) ? put_op(new_mode, target != 0, old_mode) : 0;
	}
	if (!op_a && !op_b)
		return 0;
	if (!container_file(BPF_CORE_READ(old_dir, mnt), old_dentry))
		return 0; /* a rename never crosses file systems: the new name is on the same */
	struct scratch *sc = get_scratch();
	if (!sc)
		return 0;

	struct d4c_file_event *ev_a = begin(sc, 0, op_a, D4C_EVENT_RENAME, D4C_HOOK_PATH_RENAME);
	struct d4c_file_event *ev_b = begin(sc, 1, op_b, D4C_EVENT_RENAME, D4C_HOOK_PATH_RENAME);
	__u32 actions_a = 0, actions_b = 0;
	if (op_a) {
		resolve_path(ev_a, 0, BPF_CORE_READ(old_dir, mnt), old_dentry);
		actions_a = decide(ev_a, 0, mask, slot);
	}
	if (op_b) {
		resolve_path(ev_b, 1, BPF_CORE_READ(new_dir, mnt), new_dentry);
		actions_b = decide(ev_b, 1, mask, slot);
	}
	__u32 block = ((actions_a | actions_b) & D4C_ACTION_BLOCK) != 0;
	if (actions_a)
		emit(ev_a, block);
	if (actions_b)
		emit(ev_b, block);
	if (block) {
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	return 0;
}

/* Markers belong to one open: forgotten when an open of the thread starts and when it ends. */
static __always_inline void forget_open_markers(__u64 key)
{
	bpf_map_delete_elem(&truncating_open, &key);
	bpf_map_delete_elem(&mknod_reported, &key);
}

SEC("fentry/do_filp_open")
int BPF_PROG(d4c_open_enter, int dfd, struct filename *pathname, const struct open_flags *op)
{
	D4C_HOOK_ENTRY;
	forget_open_markers(bpf_get_current_pid_tgid());
	return 0;
}

/* Every open (open/openat/openat2/creat and io_uring) returns through do_filp_open: report a
 * creation denied during its lookup only now that we know it was one (see path_mknod). */
SEC("fexit/do_filp_open")
int BPF_PROG(d4c_open_exit, int dfd, struct filename *pathname, const struct open_flags *op,
	     struct file *ret)
{
	D4C_HOOK_ENTRY;
	__u64 key = bpf_get_current_pid_tgid();
	forget_open_markers(key);
	struct d4c_file_event *ev = bpf_map_lookup_elem(&deferred_denial, &key);
	if (!ev)
		return 0;
	if ((unsigned long)ret >= (unsigned long)-4095L) { /* IS_ERR: nothing was opened */
		output(ev);
	} else {
		d4c_stat_add(D4C_STAT_DENIAL_WITHDRAWN);
	}
	bpf_map_delete_elem(&deferred_denial, &key);
	return 0;
}
