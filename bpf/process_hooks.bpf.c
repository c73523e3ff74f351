// SPDX-License-Identifier: GPL-2.0
// Process drift prevention (D16, D20-D22): lifecycle records of every fork/exec/exit of a
// container task (sched_process_* tracepoints), and the policy's process responses decided in
// the kernel: exec at LSM bprm_creds_for_exec (before the new image runs), fork at LSM
// task_alloc (before the child exists), -EPERM when a fired response blocks (D21). Static
// selector conditions (image, orchestrator) arrive as the per-container mask and responses
// fire as on the file side (d4c_policy.bpf.h); paths are resolved and matched by the shared
// d4c_paths.bpf.h.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "d4c_compat.bpf.h"
#include "d4c_process_abi.h"
#include "d4c_policy.bpf.h"
#include "d4c_paths.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define CLONE_THREAD 0x00010000
#define NR_EXECVE 59    /* x86_64 */
#define NR_EXECVEAT 322

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct d4c_process_policy);
} process_policy SEC(".maps");

/* Slot s, set k: keys [(s * SETS + k) * MAX, ... + MAX). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_POLICY_SLOTS * D4C_PATTERN_SETS * D4C_MAX_PATTERNS);
	__type(key, __u32);
	__type(value, struct d4c_path_pattern);
} process_patterns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_POLICY_SLOTS * D4C_MAX_USER_IDS);
	__type(key, struct d4c_user_id_key);
	__type(value, __u64);
} user_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct d4c_user_name_key);
	__type(value, __u64);
} user_names SEC(".maps");

/* tgid -> executable (see d4c_process_abi.h). Not preallocated: 4 KiB values. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_TASKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct d4c_exe_path);
} exe_paths SEC(".maps");

/* An exec decided (and allowed) at bprm_creds_for_exec, waiting for sched_process_exec to
 * report it after its lifecycle record: key = the exec'ing thread's pid_tgid. */
struct pending_exec {
	__u64 selectors;
	__u32 actions;
	__u32 flags;
	struct d4c_exe_path exe;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct pending_exec);
} pending_exec SEC(".maps");

/* A fork decided (and allowed) at task_alloc, reported at sched_process_fork (pid_tgid). */
struct pending_fork {
	__u64 selectors;
	__u32 actions;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending_fork);
} pending_fork SEC(".maps");

/* 16 MiB: an exec loop produces three records (fork, exec, exit) per iteration. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} process_events SEC(".maps");

/* Per-CPU scratch: the record being built (its path is path buffer 0), a second path (buffer
 * 1: the session leader's executable; also the staging value of exe_paths) and the pending
 * exec value. */
struct pscratch {
	struct d4c_process_event ev;
	struct d4c_exe_path other;
	struct pending_exec pend;
};
D4C_PERCPU_SCRATCH(struct pscratch, pscratch_map, get_scratch)

/* The accessors of d4c_paths.bpf.h. */
static __always_inline char *d4c_path_buf(__u32 which)
{
	struct pscratch *sc = get_scratch();
	if (!sc)
		return 0;
	return which ? sc->other.path : sc->ev.path;
}

static __always_inline struct d4c_path_pattern *d4c_pattern(__u32 key)
{
	return bpf_map_lookup_elem(&process_patterns, &key);
}

static __always_inline struct d4c_process_event *begin(struct pscratch *sc, __u32 record, __u32 kind,
						       __u32 hook)
{
	struct d4c_process_event *ev = &sc->ev;
	ev->record = record;
	ev->kind = kind;
	ev->head.hook = hook;
	ev->head.flags = 0;
	ev->head.selectors = 0;
	ev->head.actions = 0;
	ev->head.blocked = 0;
	ev->exit_code = 0;
	ev->path_len = 0;
	ev->path[0] = 0;
	ev->args_len = 0;
	ev->argc = 0;
	return ev;
}

static __always_inline void output(struct d4c_process_event *ev)
{
	d4c_submit(&process_events, ev, __builtin_offsetof(struct d4c_process_event, path), ev->path_len);
}

/* The record's path := the path of `file` as seen from the current task's root. */
static __always_inline void resolve_file(struct d4c_process_event *ev, struct file *file)
{
	if (!file) {
		ev->head.flags |= D4C_FLAG_NO_EXE;
		return;
	}
	__u32 len = 0, mount = 0;
	if (d4c_resolve_path(0, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry), &len, &mount)) {
		ev->head.flags |= D4C_FLAG_PATH_INCOMPLETE;
		d4c_stat_add(D4C_STAT_PATH_INCOMPLETE);
	}
	ev->path_len = len;
}

