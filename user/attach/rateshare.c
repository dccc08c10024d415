#include "rateshare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { BYTE_MUTEX, BYTE_SHARE };

static int lock_byte(int fd, int cmd, short type, off_t at)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = at, .l_len = 1};

	while (fcntl(fd, cmd, &fl) != 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Field 22 of /proc/PID/stat, after the command name, which may hold spaces and parentheses. */
static int start_time(pid_t pid, unsigned long long *ticks)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu",
			 ticks) != 1)
		return -EIO;
	return 0;
}

/* Registries of processes gone (the target exited while its last session was killed). */
static void sweep(void)
{
	DIR *d = opendir(RATESHARE_DIR);
	unsigned long long want, got;
	struct dirent *e;
	char path[64 + sizeof(e->d_name)];
	int pid;

	while (d && (e = readdir(d)))
		if (sscanf(e->d_name, "%d-%llu", &pid, &want) == 2 &&
		    (start_time(pid, &got) != 0 || got != want)) {
			snprintf(path, sizeof(path), RATESHARE_DIR "/%s", e->d_name);
			unlink(path);
		}
	if (d)
		closedir(d);
}

static void read_record(struct rateshare *r)
{
	char buf[64];
	ssize_t n = pread(r->fd, buf, sizeof(buf) - 1, 0);

	r->found = false;
	r->orig = r->set = 0;
	if (n <= 0)
		return;
	buf[n] = 0;
	r->found = sscanf(buf, "%" SCNd64 " %" SCNd64, &r->orig, &r->set) == 2;
}

int rateshare_lock(struct rateshare *r, pid_t pid, char *err, size_t errlen)
{
	unsigned long long ticks;
	struct stat st;
	int rc;

	r->fd = -1;
	r->shared = false;
	rc = start_time(pid, &ticks);
	if (!rc && mkdir(RATESHARE_DIR, 0700) != 0 && errno != EEXIST)
		rc = -errno;
	if (rc) {
		snprintf(err, errlen, "cannot register with %s (%s)", RATESHARE_DIR, strerror(-rc));
		return rc;
	}
	sweep();
	snprintf(r->path, sizeof(r->path), RATESHARE_DIR "/%d-%llu", (int)pid, ticks);
	/* The last session out removes the file: a lock won on a removed file is tried again. */
	for (;;) {
		r->fd = open(r->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (r->fd < 0) {
			rc = -errno;
			break;
		}
		rc = lock_byte(r->fd, F_OFD_SETLKW, F_WRLCK, BYTE_MUTEX);
		if (!rc)
			rc = fstat(r->fd, &st) != 0 ? -errno : 0;
		if (rc || st.st_nlink > 0)
			break;
		close(r->fd);
	}
	if (rc) {
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
		snprintf(err, errlen, "cannot register with %s (%s)", r->path, strerror(-rc));
		return rc;
	}
	read_record(r);
	return 0;
}

int rateshare_relock(struct rateshare *r)
{
	int rc = lock_byte(r->fd, F_OFD_SETLKW, F_WRLCK, BYTE_MUTEX);

	if (!rc)
		read_record(r);
	return rc;
}

int rateshare_record(struct rateshare *r, int64_t orig, int64_t set)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%" PRId64 " %" PRId64 "\n", orig, set), rc;

	if (pwrite(r->fd, buf, (size_t)n, 0) != n || ftruncate(r->fd, n) != 0)
		return errno ? -errno : -EIO;
	r->found = true;
	r->orig = orig;
	r->set = set;
	/* A read lock taken again by the same open file description is no new lock. */
	rc = lock_byte(r->fd, F_OFD_SETLK, F_RDLCK, BYTE_SHARE);
	r->shared = r->shared || rc == 0;
	return rc;
}

bool rateshare_others(const struct rateshare *r)
{
	struct flock fl = {
	    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = BYTE_SHARE, .l_len = 1};

	/* Only other open file descriptions' locks conflict: this session's own share does not. */
	return fcntl(r->fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
}

void rateshare_unlock(struct rateshare *r)
{
	lock_byte(r->fd, F_OFD_SETLK, F_UNLCK, BYTE_MUTEX);
}

void rateshare_leave(struct rateshare *r)
{
	if (r->fd < 0)
		return;
	/* An empty registry is one a session opened and found nothing to share in. */
	if ((r->shared || !r->found) && !rateshare_others(r))
		unlink(r->path);
	close(r->fd);
	r->fd = -1;
	r->shared = false;
}
