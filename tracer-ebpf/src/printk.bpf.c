// SPDX-License-Identifier: GPL-2.0
/*
 * BCC's TRACEPOINT_PROBE example (examples/tracing/urandomread.py) without BCC: a tracepoint
 * program that calls bpf_trace_printk(), whose lines the agent reads back from trace_pipe. The
 * format is a static const array, so it lands in .rodata, a global-data map (5.2+), as with
 * bpf_printk().
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat")
int printk_openat(struct trace_event_raw_sys_enter *ctx)
{
	static const char fmt[] = "kmatrix-openat pid=%d path=%s\n";
	char name[KM_NAME_LEN] = {};

	if (!km_is_target())
		return 0;
	km_count(KM_HITS);
	/* %s of a stack copy: bpf_trace_printk reads kernel memory on every kernel. */
	bpf_probe_read_user_str(name, sizeof(name), (const char *)ctx->args[1]);
	bpf_trace_printk(fmt, sizeof(fmt), (__u32)bpf_get_current_pid_tgid(), name);
	return 0;
}
