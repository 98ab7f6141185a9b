/*
 * urandom-read N: N read(2) calls of 16 bytes from /dev/urandom, the seeds' random:urandom_read
 * tracepoint workload (the tracepoint itself left the kernel in 5.18 and its stable backports).
 *
 * /dev/urandom is opened before the start gate, so after it the program makes exactly N reads
 * of the device.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "urandom-read: calls=N ok=K bytes=B".
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
	char *end = NULL, buf[16], line[128];
	long n, i, ok = 0, bytes = 0;
	int fd, len;

	if (argc != 2) {
		static const char usage[] = "usage: urandom-read N\n";
		write(2, usage, sizeof(usage) - 1);
		_exit(64);
	}
	n = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n < 0) {
		static const char bad[] = "urandom-read: N must be a non-negative integer\n";
		write(2, bad, sizeof(bad) - 1);
		_exit(64);
	}
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
	len = snprintf(line, sizeof(line), "urandom-read: calls=%ld ok=%ld bytes=%ld\n", n, ok, bytes);
	if (len > 0)
		write(1, line, (size_t)len);
	_exit(ok == n ? 0 : 1);
}
