/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Paths and path patterns, shared by file_hooks.bpf.c and process_hooks.bpf.c: the resolver
 * of a (mount, dentry) to its path as seen from the current task's root (D11), the mount class
 * of D19, the kernel pseudo filesystems of D19, and the D11 glob matcher over the token
 * strings that reference_agent/kernel/compiler.py produces (compiler.glob_match is the same
 * algorithm in Python).
 *
 * The header owns its scratch (the component names of the walk in progress, per CPU). The
 * including program owns the path buffers (inside its records, so a resolved path needs no
 * copy) and its pattern map, and defines, after including this header, two accessors (they
 * are called from bpf_loop callbacks, which is why they are functions of an index and not
 * pointers passed in):
 *
 *   char *d4c_path_buf(__u32 which)                   path buffer `which` (D4C_PATH_BUF bytes)
 *   struct d4c_path_pattern *d4c_pattern(__u32 key)   entry `key` of its pattern map
 *
 * Include after vmlinux.h, the libbpf headers, d4c_abi.h and d4c_policy.bpf.h.
 */
#ifndef D4C_PATHS_BPF_H
#define D4C_PATHS_BPF_H

#define D4C_S_IFMT 00170000
#define D4C_S_IFDIR 0040000
/* struct mount.mnt_ns of a kernel-private mount (clone_private_mount, fs/namespace.c): e.g.
 * overlayfs' own mounts of its layers, which copy-up opens files on. */
#define MNT_NS_INTERNAL ((__u64)-22)
#define WALK_SLOTS 128 /* power of two >= D4C_MAX_WALK, so that a mask bounds the index */
#define MATCH_MAX_STEPS (1 << 23) /* bpf_loop's own maximum */

/* The component names of the walk in progress: per CPU, too large for the 512-byte stack. */
struct walk_names {
	__u64 names[WALK_SLOTS]; /* const unsigned char * of d_name */
	__u32 lens[WALK_SLOTS];
};

D4C_PERCPU_SCRATCH(struct walk_names, d4c_walk_scratch, d4c_walk_names)

static __always_inline char *d4c_path_buf(__u32 which);
static __always_inline struct d4c_path_pattern *d4c_pattern(__u32 key);

static __always_inline struct mount *real_mount(struct vfsmount *mnt)
{
	return (struct mount *)((void *)mnt - bpf_core_field_offset(struct mount, mnt));
}

/* D19: the mount class of the mount `mnt` that holds the file. */
static __always_inline __u32 mount_class(struct vfsmount *mnt, struct vfsmount *root_mnt)
{
	if (mnt == root_mnt)
		return D4C_MOUNT_ROOT;
	umode_t mode = BPF_CORE_READ(mnt, mnt_root, d_inode, i_mode);
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

/* The walk up from a dentry to the task's root, one bpf_loop step per dentry or mount
 * crossing. Kernel pointers are kept as integers: they are only ever read with
 * bpf_probe_read_kernel (BPF_CORE_READ) and compared. */
struct walk_ctx {
	__u64 mnt;         /* struct mount * */
	__u64 d;           /* struct dentry * */
	__u64 root_mnt;    /* struct vfsmount * of the task's root */
	__u64 root_dentry;
	__u32 n;           /* components recorded in walk_names */
	__u32 complete;
};

static long walk_step(__u32 iter, struct walk_ctx *c)
{
	struct walk_names *sc = d4c_walk_names();
	if (!sc)
		return 1;
	struct mount *mnt = (struct mount *)c->mnt;
	struct dentry *d = (struct dentry *)c->d;
	__u64 cur = c->mnt + bpf_core_field_offset(struct mount, mnt);
	if (c->d == c->root_dentry && cur == c->root_mnt) {
		c->complete = 1;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(mnt, mnt.mnt_root);
	if (d == mnt_root) {
		struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
		if (parent == mnt)
			return 1; /* the namespace root, and the task's root was not met */
		c->d = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
		c->mnt = (__u64)parent;
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	if (up == d || c->n >= D4C_MAX_WALK)
		return 1;
	__u32 n = c->n & (WALK_SLOTS - 1);
	sc->names[n] = (__u64)BPF_CORE_READ(d, d_name.name);
	sc->lens[n] = BPF_CORE_READ(d, d_name.len);
	c->n++;
	c->d = (__u64)up;
	return 0;
}

/* Copies the recorded components, outermost first, into path buffer `which`. */
struct join_ctx {
	__u32 n;
	__u32 off;
	__u32 which;
	__u32 overflow;
};

static long join_step(__u32 i, struct join_ctx *c)
{
	struct walk_names *sc = d4c_walk_names();
	if (!sc || i >= c->n)
		return 1;
	char *path = d4c_path_buf(c->which);
	if (!path)
		return 1;
	__u32 idx = (c->n - 1 - i) & (WALK_SLOTS - 1);
	__u32 len = sc->lens[idx] & 255;
	__u32 off = c->off;
	if (off + 1 + len >= D4C_PATH_MAX) {
		c->overflow = 1;
		return 1;
	}
	path[off & (D4C_PATH_MAX - 1)] = '/';
	off++;
	bpf_probe_read_kernel(&path[off & (D4C_PATH_MAX - 1)], len, (void *)sc->names[idx]);
	c->off = off + len;
	return 0;
}

/*
 * The one path resolver: writes into path buffer `which` the NUL-terminated path of `dentry`
 * (on mount `vfsmnt`) as seen from the current task's root (its container's root after
 * pivot_root), crossing mount points upwards; *len gets its length (no NUL) and *mount its
 * mount class (D19). `dentry` may be negative (a name about to be created): only its name and
 * parent are used. Returns 0, or -1 when the path is incomplete (too deep, too long, or not
 * under the task's root); the caller then decides fail-closed.
 */
static __noinline int d4c_resolve_path(__u32 which, struct vfsmount *vfsmnt, struct dentry *dentry,
				       __u32 *len, __u32 *mount)
{
	char *path = d4c_path_buf(which);
	if (!path)
		return -1;
	struct task_struct *task = bpf_get_current_task_btf();
	struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	struct walk_ctx w = {
		.mnt = (__u64)real_mount(vfsmnt),
		.d = (__u64)dentry,
		.root_mnt = (__u64)root_mnt,
		.root_dentry = (__u64)BPF_CORE_READ(task, fs, root.dentry),
	};
	*mount = mount_class(vfsmnt, root_mnt);
	bpf_loop(D4C_MAX_WALK + 16, walk_step, &w, 0);

	struct join_ctx j = {.n = w.n, .which = which};
	if (w.n == 0) {
		path[0] = '/';
		j.off = 1;
	} else {
		bpf_loop(D4C_MAX_WALK, join_step, &j, 0);
	}
	*len = j.off;
	path[j.off & (D4C_PATH_MAX - 1)] = 0;
	if (!w.complete || j.overflow)
		return -1;
	return 0;
}

/* State of the pattern matcher, run as one bpf_loop over all patterns: each step advances one
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

static long match_step(__u32 iter, void *unused)
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
	bpf_loop(MATCH_MAX_STEPS, match_step, 0, 0);
	*matched = c->matched;
	return c->i >= c->n;
}

#endif /* D4C_PATHS_BPF_H */
