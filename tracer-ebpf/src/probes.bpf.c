// SPDX-License-Identifier: GPL-2.0
/*
 * The classic attach points, one program each, every one filtered to the workload's tgid:
 * kprobe and kretprobe on the openat path, the syscalls/sys_enter_openat and sys_enter_mount
 * tracepoints, the
 * sys_enter raw tracepoint, uprobe and uretprobe on the `hello` workload, and a perf_event
 * program for cpu-clock samples. The section names give the usual targets; the agent picks
 * the real ones at attach time (do_sys_openat2 from 5.6, do_sys_open before).
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

/* do_sys_openat2(int dfd, const char __user *filename, struct open_how *how) and
 * do_sys_open(int dfd, const char __user *filename, int flags, umode_t mode) agree on the
 * first two arguments. */
SEC("kprobe/do_sys_openat2")
int BPF_KPROBE(kprobe_openat, int dfd, const char *filename)
{
	km_record(dfd, filename);
	return 0;
}

KM_RETURN_PROBE("kretprobe/do_sys_openat2", kretprobe_openat, long)

/* As libbpf-style tracepoint programs read it: the tracepoint's record is struct
 * trace_event_raw_sys_enter, whose args[] are the syscall's arguments (openat: dfd, filename,
 * flags, mode). */
SEC("tracepoint/syscalls/sys_enter_openat")
int tracepoint_openat(struct trace_event_raw_sys_enter *ctx)
{
	km_record(ctx->id, (const char *)ctx->args[1]);
	return 0;
}

/* Seed 002's program, as the notes declare it: the sys_enter_mount record read as struct
 * trace_event_raw_sys_enter, whose args[] are mount(2)'s dev_name, dir_name, type, flags and
 * data. Records the flags and the file system type string. */
SEC("tracepoint/syscalls/sys_enter_mount")
int mount_entry(struct trace_event_raw_sys_enter *ctx)
{
	km_record((__s64)ctx->args[3], (const char *)ctx->args[2]);
	return 0;
}

/* raw_tracepoint/sys_enter gets (struct pt_regs *regs, long id) untyped: the user registers
 * are read through a probe read (BPF_CORE_READ), the second argument is in si (x1 on arm64). */
SEC("raw_tracepoint/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	long id = ctx->args[1];
	struct km_event *e;

	if (id != KM_NR_OPENAT)
		return 0;
	e = km_claim();
	if (!e)
		return 0;
	e->aux = id;
	bpf_probe_read_user_str(e->name, sizeof(e->name), (const char *)KM_SYSCALL_ARG2_CORE(regs));
	return 0;
}

/* hello_greet(const char *message): the message is in user memory. */
SEC("uprobe/hello_greet")
int BPF_KPROBE(uprobe_hello_greet, const char *message)
{
	struct km_event *e = km_claim();

	if (e)
		bpf_probe_read_user_str(e->name, sizeof(e->name), message);
	return 0;
}

/* hello_add(a, b) returns a + b: 1, 3, 5, ... for the i-th call. */
KM_RETURN_PROBE("uretprobe/hello_add", uretprobe_hello_add, int)

/* One call per cpu-clock sample of the workload; records the sampled task and its comm. */
SEC("perf_event")
int perf_event_cpu_clock(struct bpf_perf_event_data *ctx)
{
	struct km_event *e = km_claim();

	if (!e)
		return 0;
	e->aux = ctx->sample_period;
	bpf_get_current_comm(e->name, sizeof(e->name));
	return 0;
}
