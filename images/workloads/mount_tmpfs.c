/*
 * mount-tmpfs N DIR: N times mount a tmpfs on DIR (created if missing) and unmount it again,
 * the workload of the syscalls/sys_enter_mount event (ftrace.event.sys_enter_mount).
 *
 * Each mount(2) is made through syscall(SYS_mount, ...) with source "kmatrix", type "tmpfs",
 * flags MS_NOSUID|MS_NODEV (6) and data "size=64k", so every sys_enter_mount event must show
 * flags 6. Nothing else mounts once started.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "mount-tmpfs: calls=N ok=K umount_ok=U errno=E flags=6".
 */
#define _GNU_SOURCE
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "workload.h"

#define FLAGS (MS_NOSUID | MS_NODEV)

int main(int argc, char **argv)
{
	long n, i, ok = 0, umount_ok = 0, last_errno = 0;

	check_argc(argc, 3, "usage: mount-tmpfs N DIR\n");
	n = parse_count(argv[1], 0, LONG_MAX, "mount-tmpfs: N must be a non-negative integer\n");
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
	report("mount-tmpfs: calls=%ld ok=%ld umount_ok=%ld errno=%ld flags=%d\n", n, ok, umount_ok, last_errno,
	       FLAGS);
	_exit(ok == n && umount_ok == n ? 0 : 1);
}
