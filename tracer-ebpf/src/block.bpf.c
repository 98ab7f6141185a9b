// SPDX-License-Identifier: GPL-2.0
/*
 * A biolatency-style histogram of one disk's requests: block:block_rq_issue stores the issue
 * time of each request by its (dev, sector), block:block_rq_complete looks it up, adds one to
 * the log2 bucket of the latency in microseconds in km_hist and forgets it. Only the disk whose
 * dev_t the agent writes to km_config[KM_CFG_DEV] is counted, and only requests that move data
 * (a flush has no sectors). km_counts: KM_HITS the issues stored, KM_DROPPED the completions
 * without a stored issue, KM_OTHERS the issues of other disks.
 *
 * Both records begin with dev, sector and nr_sector after the common header, from 4.15 to 7.x
 * (trace_event_raw_block_rq and trace_event_raw_block_rq_completion), so the programs read them
 * through a struct of their own rather than the kernel's BTF (4.15 has none).
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

/* km_config slot of the disk's dev_t, MKDEV(major, minor) = major << 20 | minor. */
#define KM_CFG_DEV 1
#define KM_HIST_SLOTS 64

struct km_block_rq {
	__u64 common;		/* struct trace_entry */
	__u32 dev;
	__u64 sector;
	__u32 nr_sector;
};

struct km_rq_key {
	__u32 dev;
	__u32 pad;
	__u64 sector;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct km_rq_key);
	__type(value, __u64);
} km_issued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} km_hist SEC(".maps");

/* Whether the record is a data request of the watched disk. */
static __always_inline bool km_watched(struct km_block_rq *rq)
{
	__u32 slot = KM_CFG_DEV;
	__u64 *dev = bpf_map_lookup_elem(&km_config, &slot);

	return dev && *dev && rq->dev == *dev && rq->nr_sector > 0;
}

/* floor(log2(v)), 0 for v <= 1: bcc's bpf_log2l, without loops for old verifiers. */
static __always_inline __u32 km_log2(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

SEC("tracepoint/block/block_rq_issue")
int block_issue(struct km_block_rq *rq)
{
	struct km_rq_key key = {};
	__u64 now = bpf_ktime_get_ns();

	if (!km_watched(rq)) {
		km_count(KM_OTHERS);
		return 0;
	}
	key.dev = rq->dev;
	key.sector = rq->sector;
	bpf_map_update_elem(&km_issued, &key, &now, BPF_ANY);
	km_count(KM_HITS);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int block_complete(struct km_block_rq *rq)
{
	struct km_rq_key key = {};
	__u64 *issued, *bucket;
	__u32 slot;

	if (!km_watched(rq))
		return 0;
	key.dev = rq->dev;
	key.sector = rq->sector;
	issued = bpf_map_lookup_elem(&km_issued, &key);
	if (!issued) {
		km_count(KM_DROPPED);
		return 0;
	}
	slot = km_log2((bpf_ktime_get_ns() - *issued) / 1000);
	bpf_map_delete_elem(&km_issued, &key);
	if (slot >= KM_HIST_SLOTS)
		slot = KM_HIST_SLOTS - 1;
	bucket = bpf_map_lookup_elem(&km_hist, &slot);
	if (bucket)
		__sync_fetch_and_add(bucket, 1);
	return 0;
}
