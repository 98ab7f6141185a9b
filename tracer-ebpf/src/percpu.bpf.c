// SPDX-License-Identifier: GPL-2.0
/*
 * Counting into a per-CPU array (BPF_MAP_TYPE_PERCPU_ARRAY, 4.6): a kprobe on the openat path
 * (the agent attaches it to do_sys_openat2, or do_sys_open before 5.6) adds one to slot 0 of
 * km_percpu, on the CPU it runs on, for every call of two workloads whose tgids the agent writes
 * to km_config[KM_CFG_TGID] and km_config[KM_CFG_TGID2]; each workload is pinned to a CPU of its
 * own. km_counts[KM_HITS] (one shared slot, atomic add) counts the same calls over all CPUs.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

/* The second workload's tgid (the first is KM_CFG_TGID). */
#define KM_CFG_TGID2 1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} km_percpu SEC(".maps");

SEC("kprobe/do_sys_openat2")
int percpu_openat(struct pt_regs *ctx)
{
	__u32 first = KM_CFG_TGID, second = KM_CFG_TGID2, slot = 0;
	__u64 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *a = bpf_map_lookup_elem(&km_config, &first);
	__u64 *b = bpf_map_lookup_elem(&km_config, &second);
	__u64 *v;

	if (!a || !b || !*a || !*b || (tgid != *a && tgid != *b)) {
		km_count(KM_OTHERS);
		return 0;
	}
	km_count(KM_HITS);
	v = bpf_map_lookup_elem(&km_percpu, &slot);
	/* This CPU's own copy: no other CPU writes it, and the program is not preempted. */
	if (v)
		*v += 1;
	return 0;
}
