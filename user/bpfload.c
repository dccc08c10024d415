#include "bpfload.h"

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool verbose;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (!verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void bpfload_set_verbose(bool v)
{
	verbose = v;
	libbpf_set_print(print_libbpf);
}

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int bpfload_check(const char *btf_path, char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	const char *btf = btf_path ? btf_path : "/sys/kernel/btf/vmlinux";

	if (syscall(SYS_capget, &hdr, data) != 0) {
		snprintf(err, errlen, "cannot read heapspy's own capabilities: %s",
			 strerror(errno));
		return -errno;
	}
	if (!has_cap(data, CAP_SYS_ADMIN) &&
	    !(has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON))) {
		snprintf(err, errlen,
			 "missing privileges: loading uprobes needs CAP_BPF and CAP_PERFMON (or "
			 "CAP_SYS_ADMIN); run heapspy as root, or grant them with setcap");
		return -EPERM;
	}
	if (!has_cap(data, CAP_SYS_PTRACE) && !has_cap(data, CAP_SYS_ADMIN) && geteuid() != 0) {
		snprintf(
		    err, errlen,
		    "missing privileges: reading the target's memory needs CAP_SYS_PTRACE; run "
		    "heapspy as root, or grant it with setcap");
		return -EPERM;
	}
	if (access(btf, R_OK) != 0) {
		snprintf(err, errlen,
			 "no kernel BTF at %s: heapspy's probes need a kernel built with "
			 "CONFIG_DEBUG_INFO_BTF=y, or its BTF given with --btf FILE",
			 btf);
		return -ENOENT;
	}
	/* Kernels since 5.11 charge BPF memory to the cgroup; older ones need the rlimit raised.
	 * Without CAP_SYS_RESOURCE this fails, which is harmless on a new kernel. */
	setrlimit(RLIMIT_MEMLOCK, &unlimited);
	return 0;
}

struct bpf_link *bpfload_uprobe(struct bpf_program *prog, pid_t pid, const char *path,
				uint64_t offset, const char *what, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = false);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(prog, pid, path, offset, &opts);

	if (!link)
		snprintf(err, errlen, "cannot attach a uprobe to %s in pid %d: %s", what, (int)pid,
			 strerror(errno));
	return link;
}

static void *destroy_link(void *link)
{
	bpf_link__destroy(link);
	return NULL;
}

void bpfload_destroy_links(struct bpf_link **links, size_t n)
{
	pthread_t *threads = malloc((n ? n : 1) * sizeof(*threads));

	/* A link left non-NULL here is being destroyed by its thread; the others are gone. */
	for (size_t i = 0; i < n; i++) {
		if (links[i] &&
		    (!threads || pthread_create(&threads[i], NULL, destroy_link, links[i]) != 0)) {
			bpf_link__destroy(links[i]);
			links[i] = NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (links[i])
			pthread_join(threads[i], NULL);
		links[i] = NULL;
	}
	free(threads);
}

int bpfload_counters(const struct bpf_map *map, uint64_t *out, unsigned n)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;

	if (ncpu <= 0)
		return -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (unsigned k = 0; k < n; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(map), &k, vals) != 0)
			continue;
		for (int c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
	free(vals);
	return 0;
}