/* D32: a memfd (memfd_create) file lives on a kernel-internal mount (shmem's, or
 * hugetlbfs' for MFD_HUGETLB), never reachable by a path, and its dentry is named
 * "memfd:<name>". Only an fd reaches such a file, so an exec of one is an exec from memory
 * (execveat AT_EMPTY_PATH, fexecve, /proc/self/fd/N all end with this file in bprm->file). */
#define D4C_MNT_INTERNAL 0x4000 /* include/linux/mount.h: mounts made by kern_mount() */

static __always_inline int is_memfd(struct file *file)
{
	if (!file || !(BPF_CORE_READ(file, f_path.mnt, mnt_flags) & D4C_MNT_INTERNAL))
		return 0;
	char prefix[6] = {};
	if (bpf_probe_read_kernel(prefix, sizeof(prefix), BPF_CORE_READ(file, f_path.dentry, d_name.name)))
		return 0;
	return prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
	       prefix[4] == 'd' && prefix[5] == ':';
}

/* The record's path := what /proc/<pid>/exe shows for a memfd program: "/memfd:<name>
 * (deleted)" (the kernel's simple_dname), complete: it is the program's only name. */
static __always_inline void memfd_path(struct d4c_process_event *ev, struct file *file)
{
	static const char deleted[] = " (deleted)";
	ev->path[0] = '/';
	long n = bpf_probe_read_kernel_str(&ev->path[1], D4C_MEMFD_NAME_MAX,
					   BPF_CORE_READ(file, f_path.dentry, d_name.name));
	__u32 end = n > 0 ? (__u32)n : 1; /* index of the name's NUL: 1 + (n - 1) */
	end &= D4C_MEMFD_NAME_MAX * 2 - 1;
	bpf_probe_read_kernel(&ev->path[end], sizeof(deleted), deleted);
	ev->path_len = end + sizeof(deleted) - 1;
	ev->head.flags |= D4C_FLAG_MEMFD;
}

/* The record's path := the program an exec runs. */
static __always_inline void exec_file(struct d4c_process_event *ev, struct file *file)
{
	if (is_memfd(file))
		memfd_path(ev, file);
	else
		resolve_file(ev, file);
}

/* The record's path := a stored executable. */
static __always_inline void copy_exe(struct d4c_process_event *ev, struct d4c_exe_path *exe)
{
	bpf_probe_read_kernel(ev->path, sizeof(ev->path), exe->path);
	ev->path_len = exe->path_len;
	ev->head.flags |= exe->flags & (D4C_FLAG_PATH_INCOMPLETE | D4C_FLAG_NO_EXE);
}

/* exe_paths[tgid] := the record's path. */
static __always_inline void store_exe(struct pscratch *sc, __u32 tgid, __u64 start_time_ns)
{
	struct d4c_exe_path *staging = &sc->other;
	bpf_probe_read_kernel(staging->path, sizeof(staging->path), sc->ev.path);
	staging->path_len = sc->ev.path_len;
	staging->flags = sc->ev.head.flags & (D4C_FLAG_PATH_INCOMPLETE | D4C_FLAG_NO_EXE);
	staging->start_time_ns = start_time_ns;
	bpf_map_update_elem(&exe_paths, &tgid, staging, BPF_ANY);
}

/* The executable of the current process into the record: stored, else resolved again (it
 * exec'd before the programs were attached) and stored. */
static __always_inline void current_exe(struct pscratch *sc, struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct d4c_exe_path *exe = bpf_map_lookup_elem(&exe_paths, &tgid);
	if (exe) {
		copy_exe(&sc->ev, exe);
		return;
	}
	d4c_stat_add(D4C_STAT_EXE_MISSING);
	resolve_file(&sc->ev, BPF_CORE_READ(task, mm, exe_file));
	if (!(sc->ev.head.flags & D4C_FLAG_NO_EXE))
		store_exe(sc, tgid, BPF_CORE_READ(task, group_leader, start_boottime));
}

/* One pattern condition: `sel` are the selectors that have it, the path is in buffer `which`.
 * Selectors whose pattern did not match go to *fail; unknown ones (path incomplete, matcher
 * out of iterations) to *unk. */
