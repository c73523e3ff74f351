/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Paths and path patterns, shared by file_hooks.bpf.c and process_hooks.bpf.c: the resolver
 * of a (mount, dentry) to its path as seen from the container's root (D11, D28, D30), the mount class
 * of D19, the kernel pseudo filesystems of D19, and the D11 glob matcher over the token
 * strings that reference_agent/kernel/compiler.py produces (compiler.glob_match is the same
 * algorithm in Python).
 *
 * The header owns its scratch (the path of the walk in progress, per CPU). The
 * including program owns the path buffers (inside its records, so a resolved path needs no
 * copy) and its pattern map, and defines, after including this header, two accessors (they
 * are called from loop steps, which is why they are functions of an index and not
 * pointers passed in):
 *
 *   char *d4c_path_buf(__u32 which)                   path buffer `which` (D4C_PATH_BUF bytes)
 *   struct d4c_path_pattern *d4c_pattern(__u32 key)   entry `key` of its pattern map
 *
 * Include after vmlinux.h, the libbpf headers, d4c_abi.h, d4c_compat.bpf.h and d4c_policy.bpf.h.
 */
#ifndef D4C_PATHS_BPF_H
#define D4C_PATHS_BPF_H

#define D4C_S_IFMT 00170000
#define D4C_S_IFDIR 0040000
/* struct mount.mnt_ns of a kernel-private mount (clone_private_mount, fs/namespace.c): e.g.
 * overlayfs' own mounts of its layers, which copy-up opens files on. */
#define MNT_NS_INTERNAL ((__u64)-22)
#define MATCH_MAX_STEPS (1 << 23) /* bpf_loop's own maximum */

/* The path of the walk in progress, written from its end backwards (as the kernel's
 * prepend_path does), so that the walk needs no per-component bookkeeping and its depth is
 * bounded only by D4C_PATH_MAX: per CPU, too large for the 512-byte stack. D4C_PATH_BUF leaves
 * NAME_MAX spare bytes behind any offset below D4C_PATH_MAX, which keeps every copy in bounds
 * for the verifier. */
struct walk_buf {
	char buf[D4C_PATH_BUF];
};

D4C_PERCPU_SCRATCH(struct walk_buf, d4c_walk_scratch, d4c_walk_buf)

static __always_inline char *d4c_path_buf(__u32 which);
static __always_inline struct d4c_path_pattern *d4c_pattern(__u32 key);

static __always_inline struct mount *real_mount(struct vfsmount *mnt)
{
	return (struct mount *)((void *)mnt - bpf_core_field_offset(struct mount, mnt));
}

/* Whether the container's root (mount root_mnt, dentry root) is the root of its whole
 * filesystem, as an overlayfs root is: then every dentry of that filesystem has a path from it
 * through d_parent alone, whatever mount it is reached through. */
static __always_inline int root_is_whole_fs(struct vfsmount *root_mnt, struct dentry *root)
{
	return root && root == BPF_CORE_READ(root_mnt, mnt_sb, s_root);
}

/* D19: the mount class of the mount `mnt` that holds the file. A mount of the container's root
 * filesystem is `root` wherever it is: the container's root mount, its copy in a mount namespace
 * a container process made (the same dentries on a new struct mount), or a bind mount of part of
 * it such a process added. */
static __always_inline __u32 mount_class(struct vfsmount *mnt, struct vfsmount *root_mnt,
					 struct dentry *root)
{
	if (mnt == root_mnt)
		return D4C_MOUNT_ROOT;
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt_root);
	if (mnt_root == root)
		return D4C_MOUNT_ROOT;
	if (root_is_whole_fs(root_mnt, root) && BPF_CORE_READ(mnt, mnt_sb) == BPF_CORE_READ(root_mnt, mnt_sb))
		return D4C_MOUNT_ROOT;
	umode_t mode = BPF_CORE_READ(mnt_root, d_inode, i_mode);
	/* A single-file bind mount is a mount whose root dentry is not a directory. */
	if ((mode & D4C_S_IFMT) != D4C_S_IFDIR)
		return D4C_MOUNT_FILE;
	return D4C_MOUNT_VOLUME;
}

