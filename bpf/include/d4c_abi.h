/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel/userspace contract of the reference agent: constants, map keys and values and
 * ring-buffer records, defined once here with fixed-width types. reference_agent/kernel/abi.py
 * mirrors every struct and enum with ctypes; tests/kernel/test_abi_layout.py checks the two
 * agree by reading the layout the compiler emitted into the object's BTF. Constants are enums
 * (not #defines) so that they are in the BTF too.
 */
#ifndef D4C_ABI_H
#define D4C_ABI_H

#ifndef EPERM
#define EPERM 1
#endif

enum d4c_limits {
	D4C_MAX_SELECTORS = 64,  /* D26: at most 64 selectors per section, one bit each in a __u64 */
	D4C_MAX_RESPONSES = 64,  /* D26 */
	D4C_PATTERN_MAX = 256,   /* D26: a path pattern is at most 255 bytes; tokens never longer */
	/* Expanded patterns (a `/ ** /` doubles one) of all file selectors together; 64 selectors
	 * with a few patterns each fit, more is a compile error in userspace. */
	D4C_MAX_PATTERNS = 512,
	D4C_PATH_MAX = 4096,     /* longest path reported; longer = incomplete (fail closed) */
	/* The path buffer has NAME_MAX spare bytes so that a component copied at any offset below
	 * D4C_PATH_MAX stays in bounds for the verifier. */
	D4C_PATH_BUF = 4096 + 256,
	/* Dentry/mount steps of one path walk: >= 64 components plus mount crossings. */
	D4C_MAX_WALK = 96,
	D4C_COMM_LEN = 16,
	/* Two copies of the policy maps: one live, one being written (see active_policy). */
	D4C_POLICY_SLOTS = 2,
};

/* Pattern tokens (D11): a `*` stays inside one component, `**` crosses `/`. Userspace turns
 * `/ ** /` into two patterns (with `**` and with nothing), so the kernel needs only these. */
enum d4c_token {
	D4C_TOKEN_STAR = 1,
	D4C_TOKEN_GLOBSTAR = 2,
};

/* File operations (D5, D17), one bit each; the bit index is the index in op_selectors. */
enum d4c_file_op {
	D4C_OP_CREATE_EXECUTABLE = 1 << 0,
	D4C_OP_MODIFY_EXECUTABLE = 1 << 1,
	D4C_OP_CREATE_FILE = 1 << 2,
	D4C_OP_MODIFY_FILE = 1 << 3,
	D4C_OP_DELETE_FILE = 1 << 4,
	D4C_FILE_OP_COUNT = 5,
};

enum d4c_mount_class { /* D19 */
	D4C_MOUNT_ROOT = 0,
	D4C_MOUNT_VOLUME = 1,
	D4C_MOUNT_FILE = 2,
};

enum d4c_action {
	D4C_ACTION_LOG = 1 << 0,
	D4C_ACTION_ALERT = 1 << 1,
	D4C_ACTION_BLOCK = 1 << 2,
};

enum d4c_hook { /* cloud_defend.trace_point (event-decisions.md) */
	D4C_HOOK_FILE_OPEN = 1,
	D4C_HOOK_PATH_MKNOD = 2,
	D4C_HOOK_PATH_TRUNCATE = 3,
	D4C_HOOK_PATH_RENAME = 4,
	D4C_HOOK_PATH_LINK = 5,
	D4C_HOOK_PATH_UNLINK = 6,
	D4C_HOOK_PATH_CHMOD = 7,
};

enum d4c_event_action { /* D25 */
	D4C_EVENT_CREATION = 1,
	D4C_EVENT_MODIFICATION = 2,
	D4C_EVENT_DELETION = 3,
	D4C_EVENT_RENAME = 4,
	D4C_EVENT_LINK = 5,
};

enum d4c_event_flags {
	/* The path could not be resolved completely (too deep, too long, outside the task's
	 * root): path-dependent selectors were decided fail-closed. */
	D4C_EVENT_PATH_INCOMPLETE = 1 << 0,
	/* The pattern matcher ran out of iterations: decided fail-closed. */
	D4C_EVENT_MATCH_INCOMPLETE = 1 << 1,
	/* Decided with policy slot 1 (else slot 0): names the selector bits after a switch. */
	D4C_EVENT_POLICY_SLOT1 = 1 << 2,
};

enum d4c_stat { /* indices of the `stats` array */
	D4C_STAT_EVENTS = 0,
	D4C_STAT_BLOCKS = 1,
	D4C_STAT_PATH_INCOMPLETE = 2,
	D4C_STAT_MATCH_INCOMPLETE = 3,
	D4C_STAT_RINGBUF_FULL = 4,
	D4C_STAT_CREATE_IN_LOOKUP = 5,  /* O_CREAT creations decided before the name's lookup */
	D4C_STAT_DENIAL_WITHDRAWN = 6,  /* ... whose denial was not reported: the file existed */
	/* Operations on pseudo-fs files or kernel-private mounts: not container files (D19). */
	D4C_STAT_NOT_CONTAINER_FILE = 7,
	/* Opens of a stacked fs's real file inside an open already judged (one event per syscall). */
	D4C_STAT_INNER_OPEN = 8,
	D4C_STAT_COUNT = 10,
};

/* A file identity as the kernel stores it: dev is the kernel's dev_t (major << 20 | minor),
 * not the userspace st_dev encoding; the Python side converts. (smoke.bpf.c) */
struct d4c_inode_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

/* container_selectors value: per policy slot, the file selectors whose static (image,
 * orchestrator) conditions the container meets; bit = selector index. */
struct d4c_container_selectors {
	__u64 selectors[D4C_POLICY_SLOTS];
};

/* The file section of the policy, static part (`file_policy` array, one entry per slot). */
struct d4c_file_policy {
	__u64 op_selectors[D4C_FILE_OP_COUNT]; /* per operation bit: selectors that apply (D5) */
	__u64 path_selectors;        /* selectors with a targetFilePath condition */
	__u64 ignore_volume_mounts;  /* D19 */
	__u64 ignore_volume_files;   /* D19 */
	__u32 n_patterns;
	__u32 n_responses;
};

/* One expanded path pattern and the selectors that list it (`path_patterns`). */
struct d4c_path_pattern {
	__u64 selectors;
	__u32 len;
	__u32 pad;
	__u8 tokens[D4C_PATTERN_MAX];
};

/* One response (`responses`, by index): fires when match & matched && !(exclude & matched). */
struct d4c_response {
	__u64 match;
	__u64 exclude;
	__u32 actions; /* enum d4c_action bits */
	__u32 pad;
};

/* Ring-buffer record of one file operation that fired at least one response (D22). A record
 * ends after the NUL that follows the path (path_len + 1 bytes of `path`). */
struct d4c_file_event {
	__u64 timestamp_ns;   /* bpf_ktime_get_boot_ns: CLOCK_BOOTTIME */
	__u64 cgroup_id;
	__u64 start_time_ns;  /* thread-group leader's start_boottime (/proc/<pid>/stat field 22) */
	__u64 selectors;      /* match selectors of fired responses, bit = selector index */
	__u32 pid;            /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;            /* effective */
	__u32 gid;            /* effective */
	__u32 operation;      /* one enum d4c_file_op bit */
	__u32 event_action;   /* enum d4c_event_action */
	__u32 hook;           /* enum d4c_hook */
	__u32 mount;          /* enum d4c_mount_class */
	__u32 actions;        /* union of fired responses' enum d4c_action bits */
	__u32 blocked;        /* 1: the hook returned -EPERM */
	__u32 flags;          /* enum d4c_event_flags */
	__u32 path_len;       /* bytes of path, no NUL */
	__u32 tty;            /* 1: the session has a controlling terminal */
	char comm[D4C_COMM_LEN];
	char path[D4C_PATH_BUF];
};

#endif /* D4C_ABI_H */
