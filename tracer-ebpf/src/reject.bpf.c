// SPDX-License-Identifier: GPL-2.0
/*
 * A program the verifier must reject, so the loader's error path (status, errno and verifier
 * log) is exercised on every kernel: it reads its tracepoint context at offset 32000, past
 * PERF_MAX_TRACE_SIZE (2048 on old kernels, 8192 since), which every verifier refuses with
 * "invalid bpf_context access". (Offset 4096 was accepted on kernels with the 8192 limit.)
 *
 * (An earlier version dereferenced an unchecked array-map lookup; 7.x verifiers prove a
 * constant in-range key never yields NULL and accept that, so it no longer failed everywhere.)
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat")
int reject_ctx_oob(void *ctx)
{
	return *(volatile __u64 *)((char *)ctx + 32000) == 0;
}
