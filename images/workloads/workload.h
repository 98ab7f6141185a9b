/*
 * workload.h: what the kmatrix workloads share: the start gate, argument checks and the summary
 * line. Included by each workload source after its system headers (with _GNU_SOURCE defined).
 *
 * Start gate: when the environment has KMATRIX_GATE (the agent sets it with the gate) and fd 3
 * is open, the program blocks reading one byte from it before its work, so the agent can set pid
 * filters with this pid first. EOF on the gate (the agent gave up) exits with status 75 without
 * any work. Run by hand or by a tool (perf, uftrace, bpftrace -c), the variable is unset and the
 * program starts at once, whatever the tool left open as fd 3.
 *
 * Bad arguments write one message to stderr with one write(2) and _exit(64). The summary line
 * goes to stdout with one write(2), no stdio buffering, so a program that ends with _exit() (and
 * so writes no gmon.out) makes no other syscall for it.
 */
#ifndef KMATRIX_WORKLOAD_H
#define KMATRIX_WORKLOAD_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GATE_FD 3

/* Wait for the agent's go on the gate (fd 3) when the agent opened one; EOF: exit 75. */
static inline void wait_for_start(void)
{
	char c;
	ssize_t n;

	if (!getenv("KMATRIX_GATE") || fcntl(GATE_FD, F_GETFD) == -1)
		return;
	do {
		n = read(GATE_FD, &c, 1);
	} while (n == -1 && errno == EINTR);
	close(GATE_FD);
	if (n != 1)
		_exit(75);
}

/* Write msg to stderr with one write(2) and exit 64 (usage error). */
static inline void usage_exit(const char *msg)
{
	write(2, msg, strlen(msg));
	_exit(64);
}

/* Exit 64 with usage unless the program was given exactly want - 1 arguments. */
static inline void check_argc(int argc, int want, const char *usage)
{
	if (argc != want)
		usage_exit(usage);
}

/* arg as a whole decimal number in [min, max]; anything else exits 64 with bad. */
static inline long parse_count(const char *arg, long min, long max, const char *bad)
{
	char *end = NULL;
	long v = strtol(arg, &end, 10);

	if (*arg == '\0' || *end != '\0' || v < min || v > max)
		usage_exit(bad);
	return v;
}

/* Format the summary line and write it to stdout with one write(2). */
__attribute__((format(printf, 1, 2))) static inline void report(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof(line))
		len = sizeof(line) - 1;
	if (len > 0)
		write(1, line, (size_t)len);
}

#endif
