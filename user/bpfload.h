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
/* Attaches prog as an entry uprobe at offset in path, for process pid only. */
struct bpf_link *bpfload_uprobe(struct bpf_program *prog, pid_t pid, const char *path,
				uint64_t offset, const char *what, char *err, size_t errlen);
/*
 * Destroys links[0..n) (NULL ones are skipped) and sets them to NULL, each from its own thread:
 * taking a uprobe down waits for RCU grace periods, some 100 ms a link. The kernel holds one
 * global mutex (event_mutex) through most of that wait for perf-event uprobes, so only the rest
 * overlaps; returns once every link is gone.
 */
void bpfload_destroy_links(struct bpf_link **links, size_t n);
/* Sums a per-CPU array of n __u64 counters into out. */
int bpfload_counters(const struct bpf_map *map, uint64_t *out, unsigned n);

#endif
