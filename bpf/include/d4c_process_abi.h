/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The process half of the kernel/userspace contract (process_hooks.bpf.c): constants, map
 * keys and values, the `struct d4c_process_event` ring-buffer record. It reuses from
 * d4c_abi.h the limits, pattern tokens, actions, `struct d4c_path_pattern`, `struct
 * d4c_response` and `struct d4c_container_selectors`. Mirrored by
 * reference_agent/kernel/process_abi.py; tests/kernel/test_process_abi_layout.py compares the
 * two through the BTF of build/process_hooks.bpf.o.
 */
#ifndef D4C_PROCESS_ABI_H
#define D4C_PROCESS_ABI_H

#include "d4c_abi.h"

enum d4c_process_limits {
	D4C_ARGS_MAX = 1024,  /* bytes of argv (NUL-separated) reported; more = cut, flagged */
	D4C_ARGS_BUF = 2048,  /* spare bytes so that a string read at any offset < MAX stays in bounds */
	D4C_MAX_ARGV = 64,    /* argv entries read from a refused execve's own arguments */
	/* Pattern sets, each D4C_MAX_PATTERNS long, per policy slot in `process_patterns`. */
	D4C_PATTERN_SETS = 3,
	D4C_MAX_TASKS = 32768, /* exe_paths: processes tracked at once */
};

/* Process operations (D5), one bit each; the bit index is the index in op_selectors. */
enum d4c_process_op {
	D4C_OP_FORK = 1 << 0,
	D4C_OP_EXEC = 1 << 1,
	D4C_PROCESS_OP_COUNT = 2,
};

/* Which string a pattern set is matched against. */
enum d4c_pattern_set {
	D4C_SET_EXECUTABLE = 0, /* processExecutable: the executable's path (D11) */
	D4C_SET_NAME = 1,       /* processName: `**` `/` name, i.e. the path's basename (D16) */
	D4C_SET_LEADER = 2,     /* sessionLeaderExecutable: the session leader's executable path */
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

enum d4c_process_hook { /* cloud_defend.trace_point */
	D4C_PHOOK_SCHED_PROCESS_FORK = 1,
	D4C_PHOOK_SCHED_PROCESS_EXEC = 2,
	D4C_PHOOK_SCHED_PROCESS_EXIT = 3,
	D4C_PHOOK_BPRM_CREDS_FOR_EXEC = 4,
	D4C_PHOOK_TASK_ALLOC = 5,
};

enum d4c_process_flags {
	/* The executable's path could not be resolved completely: path-dependent selectors were
	 * decided fail-closed (as d4c_event_flags). */
	D4C_PFLAG_EXE_INCOMPLETE = 1 << 0,
	D4C_PFLAG_MATCH_INCOMPLETE = 1 << 1,
	D4C_PFLAG_POLICY_SLOT1 = 1 << 2,
	/* The session leader's executable is not known (it exec'd before the programs were
	 * attached and userspace did not seed it): sessionLeaderExecutable decided fail-closed. */
	D4C_PFLAG_LEADER_UNKNOWN = 1 << 3,
	D4C_PFLAG_ARGS_CUT = 1 << 4, /* argv longer than D4C_ARGS_MAX or D4C_MAX_ARGV: cut */
	D4C_PFLAG_NO_EXE = 1 << 5,   /* no executable known (path empty) */
};

enum d4c_process_stat { /* indices of the `process_stats` array */
	D4C_PSTAT_EVENTS = 0,
	D4C_PSTAT_BLOCKS = 1,
	D4C_PSTAT_RINGBUF_FULL = 2,
	D4C_PSTAT_EXE_INCOMPLETE = 3,
	D4C_PSTAT_MATCH_INCOMPLETE = 4,
	D4C_PSTAT_LEADER_UNKNOWN = 5,
	D4C_PSTAT_EXE_MISSING = 6, /* a fork whose parent's executable had to be resolved again */
	D4C_PSTAT_COUNT = 8,
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
	__u32 flags;          /* D4C_PFLAG_EXE_INCOMPLETE */
	char path[D4C_PATH_BUF];
};

/* Ring-buffer record; it ends after the NUL that follows the path (path_len + 1 bytes of
 * `path`). args holds args_len bytes of NUL-terminated strings (argc of them). */
struct d4c_process_event {
	__u64 timestamp_ns;    /* bpf_ktime_get_boot_ns: CLOCK_BOOTTIME */
	__u64 cgroup_id;
	__u64 start_time_ns;   /* the described task's thread-group start_boottime */
	__u64 selectors;       /* activity: match selectors of fired responses */
	__u32 record;          /* enum d4c_record_type */
	__u32 kind;            /* enum d4c_process_kind */
	__u32 pid;             /* tgid of the described task (fork: the child) */
	__u32 tid;
	__u32 ppid;
	__u32 uid;             /* effective */
	__u32 gid;             /* effective */
	__u32 actions;         /* activity: union of fired responses' enum d4c_action bits */
	__u32 blocked;         /* 1: the hook returned -EPERM */
	__u32 flags;           /* enum d4c_process_flags */
	__u32 hook;            /* enum d4c_process_hook */
	__u32 tty;             /* 1: the session has a controlling terminal */
	__u32 exit_code;       /* exit: the wait status (exit code << 8 | signal) */
	__u32 path_len;
	__u32 args_len;
	__u32 argc;
	__u32 sid;             /* session id (initial pid namespace) */
	__u32 pgid;            /* process-group id (initial pid namespace) */
	char comm[D4C_COMM_LEN];
	char args[D4C_ARGS_BUF];
	char path[D4C_PATH_BUF];
};

#endif /* D4C_PROCESS_ABI_H */
