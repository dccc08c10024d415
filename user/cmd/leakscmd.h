/* leakscmd: `heapspy leaks`, and the leak timeline other recording commands keep alongside. */
#ifndef HEAPSPY_LEAKSCMD_H
#define HEAPSPY_LEAKSCMD_H

#include <stdio.h>

#include "heapprof.h"
#include "leaks.h"
#include "session.h"

int cmd_leaks(int argc, char **argv);

/* Starts l for the session (after session_start); leaks_free frees it. */
void leaks_start(struct leaks *l, struct session *s);
/* Feeds l from the session; call on every tick. */
void leaks_tick(struct leaks *l, struct session *s, double elapsed);
/* The candidates as `heapspy leaks --json` writes them, as of now (malloc'd), NULL if out of
 * memory. */
char *leaks_json_text(struct leaks *l, struct session *s);
/* After session_stop: the last cycles, then the top candidates in a few lines (h symbolizes). */
void leaks_brief(FILE *f, struct leaks *l, struct session *s, struct heapprof *h, int top);

#endif
