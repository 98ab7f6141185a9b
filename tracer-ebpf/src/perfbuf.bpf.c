// SPDX-License-Identifier: GPL-2.0
/*
 * Output through a perf event array (the pre-5.8 way): one km_event per openat of the
 * workload, copied from the stack into the current CPU's perf buffer. A failed output is
 * counted in km_counts[KM_DROPPED]; the agent also reports the buffers' own lost counts.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

/* max_entries 0: the loader sizes it to the number of possible CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} km_perf SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int perfbuf_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct km_event e = {};

	if (!km_is_target())
		return 0;
	km_count(KM_HITS);
	e.pid = (__u32)id;
	e.tgid = id >> 32;
	e.aux = ctx->id;
	bpf_probe_read_user_str(e.name, sizeof(e.name), (const char *)ctx->args[1]);
	if (bpf_perf_event_output(ctx, &km_perf, BPF_F_CURRENT_CPU, &e, sizeof(e)))
		km_count(KM_DROPPED);
	return 0;
}
