/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * kmatrix.h: what every kmatrix BPF program shares with the agent.
 *
 * The agent writes the workload's tgid into km_config[KM_CFG_TGID] before it attaches anything
 * and releases the workload only after, so a program that filters on it sees exactly the
 * workload's calls. Each hit of the workload claims the next slot of km_events; km_counts keeps
 * the totals. `struct km_event` is mirrored in agent/src/bpf/event.rs: change both together.
 */
#ifndef __KMATRIX_H__
#define __KMATRIX_H__

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define KM_MAX_EVENTS 1024
#define KM_NAME_LEN 64
/* The syscall number of openat: x86_64's table, or the generic table arm64 uses. */
#if defined(__TARGET_ARCH_arm64)
#define KM_NR_OPENAT 56
#else
#define KM_NR_OPENAT 257
#endif

/* km_config slots. */
#define KM_CFG_TGID 0

/* km_counts slots. */
#define KM_HITS 0	/* hits of the target tgid (events claimed, recorded or not) */
#define KM_OTHERS 1	/* hits of other tasks, dropped by the filter */
#define KM_DROPPED 2	/* events an output channel refused (ring buffer full, ...) */

/* What a program saw on one hit; fields a program does not fill stay zero. */
struct km_event {
	__u32 pid;		/* thread id, from bpf_get_current_pid_tgid() */
	__u32 tgid;
	__s64 aux;		/* per program: return value, syscall nr, dfd */
	__u64 cookie;		/* bpf_get_attach_cookie() on multi links */
	__s32 task_pid;		/* CO-RE reads of task_struct */
	__s32 task_tgid;
	__s32 parent_tgid;	/* task->real_parent->tgid */
	__u32 state_field;	/* 1: task_struct::__state (5.14+), 2: task_struct::state */
	__s64 state;
	char name[KM_NAME_LEN];	/* file name, string argument or comm */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} km_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} km_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KM_MAX_EVENTS);
	__type(key, __u32);
	__type(value, struct km_event);
} km_events SEC(".maps");

static __always_inline void km_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&km_counts, &slot);

	/* The result is unused, so this is BPF_XADD, which 5.10 has (fetch-add came in 5.12). */
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Whether the current task belongs to the workload; counts the ones that do not. */
static __always_inline bool km_is_target(void)
{
	__u32 key = KM_CFG_TGID;
	__u64 *tgid = bpf_map_lookup_elem(&km_config, &key);

	if (tgid && *tgid == bpf_get_current_pid_tgid() >> 32)
		return true;
	km_count(KM_OTHERS);
	return false;
}

/*
 * The next event slot for a hit of the workload, pid and tgid filled in; NULL for other tasks
 * and once KM_MAX_EVENTS are recorded (the hit is still counted). The counter is read and
 * written without an atomic fetch: the workloads are single-threaded, so their hits never run
 * concurrently, and 5.10 has no BPF atomic fetch-add.
 */
static __always_inline struct km_event *km_claim(void)
{
	__u32 key = KM_HITS;
	__u64 *hits, id;
	__u32 idx;
	struct km_event *e;

	if (!km_is_target())
		return NULL;
	hits = bpf_map_lookup_elem(&km_counts, &key);
	if (!hits)
		return NULL;
	idx = *hits;
	*hits = idx + 1;
	if (idx >= KM_MAX_EVENTS)
		return NULL;
	e = bpf_map_lookup_elem(&km_events, &idx);
	if (!e)
		return NULL;
	id = bpf_get_current_pid_tgid();
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	return e;
}

/*
 * Record a hit of the workload: `aux` and the user string at `user_name` (the openat filename)
 * in the next event slot. Nothing for other tasks or once the slots are used up.
 */
static __always_inline void km_record(__s64 aux, const char *user_name)
{
	struct km_event *e = km_claim();

	if (!e)
		return;
	e->aux = aux;
	bpf_probe_read_user_str(e->name, sizeof(e->name), user_name);
}

/*
 * Record a hit of the workload with `aux` alone (a return value): the return probes read no
 * string.
 */
static __always_inline void km_record_aux(__s64 aux)
{
	struct km_event *e = km_claim();

	if (e)
		e->aux = aux;
}

/*
 * A return probe (kretprobe, uretprobe) `name` in section `sec` that records the return value
 * of type `type` alone, through km_record_aux().
 */
#define KM_RETURN_PROBE(sec, name, type)          \
	SEC(sec)                                  \
	int BPF_KRETPROBE(name, type ret)         \
	{                                         \
		km_record_aux(ret);               \
		return 0;                         \
	}

#endif /* __KMATRIX_H__ */
