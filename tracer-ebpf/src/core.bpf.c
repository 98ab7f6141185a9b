// SPDX-License-Identifier: GPL-2.0
/*
 * CO-RE reads of task_struct, one object for every kernel: pid, tgid, comm and
 * real_parent->tgid by name, and the task state through whichever of `__state` (5.14+) and
 * `state` (before) the running kernel has. The loader resolves every field against the
 * kernel's BTF; the branch for the absent field is dead code (its relocation is poisoned, as
 * libbpf does) and never reaches the verifier as a live path.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat")
int core_task(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct km_event *e = km_claim();

	if (!e)
		return 0;
	e->aux = ctx->id;
	e->task_pid = BPF_CORE_READ(task, pid);
	e->task_tgid = BPF_CORE_READ(task, tgid);
	e->parent_tgid = BPF_CORE_READ(task, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&e->name, task, comm);
	if (bpf_core_field_exists(task->__state)) {
		e->state_field = 1;
		e->state = BPF_CORE_READ(task, __state);
	} else {
		struct task_struct___old *old = (void *)task;

		e->state_field = 2;
		e->state = BPF_CORE_READ(old, state);
	}
	return 0;
}
