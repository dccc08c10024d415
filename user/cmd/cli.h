/* cli: what every heapspy command's command line shares: choosing the target and the duration. */
#ifndef HEAPSPY_CLI_H
#define HEAPSPY_CLI_H

#include <argp.h>
#include <stdbool.h>
#include <sys/types.h>

struct cli_target {
	pid_t pid;	      /* 0 when launching */
	char **argv;	      /* the program to launch (after --), or NULL */
	double duration;      /* seconds; 0 means until Ctrl-C, SIGTERM or the target's exit */
	const char *btf;      /* --btf, or NULL */
	unsigned ringbuf_kib; /* --ringbuf: size of each ring buffer, 0 for the default */
	bool verbose;
};

enum { CLI_OPT_BTF = 0x100, CLI_OPT_RINGBUF };

#define CLI_TARGET_OPTIONS                                                                          \
	{"pid", 'p', "PID", 0, "Attach to the running Go process PID", 0},                          \
	    {"duration",                                                                            \
	     'd',                                                                                   \
	     "SECS",                                                                                \
	     0,                                                                                     \
	     "Stop after SECS seconds (default: on Ctrl-C, SIGTERM or the target's exit)",          \
	     0},                                                                                    \
	    {"btf", CLI_OPT_BTF, "FILE", 0, "Kernel BTF to use instead of /sys/kernel/btf/vmlinux", \
	     0},                                                                                    \
	    {"ringbuf",                                                                             \
	     CLI_OPT_RINGBUF,                                                                       \
	     "KIB",                                                                                 \
	     0,                                                                                     \
	     "Each ring buffer's size in KiB, a power of two (default 8192 for heap events, 1024 "  \
	     "for GC events); raise it if events are lost",                                         \
	     0},                                                                                    \
	{                                                                                           \
		"verbose", 'v', NULL, 0, "Show where the probes go and libbpf's messages", 0        \
	}

error_t cli_parse_target(int key, char *arg, struct argp_state *state, struct cli_target *t);
long cli_parse_long(struct argp_state *state, const char *arg, const char *name, long min,
		    long max);
/* Checks that an output file can be written, before the target is touched. 0 or -errno. */
int cli_check_output(const char *path, char *err, size_t errlen);
/* Parses argv (argv[0] is the command's name); usage errors exit with status 2. */
void cli_parse(const struct argp *argp, int argc, char **argv, void *input, struct cli_target *t);

#endif