/* D19: files on kernel pseudo filesystems are not container files: no selector matches
 * them, nothing there is reported or blocked (runc writes /proc/<pid>/attr/apparmor/exec in
 * every `docker exec`). By superblock magic (include/uapi/linux/magic.h). tmpfs is NOT here:
 * it holds container /dev, /tmp and emptyDir volumes, which are container files. */
static __always_inline int pseudo_fs(unsigned long magic)
{
	switch (magic) {
	case 0x9fa0:     /* PROC_SUPER_MAGIC */
	case 0x62656572: /* SYSFS_MAGIC */
	case 0x27e0eb:   /* CGROUP_SUPER_MAGIC */
	case 0x63677270: /* CGROUP2_SUPER_MAGIC */
	case 0x1cd1:     /* DEVPTS_SUPER_MAGIC */
	case 0x73636673: /* SECURITYFS_MAGIC */
	case 0x64626720: /* DEBUGFS_MAGIC */
	case 0x74726163: /* TRACEFS_MAGIC */
	case 0xcafe4a11: /* BPF_FS_MAGIC */
	case 0x19800202: /* MQUEUE_MAGIC */
	case 0xf97cff8c: /* SELINUX_MAGIC */
	case 0x43415d53: /* SMACK_MAGIC */
	case 0x6165676c: /* PSTOREFS_MAGIC */
	case 0xde5e81e4: /* EFIVARFS_MAGIC */
	case 0x62656570: /* CONFIGFS_MAGIC */
	case 0x65735543: /* FUSE_CTL_SUPER_MAGIC */
	case 0x42494e4d: /* BINFMTFS_MAGIC */
	case 0x6e736673: /* NSFS_MAGIC */
		return 1;
	}
	return 0;
}

/* How deep in PID namespaces the container's own is looked for: the container's is the
 * first below the host's (level 1) on a plain node, the second on a node that is itself a
 * container (kind); a process's own nesting below that never counts. */
#define D4C_PIDNS_LEVELS 4

/* The search for the container's root (d4c_container_root), one loop step per PID namespace
 * level, so that the verifier checks it once and not at every caller. */
struct root_ctx {
	__u64 numbers;     /* &pid->numbers[0] of the task */
	__u64 cgid;        /* the task's cgroup */
	__u64 mnt;         /* struct vfsmount * of the container's root (the task's own until found) */
	__u64 dentry;
	__u64 file_mnt;    /* struct vfsmount * of the file, for its mount class; 0: none */
	__u64 root_sb;     /* see walk_ctx */
	__u32 level;       /* the task's PID namespace level */
	__u32 mount;       /* the file's mount class (D19) */
};

D4C_PERCPU_SCRATCH(struct root_ctx, d4c_root_ctx_scratch, d4c_root_state)

D4C_LOOP_STEP(root_step)
{
	struct root_ctx *c = d4c_root_state();
	if (!c)
		return 1;
	__u32 i = iter + 1;
	if (i <= c->level && i <= D4C_PIDNS_LEVELS) {
		/* pid->numbers[i].ns: the task's PID namespace at level i. */
		struct upid *up = (struct upid *)(c->numbers + (__u64)i * bpf_core_type_size(struct upid));
		struct pid_namespace *ns = BPF_CORE_READ(up, ns);
		struct task_struct *init = ns ? BPF_CORE_READ(ns, child_reaper) : 0;
		if (!init || BPF_CORE_READ(init, cgroups, dfl_cgrp, kn, id) != c->cgid)
			return 0;
		struct vfsmount *root_mnt = BPF_CORE_READ(init, fs, root.mnt);
		struct dentry *root = root_mnt ? BPF_CORE_READ(root_mnt, mnt_root) : 0;
		if (root) {
			c->mnt = (__u64)root_mnt;
			c->dentry = (__u64)root;
		}
	}
	/* Found, or none to find (the task's own root stays): the root's filesystem, and the
	 * file's mount class against it. */
	struct vfsmount *root_mnt = (struct vfsmount *)c->mnt;
	struct dentry *root = (struct dentry *)c->dentry;
	c->root_sb = root_is_whole_fs(root_mnt, root) ? (__u64)BPF_CORE_READ(root_mnt, mnt_sb) : 0;
	if (c->file_mnt)
		c->mount = mount_class((struct vfsmount *)c->file_mnt, root_mnt, root);
	return 1;
}