static __always_inline void pattern_condition(struct d4c_process_event *ev, __u64 sel, __u32 which,
					      __u32 len, __u32 incomplete, __u32 n, __u32 base,
					      __u64 *fail, __u64 *unk)
{
	if (!sel)
		return;
	if (incomplete) {
		*unk |= sel;
		return;
	}
	__u64 hit = 0;
	if (!d4c_match_path(which, len, sel, n, base, &hit)) {
		ev->head.flags |= D4C_FLAG_MATCH_INCOMPLETE;
		d4c_stat_add(D4C_STAT_MATCH_INCOMPLETE);
		*unk |= sel & ~hit;
	} else {
		*fail |= sel & ~hit;
	}
}

/*
 * D22 for a process operation in ev (operation, executable path in buffer 0, the acting
 * task's effective uid, tty and session): which selectors match, which responses fire. Sets
 * the head's selectors and actions; returns the actions. A condition is known or unknown; a
 * selector with an unknown condition (and no failed one) counts as matched for `match` and
 * not for `exclude` (fail closed, as the file side).
 */
static __noinline __u32 decide(struct d4c_process_event *ev, __u32 op, __u64 mask, __u32 slot,
			       __u32 is_leader)
{
	slot &= 1;
	if (slot)
		ev->head.flags |= D4C_FLAG_POLICY_SLOT1;
	struct d4c_process_policy *pol = bpf_map_lookup_elem(&process_policy, &slot);
	if (!pol)
		return 0;
	__u32 op_index = op == D4C_OP_EXEC_MEM_FD ? 2 : op == D4C_OP_EXEC ? 1 : 0;
	__u64 cand = mask & pol->op_selectors[op_index];
	if (!cand)
		return 0;
	struct task_struct *task = d4c_current_task();
	__u64 fail = 0, unk = 0;

	/* Cheap conditions first: they may leave nothing to match paths for. */
	__u32 uid = BPF_CORE_READ(task, cred, euid.val);
	__u64 need = cand & pol->user_id_selectors;
	if (need) {
		struct d4c_user_id_key k = {.uid = uid, .slot = slot};
		__u64 *hit = bpf_map_lookup_elem(&user_ids, &k);
		fail |= need & ~(hit ? *hit : 0);
	}
	need = cand & pol->user_name_selectors & ~fail;
	if (need) {
		struct d4c_user_name_key k = {.cgroup_id = ev->head.task.cgroup_id, .uid = uid, .slot = slot};
		__u64 *hit = bpf_map_lookup_elem(&user_names, &k);
		fail |= need & ~(hit ? *hit : 0);
	}
	/* D16: interactive = the session has a controlling terminal; a session's members share
	 * it (signal->tty), so the acting task's is its leader's. */
	if (BPF_CORE_READ(task, signal, tty))
		fail |= cand & pol->interactive_false;
	else
		fail |= cand & pol->interactive_true;

	__u32 exe_unknown = (ev->head.flags & (D4C_FLAG_PATH_INCOMPLETE | D4C_FLAG_NO_EXE)) != 0;
	__u32 base = slot * D4C_PATTERN_SETS * D4C_MAX_PATTERNS;
	pattern_condition(ev, cand & pol->set_selectors[D4C_SET_EXECUTABLE] & ~fail, 0, ev->path_len,
			  exe_unknown, pol->n_patterns[D4C_SET_EXECUTABLE], base, &fail, &unk);
	pattern_condition(ev, cand & pol->set_selectors[D4C_SET_NAME] & ~fail, 0, ev->path_len,
			  exe_unknown, pol->n_patterns[D4C_SET_NAME], base + D4C_MAX_PATTERNS, &fail, &unk);
	/* sessionLeaderExecutable and sessionLeaderName (D32, `**` `/` name) are both matched on
	 * the session leader's executable path. */
	__u64 need_path = cand & pol->set_selectors[D4C_SET_LEADER] & ~fail;
	__u64 need_name = cand & pol->set_selectors[D4C_SET_LEADER_NAME] & ~fail;
	if (need_path | need_name) {
		/* The exec'ing process leads its session: after the exec (what the event describes)
		 * its leader's executable is the new image, in buffer 0. */
		__u32 which = 0, len = ev->path_len, leader_unknown = exe_unknown;
		if (!is_leader) {
			struct pscratch *sc = get_scratch();
			__u32 sid = d4c_session_id(task);
			struct d4c_exe_path *leader = bpf_map_lookup_elem(&exe_paths, &sid);
			if (!sc || !leader) {
				ev->head.flags |= D4C_FLAG_LEADER_UNKNOWN;
				d4c_stat_add(D4C_STAT_LEADER_UNKNOWN);
				unk |= need_path | need_name;
				need_path = need_name = 0;
			} else {
				bpf_probe_read_kernel(&sc->other, sizeof(sc->other), leader);
				which = 1;
				len = sc->other.path_len;
				leader_unknown = (sc->other.flags & (D4C_FLAG_PATH_INCOMPLETE | D4C_FLAG_NO_EXE)) != 0;
			}
		}
		pattern_condition(ev, need_path, which, len, leader_unknown, pol->n_patterns[D4C_SET_LEADER],
				  base + D4C_SET_LEADER * D4C_MAX_PATTERNS, &fail, &unk);
		pattern_condition(ev, need_name, which, len, leader_unknown,
				  pol->n_patterns[D4C_SET_LEADER_NAME],
				  base + D4C_SET_LEADER_NAME * D4C_MAX_PATTERNS, &fail, &unk);
	}

	__u64 matched = cand & ~fail & ~unk;
	__u64 unsure = cand & ~fail & unk;
	ev->head.actions = d4c_fire_responses(matched, unsure, pol->n_responses, slot,
					      &ev->head.selectors);
	return ev->head.actions;
}

