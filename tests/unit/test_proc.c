/*
 * proc: holding a real child process still and letting it go. The target must end as it began:
 * running if it ran, stopped if it was stopped, even when heapspy has no file descriptor left.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "proc.h"

static pid_t child(void)
{
	pid_t pid = fork();

	if (pid == 0)
		for (;;)
			pause();
	return pid;
}

static char state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	return p ? p[2] : '?';
}

/* The state pid settles in: a stop or a continue takes a moment to reach the process. */
static char settled(pid_t pid, char want)
{
	struct timespec ms = {0, 1000000};

	for (int i = 0; i < 200 && state(pid) != want; i++)
		nanosleep(&ms, NULL);
	return state(pid);
}

static void end(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_freeze_and_thaw(void)
{
	struct freeze f;
	char err[256] = "";
	pid_t pid = child();
	int pidfd = proc_pidfd(pid);

	CHECK(settled(pid, 'S') == 'S');
	CHECK(proc_freeze(&f, pid, pidfd, err, sizeof(err)) == 0);
	CHECK(state(pid) == 'T');
	proc_thaw(&f);
	CHECK(settled(pid, 'S') == 'S');
	end(pid);
	close(pidfd);
}

static void test_stopped_stays_stopped(void)
{
	struct freeze f;
	char err[256] = "";
	pid_t pid = child();
	int pidfd = proc_pidfd(pid);

	kill(pid, SIGSTOP);
	CHECK(settled(pid, 'T') == 'T');
	CHECK(proc_freeze(&f, pid, pidfd, err, sizeof(err)) == 0);
	proc_thaw(&f);
	CHECK(settled(pid, 'S') == 'T');
	end(pid);
	close(pidfd);
}

/* With `spare` file descriptors left to open, freezing fails and leaves the child running. */
static void freeze_without_fds(int spare)
{
	struct rlimit old, low;
	struct freeze f;
	char err[256] = "";
	pid_t pid = child();
	int pidfd = proc_pidfd(pid);
	int lowest = dup(0), rc;

	CHECK(settled(pid, 'S') == 'S');
	close(lowest);
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = (rlim_t)(lowest + spare);
	setrlimit(RLIMIT_NOFILE, &low);
	rc = proc_freeze(&f, pid, pidfd, err, sizeof(err));
	setrlimit(RLIMIT_NOFILE, &old);
	CHECK(rc == -EMFILE);
	CHECK(strstr(err, "pid") != NULL);
	CHECK(settled(pid, 'S') == 'S');
	end(pid);
	close(pidfd);
}

static void test_no_fd_for_the_thread_list(void)
{
	freeze_without_fds(0);
}

static void test_no_fd_for_a_thread_state(void)
{
	freeze_without_fds(1);
}

int main(void)
{
	int failures = 0;

	RUN(test_freeze_and_thaw);
	RUN(test_stopped_stays_stopped);
	RUN(test_no_fd_for_the_thread_list);
	RUN(test_no_fd_for_a_thread_state);
	return failures;
}
