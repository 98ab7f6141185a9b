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
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "workload.h"

int main(int argc, char **argv)
{
	struct rusage before, after;
	cpu_set_t one;
	long n, i;
	pid_t partner;
	int cpu;

	check_argc(argc, 2, "usage: yield-loop N\n");
	n = parse_count(argv[1], 0, LONG_MAX, "yield-loop: N must be a non-negative integer\n");
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
	report("yield-loop: calls=%ld nvcsw=%ld nivcsw=%ld partner=%d\n", n, after.ru_nvcsw - before.ru_nvcsw,
	       after.ru_nivcsw - before.ru_nivcsw, (int)partner);
	_exit(0);
}