/* argv of a refused execve, from the syscall's own arguments (the new image's copy is in an
 * mm that is not current yet). */
struct argv_ctx {
	__u64 argv;
	__u32 off;
	__u32 argc;
	__u32 cut;
};

D4C_PERCPU_SCRATCH(struct argv_ctx, argv_scratch, argv_state)

D4C_LOOP_STEP(argv_step)
{
	struct pscratch *sc = get_scratch();
	struct argv_ctx *c = argv_state();
	if (!sc || !c)
		return 1;
	__u32 i = iter;
	__u64 ptr = 0;
	if (bpf_probe_read_user(&ptr, sizeof(ptr), (void *)(c->argv + 8 * (__u64)i)) || !ptr)
		return 1;
	if (c->off >= D4C_ARGS_MAX) {
		c->cut = 1;
		return 1;
	}
	long n = bpf_probe_read_user_str(&sc->ev.args[c->off & (D4C_ARGS_MAX - 1)], D4C_ARGS_MAX, (void *)ptr);
	if (n <= 0)
		return 1;
	c->off += n;
	c->argc++;
	if (i + 1 >= D4C_MAX_ARGV)
		c->cut = 1;
	return 0;
}

D4C_LOOP(argv_run, argv_step, D4C_MAX_ARGV)

static __always_inline void syscall_argv(struct d4c_process_event *ev, struct task_struct *task)
{
	struct pt_regs *regs = d4c_task_pt_regs(task);
	if (!regs)
		return;
	struct argv_ctx *c = argv_state();
	if (!c)
		return;
	__u64 nr = BPF_CORE_READ(regs, orig_ax);
	*c = (struct argv_ctx){};
	if (nr == NR_EXECVE)
		c->argv = BPF_CORE_READ(regs, si);
	else if (nr == NR_EXECVEAT)
		c->argv = BPF_CORE_READ(regs, dx);
	else
		return;
	argv_run();
	__u32 off = c->off, cut = c->cut;
	if (off > D4C_ARGS_MAX) {
		off = D4C_ARGS_MAX;
		cut = 1;
	}
	ev->args_len = off;
	ev->argc = c->argc;
	if (cut)
		ev->head.flags |= D4C_FLAG_ARGS_CUT;
}

/* argv of the current process after its exec: mm->arg_start..arg_end (NUL-separated). */
static __always_inline void mm_args(struct d4c_process_event *ev, struct task_struct *task)
{
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	if (!mm)
		return;
	__u64 start = BPF_CORE_READ(mm, arg_start);
	__u64 end = BPF_CORE_READ(mm, arg_end);
	if (end <= start)
		return;
	__u64 len = end - start;
	if (len > D4C_ARGS_MAX) {
		len = D4C_ARGS_MAX;
		ev->head.flags |= D4C_FLAG_ARGS_CUT;
	}
	if (bpf_probe_read_user(ev->args, len, (void *)start))
		return;
	ev->args_len = len;
}

/* D21: exec is decided here, once per execve (bprm_check_security would run again for a
 * script's interpreter), with bprm->file = the file execve named, before the new image runs. */
