/*
 * bpfload: what every heapspy command needs from libbpf: a check that this kernel and these
 * privileges can run the probes, uprobe attachment by file offset, and the probes' counters.
 */
#ifndef HEAPSPY_BPFLOAD_H
#define HEAPSPY_BPFLOAD_H

#include <bpf/libbpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Checks privileges and kernel BTF before anything touches the target. btf_path overrides
 * /sys/kernel/btf/vmlinux (for kernels whose BTF ships separately). 0, or -errno with err set.
 */
int bpfload_check(const char *btf_path, char *err, size_t errlen);
/* Routes libbpf's messages to stderr when verbose, drops them otherwise. */
void bpfload_set_verbose(bool verbose);
/*
 * One uprobe in the target. Since Linux 6.12 it is a uprobe_multi link, which the kernel takes
 * down in tens of milliseconds and in parallel with others; before, a perf-event uprobe, whose
 * teardown waits some 100 ms, mostly under one global mutex (event_mutex). Setting
 * HEAPSPY_PERF_UPROBES=1 in the environment forces perf-event uprobes.
 */
struct probe_link;

/* Readies obj's programs for the kind of uprobe this kernel takes; between open and load. */
void bpfload_prepare(struct bpf_object *obj);
/* Attaches prog as an entry uprobe at offset in path, for process pid only. */
struct probe_link *bpfload_uprobe(struct bpf_program *prog, pid_t pid, const char *path,
				  uint64_t offset, const char *what, char *err, size_t errlen);
/*
 * Takes links[0..n) down (NULL ones are skipped), each from its own thread so that the kernel's
 * waits overlap, and sets them to NULL; returns once every probe is gone.
 */
void bpfload_destroy_links(struct probe_link **links, size_t n);
/* Sums a per-CPU array of n __u64 counters into out. */
int bpfload_counters(const struct bpf_map *map, uint64_t *out, unsigned n);

#endif
