/*
 * urandom-read N: N read(2) calls of 16 bytes from /dev/urandom, the workload of the
 * random:urandom_read tracepoint that BCC's examples/tracing/urandomread.py traces (the tracepoint itself left the kernel in 5.18 and its stable backports).
 *
 * /dev/urandom is opened before the start gate, so after it the program makes exactly N reads
 * of the device.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "urandom-read: calls=N ok=K bytes=B".
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "workload.h"

int main(int argc, char **argv)
{
	char buf[16];
	long n, i, ok = 0, bytes = 0;
	int fd;

	check_argc(argc, 2, "usage: urandom-read N\n");
	n = parse_count(argv[1], 0, LONG_MAX, "urandom-read: N must be a non-negative integer\n");
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("urandom-read: open(/dev/urandom)");
		_exit(1);
	}
	wait_for_start();
	for (i = 0; i < n; i++) {
		long r = syscall(SYS_read, fd, buf, sizeof(buf));

		if (r > 0) {
			ok++;
			bytes += r;
		}
	}
	report("urandom-read: calls=%ld ok=%ld bytes=%ld\n", n, ok, bytes);
	_exit(ok == n ? 0 : 1);
}