SEC("lsm/bprm_creds_for_exec")
int BPF_PROG(d4c_bprm_creds_for_exec, struct linux_binprm *bprm, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	__u64 mask = 0;
	__u32 slot = 0;
	if (!d4c_container_mask(&mask, &slot))
		return 0;
	struct pscratch *sc = get_scratch();
	if (!sc)
		return 0;
	struct task_struct *task = d4c_current_task();
	struct d4c_process_event *ev = begin(sc, D4C_RECORD_ACTIVITY, D4C_KIND_EXEC,
					     D4C_HOOK_BPRM_CREDS_FOR_EXEC);
	ev->head.task.cgroup_id = bpf_get_current_cgroup_id();
	exec_file(ev, BPF_CORE_READ(bprm, file));
	__u32 op = ev->head.flags & D4C_FLAG_MEMFD ? D4C_OP_EXEC_MEM_FD : D4C_OP_EXEC;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u32 actions = decide(ev, op, mask, slot, tgid == d4c_session_id(task));
	if (actions & D4C_ACTION_BLOCK) {
		d4c_fill_task(&ev->head, task);
		syscall_argv(ev, task);
		ev->head.blocked = 1;
		output(ev);
		d4c_stat_add(D4C_STAT_BLOCKS);
		/* The process keeps its image: make sure exe_paths knows it (its exit record). */
		current_exe(sc, task);
		return -EPERM;
	}
	/* Allowed: sched_process_exec reports the exec (lifecycle, then activity) with this
	 * path, the one the policy was decided on. */
	struct pending_exec *pend = &sc->pend;
	pend->selectors = ev->head.selectors;
	pend->actions = actions;
	pend->flags = ev->head.flags;
	bpf_probe_read_kernel(pend->exe.path, sizeof(pend->exe.path), ev->path);
	pend->exe.path_len = ev->path_len;
	pend->exe.flags = ev->head.flags & (D4C_FLAG_PATH_INCOMPLETE | D4C_FLAG_NO_EXE);
	__u64 key = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&pending_exec, &key, pend, BPF_ANY);
	return 0;
}

/* The exec happened: the lifecycle record (every container exec), then the activity of a
 * response that fired; exe_paths learns the new image (also for host session leaders, whose
 * session may become a container's: the entry process execs before it is registered). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(d4c_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	D4C_HOOK_ENTRY;
	struct task_struct *task = d4c_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	/* A non-leader thread's exec takes the leader's pid (de_thread): the pending key was
	 * made with its old one. */
	__u64 key = ((__u64)tgid << 32) | (__u32)old_pid;
	struct pending_exec *pend = bpf_map_lookup_elem(&pending_exec, &key);
	__u64 mask = 0;
	__u32 slot = 0;
	int container = d4c_container_mask(&mask, &slot);
	__u32 leader = tgid == d4c_session_id(task);
	if (!container && !leader) {
		if (pend)
			bpf_map_delete_elem(&pending_exec, &key);
		return 0;
	}
	struct pscratch *sc = get_scratch();
	if (!sc)
		return 0;
	struct d4c_process_event *ev = begin(sc, D4C_RECORD_LIFECYCLE, D4C_KIND_EXEC,
					     D4C_HOOK_SCHED_PROCESS_EXEC);
	if (pend)
		copy_exe(ev, &pend->exe);
	else
		exec_file(ev, BPF_CORE_READ(bprm, file));
	d4c_fill_task(&ev->head, task);
	store_exe(sc, tgid, ev->head.task.start_time_ns);
	if (container) {
		mm_args(ev, task);
		output(ev);
		if (pend && pend->actions) {
			ev->record = D4C_RECORD_ACTIVITY;
			ev->head.hook = D4C_HOOK_BPRM_CREDS_FOR_EXEC;
			ev->head.selectors = pend->selectors;
			ev->head.actions = pend->actions;
			ev->head.flags = pend->flags | (ev->head.flags & D4C_FLAG_ARGS_CUT);
			output(ev);
		}
	}
	if (pend)
		bpf_map_delete_elem(&pending_exec, &key);
	return 0;
}

/* D21: fork is decided here, in the parent, before the child exists. Threads are not
 * processes (CLONE_THREAD is never decided). */
