/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * vmlinux.h: the few kernel types kmatrix's BPF programs touch, declared by hand.
 *
 * Why by hand rather than `bpftool btf dump file /sys/kernel/btf/vmlinux format c`:
 *  - the build needs no running kernel's BTF, no bpftool and no kernel package: clang and
 *    libbpf's headers are enough, on any build host and in CI;
 *  - a generated header pins the layout of one kernel; these declarations pin nothing. Every
 *    kernel struct below carries `preserve_access_index`, so clang records each field access as
 *    a CO-RE relocation (struct and field *name*), and the loader (aya) resolves it against the
 *    target kernel's /sys/kernel/btf/vmlinux at load time. The offsets written here only have to
 *    be plausible, the names have to be right;
 *  - the file stays small enough to read, and it says exactly which kernel fields kmatrix
 *    depends on.
 *
 * Two flavours of task_struct show the rename of `state` (a volatile long up to 5.13) to
 * `__state` (an unsigned int from 5.14): libbpf's convention `struct task_struct___old` names a
 * flavour, the suffix after `___` is ignored when matching against kernel BTF, and
 * bpf_core_field_exists() picks the one the running kernel has.
 *
 * Types from the uapi (bpf_perf_event_data, bpf_raw_tracepoint_args) are fixed ABI and the
 * kernel rewrites context accesses itself: no preserve_access_index there.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef int pid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

/* uapi/linux/bpf.h: map types, update flags and helper flags used by the programs. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

#define BPF_F_CURRENT_CPU 0xffffffffULL

/* Named in helper prototypes of bpf_helper_defs.h; never used by kmatrix. */
enum rc_proto { RC_PROTO_UNKNOWN = 0 };

#if defined(__TARGET_ARCH_arm64)
/* arch/arm64/include/uapi/asm/ptrace.h: what bpf_tracing.h reads PT_REGS_PARM* from on arm64
 * (uapi, fixed layout), and the kernel's pt_regs around it (orig_x0 is the first syscall
 * argument the syscall wrappers see). */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			__u64 regs[31];
			__u64 sp;
			__u64 pc;
			__u64 pstate;
		};
	};
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

typedef struct user_pt_regs bpf_user_pt_regs_t;

#define KM_SYSCALL_ARG2(regs) ((regs)->regs[1])
#define KM_SYSCALL_ARG2_CORE(regs) BPF_CORE_READ(regs, regs[1])
#else
/* arch/x86/include/asm/ptrace.h: kernel names (di, si, ...), which bpf_tracing.h expects when
 * __VMLINUX_H__ is defined. */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
} __attribute__((preserve_access_index));

typedef struct pt_regs bpf_user_pt_regs_t;

/* The second syscall argument in the user registers sys_enter hands over. */
#define KM_SYSCALL_ARG2(regs) ((regs)->si)
#define KM_SYSCALL_ARG2_CORE(regs) BPF_CORE_READ(regs, si)
#endif

/* uapi/linux/bpf_perf_event.h: the context of perf_event programs. */
struct bpf_perf_event_data {
	bpf_user_pt_regs_t regs;
	__u64 sample_period;
	__u64 addr;
};

/* uapi/linux/bpf.h: the context of raw_tracepoint programs. */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

/* include/linux/trace_events.h: the header of every trace event record. */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

/* include/trace/events/syscalls.h: the record of syscalls/sys_enter_* tracepoints, as
 * `bpftool btf dump file /sys/kernel/btf/vmlinux format c` prints it. */
struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
	char __data[0];
} __attribute__((preserve_access_index));

/* include/linux/sched.h, 5.14 and later: `unsigned int __state`. */
struct task_struct {
	unsigned int __state;
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	char comm[16];
} __attribute__((preserve_access_index));

/* include/linux/sched.h, up to 5.13: `volatile long state`. */
struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

#endif /* __VMLINUX_H__ */
