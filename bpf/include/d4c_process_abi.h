/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The process half of the contract (process_hooks.bpf.c): process operations, pattern sets,
 * record types, the process section's policy value, the user map keys, `struct d4c_exe_path`
 * and the `struct d4c_process_event` record. Shared definitions are in d4c_abi.h.
 */
#ifndef D4C_PROCESS_ABI_H
#define D4C_PROCESS_ABI_H

#include "d4c_abi.h"

enum d4c_process_limits {
	D4C_ARGS_MAX = 1024,  /* bytes of argv (NUL-separated) reported; more = cut, flagged */
	D4C_ARGS_BUF = 2048,  /* spare bytes so that a string read at any offset < MAX stays in bounds */
	D4C_MAX_ARGV = 64,    /* argv entries read from a refused execve's own arguments */
	/* Pattern sets, each D4C_MAX_PATTERNS long, per policy slot in `process_patterns`. */
	D4C_PATTERN_SETS = 4,
	/* Bytes of a memfd's name read for its path (the kernel's own limit: NAME_MAX minus the
	 * "memfd:" prefix is 249). */
	D4C_MEMFD_NAME_MAX = 256,
	D4C_MAX_TASKS = 32768, /* exe_paths: processes tracked at once */
	/* Distinct processUserId values of one policy; `user_ids` holds both slots' (D26). */
	D4C_MAX_USER_IDS = 2048,
};

/* Process operations (D5), one bit each; the bit index is the index in op_selectors, the
 * suffix the policy's operation name. */
enum d4c_process_op {
	D4C_OP_FORK = 1 << 0,
	D4C_OP_EXEC = 1 << 1,
	/* D32: an exec whose program is a memfd file. Its op_selectors entry holds the `exec`
	 * selectors too (userspace puts them there), so one lookup decides it. */
	D4C_OP_EXEC_MEM_FD = 1 << 2,
	D4C_PROCESS_OP_COUNT = 3,
};

/* Which string a pattern set is matched against. */
enum d4c_pattern_set {
	D4C_SET_EXECUTABLE = 0, /* processExecutable: the executable's path (D11) */
	D4C_SET_NAME = 1,       /* processName: `**` `/` name, i.e. the path's basename (D16) */
	D4C_SET_LEADER = 2,     /* sessionLeaderExecutable: the session leader's executable path */
	D4C_SET_LEADER_NAME = 3, /* sessionLeaderName: `**` `/` name on the leader's path (D32) */
};

enum d4c_record_type {
	D4C_RECORD_LIFECYCLE = 1, /* every fork/exec/exit of a container task (activity.ProcessLifecycle) */
	D4C_RECORD_ACTIVITY = 2,  /* a fork/exec that fired a response (activity.ProcessActivity) */
};

enum d4c_process_kind {
	D4C_KIND_FORK = 1,
	D4C_KIND_EXEC = 2,
	D4C_KIND_EXIT = 3,
};

/* The process section, static part (`process_policy`, one entry per slot). */
struct d4c_process_policy {
	__u64 op_selectors[D4C_PROCESS_OP_COUNT]; /* per operation bit: selectors that apply (D5) */
	__u64 set_selectors[D4C_PATTERN_SETS];    /* selectors with that pattern condition */
	__u64 user_id_selectors;    /* selectors with processUserId */
	__u64 user_name_selectors;  /* selectors with processUserName */
	__u64 interactive_true;     /* sessionLeaderInteractive: true */
	__u64 interactive_false;    /* sessionLeaderInteractive: false */
	__u32 n_patterns[D4C_PATTERN_SETS];
	__u32 n_responses;
};

/* user_ids: (uid, slot) -> selectors whose processUserId lists the uid. */
struct d4c_user_id_key {
	__u32 uid;
	__u32 slot;
};

/* user_names: (container, uid, slot) -> selectors whose processUserName lists the name the
 * container's own /etc/passwd gives the uid (names are per container, so resolved in
 * userspace). */
struct d4c_user_name_key {
	__u64 cgroup_id;
	__u32 uid;
	__u32 slot;
};

/* exe_paths: tgid -> the process's executable as seen in its container. Filled on exec, copied
 * to the child on fork, deleted on exit; also kept for host session leaders, because a
 * container's entry process may exec before the container is registered. */
struct d4c_exe_path {
	__u64 start_time_ns;
	__u32 path_len;
	__u32 flags;          /* D4C_FLAG_PATH_INCOMPLETE, D4C_FLAG_NO_EXE */
	char path[D4C_PATH_BUF];
};

/* Ring-buffer record; it ends after the NUL that follows the path (path_len + 1 bytes of
 * `path`). args holds args_len bytes of NUL-terminated strings (argc of them). */
struct d4c_process_event {
	struct d4c_record_head head; /* task: the described task (fork: the child) */
	__u32 record;          /* enum d4c_record_type */
	__u32 kind;            /* enum d4c_process_kind */
	__u32 exit_code;       /* exit: the wait status (exit code << 8 | signal) */
	__u32 path_len;
	__u32 args_len;
	__u32 argc;
	char args[D4C_ARGS_BUF];
	char path[D4C_PATH_BUF];
};

#endif /* D4C_PROCESS_ABI_H */
