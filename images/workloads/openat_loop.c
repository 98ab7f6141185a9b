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
 * Start gate: when fd 3 is open, the program blocks reading one byte from it before the first
 * call, so the agent can set pid filters with this pid first. EOF on the gate (the agent gave
 * up) exits with status 75 without making any call. Run by hand, fd 3 is normally closed and the
 * loop starts at once.
 *
 * Output: "openat-loop: calls=N ok=K fd=F errno=E ptr=P", F the fd of the last successful call
 * (-1 when none succeeded), E the errno of the last failed call (0 when none failed) and P the
 * address of PATH passed as openat's filename (what a probe reading the pointer must see).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GATE_FD 3

static void wait_for_start(void)
{
	char c;
	ssize_t n;

	if (fcntl(GATE_FD, F_GETFD) == -1)
		return;
	do {
		n = read(GATE_FD, &c, 1);
	} while (n == -1 && errno == EINTR);
	close(GATE_FD);
	if (n != 1)
		_exit(75);
}

int main(int argc, char **argv)
{
	char *end = NULL;
	long n, i, ok = 0, fd = -1, last_errno = 0;
	char line[160];
	int len;

	if (argc != 3) {
		static const char usage[] = "usage: openat-loop N PATH\n";
		write(2, usage, sizeof(usage) - 1);
		_exit(64);
	}
	n = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n < 0) {
		static const char bad[] = "openat-loop: N must be a non-negative integer\n";
		write(2, bad, sizeof(bad) - 1);
		_exit(64);
	}
	wait_for_start();
	for (i = 0; i < n; i++) {
		long r = syscall(SYS_openat, AT_FDCWD, argv[2], O_RDONLY | O_CLOEXEC, 0);

		if (r >= 0) {
			ok++;
			fd = r;
			close((int)r);
		} else {
			last_errno = errno;
		}
	}
	len = snprintf(line, sizeof(line), "openat-loop: calls=%ld ok=%ld fd=%ld errno=%ld ptr=%p\n",
		       n, ok, fd, last_errno, (void *)argv[2]);
	if (len > 0)
		write(1, line, (size_t)len);
	_exit(ok == n ? 0 : 1);
}
