// SPDX-License-Identifier: GPL-2.0
/*
 * Output through a BPF ring buffer (5.8 and later): one km_event per openat of the workload,
 * reserved and submitted in place; the agent drains the ring after the run. A failed reserve
 * (ring full) is counted in km_counts[KM_DROPPED], so a loss shows up as a count.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} km_ringbuf SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int ringbuf_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct km_event *e;

	if (!km_is_target())
		return 0;
	km_count(KM_HITS);
	e = bpf_ringbuf_reserve(&km_ringbuf, sizeof(*e), 0);
	if (!e) {
		km_count(KM_DROPPED);
		return 0;
	}
	/* Reserved memory is not zeroed. */
	__builtin_memset(e, 0, sizeof(*e));
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	e->aux = ctx->id;
	bpf_probe_read_user_str(e->name, sizeof(e->name), (const char *)ctx->args[1]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
