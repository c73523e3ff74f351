/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What both programs do the same way around their own decisions: the maps userspace writes
 * identically for either (`container_selectors` with its two policy slots, `active_policy`,
 * `responses`, `stats`), the start of every hook (is the task in a registered container,
 * which slot is live, which selectors can apply there), the D22 response loop, the task
 * facts every record carries, and submitting a record. Each program keeps what differs: its
 * policy value (`file_policy`, `process_policy`), its pattern maps and its ring buffer.
 *
 * Include after vmlinux.h, the libbpf headers, d4c_abi.h and d4c_compat.bpf.h. A hook:
 *
 *	__u64 mask; __u32 slot;
 *	if (!d4c_container_mask(&mask, &slot))
 *		return 0;                                  // a host task: nothing applies (D15)
 *	... the program's own conditions give `matched` and `unsure` (fail-closed) bits ...
 *	ev->head.actions = d4c_fire_responses(matched, unsure, pol->n_responses, slot,
 *					      &ev->head.selectors);
 *	d4c_fill_task(&ev->head, d4c_current_task());
 *	d4c_submit(&ring, ev, offsetof(path), ev->path_len);  // counts events / ring full
 */
#ifndef D4C_POLICY_BPF_H
#define D4C_POLICY_BPF_H

/* Preemption. BPF programs run with migration disabled, not preemption: on a preemptible
 * kernel (PREEMPT_LAZY, the default from 6.13 on for many configurations, or preempt=full) a
 * task preempted inside a hook lets another task's hook on the same CPU reuse the same per-CPU
 * scratch, and the first resumes with a clobbered path, match state or record (seen on 7.2: a
 * fork program's record submitted with the kind the exit program had written). In the v610
 * objects (-DD4C_PREEMPT_GUARD, for kernels with the bpf_preempt_disable kfunc, 6.10+) every
 * program starts with D4C_HOOK_ENTRY, which keeps preemption off until it returns: the cleanup
 * attribute re-enables it on every return path, as the verifier requires. The other objects
 * are for kernels before 6.10, which cannot be built with lazy preemption and default to
 * voluntary preemption, where a hook is never preempted. */
#ifdef D4C_PREEMPT_GUARD
extern void bpf_preempt_disable(void) __ksym;
extern void bpf_preempt_enable(void) __ksym;

struct d4c_preempt_guard {
	int unused; /* only its scope matters: leaving it runs d4c_preempt_on */
};

static __always_inline struct d4c_preempt_guard d4c_preempt_off(void)
{
	bpf_preempt_disable();
	return (struct d4c_preempt_guard){0};
}

static __always_inline void d4c_preempt_on(struct d4c_preempt_guard *guard)
{
	bpf_preempt_enable();
}

#define D4C_HOOK_ENTRY                                                              \
	struct d4c_preempt_guard d4c_guard __attribute__((cleanup(d4c_preempt_on), unused)) = \
		d4c_preempt_off()
#else
#define D4C_HOOK_ENTRY do { } while (0)
#endif

/* A per-CPU scratch value of type T (records and paths are far larger than the 512-byte BPF
 * stack) in map `map`, and `getter()`, its entry for this CPU (NULL only if the lookup fails).
 * With D4C_HOOK_ENTRY first in every program, a hook runs to completion on one CPU with nothing
 * else running there in between, so its scratch is its own while it runs. */
#define D4C_PERCPU_SCRATCH(T, map, getter)                                   \
	struct {                                                             \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                     \
		__uint(max_entries, 1);                                      \
		__type(key, __u32);                                          \
		__type(value, T);                                            \
	} map SEC(".maps");                                                  \
	static __always_inline T *getter(void)                               \
	{                                                                    \
		__u32 zero = 0;                                              \
		return bpf_map_lookup_elem(&map, &zero);                     \
	}

/* cgroup v2 id -> per slot, the selectors whose static conditions the container meets.
 * Absent = not a registered container = never matches (D15). The file side stores only
 * containers where some selector can apply; the process side every known container, mask 0
 * included, because their tasks' lifecycle feeds the agent's process table. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, D4C_MAX_CONTAINERS);
	__type(key, __u64);
	__type(value, struct d4c_container_selectors);
} container_selectors SEC(".maps");

/* Which policy slot is live (0 or 1). Userspace fills the other slot, then flips this: a hook
 * reads it once and then sees one whole policy, never a mix. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} active_policy SEC(".maps");

/* Slot s holds responses [s * MAX, s * MAX + n_responses). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_POLICY_SLOTS * D4C_MAX_RESPONSES);
	__type(key, __u32);
	__type(value, struct d4c_response);
} responses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, D4C_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void d4c_stat_add(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Whether the current task is in a registered container; if so, the live slot and the
 * selectors of that slot whose static conditions the container meets. */
