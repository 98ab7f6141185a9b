/*
 * pause-crowd K: K child processes in pause(2) at the same time, then all woken by SIGUSR1.
 *
 * kmatrix puts a kretprobe with maxactive 1 on the pause syscall: the first child to enter
 * takes the only return instance, the other K-1 entries find none and are counted as missed
 * in kprobe_profile. The parent waits until /proc/<child>/syscall shows every child blocked in
 * pause (syscall 34 on x86_64) before waking them, so all K entries overlap.
 *
 * Start gate: as openat-loop (fd 3, one byte; EOF exits 75 without work).
 * Output: "pause-crowd: children=K paused=P woken=W", P the children seen blocked in pause,
 * W the children that returned from pause with EINTR (exit status 0).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "workload.h"

/* arm64 (like every newer architecture) has no pause(2): glibc's pause() is ppoll with no fds and
 * no timeout, which blocks the same way until a signal. The blocking syscall is that one there. */
#ifdef SYS_pause
#define BLOCK_NR SYS_pause
#define block_in_kernel() syscall(SYS_pause)
#else
#define BLOCK_NR SYS_ppoll
#define block_in_kernel() syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0)
#endif

#define MAX_CHILDREN 64

static void on_usr1(int sig)
{
	(void)sig;
}

/* Whether /proc/<pid>/syscall reads "<nr> ..." with nr the blocking syscall's. */
static int in_pause(pid_t pid)
{
	char path[64], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10) == BLOCK_NR;
}

int main(int argc, char **argv)
{
	pid_t kids[MAX_CHILDREN];
	struct sigaction sa;
	sigset_t block, old;
	long k, i, paused = 0, woken = 0, tries;
	int status;

	check_argc(argc, 2, "usage: pause-crowd K\n");
	k = parse_count(argv[1], 1, MAX_CHILDREN, "pause-crowd: K must be 1..64\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	wait_for_start();
	for (i = 0; i < k; i++) {
		kids[i] = fork();
		if (kids[i] < 0) {
			perror("pause-crowd: fork");
			_exit(1);
		}
		if (kids[i] == 0) {
			long r = block_in_kernel();

			_exit(r == -1 && errno == EINTR ? 0 : 1);
		}
	}
	/* Up to ~10 s for every child to block in pause. */
	for (i = 0; i < k; i++) {
		for (tries = 0; tries < 10000 && !in_pause(kids[i]); tries++) {
			struct timespec ms = { 0, 1000000 };

			nanosleep(&ms, NULL);
		}
		if (in_pause(kids[i]))
			paused++;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (i = 0; i < k; i++)
		kill(kids[i], SIGUSR1);
	for (i = 0; i < k; i++) {
		if (waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			woken++;
	}
	report("pause-crowd: children=%ld paused=%ld woken=%ld\n", k, paused, woken);
	_exit(paused == k && woken == k ? 0 : 1);
}
