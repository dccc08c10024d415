#include "serveroute.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *path;
	enum serve_endpoint ep;
} endpoints[] = {
    {"/debug/pprof/heap", SERVE_HEAP}, {"/debug/pprof/allocs", SERVE_ALLOCS},
    {"/debug/gc", SERVE_GC},	       {"/debug/leaks", SERVE_LEAKS},
    {"/metrics", SERVE_METRICS},       {"/targets", SERVE_TARGETS},
};

static enum serve_endpoint endpoint(const char *path)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (!strcmp(path, endpoints[i].path))
			return endpoints[i].ep;
	return SERVE_UNKNOWN;
}

struct serve_route serve_route(const char *path)
{
	struct serve_route r = {SERVE_UNKNOWN, 0};
	char *end;
	long pid;

	if (!strcmp(path, "/")) {
		r.ep = SERVE_INDEX;
		return r;
	}
	if (strncmp(path, "/pid/", 5) != 0) {
		r.ep = endpoint(path);
		return r;
	}
	/* Digits only: strtol would take a sign or leading blanks. */
	if (path[5] < '1' || path[5] > '9')
		return r;
	errno = 0;
	pid = strtol(path + 5, &end, 10);
	if (errno || pid > 0x7fffffff || *end != '/')
		return r;
	r.ep = endpoint(end);
	if (r.ep == SERVE_TARGETS)
		r.ep = SERVE_UNKNOWN;
	r.pid = r.ep == SERVE_UNKNOWN ? 0 : (pid_t)pid;
	return r;
}

int serve_seconds(const char *arg, long max, long *secs)
{
	char *end;
	long v;

	/* Go's strconv.ParseInt: an optional sign, then digits only. */
	if (!arg || !*arg || strchr(" \t\n", *arg))
		return -1;
	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || *end || v <= 0 || v > max)
		return -1;
	*secs = v;
	return 0;
}
