#include "cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* v1 writes "no limit" as the largest page-aligned long; anything this large limits nothing. */
#define V1_UNLIMITED (INT64_C(1) << 62)

/* The limit in a group's file: -1 for "max" or no limit, -ENOENT when there is no such file. */
static int64_t read_limit(const char *path)
{
	char buf[64];
	FILE *f = fopen(path, "r");
	char *end;
	long long v;

	if (!f)
		return -ENOENT;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -ENOENT;
	}
	fclose(f);
	if (!strncmp(buf, "max", 3))
		return -1;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || v < 0)
		return -ENOENT;
	return v >= V1_UNLIMITED ? -1 : v;
}

/* The smallest limit from dir/group up to dir, or -1; -ENOENT when the group's own is unreadable.
 */
static int64_t smallest_up(const char *dir, const char *group, const char *file)
{
	char path[2 * PATH_MAX + 32], g[PATH_MAX];
	int64_t best = -1, own;

	snprintf(g, sizeof(g), "%s", group);
	snprintf(path, sizeof(path), "%s%s/%s", dir, g, file);
	own = read_limit(path);
	/* The root group has no limit file: nothing limits it. */
	if (own == -ENOENT)
		return *group ? -ENOENT : -1;
	for (;;) {
		char *slash = strrchr(g, '/');
		int64_t v;

		snprintf(path, sizeof(path), "%s%s/%s", dir, g, file);
		v = read_limit(path);
		if (v >= 0 && (best < 0 || v < best))
			best = v;
		if (!slash)
			break;
		*slash = '\0';
	}
	return best;
}

/* The group a line "ID:CONTROLLERS:PATH" names, if its controllers are want; NULL otherwise. */
static const char *group_of(const char *line, size_t len, bool v1, char *buf, size_t size)
{
	const char *c1 = memchr(line, ':', len), *c2, *end = line + len;

	if (!c1 || !(c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1))))
		return NULL;
	if (v1 ? !memmem(c1 + 1, (size_t)(c2 - c1 - 1), "memory", 6) : c2 != c1 + 1)
		return NULL;
	/* The root group is "/": its files sit in the hierarchy's top directory. */
	snprintf(buf, size, "%.*s", (int)(end - c2 - 1), c2 + 1);
	if (!strcmp(buf, "/"))
		buf[0] = '\0';
	return buf;
}

static const char *find_group(const char *text, bool v1, char *buf, size_t size)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);

		if (group_of(line, len, v1, buf, size))
			return buf;
		line = nl ? nl + 1 : NULL;
	}
	return NULL;
}

int64_t cgroup_memory_limit_at(const char *cgroup_text, const char *root)
{
	char dir[PATH_MAX], group[PATH_MAX], probe[PATH_MAX + 32];

	/* A v1 memory hierarchy holds the memory controller even beside a v2 one (hybrid). */
	if (find_group(cgroup_text, true, group, sizeof(group))) {
		snprintf(dir, sizeof(dir), "%s/memory", root);
		return smallest_up(dir, group, "memory.limit_in_bytes");
	}
	if (!find_group(cgroup_text, false, group, sizeof(group)))
		return -ENOENT;
	/* v2 alone is mounted at root; beside v1, at root/unified. */
	snprintf(probe, sizeof(probe), "%s/cgroup.controllers", root);
	snprintf(dir, sizeof(dir), access(probe, F_OK) == 0 ? "%s" : "%s/unified", root);
	return smallest_up(dir, group, "memory.max");
}

int64_t cgroup_memory_limit(pid_t pid)
{
	char path[64], text[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -ENOENT;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return cgroup_memory_limit_at(text, "/sys/fs/cgroup");
}
