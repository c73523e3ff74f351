/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The kernel/userspace contract both programs share: limits, pattern tokens, actions, hook
 * points, record flags, counters, the map values userspace writes the same way for either
 * program, and the head every ring-buffer record starts with. d4c_file_abi.h and
 * d4c_process_abi.h add what only one program has.
 *
 * Userspace never repeats these definitions: `make -C bpf` generates the Python mirror
 * (build/d4c_abi.py) from the BTF the compiler emits into the objects (abi_from_btf.py), so a
 * field added here is in Python after the next build, at the offset the compiler chose.
 * Conventions the generator relies on: constants are enums (so that they are in BTF), an
 * enum named `*_limits` holds plain constants, an enumerator named `*_COUNT` is a size, not a
 * member; every other enum is a set of named values.
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
	/* Expanded patterns (a `/ ** /` doubles one) of one pattern set (targetFilePath, or one
	 * process path condition) of all selectors together; 64 selectors with a few patterns
	 * each fit, more is a compile error in userspace. */
	D4C_MAX_PATTERNS = 512,
	D4C_PATH_MAX = 4096,     /* longest path reported; longer = incomplete (fail closed) */
	/* The path buffer has NAME_MAX spare bytes so that a component copied at any offset below
	 * D4C_PATH_MAX stays in bounds for the verifier. */
	D4C_PATH_BUF = 4096 + 256,
	/* Dentry/mount steps of one path walk (bpf_loop iterations): a path shorter than
	 * D4C_PATH_MAX has at most 2047 components, and as many mount crossings again fit (D30). */
	D4C_MAX_WALK = 4096,
	D4C_COMM_LEN = 16,
	/* Two copies of the policy maps: one live, one being written (see active_policy). */
	D4C_POLICY_SLOTS = 2,
	/* cgroups in container_selectors: far more containers than one node runs. */
	D4C_MAX_CONTAINERS = 4096,
};

/* Pattern tokens (D11): a `*` stays inside one component, `**` crosses `/`. Userspace turns
 * `/ ** /` into two patterns (with `**` and with nothing), so the kernel needs only these. */
enum d4c_token {
	D4C_TOKEN_STAR = 1,
	D4C_TOKEN_GLOBSTAR = 2,
};

/* D19: the mount that holds a file (the path resolver tells root from volume and file). */
enum d4c_mount_class {
	D4C_MOUNT_ROOT = 0,
	D4C_MOUNT_VOLUME = 1,
	D4C_MOUNT_FILE = 2,
};

enum d4c_action { /* a response's actions; the suffix is the policy's word */
	D4C_ACTION_LOG = 1 << 0,
	D4C_ACTION_ALERT = 1 << 1,
	D4C_ACTION_BLOCK = 1 << 2,
};

/* The hook that made a record (cloud_defend.trace_point): the kernel's own name of the LSM
 * hook or tracepoint, upper-cased. */
enum d4c_hook {
	D4C_HOOK_FILE_OPEN = 1,
	D4C_HOOK_PATH_MKNOD = 2,
	D4C_HOOK_PATH_TRUNCATE = 3,
	D4C_HOOK_PATH_RENAME = 4,
	D4C_HOOK_PATH_LINK = 5,
	D4C_HOOK_PATH_UNLINK = 6,
	D4C_HOOK_PATH_CHMOD = 7,
	D4C_HOOK_SCHED_PROCESS_FORK = 8,
	D4C_HOOK_SCHED_PROCESS_EXEC = 9,
	D4C_HOOK_SCHED_PROCESS_EXIT = 10,
	D4C_HOOK_BPRM_CREDS_FOR_EXEC = 11,
	D4C_HOOK_TASK_ALLOC = 12,
	D4C_HOOK_INODE_SETXATTR = 13,
	D4C_HOOK_INODE_SET_ACL = 14,
};

enum d4c_event_flags { /* d4c_record_head.flags */
	/* A path could not be resolved completely (longer than D4C_PATH_MAX, outside the
	 * container's root, or on a mount an inode hook cannot name): the file's path, or the
	 * executable's, is then the resolved tail without a leading '/' (D30), and
	 * path-dependent selectors were decided fail-closed. */
	D4C_FLAG_PATH_INCOMPLETE = 1 << 0,
	/* The pattern matcher ran out of iterations: decided fail-closed. */
	D4C_FLAG_MATCH_INCOMPLETE = 1 << 1,
	/* Decided with policy slot 1 (else slot 0): names the selector bits after a switch. */
	D4C_FLAG_POLICY_SLOT1 = 1 << 2,
	/* The session leader's executable is not known (it exec'd before the programs were
	 * attached and userspace did not seed it): sessionLeaderExecutable decided fail-closed. */
	D4C_FLAG_LEADER_UNKNOWN = 1 << 3,
	D4C_FLAG_ARGS_CUT = 1 << 4, /* argv longer than D4C_ARGS_MAX or D4C_MAX_ARGV: cut */
	D4C_FLAG_NO_EXE = 1 << 5,   /* no executable known (path empty) */
	D4C_FLAG_MEMFD = 1 << 6,    /* exec: the program is a memfd file (D32 execMemFd) */
};

enum d4c_stat { /* indices of the `stats` array of either program */
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
	D4C_STAT_LEADER_UNKNOWN = 9,
	D4C_STAT_EXE_MISSING = 10, /* a fork whose parent's executable had to be resolved again */
	D4C_STAT_COUNT = 16,
};

/* container_selectors value: per policy slot, the selectors whose static (image,
 * orchestrator) conditions the container meets; bit = selector index. */
struct d4c_container_selectors {
	__u64 selectors[D4C_POLICY_SLOTS];
};

/* One expanded path pattern and the selectors that list it. */
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

/* The task a record describes, as the kernel saw it then (d4c_fill_task). */
struct d4c_task {
	__u64 cgroup_id;
	__u64 start_time_ns;  /* thread-group leader's start_boottime (/proc/<pid>/stat field 22) */
	__u32 pid;            /* tgid, initial pid namespace */
	__u32 tid;
	__u32 ppid;
	__u32 uid;            /* effective */
	__u32 gid;            /* effective */
	__u32 sid;            /* session id (initial pid namespace) */
	__u32 pgid;           /* process-group id (initial pid namespace) */
	__u32 tty;            /* 1: the session has a controlling terminal */
	char comm[D4C_COMM_LEN];
};

/* What every ring-buffer record starts with: when, what the policy decided, and the task. */
struct d4c_record_head {
	__u64 timestamp_ns;   /* bpf_ktime_get_boot_ns: CLOCK_BOOTTIME */
	__u64 selectors;      /* match selectors of fired responses, bit = selector index */
	__u32 actions;        /* union of fired responses' enum d4c_action bits */
	__u32 blocked;        /* 1: the hook returned -EPERM */
	__u32 flags;          /* enum d4c_event_flags */
	__u32 hook;           /* enum d4c_hook */
	struct d4c_task task;
};

#endif /* D4C_ABI_H */
