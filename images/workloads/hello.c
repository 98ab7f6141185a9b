/*
 * hello: the classic "hello, world!" program, with named functions for uprobes and uretprobes.
 *
 * hello_greet() prints the message, hello_add() returns a known value (a + b) for $retval
 * checks; both are noipa so -O1 keeps them as real, separately probeable functions with their
 * own symbols. `hello [N]` greets N times (default 1), so a probe on hello_greet sees exactly N
 * hits and one on hello_add N hits returning 0+1, 1+2, ...
 *
 * Built twice (harness/build.rs): `hello`, static as every workload, and `hello-dyn` as the seeds
 * build it (`gcc -g -pg`, dynamically linked, PIE) for tools that need a dynamic program (uftrace
 * preloads libmcount), with KMATRIX_SDT defined: USDT probes (<sys/sdt.h>) hello:greet(message)
 * in hello_greet and hello:add(i, sum) after each hello_add, for bpftrace's and BCC's usdt.
 *
 * Start gate: as openat-loop (workload.h: with KMATRIX_GATE set, one byte on fd 3 first; EOF:
 * exit 75 without greeting).
 *
 * On stderr it reports what the kernel counted for it between the gate and the end of its work
 * (getrusage differences), for perf counters to be checked against:
 * "hello: nvcsw=V nivcsw=I minflt=F majflt=M".
 */
#define _GNU_SOURCE
#include <sys/resource.h>

#include "workload.h"

#ifdef KMATRIX_SDT
#include <sys/sdt.h>
#define HELLO_PROBE1(name, a) DTRACE_PROBE1(hello, name, a)
#define HELLO_PROBE2(name, a, b) DTRACE_PROBE2(hello, name, a, b)
#else
#define HELLO_PROBE1(name, a)
#define HELLO_PROBE2(name, a, b)
#endif

__attribute__((noipa)) int hello_add(int a, int b)
{
	return a + b;
}

__attribute__((noipa)) void hello_greet(const char *message)
{
	HELLO_PROBE1(greet, message);
	fputs(message, stdout);
}

int main(int argc, char **argv)
{
	char message[] = "hello, world!\n";
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
	long i;
	int sum = 0;
	struct rusage before, after;

	wait_for_start();
	getrusage(RUSAGE_SELF, &before);
	for (i = 0; i < n; i++) {
		hello_greet(message);
		sum = hello_add((int)i, (int)i + 1);
		HELLO_PROBE2(add, i, sum);
	}
	fflush(stdout);
	getrusage(RUSAGE_SELF, &after);
	fprintf(stderr, "hello: nvcsw=%ld nivcsw=%ld minflt=%ld majflt=%ld\n", after.ru_nvcsw - before.ru_nvcsw,
		after.ru_nivcsw - before.ru_nivcsw, after.ru_minflt - before.ru_minflt,
		after.ru_majflt - before.ru_majflt);
	return sum < 0;
}
