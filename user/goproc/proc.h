/*
 * proc: process control: launching a program with probes in place before it runs, and holding a
 * running process still for the few milliseconds it takes to read its heap records consistently.
 */
#ifndef HEAPSPY_PROC_H
#define HEAPSPY_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct launch {
	pid_t pid;
	int go_fd; /* write end of the pipe the child waits on before exec */
	char path[PATH_MAX];
};

/* Finds argv[0] as execvp would and forks a child that waits before exec'ing it. */
int launch_prepare(struct launch *l, char *const argv[], char *err, size_t errlen);
/* Lets the child exec. */
int launch_release(struct launch *l);
/* Waits until the child stops (SIGSTOP from the runtime.main probe). -ECHILD if it exited. */
int launch_wait_stopped(struct launch *l, int *status);
/* Reaps the child if it exited; returns its exit status (128+signal when killed) or -1. */
int launch_reap(struct launch *l);

/* A process held still, and whether heapspy is the one that stopped it. */
struct freeze {
	pid_t pid;
	int pidfd;	 /* signals go through it: never to a process that reused the pid */
	bool stopped_it; /* false when it was stopped already: then it stays stopped */
};

/*
 * Stops every thread of pid and waits until all are stopped, at most a second of wall time; on
 * failure nothing stays stopped that heapspy stopped. A process stopped already is left as it is.
 */
int proc_freeze(struct freeze *f, pid_t pid, int pidfd, char *err, size_t errlen);
/* Resumes the process if proc_freeze stopped it. */
void proc_thaw(struct freeze *f);
/* A pidfd for pid (which names that process for good, whatever reuses the pid), or -errno. */
int proc_pidfd(pid_t pid);
/* Whether the process behind pidfd has not exited yet (a zombie has). */
bool proc_running(int pidfd);
/* Sends sig to the process behind pidfd; 0 or -errno (-ESRCH once it has exited). */
int proc_signal(int pidfd, int sig);

#endif
