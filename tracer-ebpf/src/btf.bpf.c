// SPDX-License-Identifier: GPL-2.0
/*
 * BTF-typed attach points (5.5 and later, CONFIG_DEBUG_INFO_BTF): tp_btf/sys_enter, and
 * fentry/fexit on the openat path. Their arguments are typed by the kernel's BTF, so the
 * verifier lets tp_btf dereference `regs` directly and fexit sees the arguments and the return
 * value together. The agent loads the programs against do_sys_openat2 (5.6+) or do_sys_open.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(tp_btf_sys_enter, struct pt_regs *regs, long id)
{
	if (id != KM_NR_OPENAT)
		return 0;
	/* The second argument (regs->si, regs->regs[1]) is a direct load through a BTF pointer,
	 * where raw_tp needs a probe read. */
	km_record(id, (const char *)KM_SYSCALL_ARG2(regs));
	return 0;
}

SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_openat, int dfd, const char *filename)
{
	km_record(dfd, filename);
	return 0;
}

/* The return value follows the arguments in the context, so its slot depends on the target's
 * arity (bpf_get_func_ret, which hides that, is 5.17+): one program per target. */
SEC("fexit/do_sys_openat2")
int BPF_PROG(fexit_openat2, int dfd, const char *filename, void *how, long ret)
{
	km_record(ret, filename);
	return 0;
}

SEC("fexit/do_sys_open")
int BPF_PROG(fexit_open, int dfd, const char *filename, int flags, unsigned short mode, long ret)
{
	km_record(ret, filename);
	return 0;
}
