#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* Counts the threads of pid that are not yet stopped; -errno when the process is gone. */
static int running_threads(pid_t pid)
{
	char dir[64], path[384], buf[512], *p;
	struct dirent *d;
	int running = 0;
	DIR *tasks;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	tasks = opendir(dir);
	if (!tasks)
		return -errno;
	while ((d = readdir(tasks))) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/stat", dir, d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		/* The state follows the last ')' of the command name, which may itself hold ')'. */
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ' &&
		    p[2] != 'T' && p[2] != 't' && p[2] != 'Z' && p[2] != 'X')
			running++;
		fclose(f);
	}
	closedir(tasks);
	return running;
}

int proc_freeze(pid_t pid, char *err, size_t errlen)
{
	struct timespec pause = {0, 50000};
	int n;

	if (kill(pid, SIGSTOP)) {
		snprintf(err, errlen, "cannot stop pid %d: %s", (int)pid, strerror(errno));
		return -errno;
	}
	/* Group stop reaches each thread as it next returns to user space: allow a second. */
	for (int i = 0; i < 20000; i++) {
		n = running_threads(pid);
		if (n <= 0)
			return n;
		nanosleep(&pause, NULL);
	}
	proc_thaw(pid);
	snprintf(err, errlen, "pid %d did not stop within a second", (int)pid);
	return -ETIMEDOUT;
}

int proc_thaw(pid_t pid)
{
	return kill(pid, SIGCONT) ? -errno : 0;
}

bool proc_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}
