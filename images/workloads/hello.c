/*
 * hello: the seeds' "hello, world!" program, with named functions for uprobes and uretprobes.
 *
 * hello_greet() prints the message, hello_add() returns a known value (a + b) for $retval
 * checks; both are noipa so -O1 keeps them as real, separately probeable functions with their
 * own symbols. `hello [N]` greets N times (default 1), so a probe on hello_greet sees exactly N
 * hits and one on hello_add N hits returning 0+1, 1+2, ...
 *
 * Start gate: as openat-loop, when fd 3 is open the program waits for one byte on it first
 * (EOF: exit 75 without greeting).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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

__attribute__((noipa)) int hello_add(int a, int b)
{
	return a + b;
}

__attribute__((noipa)) void hello_greet(const char *message)
{
	fputs(message, stdout);
}

int main(int argc, char **argv)
{
	char message[] = "hello, world!\n";
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
	long i;
	int sum = 0;

	wait_for_start();
	for (i = 0; i < n; i++) {
		hello_greet(message);
		sum = hello_add((int)i, (int)i + 1);
	}
	fflush(stdout);
	return sum < 0;
}
