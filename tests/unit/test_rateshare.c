/*
 * rateshare against the kernel's own open-file-description locks: two sessions in this process
 * (two registrations are two open file descriptions, whose locks conflict like two processes'),
 * and a session in a child that is SIGKILLed. The registry is this test process's own.
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "rateshare.h"

static char err[256];

static void test_last_one_out_removes(void)
{
	struct rateshare a, b;

	CHECK(rateshare_lock(&a, getpid(), err, sizeof(err)) == 0);
	CHECK(!a.found);
	CHECK(rateshare_record(&a, 0, 524288) == 0);
	rateshare_unlock(&a);

	CHECK(rateshare_lock(&b, getpid(), err, sizeof(err)) == 0);
	CHECK(b.found && b.orig == 0 && b.set == 524288);
	CHECK(rateshare_record(&b, b.orig, b.set) == 0);
	CHECK(rateshare_others(&b));
	rateshare_unlock(&b);

	CHECK(rateshare_relock(&a) == 0);
	CHECK(rateshare_others(&a));
	rateshare_leave(&a);
	CHECK(access(b.path, F_OK) == 0);

	CHECK(rateshare_relock(&b) == 0);
	CHECK(!rateshare_others(&b));
	rateshare_leave(&b);
	CHECK(access(b.path, F_OK) != 0);
}

static void test_killed_share_reclaimed(void)
{
	struct rateshare a, c;
	int ready[2];
	pid_t parent = getpid(), child;
	char byte = 0;

	CHECK(rateshare_lock(&a, parent, err, sizeof(err)) == 0);
	CHECK(rateshare_record(&a, 0, 4096) == 0);
	rateshare_unlock(&a);
	CHECK(pipe(ready) == 0);
	child = fork();
	if (child == 0) {
		/* Not the parent's share: the child's own registration only. */
		close(a.fd);
		if (rateshare_lock(&c, parent, err, sizeof(err)) != 0 ||
		    rateshare_record(&c, c.orig, c.set) != 0)
			_exit(1);
		rateshare_unlock(&c);
		if (write(ready[1], &byte, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK(read(ready[0], &byte, 1) == 1);
	CHECK(rateshare_relock(&a) == 0);
	CHECK(rateshare_others(&a));
	rateshare_unlock(&a);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	CHECK(rateshare_relock(&a) == 0);
	CHECK(a.found && a.set == 4096);
	CHECK(!rateshare_others(&a));
	rateshare_leave(&a);
	CHECK(access(a.path, F_OK) != 0);
	close(ready[0]);
	close(ready[1]);
}

int main(void)
{
	int failures = 0;

	RUN(test_last_one_out_removes);
	RUN(test_killed_share_reclaimed);
	return failures;
}
