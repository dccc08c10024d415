/*
 * cgroup: the memory limit of the control group a process runs in, as the kernel enforces it:
 * the smallest memory.max (cgroup v2) or memory.limit_in_bytes (v1) from its group up to the root,
 * since any ancestor's limit bounds it too.
 */
#ifndef HEAPSPY_CGROUP_H
#define HEAPSPY_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

/*
 * The limit in bytes of the process whose /proc/PID/cgroup reads as cgroup_text, with the
 * hierarchies mounted under root ("/sys/fs/cgroup"): -1 when no group limits it, -ENOENT when
 * its groups cannot be read.
 */
int64_t cgroup_memory_limit_at(const char *cgroup_text, const char *root);
/* The same for a running process. */
int64_t cgroup_memory_limit(pid_t pid);

#endif
