#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

long cli_parse_long(struct argp_state *state, const char *arg, const char *name, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		argp_error(state, "%s takes a whole number from %ld to %ld, not '%s'", name, min,
			   max, arg);
	return v;
}

error_t cli_parse_target(int key, char *arg, struct argp_state *state, struct cli_target *t)
{
	char *end;

	switch (key) {
	case 'p':
		t->pid = (pid_t)cli_parse_long(state, arg, "--pid", 1, 0x3fffffff);
		return 0;
	case 'd':
		t->duration = strtod(arg, &end);
		if (end == arg || *end || t->duration <= 0)
			argp_error(state, "--duration takes a positive number of seconds, not '%s'",
				   arg);
		return 0;
	case CLI_OPT_BTF:
		t->btf = arg;
		return 0;
	case CLI_OPT_RINGBUF:
		t->ringbuf_kib = (unsigned)cli_parse_long(state, arg, "--ringbuf", 4, 1 << 20);
		if (t->ringbuf_kib & (t->ringbuf_kib - 1))
			argp_error(state, "--ringbuf takes a power of two, not %s", arg);
		return 0;
	case 'v':
		t->verbose = true;
		return 0;
	case ARGP_KEY_ARGS:
		t->argv = state->argv + state->next;
		state->next = state->argc;
		return 0;
	case ARGP_KEY_END:
		if (!t->pid && !t->argv)
			argp_error(state, "say which program: --pid PID, or a command after --");
		if (t->pid && t->argv)
			argp_error(state, "give either --pid or a command to launch, not both");
		return 0;
	default:
		return ARGP_ERR_UNKNOWN;
	}
}

void cli_parse(const struct argp *argp, int argc, char **argv, void *input, struct cli_target *t)
{
	(void)t;
	argp_err_exit_status = 2;
	argp_parse(argp, argc, argv, 0, NULL, input);
}

int cli_check_output(const char *path, char *err, size_t errlen)
{
	char copy[PATH_MAX], *dir;
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot write %s: it is a directory", path);
		return -EISDIR;
	}
	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen, "cannot write %s: %s: %s", path, dir, strerror(errno));
		return -errno;
	}
	return 0;
}
