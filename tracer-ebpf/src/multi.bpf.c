// SPDX-License-Identifier: GPL-2.0
/*
 * Programs for multi-attach links: kprobe_multi (5.18) and uprobe_multi (6.6). One link
 * attaches one program to several targets, each with a cookie, which the program reads with
 * bpf_get_attach_cookie() to tell the targets apart.
 *
 * libbpf names these sections `kprobe.multi/...` and `uprobe.multi/...`; aya 0.14 does not parse
 * those names, so they sit in plain kprobe/uprobe sections and the agent loads them itself with
 * the expected attach type (BPF_TRACE_KPROBE_MULTI, BPF_TRACE_UPROBE_MULTI) that the kernel
 * requires for these links.
 */
#include "kmatrix.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * A hit of one of the link's targets: the next event slot with the target's cookie, and for
 * cookie 1 the string at user address `name`; NULL as km_claim() gives it.
 */
static __always_inline struct km_event *km_claim_cookie(void *ctx, const char *name)
{
	struct km_event *e = km_claim();

	if (!e)
		return NULL;
	e->cookie = bpf_get_attach_cookie(ctx);
	if (e->cookie == 1)
		bpf_probe_read_user_str(e->name, sizeof(e->name), name);
	return e;
}

/* Cookie 1: do_sys_openat2 (dfd, filename, how); cookie 2: do_filp_open, once per openat. */
SEC("kprobe/kmatrix_kprobe_multi")
int kprobe_multi_openat(struct pt_regs *ctx)
{
	km_claim_cookie(ctx, (const char *)PT_REGS_PARM2(ctx));
	return 0;
}

/* Cookie 1: hello_greet(message); cookie 2: hello_add(a, b), recording a + b from the args. */
SEC("uprobe/kmatrix_uprobe_multi")
int uprobe_multi_hello(struct pt_regs *ctx)
{
	struct km_event *e = km_claim_cookie(ctx, (const char *)PT_REGS_PARM1(ctx));

	if (e && e->cookie != 1)
		e->aux = (int)PT_REGS_PARM1(ctx) + (int)PT_REGS_PARM2(ctx);
	return 0;
}