static __always_inline int d4c_container_mask(__u64 *mask, __u32 *slot)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct d4c_container_selectors *c = bpf_map_lookup_elem(&container_selectors, &cgid);
	if (!c)
		return 0;
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&active_policy, &zero);
	*slot = active ? *active & 1 : 0;
	*mask = c->selectors[*slot & 1];
	return 1;
}

/* D22: response i fires when one of its `match` selectors matched and none of its `exclude`
 * selectors did. A loop of d4c_compat.bpf.h, not a for loop in the hook: the verifier would
 * walk every iteration in every hook. */
struct response_ctx {
	__u64 matched;
	__u64 unsure;   /* fail-closed: counted as matched for `match`, not for `exclude` */
	__u64 shown;
	__u32 actions;
	__u32 n;
	__u32 base;     /* first index of the live slot in responses */
};

D4C_PERCPU_SCRATCH(struct response_ctx, d4c_response_scratch, d4c_response_state)

D4C_LOOP_STEP(response_step)
{
	struct response_ctx *c = d4c_response_state();
	if (!c)
		return 1;
	__u32 i = iter;
	if (i >= c->n)
		return 1;
	__u32 key = c->base + i;
	struct d4c_response *r = bpf_map_lookup_elem(&responses, &key);
	if (!r)
		return 1;
	__u64 hit = r->match & (c->matched | c->unsure);
	if (hit && !(r->exclude & c->matched)) {
		c->shown |= hit;
		c->actions |= r->actions;
	}
	return 0;
}

D4C_LOOP(response_run, response_step, D4C_MAX_RESPONSES)

/* The actions of the responses of slot `slot` that fire for `matched` selectors (and
 * `unsure` ones, fail-closed); *shown gets the match selectors of fired responses. */
static __always_inline __u32 d4c_fire_responses(__u64 matched, __u64 unsure, __u32 n_responses,
						__u32 slot, __u64 *shown)
{
	struct response_ctx *rc = d4c_response_state();
	if (!rc)
		return 0;
	*rc = (struct response_ctx){.matched = matched, .unsure = unsure, .n = n_responses,
				    .base = (slot & 1) * D4C_MAX_RESPONSES};
	response_run();
	*shown = rc->shown;
	return rc->actions;
}

static __always_inline __u32 d4c_session_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, pids[PIDTYPE_SID], numbers[0].nr);
}

/* The record's time and the facts of `task` (for a fork: the child, which is not current).
 * The cgroup is current's: a child starts in its parent's. */
static __always_inline void d4c_fill_task(struct d4c_record_head *head, struct task_struct *task)
{
	struct d4c_task *t = &head->task;
	head->timestamp_ns = bpf_ktime_get_boot_ns(); /* CLOCK_BOOTTIME, as the agent's clock expects */
	t->cgroup_id = bpf_get_current_cgroup_id();
	t->pid = BPF_CORE_READ(task, tgid);
	t->tid = BPF_CORE_READ(task, pid);
	t->ppid = BPF_CORE_READ(task, real_parent, tgid);
	t->uid = BPF_CORE_READ(task, cred, euid.val);
	t->gid = BPF_CORE_READ(task, cred, egid.val);
	t->start_time_ns = BPF_CORE_READ(task, group_leader, start_boottime); /* /proc stat field 22 */
	t->tty = BPF_CORE_READ(task, signal, tty) != NULL;
	t->sid = d4c_session_id(task);
	t->pgid = BPF_CORE_READ(task, signal, pids[PIDTYPE_PGID], numbers[0].nr);
	BPF_CORE_READ_STR_INTO(&t->comm, task, comm);
}

/* A record goes out cut after its path's NUL (`path_at` = offsetof the path): most paths are
 * short, and full-size (4 KiB path) records would fill the ring buffer many times sooner. */
static __always_inline void d4c_submit(void *ring, void *record, __u64 path_at, __u32 path_len)
{
	__u64 size = path_at + (path_len & (D4C_PATH_MAX - 1)) + 1;
	if (bpf_ringbuf_output(ring, record, size, 0))
		d4c_stat_add(D4C_STAT_RINGBUF_FULL);
	else
		d4c_stat_add(D4C_STAT_EVENTS);
}

#endif /* D4C_POLICY_BPF_H */
