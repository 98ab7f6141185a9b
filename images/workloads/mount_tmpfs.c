/*
 * mount-tmpfs N DIR: N times mount a tmpfs on DIR (created if missing) and unmount it again,
 * the seeds' sys_enter_mount tracepoint workload.
 *
 * Each mount(2) is made through syscall(SYS_mount, ...) with source "kmatrix", type "tmpfs",
 * flags MS_NOSUID|MS_NODEV (6) and data "size=64k", so every sys_enter_mount event must show
 * flags 6. Nothing else mounts once started.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "mount-tmpfs: calls=N ok=K umount_ok=U errno=E flags=6".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GATE_FD 3
#define FLAGS (MS_NOSUID | MS_NODEV)

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
	long n, i, ok = 0, umount_ok = 0, last_errno = 0;
	char line[160];
	int len;

	if (argc != 3) {
		static const char usage[] = "usage: mount-tmpfs N DIR\n";
		write(2, usage, sizeof(usage) - 1);
		_exit(64);
	}
	n = strtol(argv[1], &end, 10);
	if (*argv[1] == '\0' || *end != '\0' || n < 0) {
		static const char bad[] = "mount-tmpfs: N must be a non-negative integer\n";
		write(2, bad, sizeof(bad) - 1);
		_exit(64);
	}
	if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) {
		perror("mount-tmpfs: mkdir");
		_exit(1);
	}
	wait_for_start();
	for (i = 0; i < n; i++) {
		if (syscall(SYS_mount, "kmatrix", argv[2], "tmpfs", (unsigned long)FLAGS, "size=64k") != 0) {
			last_errno = errno;
			continue;
		}
		ok++;
		if (syscall(SYS_umount2, argv[2], 0) == 0)
			umount_ok++;
		else
			last_errno = errno;
	}
	len = snprintf(line, sizeof(line), "mount-tmpfs: calls=%ld ok=%ld umount_ok=%ld errno=%ld flags=%d\n", n,
		       ok, umount_ok, last_errno, FLAGS);
	if (len > 0)
		write(1, line, (size_t)len);
	_exit(ok == n && umount_ok == n ? 0 : 1);
}
