/*
 * gorelease: which Go release built a binary, and with which experiments. The build info
 * (.go.buildinfo) records both; some projects strip that section, and then the runtime's own copy
 * of the version (runtime.buildVersion, what runtime.Version() returns) and of the module info
 * (runtime.modinfo) still do.
 */
#ifndef HEAPSPY_GORELEASE_H
#define HEAPSPY_GORELEASE_H

#include <stddef.h>

#include "elfbin.h"
#include "gosym.h"

/*
 * The version as runtime.Version() prints it ("go1.23.5", "go1.25.12 X:greenteagc",
 * "go1.26.11-X:nogreenteagc"). *source says where it was read: "build info",
 * "runtime.buildVersion" (its symbol) or "runtime.schedinit" (the variables that function's code
 * uses, for a binary without symbols). 0, -ENOENT, or -ENOSPC when buf is too small.
 */
int gorelease_version(const struct elfbin *eb, const struct gosym *sym, char *buf, size_t len,
		      const char **source);
/*
 * The GOEXPERIMENT build setting as the builder gave it ("build\tGOEXPERIMENT=..." in the module
 * info), from the same places. 0; -ENOENT when there is no module info or no such setting.
 */
int gorelease_goexperiment(const struct elfbin *eb, const struct gosym *sym, char *buf, size_t len);

/* 23 for "go1.23.5"; 0 when version names no Go 1 release. */
int gorelease_minor(const char *version);
/* 5 for "go1.23.5", 0 for "go1.19" (the first release of a line); -1 for a pre-release. */
int gorelease_patch(const char *version);
/*
 * The experiments that differ from the release's defaults, as the version lists them after "X:"
 * ("greenteagc", "nogreenteagc,jsonv2"), a suffix of version; "" for none.
 */
const char *gorelease_experiments(const char *version);

#endif
