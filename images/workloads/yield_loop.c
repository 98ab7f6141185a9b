/*
 * yield-loop N: N sched_yield(2) calls, with a partner process yielding on the same CPU so that
 * each yield has somewhere to switch to.
 *
 * kmatrix counts this process's sched_switch events and compares them with the kernel's own
 * count of its context switches (/proc/<pid>/status, read by the agent at the gate and after
 * exit). It also reports the switches of the loop alone, from getrusage(RUSAGE_SELF) right
 * before and right after it.
 *
 * Both processes are pinned to the CPU the parent starts on. The partner is forked after the
 * gate and killed (SIGKILL) after the second snapshot.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "yield-loop: calls=N nvcsw=V nivcsw=I partner=P", V and I the differences of the two
 * snapshots, P the partner's pid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
	struct rusage before, after;
	cpu_set_t one;
	char *end = NULL;
	long n, i;
	pid_t partner;
	char line[160];
	int len, cpu;

	if (argc != 2) {
		static const char usage[] = "usage: yield-loop N\n";
		write(2, usage, sizeof(usage) - 1);
		_exit(64);
	}
	n = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n < 0) {
		static const char bad[] = "yield-loop: N must be a non-negative integer\n";
		write(2, bad, sizeof(bad) - 1);
		_exit(64);
	}
	cpu = sched_getcpu();
	CPU_ZERO(&one);
	CPU_SET(cpu < 0 ? 0 : cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) != 0) {
		perror("yield-loop: sched_setaffinity");
		_exit(1);
	}
	wait_for_start();
	partner = fork();
	if (partner < 0) {
		perror("yield-loop: fork");
		_exit(1);
	}
	if (partner == 0) {
		for (;;)
			sched_yield();
	}
	/* Raw syscalls, so no libc wrapper adds work inside the measured loop. */
	syscall(SYS_getrusage, RUSAGE_SELF, &before);
	for (i = 0; i < n; i++)
		syscall(SYS_sched_yield);
	syscall(SYS_getrusage, RUSAGE_SELF, &after);
	kill(partner, SIGKILL);
	waitpid(partner, NULL, 0);
	len = snprintf(line, sizeof(line), "yield-loop: calls=%ld nvcsw=%ld nivcsw=%ld partner=%d\n", n,
		       after.ru_nvcsw - before.ru_nvcsw, after.ru_nivcsw - before.ru_nivcsw, (int)partner);
	if (len > 0)
		write(1, line, (size_t)len);
	_exit(0);
}
