/*
 * openat-loop N PATH: exactly N openat(2) syscalls on PATH, each fd closed again.
 *
 * kmatrix counts these calls through kprobes, tracepoints, the function tracer and BPF, so the
 * program must make no other openat call once started:
 *  - the calls go through syscall(SYS_openat, ...) so no libc wrapper can redirect them;
 *  - it ends with _exit(), which skips atexit handlers: a -pg build would otherwise open
 *    gmon.out at exit (one more openat);
 *  - the summary is written with one write(2), no stdio.
 *
 * Start gate (workload.h): when the agent opened one (KMATRIX_GATE in the environment, fd 3),
 * the program blocks reading one byte from it before the first call, so the agent can set pid
 * filters with this pid first. EOF on the gate (the agent gave up) exits with status 75 without
 * making any call. Run by hand or by a tool, the loop starts at once.
 *
 * Output: "openat-loop: ok=K failed=F fd=D errno=E ptr=P": what the kernel answered, not a tally
 * of the loop's own passes (which equals N by construction): K the calls that returned an fd, F
 * those that returned -1, D the fd of the last successful call (-1 when none succeeded), E the
 * errno of the last failed call (0 when none failed) and P the address of PATH passed as openat's
 * filename (what a probe reading the pointer must see). The exit status is 0 only when all N
 * calls returned an fd.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "workload.h"

int main(int argc, char **argv)
{
	long n, i, ok = 0, failed = 0, fd = -1, last_errno = 0;

	check_argc(argc, 3, "usage: openat-loop N PATH\n");
	n = parse_count(argv[1], 0, LONG_MAX, "openat-loop: N must be a non-negative integer\n");
	wait_for_start();
	for (i = 0; i < n; i++) {
		long r = syscall(SYS_openat, AT_FDCWD, argv[2], O_RDONLY | O_CLOEXEC, 0);

		if (r >= 0) {
			ok++;
			fd = r;
			close((int)r);
		} else {
			failed++;
			last_errno = errno;
		}
	}
	report("openat-loop: ok=%ld failed=%ld fd=%ld errno=%ld ptr=%p\n", ok, failed, fd, last_errno, (void *)argv[2]);
	_exit(ok == n ? 0 : 1);
}
