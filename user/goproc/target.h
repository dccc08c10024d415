/*
 * target: the Go process heapspy observes: its executable (opened once through /proc/PID/exe, so a
 * process in another mount namespace or running a deleted binary resolves to the right file), its
 * Go release, its symbol table and where the kernel loaded it. The file and the process are held
 * by descriptor from the first look: a process that execs another program, or a pid reused, is
 * noticed and never probed or written at the first program's offsets.
 */
#ifndef HEAPSPY_TARGET_H
#define HEAPSPY_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "elfbin.h"
#include "gosym.h"

struct target {
	pid_t pid;
	char path[PATH_MAX];	/* /proc/self/fd/N: the executable, for libelf, libdw and uprobes */
	char display[PATH_MAX]; /* the executable's name as the target sees it, for messages */
	struct elfbin *elf;
	struct gosym *sym;
	/* As runtime.Version() prints it: "go1.23.5", "go1.25.12 X:greenteagc"; "" if unknown. */
	char go_version[128];
	const char *go_version_source; /* where it was read (gorelease_version) */
	int go_minor;		       /* 23 for go1.23.x; 0 when unknown */
	int go_patch;		       /* 5 for go1.23.5, 0 for go1.19; -1 for a pre-release */
	/*
	 * The experiments that differ from the release's defaults, as the version lists them after
	 * "X:" ("greenteagc", "nogreenteagc"), "" for none: what layouts can depend on. Known even
	 * without build info.
	 */
	char go_experiments[128];
	/* The GOEXPERIMENT build setting as the builder gave it; "" if unset or no build info. */
	char go_goexperiment[128];
	bool newer_release; /* newer than the releases heapspy's tables describe */
	/*
	 * Frames of a probe's stack, counted from mProf_Malloc's caller with inlined calls as the
	 * runtime counts them, that the runtime's own record of a sample keeps; 0: no cut.
	 */
	uint32_t record_frames;
	/* Of those, how many the runtime skips (callers' skip, less mProf_Malloc itself). */
	uint32_t record_skip;
	int exe_fd;	  /* the executable, opened once */
	uint64_t exe_ino; /* its inode, to notice an exec */
	int pidfd;	  /* the process, from the first look */
	char build_id[128];
	uint64_t bias;	    /* runtime address = link-time address + bias */
	uint64_t map_start; /* the executable's mapped range, for the pprof mapping */
	uint64_t map_limit;
	uint64_t map_offset;
	int mem_fd; /* /proc/PID/mem, -1 until target_attach_memory */
};

/* Opens the executable of a running process. Errors are one line, meant for the user. */
int target_open_pid(struct target *t, pid_t pid, char *err, size_t errlen);
/*
 * Opens an executable that pid is about to exec (launch mode); call target_locate once it runs.
 * With pid 0, only the executable, to read its layout (the unit tests).
 */
int target_open_path(struct target *t, const char *path, pid_t pid, char *err, size_t errlen);
/* Reads /proc/PID/maps for the load bias and mapped range, and opens /proc/PID/mem. */
int target_locate(struct target *t, char *err, size_t errlen);
void target_close(struct target *t);

/* Link-time address to runtime address, and back. */
static inline uint64_t target_runtime_addr(const struct target *t, uint64_t vaddr)
{
	return vaddr ? vaddr + t->bias : 0;
}

/*
 * The target's process id as the kernel's BPF helpers see it (the initial pid namespace's), or 0
 * when heapspy runs in a pid namespace of its own and cannot tell it.
 */
uint32_t target_kernel_tgid(const struct target *t);
/* Whether the process has not exited (a zombie has). */
bool target_alive(const struct target *t);
/* Whether it is still the process first looked at, running the executable opened then. */
bool target_same_image(const struct target *t);
int target_read(const struct target *t, uint64_t vaddr, void *buf, size_t len);
/* The one-line reason when it is no longer that process or image; returns -ESRCH. */
int target_changed_error(const struct target *t, char *err, size_t errlen);
/* Writes only into the process and image first looked at: -ESRCH once it exec'd or exited. */
int target_write(const struct target *t, uint64_t vaddr, const void *buf, size_t len);

#endif
