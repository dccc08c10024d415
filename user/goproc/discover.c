#include "discover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int discover_init(struct discover *d, const char *regex, char *err, size_t errlen)
{
	int rc;

	memset(d, 0, sizeof(*d));
	if (!regex)
		return 0;
	rc = regcomp(&d->re, regex, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		char why[128];

		regerror(rc, &d->re, why, sizeof(why));
		snprintf(err, errlen, "--match '%s': %s", regex, why);
		return -EINVAL;
	}
	d->have_re = true;
	return 0;
}

/*
 * Who pid is now: its start time (a pid given to another process has another) and its
 * executable's inode (an exec changes it). 0 when it is gone or has no executable (a kernel
 * thread).
 */
static uint64_t identity(pid_t pid, char *exe, size_t exelen, char *comm, size_t commlen)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, exelen - 1);
	if (n <= 0 || stat(path, &st) != 0)
		return 0;
	exe[n] = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* "pid (comm) state ...": the name may hold anything, ')' too; it ends at the last ')'. */
	p = strrchr(buf, ')');
	if (!p || !strchr(buf, '('))
		return 0;
	*p = 0;
	snprintf(comm, commlen, "%s", strchr(buf, '(') + 1);
	/* Field 22, starttime: the 20th after the comm. */
	p++;
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p, " %llu", &start) != 1)
		return 0;
	return u64_mix(u64_mix(start, (uint64_t)st.st_ino), (uint64_t)st.st_dev) | 1;
}

void discover_scan(struct discover *d, void (*fn)(void *ctx, pid_t pid), void *ctx)
{
	struct u64map now = {0};
	DIR *dir = opendir("/proc");
	struct dirent *e;
	pid_t self = getpid();

	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char exe[4096], comm[64], *end;
		long pid = strtol(e->d_name, &end, 10);
		uint64_t id, *was;

		if (*end || pid <= 0 || pid == self)
			continue;
		id = identity((pid_t)pid, exe, sizeof(exe), comm, sizeof(comm));
		if (!id || (d->have_re && regexec(&d->re, comm, 0, NULL, 0) != 0 &&
			    regexec(&d->re, exe, 0, NULL, 0) != 0))
			continue;
		was = u64map_get(&d->offered, (uint64_t)pid);
		if (u64map_put(&now, (uint64_t)pid, id) != 0)
			continue; /* out of memory: offered again next time */
		if (!was || *was != id)
			fn(ctx, (pid_t)pid);
	}
	closedir(dir);
	/* Only what runs now is remembered: the map is as big as the host's matching processes. */
	u64map_free(&d->offered);
	d->offered = now;
}

void discover_free(struct discover *d)
{
	if (d->have_re)
		regfree(&d->re);
	u64map_free(&d->offered);
}
