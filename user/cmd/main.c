/*
 * heapspy: a Go program's heap, garbage collector and leaks, seen from outside the process.
 * This file only dispatches to the commands.
 */
#include <stdio.h>
#include <string.h>

#include "evloop.h"
#include "gc.h"
#include "leakscmd.h"
#include "record.h"
#ifndef HEAPSPY_NO_SERVE
#include "serve.h"
#endif

#ifndef HEAPSPY_VERSION
#define HEAPSPY_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"record", cmd_record, "heap profile (pprof) of a running or launched Go program"},
    {"leaks", cmd_leaks, "leak candidates: allocation sites whose memory keeps growing"},
    {"gc", cmd_gc, "every GC cycle and stop-the-world pause, like GODEBUG=gctrace=1"},
#ifndef HEAPSPY_NO_SERVE
    {"serve", cmd_serve, "an agent serving heap profiles of running Go programs over HTTP"},
#endif
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: heapspy COMMAND [OPTIONS]\n\n"
		"Shows a Go program's memory from outside the process: no restart, no code "
		"change,\nno pprof endpoint. Attach with --pid, or launch a program after --.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'heapspy COMMAND --help' for a command's options and examples.\n"
		   "Example: sudo heapspy record --pid $(pidof myservice) --duration 30 -o "
		   "heap.pb.gz\n");
}

int main(int argc, char **argv)
{
	if (evloop_block_signals()) {
		perror("heapspy: cannot block signals");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("heapspy %s\n", HEAPSPY_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			char name[64];

			/* argp prints argv[0] in usage: make it "heapspy record". */
			snprintf(name, sizeof(name), "heapspy %s", commands[i].name);
			argv[1] = name;
			return commands[i].run(argc - 1, argv + 1);
		}
	}
#ifdef HEAPSPY_NO_SERVE
	if (!strcmp(argv[1], "serve")) {
		fprintf(stderr, "heapspy: this static build has no serve command (Debian's "
				"libmicrohttpd needs GnuTLS, which has no static build): use the "
				"Debian package or `make`\n");
		return 2;
	}
#endif
	fprintf(stderr, "heapspy: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
