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
	struct km_event *e;

	if (id != KM_NR_OPENAT)
		return 0;
	e = km_claim();
	if (!e)
		return 0;
	e->aux = id;
	/* regs->si is a direct load through a BTF pointer, where raw_tp needs a probe read. */
	bpf_probe_read_user_str(e->name, sizeof(e->name), (const char *)regs->si);
	return 0;
}

SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_openat, int dfd, const char *filename)
{
	struct km_event *e = km_claim();

	if (!e)
		return 0;
	e->aux = dfd;
	bpf_probe_read_user_str(e->name, sizeof(e->name), filename);
	return 0;
}

/* The return value follows the arguments in the context, so its slot depends on the target's
 * arity (bpf_get_func_ret, which hides that, is 5.17+): one program per target. */
SEC("fexit/do_sys_openat2")
int BPF_PROG(fexit_openat2, int dfd, const char *filename, void *how, long ret)
{
	struct km_event *e = km_claim();

	if (!e)
		return 0;
	e->aux = ret;
	bpf_probe_read_user_str(e->name, sizeof(e->name), filename);
	return 0;
}

SEC("fexit/do_sys_open")
int BPF_PROG(fexit_open, int dfd, const char *filename, int flags, unsigned short mode, long ret)
{
	struct km_event *e = km_claim();

	if (!e)
		return 0;
	e->aux = ret;
	bpf_probe_read_user_str(e->name, sizeof(e->name), filename);
	return 0;
}
