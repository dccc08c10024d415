#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static int find_in_path(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	int rc = -ENOENT;

	if (strchr(name, '/')) {
		snprintf(out, len, "%s", name);
		return access(out, X_OK) ? -errno : 0;
	}
	copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (!copy)
		return -ENOMEM;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", *dir ? dir : ".", name);
		if (access(out, X_OK) == 0) {
			rc = 0;
			break;
		}
	}
	free(copy);
	return rc;
}

int launch_prepare(struct launch *l, char *const argv[], char *err, size_t errlen)
{
	int pipefd[2], rc;
	char go;

	memset(l, 0, sizeof(*l));
	rc = find_in_path(argv[0], l->path, sizeof(l->path));
	if (rc) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(-rc));
		return rc;
	}
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	l->pid = fork();
	if (l->pid < 0) {
		rc = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return rc;
	}
	if (l->pid == 0) {
		sigset_t none;

		close(pipefd[1]);
		/* Exec only once the parent has the probes in place; EOF means it gave up. */
		if (read(pipefd[0], &go, 1) != 1)
			_exit(127);
		/* The program starts with no signal blocked and SIGPIPE at its default, unlike
		 * heapspy. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(l->path, argv);
		fprintf(stderr, "heapspy: cannot exec %s: %s\n", l->path, strerror(errno));
		_exit(127);
	}
	close(pipefd[0]);
	l->go_fd = pipefd[1];
	return 0;
}

int launch_release(struct launch *l)
{
	int rc = write(l->go_fd, "g", 1) == 1 ? 0 : -errno;

	close(l->go_fd);
	l->go_fd = -1;
	return rc;
}

int launch_wait_stopped(struct launch *l, int *status)
{
	if (waitpid(l->pid, status, WUNTRACED) < 0)
		return -errno;
	return WIFSTOPPED(*status) ? 0 : -ECHILD;
}

int launch_reap(struct launch *l)
{
	int status;

	if (waitpid(l->pid, &status, 0) != l->pid)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* Stopping every thread may take a thread in the kernel this long; then heapspy gives up. */
#define FREEZE_LIMIT_NS 1000000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The threads not stopped yet, and the first of them (for the message when one never stops). */
struct running {
	int n;
	int tid;
	char state;
};

/* Reads each thread's state; -errno when they cannot be read (no fd left, say). */
static int running_threads(DIR *tasks, struct running *r)
{
	char path[300], buf[512], *p;
	struct dirent *d;

	r->n = 0;
	rewinddir(tasks);
	/* readdir says an error only through errno. */
	for (errno = 0; (d = readdir(tasks)); errno = 0) {
		ssize_t len;
		int fd;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/stat", d->d_name);
		fd = openat(dirfd(tasks), path, O_RDONLY | O_CLOEXEC);
		len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (len < 0 && errno != ENOENT && errno != ESRCH) {
			int rc = -errno;

			if (fd >= 0)
				close(fd);
			return rc;
		}
		if (fd >= 0)
			close(fd);
		if (len <= 0)
			continue; /* the thread exited */
		buf[len] = '\0';
		/* The state follows the last ')' of the command name, which may itself hold ')'. */
		p = strrchr(buf, ')');
		if (!p || p[1] != ' ' || strchr("TtZX", p[2]))
			continue;
		if (!r->n++) {
			r->tid = atoi(d->d_name);
			r->state = p[2];
		}
	}
	return errno ? -errno : 0;
}

int proc_freeze(struct freeze *f, pid_t pid, int pidfd, char *err, size_t errlen)
{
	struct timespec pause = {0, 50000};
	struct running r;
	char dir[64];
	uint64_t deadline;
	DIR *tasks;
	int rc;

	f->pid = pid;
	f->pidfd = pidfd;
	f->stopped_it = false;
	/* Everything that can fail for want of a file descriptor is opened before the stop. */
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	tasks = opendir(dir);
	if (!tasks) {
		snprintf(err, errlen, "cannot list the threads of pid %d: %s", (int)pid,
			 strerror(errno));
		return -errno;
	}
	rc = running_threads(tasks, &r);
	/* Stopped already (by a debugger, an operator): it stays stopped, heapspy never resumes it.
	 */
	if (rc || r.n == 0)
		goto out;
	rc = proc_signal(pidfd, SIGSTOP);
	if (rc)
		goto out;
	f->stopped_it = true;
	/* Group stop reaches each thread as it next returns to user space; one stuck in the kernel
	 * (state D: a hung NFS server, a slow disk) may never: the rest are not held past the
	 * limit. */
	deadline = now_ns() + FREEZE_LIMIT_NS;
	while (!(rc = running_threads(tasks, &r)) && r.n > 0 && now_ns() < deadline)
		nanosleep(&pause, NULL);
	if (!rc && r.n > 0)
		rc = -ETIMEDOUT;
	if (rc)
		proc_thaw(f);
out:
	closedir(tasks);
	if (rc == -ETIMEDOUT)
		snprintf(err, errlen,
			 "pid %d did not stop within a second (thread %d is in state %c); released "
			 "it, try again",
			 (int)pid, r.tid, r.state);
	else if (rc)
		snprintf(err, errlen, "cannot hold pid %d still: %s", (int)pid, strerror(-rc));
	return rc;
}

void proc_thaw(struct freeze *f)
{
	if (f->stopped_it)
		proc_signal(f->pidfd, SIGCONT);
	f->stopped_it = false;
}

int proc_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

bool proc_running(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	/* A pidfd turns readable once its process has exited, zombie or reaped. */
	return poll(&p, 1, 0) == 0;
}

int proc_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) ? -errno : 0;
}
