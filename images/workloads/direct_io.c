/*
 * direct-io N DEV: N writes then N reads of 4 KiB with O_DIRECT on the block device DEV (the
 * scratch disk, /dev/vda), at offsets 0, 4 KiB, ... (N-1) * 4 KiB: each one request to the
 * device, issued and completed before the next (no page cache, no merging), the workload of the
 * block:block_rq_issue / block_rq_complete scenarios.
 *
 * DEV is opened and the buffer aligned before the start gate, so after it the program makes
 * exactly N pwrite64 and N pread64 calls on the device.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "direct-io: writes=W reads=R size=4096", W and R the calls that moved 4 KiB.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "workload.h"

#define BLOCK 4096

int main(int argc, char **argv)
{
	static char buf[BLOCK] __attribute__((aligned(BLOCK)));
	long n, i, writes = 0, reads = 0;
	int fd;

	check_argc(argc, 3, "usage: direct-io N DEV\n");
	n = parse_count(argv[1], 0, 1L << 20, "direct-io: N must be an integer from 0 to 1048576\n");
	fd = open(argv[2], O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		perror("direct-io: open(DEV, O_DIRECT)");
		_exit(1);
	}
	memset(buf, 0x6b, sizeof(buf));
	wait_for_start();
	for (i = 0; i < n; i++)
		if (syscall(SYS_pwrite64, fd, buf, BLOCK, i * BLOCK) == BLOCK)
			writes++;
	for (i = 0; i < n; i++)
		if (syscall(SYS_pread64, fd, buf, BLOCK, i * BLOCK) == BLOCK)
			reads++;
	report("direct-io: writes=%ld reads=%ld size=%d\n", writes, reads, BLOCK);
	_exit(writes == n && reads == n ? 0 : 1);
}
