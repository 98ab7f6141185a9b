// SPDX-License-Identifier: GPL-2.0
/*
 * A program the verifier must reject, so the loader's error path (status, errno and verifier
 * log) is exercised on every kernel: it dereferences a scalar taken from a map lookup without
 * the NULL check the verifier insists on.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat")
int reject_null_deref(void *ctx)
{
	__u32 key = KM_CFG_TGID;
	__u64 *tgid = bpf_map_lookup_elem(&km_config, &key);

	/* No `if (!tgid)`: "invalid mem access 'map_value_or_null'". */
	return *tgid == 0;
}