SEC("lsm/task_alloc")
int BPF_PROG(d4c_task_alloc, struct task_struct *child, unsigned long clone_flags, int ret)
{
	D4C_HOOK_ENTRY;
	if (ret)
		return ret;
	if (clone_flags & CLONE_THREAD)
		return 0;
	__u64 mask = 0;
	__u32 slot = 0;
	if (!d4c_container_mask(&mask, &slot))
		return 0;
	__u64 key = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&pending_fork, &key); /* a decision whose fork failed later */
	if (!mask)
		return 0;
	__u32 s = slot & 1;
	struct d4c_process_policy *pol = bpf_map_lookup_elem(&process_policy, &s);
	if (!pol || !(mask & pol->op_selectors[0]))
		return 0; /* no selector of this container applies to fork: nothing to decide */
	struct pscratch *sc = get_scratch();
	if (!sc)
		return 0;
	struct task_struct *task = d4c_current_task();
	struct d4c_process_event *ev = begin(sc, D4C_RECORD_ACTIVITY, D4C_KIND_FORK, D4C_HOOK_TASK_ALLOC);
	ev->head.task.cgroup_id = bpf_get_current_cgroup_id();
	/* The child runs the parent's image: its executable is the parent's. */
	current_exe(sc, task);
	__u32 actions = decide(ev, D4C_OP_FORK, mask, slot, 0);
	if (!actions)
		return 0;
	if (actions & D4C_ACTION_BLOCK) {
		/* No child exists: the record describes the parent (activity.py seam). */
		d4c_fill_task(&ev->head, task);
		ev->head.blocked = 1;
		output(ev);
		d4c_stat_add(D4C_STAT_BLOCKS);
		return -EPERM;
	}
	struct pending_fork pf = {.selectors = ev->head.selectors, .actions = actions, .flags = ev->head.flags};
	bpf_map_update_elem(&pending_fork, &key, &pf, BPF_ANY);
	return 0;
}

/* The fork happened (runs in the parent): the child's lifecycle record, then the activity of
 * a response that fired at task_alloc. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(d4c_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	D4C_HOOK_ENTRY;
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a thread */
	__u64 key = bpf_get_current_pid_tgid();
	struct pending_fork *pf = bpf_map_lookup_elem(&pending_fork, &key);
	__u64 mask = 0;
	__u32 slot = 0;
	if (!d4c_container_mask(&mask, &slot)) {
		if (pf)
			bpf_map_delete_elem(&pending_fork, &key);
		return 0;
	}
	struct pscratch *sc = get_scratch();
	if (!sc)
		return 0;
	struct task_struct *task = d4c_current_task();
	struct d4c_process_event *ev = begin(sc, D4C_RECORD_LIFECYCLE, D4C_KIND_FORK,
					     D4C_HOOK_SCHED_PROCESS_FORK);
	current_exe(sc, task);
	d4c_fill_task(&ev->head, child);
	if (!(ev->head.flags & D4C_FLAG_NO_EXE))
		store_exe(sc, ev->head.task.pid, ev->head.task.start_time_ns);
	output(ev);
	if (pf) {
		ev->record = D4C_RECORD_ACTIVITY;
		ev->head.hook = D4C_HOOK_TASK_ALLOC;
		ev->head.selectors = pf->selectors;
		ev->head.actions = pf->actions;
		ev->head.flags = pf->flags;
		output(ev);
		bpf_map_delete_elem(&pending_fork, &key);
	}
	return 0;
}

/* The last thread of a process exits: the exit lifecycle record of a container process (the
 * agent owes D20 `end` events from it); exe_paths forgets the process either way. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(d4c_sched_process_exit, struct task_struct *p)
{
	D4C_HOOK_ENTRY;
	/* A decision whose exec or fork then failed for another reason must not outlive its
	 * thread (the maps are bounded; a stale entry would name a later operation). */
	__u64 thread = bpf_get_current_pid_tgid();
	bpf_map_delete_elem(&pending_exec, &thread);
	bpf_map_delete_elem(&pending_fork, &thread);
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0; /* other threads still run: the process has not ended */
	__u32 tgid = BPF_CORE_READ(p, tgid);
	struct d4c_exe_path *exe = bpf_map_lookup_elem(&exe_paths, &tgid);
	__u64 mask = 0;
	__u32 slot = 0;
	if (d4c_container_mask(&mask, &slot)) {
		struct pscratch *sc = get_scratch();
		if (sc) {
			struct d4c_process_event *ev = begin(sc, D4C_RECORD_LIFECYCLE, D4C_KIND_EXIT,
							     D4C_HOOK_SCHED_PROCESS_EXIT);
			if (exe)
				copy_exe(ev, exe);
			else
				ev->head.flags |= D4C_FLAG_NO_EXE; /* mm is gone: only a stored path is known */
			d4c_fill_task(&ev->head, p);
			ev->head.task.pid = tgid;
			ev->exit_code = BPF_CORE_READ(p, exit_code);
			output(ev);
		}
	}
	if (exe)
		bpf_map_delete_elem(&exe_paths, &tgid);
	return 0;
}
