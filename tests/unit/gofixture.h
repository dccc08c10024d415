/*
 * tests/unit/gosym_fixture.go built by the installed Go toolchains, in a temporary directory each
 * test binary makes and removes: the unit tests that check heapspy against real binaries.
 */
#ifndef HEAPSPY_GOFIXTURE_H
#define HEAPSPY_GOFIXTURE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* dir (len bytes) made as /tmp/heapspy-<name>-XXXXXX: 0, or -1 with the reason printed. */
static inline int gofixture_dir(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/tmp/heapspy-%s-XXXXXX", name);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return -1;
	}
	return 0;
}

static inline void gofixture_dir_remove(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/*
 * Builds the fixture at out with Go <version>, GOEXPERIMENT=<experiments> ("" for the release's
 * defaults) and ldflags, its symbols then removed by objcopy when objcopy_strip. 0, or -EIO.
 */
static inline int gofixture_build(const char *version, const char *experiments, const char *ldflags,
				  bool objcopy_strip, const char *out)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "cd tests/unit && GOTOOLCHAIN=local GO111MODULE=off GOFLAGS= GOPROXY=off "
		 "GOEXPERIMENT='%s' GOCACHE=\"${HEAPSPY_GOCACHE:-$PWD/../../build/tests/gocache}\" "
		 "CGO_ENABLED=0 /usr/lib/go-%s/bin/go build -ldflags='%s' -o %s "
		 "gosym_fixture.go%s%s",
		 experiments, version, ldflags, out,
		 objcopy_strip ? " && objcopy --strip-all " : "", objcopy_strip ? out : "");
	return system(cmd) == 0 ? 0 : -EIO;
}

#endif