D4C_LOOP(root_run, root_step, D4C_PIDNS_LEVELS + 1)

/*
 * D28: the container's root is the root of its first process as the runtime set it up, and
 * nothing a process of the container can choose: not its own root (chroot), not the root of a
 * mount namespace it made (unshare(CLONE_NEWUSER|CLONE_NEWNS), then chroot, pivot_root or bind
 * mounts there), not the root of the init of a PID namespace it made (unshare -pf: it is that
 * init). The container's first process is the init (child reaper) of the OUTERMOST PID
 * namespace of the task whose init is in the task's cgroup, the container's: a container's
 * processes stay in its cgroup (its cgroupfs is read-only), and a PID namespace nested inside
 * is always deeper. Its root is taken as the root of the mount it is on (mnt_root), so that a
 * chroot() into a directory by that init changes nothing either. The walk ends at that dentry
 * on whichever mount it is met (d4c_resolve_path): a copied mount namespace has new mounts but
 * the same dentries. Falls back to the task's own root when no such init is found (a container
 * in the host's PID namespace, or one sharing a pod's, whose init is the sandbox's) or it is
 * exiting (no fs any more). `task` is the current task (its cgroup is the current cgroup).
 * Leaves its result in d4c_root_state(), with the mount class of `file_mnt` when given.
 */
static __always_inline void d4c_container_root(struct task_struct *task, struct vfsmount *file_mnt,
					       __u64 *mnt, __u64 *dentry)
{
	struct root_ctx *c = d4c_root_state();
	if (!c)
		return;
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	*c = (struct root_ctx){
		.numbers = (__u64)pid + bpf_core_field_offset(struct pid, numbers),
		.cgid = bpf_get_current_cgroup_id(),
		.mnt = (__u64)BPF_CORE_READ(task, fs, root.mnt),
		.dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry),
		.file_mnt = (__u64)file_mnt,
		.level = pid ? BPF_CORE_READ(pid, level) : 0,
	};
	root_run();
	*mnt = c->mnt;
	*dentry = c->dentry;
}

/* The walk up from a dentry to the container's root, one loop step per dentry or mount
 * crossing, each step putting its component in front of the ones already written. Kernel
 * pointers are kept as integers: they are only ever read with bpf_probe_read_kernel
 * (BPF_CORE_READ) and compared. The state is per CPU, as every loop's (d4c_compat.bpf.h). */
struct walk_ctx {
	__u64 mnt;         /* struct mount * */
	__u64 d;           /* struct dentry * */
	__u64 root_mnt;    /* struct vfsmount * of the container's root */
	__u64 root_dentry;
	__u64 root_sb;     /* struct super_block * of the container's root when it is a whole
			    * filesystem (root_is_whole_fs), else 0 */
	__u32 pos;         /* the path written so far is walk_buf[pos, D4C_PATH_MAX - 1) */
	__u32 complete;
};

D4C_PERCPU_SCRATCH(struct walk_ctx, d4c_walk_ctx_scratch, d4c_walk_state)

