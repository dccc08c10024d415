/*
 * discover: the processes `heapspy serve --all` or `--match REGEX` should serve, found by scanning
 * /proc. Each process is offered once: a pid is offered again only when it names another process
 * (a restart that got the pid back, or an exec, which changes the executable), so a process that
 * is not Go, or that heapspy could not attach to, costs one look.
 */
#ifndef HEAPSPY_DISCOVER_H
#define HEAPSPY_DISCOVER_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "u64map.h"

struct discover {
	bool have_re;	       /* else every process is offered (--all) */
	regex_t re;	       /* matched against the command name and the executable's path */
	struct u64map offered; /* pid -> the identity it was offered with */
};

/* regex NULL: every process. 0, or -EINVAL with err set to one line. */
int discover_init(struct discover *d, const char *regex, char *err, size_t errlen);
/* Offers (fn) every process running now that matches and was not offered as it is now. */
void discover_scan(struct discover *d, void (*fn)(void *ctx, pid_t pid), void *ctx);
void discover_free(struct discover *d);

#endif
