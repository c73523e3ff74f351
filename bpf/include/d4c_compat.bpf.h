/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the kernels the programs run on, in one place, so that every other
 * line of the programs is the same for all of them. `make -C bpf` builds each program twice:
 *
 *   build/<name>.bpf.o        kernels 5.19 and later (bpf_loop, bpf_get_current_task_btf,
 *                             bpf_task_pt_regs, path_rename with its flags)
 *   build/<name>.v510.bpf.o   -DD4C_V510: kernels 5.10 to 5.18, which lack some of those
 *
 * and the loader picks one by probing the running kernel (reference_agent/kernel/
 * kernel_compat.py). What each substitute means is in bpf/README.md ("Kernel variants").
 *
 *   d4c_current_task()            the current task, for BPF_CORE_READ
 *   d4c_task_pt_regs(task)        the user registers of `task`'s syscall
 *   D4C_LOOP_STEP(step)           defines a loop step: `long step(__u32 iter)`, its state in a
 *                                 per-CPU map (a step gets no context pointer)
 *   D4C_LOOP(run, step, max)      defines `run()`: step(0), step(1), ... until one returns
 *                                 nonzero, at most `max` steps
 *   D4C_SEC_PATH_RENAME           the section of the rename hook
 *
 * Include after vmlinux.h and the libbpf headers.
 */
#ifndef D4C_COMPAT_BPF_H
#define D4C_COMPAT_BPF_H

#ifndef D4C_V510

static __always_inline struct task_struct *d4c_current_task(void)
{
	return bpf_get_current_task_btf();
}

static __always_inline struct pt_regs *d4c_task_pt_regs(struct task_struct *task)
{
	return (struct pt_regs *)bpf_task_pt_regs(task);
}

#define D4C_LOOP_STEP(step) static long step(__u32 iter, void *unused)

#define D4C_LOOP(run, step, max)                                             \
	static __always_inline void run(void)                                \
	{                                                                    \
		bpf_loop((max), step, 0, 0);                                 \
	}

#define D4C_SEC_PATH_RENAME "lsm/path_rename"

#else /* D4C_V510 */

/* bpf_get_current_task_btf is 5.11: the untyped task pointer reads the same fields through
 * BPF_CORE_READ (bpf_probe_read_kernel), which is how every field of a task is read here. */
static __always_inline struct task_struct *d4c_current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* bpf_task_pt_regs is 5.15: it returns task_pt_regs(task), which on x86_64 is the pt_regs at
 * the top of the task's kernel stack (THREAD_SIZE = 16 KiB, KASAN off, as in Debian's
 * kernels; TOP_OF_KERNEL_STACK_PADDING is 0 on x86_64). */
#define D4C_THREAD_SIZE (4096 << 2)

static __always_inline struct pt_regs *d4c_task_pt_regs(struct task_struct *task)
{
	void *stack = BPF_CORE_READ(task, stack);
	if (!stack)
		return 0;
	return (struct pt_regs *)(stack + D4C_THREAD_SIZE - bpf_core_type_size(struct pt_regs));
}

/*
 * bpf_loop is 5.17. Without it a loop is a bounded loop, which the verifier walks iteration
 * by iteration: a step is a global function (the verifier checks it once, on its own, its
 * argument an unknown scalar), and a loop of `max` steps is two nested global functions of
 * bounded loops, D4C_LOOP_CHUNK steps per inner call. Each level costs the verifier a few
 * instructions and one pending branch (the step's "stop") per iteration: at most 4096 of them,
 * below its limit of 8192 pending branches, and the 8M steps of the pattern matcher verify in
 * well under its 1M-instruction limit. Every loop runs as many steps as its bpf_loop twin.
 */
#define D4C_LOOP_CHUNK 4096
#define D4C_LOOP_CHUNK_OF(max) ((max) < D4C_LOOP_CHUNK ? (max) : D4C_LOOP_CHUNK)

#define D4C_LOOP_STEP(step) __noinline long step(__u32 iter)

#define D4C_LOOP(run, step, max)                                             \
	_Static_assert((max) % D4C_LOOP_CHUNK_OF(max) == 0,                  \
		       "a loop is whole chunks");                            \
	__noinline long run##_chunk(__u32 first)                             \
	{                                                                    \
		for (__u32 j = 0; j < D4C_LOOP_CHUNK_OF(max); j++) {         \
			if (step(first + j))                                 \
				return 1;                                    \
		}                                                            \
		return 0;                                                    \
	}                                                                    \
	__noinline long run##_chunks(void)                                   \
	{                                                                    \
		for (__u32 k = 0; k < (max) / D4C_LOOP_CHUNK_OF(max); k++) {  \
			if (run##_chunk(k * D4C_LOOP_CHUNK_OF(max)))         \
				break;                                       \
		}                                                            \
		return 0;                                                    \
	}                                                                    \
	static __always_inline void run(void)                                \
	{                                                                    \
		run##_chunks();                                              \
	}

/* Before 5.19 the path_rename hook has no flags: a RENAME_EXCHANGE calls it twice, once per
 * direction, each looking like a plain rename onto an existing name. security_path_rename,
 * its caller, has the flags and calls it once per rename: the program attaches there
 * (fmod_ret: its nonzero return is the syscall's error, as an LSM hook's is). */
#define D4C_SEC_PATH_RENAME "fmod_ret/security_path_rename"

#endif /* D4C_V510 */

/* inode_setxattr's arguments: 5.12 put the mount's user namespace (an idmap since 6.3) in
 * front of the dentry. Whether the running kernel has it, from its BTF (CO-RE: the field
 * that came and went with that argument). */
struct vfsmount___d4c_userns {
	void *mnt_userns;
};
struct vfsmount___d4c_idmap {
	void *mnt_idmap;
};

static __always_inline int d4c_setxattr_has_idmap(void)
{
	return bpf_core_field_exists(struct vfsmount___d4c_userns, mnt_userns) ||
	       bpf_core_field_exists(struct vfsmount___d4c_idmap, mnt_idmap);
}

#endif /* D4C_COMPAT_BPF_H */