D4C_LOOP_STEP(walk_step)
{
	struct walk_buf *sc = d4c_walk_buf();
	struct walk_ctx *c = d4c_walk_state();
	if (!sc || !c)
		return 1;
	struct mount *mnt = (struct mount *)c->mnt;
	struct dentry *d = (struct dentry *)c->d;
	if (c->d == c->root_dentry) {
		c->complete = 1;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	/* A mount root: the path goes on in the parent mount, from the mount point, except on
	 * the container's root filesystem, where it goes on through d_parent, as in the
	 * container's own mount tree: a bind mount or a pivot_root that a process made in a
	 * mount namespace of its own does not give the container's files other names. */
	if (d == mnt_root && (!c->root_sb || (__u64)BPF_CORE_READ(mnt, mnt.mnt_sb) != c->root_sb)) {
		struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
		if (parent == mnt)
			return 1; /* the namespace root, and the container's root was not met */
		c->d = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = (__u64)parent;
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	if (up == d)
		return 1;
	__u32 len = BPF_CORE_READ(d, d_name.len);
	if (len > 255 || len + 1 > c->pos)
		return 1; /* PATH_MAX reached: what is written is the path's tail */
	__u32 pos = c->pos - len;
	bpf_probe_read_kernel(&sc->buf[pos & (D4C_PATH_MAX - 1)], len & 255,
			      BPF_CORE_READ(d, d_name.name));
	pos--;
	sc->buf[pos & (D4C_PATH_MAX - 1)] = '/';
	c->pos = pos;
	c->d = (__u64)up;
	return 0;
}

D4C_LOOP(walk_run, walk_step, D4C_MAX_WALK)

/*
 * The one path resolver: writes into path buffer `which` the NUL-terminated path of `dentry`
 * (on mount `vfsmnt`) as seen from the container's root (D28), crossing mount points upwards;
 * *len gets its length (no NUL) and *mount its mount class (D19). `dentry` may be negative (a
 * name about to be created): only its name and parent are used. Every path shorter than
 * D4C_PATH_MAX is resolved completely, however many components it has (D30). Returns 0, or -1
 * when the path is incomplete (longer than that, or not under the container's root): the
 * buffer then holds the tail that was resolved WITHOUT its leading '/', so that it can never
 * pass for a complete absolute path (D30), and the caller decides fail-closed.
 */
static __noinline int d4c_resolve_path(__u32 which, struct vfsmount *vfsmnt, struct dentry *dentry,
				       __u32 *len, __u32 *mount)
{
	char *path = d4c_path_buf(which);
	struct walk_buf *sc = d4c_walk_buf();
	struct walk_ctx *w = d4c_walk_state();
	if (!path || !sc || !w)
		return -1;
	struct root_ctx *r = d4c_root_state();
	if (!r)
		return -1;
	__u64 root_mnt = 0, root_dentry = 0;
	d4c_container_root(d4c_current_task(), vfsmnt, &root_mnt, &root_dentry);
	*w = (struct walk_ctx){
		.mnt = (__u64)real_mount(vfsmnt),
		.d = (__u64)dentry,
		.root_mnt = root_mnt,
		.root_dentry = root_dentry,
		.root_sb = r->root_sb,
		.pos = D4C_PATH_MAX - 1,
	};
	*mount = r->mount;
	walk_run();

	__u32 from = w->pos;
	__u32 complete = w->complete;
	if (!complete && from < D4C_PATH_MAX - 1)
		from++; /* drop the leading '/' of an incomplete tail */
	__u32 n = (D4C_PATH_MAX - 1 - from) & (D4C_PATH_MAX - 1);
	if (n)
		bpf_probe_read_kernel(path, n, &sc->buf[from & (D4C_PATH_MAX - 1)]);
	if (complete && n == 0) {
		path[0] = '/';
		n = 1;
	}
	*len = n;
	path[n & (D4C_PATH_MAX - 1)] = 0;
	return complete ? 0 : -1;
}

/* State of the pattern matcher, run as one loop over all patterns: each step advances one
 * pattern by one character (the iterative glob match with two backtrack points: the last `*`
 * and the last `**`). */
struct match_ctx {
	__u64 need;     /* selectors still worth matching */
	__u64 matched;  /* selectors with a matching pattern */
	__u32 which;    /* path buffer index */
	__u32 i;        /* pattern index */
	__u32 n;        /* number of patterns */
	__u32 fresh;    /* 1: pattern i not started */
	__u32 base;     /* key of the first pattern in the includer's pattern map */
	__u32 slen;     /* length of the path */
	__s32 p, s, sp, ss, dp, ds;
};

/* The matcher's state lives in a per-CPU map, not on the caller's stack: since 6.7 the
 * verifier checks a bpf_loop callback as a loop over the caller's stack contents, and with the
 * state there it tracked each step's exact positions until it gave up ("The sequence of 8193
 * jumps is too complex" on 6.12 and 7.x). Read from a map value, every field is an unknown
 * bounded scalar, so one pass over the callback covers every step, on every kernel. */
D4C_PERCPU_SCRATCH(struct match_ctx, d4c_match_scratch, d4c_match_state)

D4C_LOOP_STEP(match_step)
{
	struct match_ctx *c = d4c_match_state();
	if (!c)
		return 1;
	if (c->i >= c->n || c->i >= D4C_MAX_PATTERNS)
		return 1;
	struct d4c_path_pattern *pat = d4c_pattern(c->base + c->i);
	char *path = d4c_path_buf(c->which);
	if (!pat || !path)
		return 1;
	if (c->fresh) {
		if (!(pat->selectors & c->need) || (pat->selectors & c->matched) == pat->selectors) {
			c->i++;
			return 0;
		}
		c->fresh = 0;
		c->p = c->s = 0;
		c->sp = c->ss = c->dp = c->ds = -1;
	}
	__s32 plen = pat->len & (D4C_PATTERN_MAX - 1);
	__s32 slen = c->slen & (D4C_PATH_MAX - 1);
	__s32 p = c->p, s = c->s;
	int done = 0, ok = 0;

	if (s < slen) {
		__u8 tok = p < plen ? pat->tokens[p & (D4C_PATTERN_MAX - 1)] : 0;
		char ch = path[s & (D4C_PATH_MAX - 1)];
		if (tok == D4C_TOKEN_GLOBSTAR) {
			c->dp = p;
			c->ds = s;
			c->sp = -1;
			c->p = p + 1;
		} else if (tok == D4C_TOKEN_STAR) {
			c->sp = p;
			c->ss = s;
			c->p = p + 1;
		} else if (p < plen && tok == (__u8)ch) {
			c->p = p + 1;
			c->s = s + 1;
		} else if (c->sp >= 0 && path[c->ss & (D4C_PATH_MAX - 1)] != '/') {
			c->ss++;
			c->s = c->ss;
			c->p = c->sp + 1;
		} else if (c->dp >= 0) {
			c->ds++;
			c->s = c->ds;
			c->p = c->dp + 1;
			c->sp = -1;
		} else {
			done = 1;
		}
	} else {
		__u8 tok = p < plen ? pat->tokens[p & (D4C_PATTERN_MAX - 1)] : 0;
		if (p < plen && (tok == D4C_TOKEN_STAR || tok == D4C_TOKEN_GLOBSTAR)) {
			c->p = p + 1;
		} else {
			done = 1;
			ok = p == plen;
		}
	}
	if (done) {
		if (ok)
			c->matched |= pat->selectors;
		c->i++;
		c->fresh = 1;
	}
	return 0;
}

D4C_LOOP(match_run, match_step, MATCH_MAX_STEPS)

/*
 * Matches the path in buffer `which` (`len` bytes) against patterns [base, base + n) of the
 * includer's pattern map, for the selectors in `need`. *matched gets the selectors with a
 * matching pattern; returns 1 when every pattern was decided, 0 when the matcher ran out of
 * iterations (the caller then decides fail-closed).
 */
static __always_inline int d4c_match_path(__u32 which, __u32 len, __u64 need, __u32 n, __u32 base,
					  __u64 *matched)
{
	struct match_ctx *c = d4c_match_state();
	if (!c)
		return 0;
	*c = (struct match_ctx){
		.need = need, .which = which, .n = n, .fresh = 1, .base = base, .slen = len,
	};
	match_run();
	*matched = c->matched;
	return c->i >= c->n;
}

#endif /* D4C_PATHS_BPF_H */
