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
#include <sys/utsname.h>
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

struct probe_link {
	struct bpf_link *perf; /* a perf-event uprobe, or NULL for a uprobe_multi link */
	int fd;		       /* the uprobe_multi link */
};

/* BPF_TRACE_UPROBE_MULTI, Linux 6.6: libbpf 1.1 predates it, so heapspy makes the link itself. */
#define ATTACH_UPROBE_MULTI 48

/*
 * The kernel's release decides: a program loaded for uprobe_multi links cannot be attached the
 * other way, so the choice is made before loading, without a trial probe (whose removal would cost
 * what is to be saved). Linux 6.6 brought uprobe_multi links, but until 6.12 their pid filter could
 * keep a process's other threads out (where a Go program allocates), so 6.12 is the first release
 * heapspy trusts with them.
 */
static bool use_multi(void)
{
	static int known = -1;
	const char *force_perf = getenv("HEAPSPY_PERF_UPROBES");
	struct utsname u;
	int major, minor;

	if (known < 0)
		known = !(force_perf && *force_perf && strcmp(force_perf, "0") != 0) &&
			uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
			(major > 6 || (major == 6 && minor >= 12));
	return known;
}

void bpfload_prepare(struct bpf_object *obj)
{
	struct bpf_program *prog;

	if (!use_multi())
		return;
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_expected_attach_type(prog, ATTACH_UPROBE_MULTI);
}

/* union bpf_attr's link_create for uprobe_multi, as Linux 6.6 lays it out. */
struct uprobe_multi_attr {
	uint32_t prog_fd, target_fd, attach_type, flags;
	uint64_t path, offsets, ref_ctr_offsets, cookies;
	uint32_t cnt, multi_flags, pid, pad;
};

struct probe_link *bpfload_uprobe(struct bpf_program *prog, pid_t pid, const char *path,
				  uint64_t offset, const char *what, char *err, size_t errlen)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = false);
	struct probe_link *l = calloc(1, sizeof(*l));
	int e;

	if (!l)
		e = ENOMEM;
	else if (use_multi()) {
		struct uprobe_multi_attr a = {
		    .prog_fd = (uint32_t)bpf_program__fd(prog),
		    .attach_type = ATTACH_UPROBE_MULTI,
		    .path = (uintptr_t)path,
		    .offsets = (uintptr_t)&offset,
		    .cnt = 1,
		    .pid = (uint32_t)pid,
		};

		l->fd = (int)syscall(SYS_bpf, BPF_LINK_CREATE, &a, sizeof(a));
		if (l->fd >= 0)
			return l;
		e = errno;
	} else {
		l->perf = bpf_program__attach_uprobe_opts(prog, pid, path, offset, &opts);
		if (l->perf)
			return l;
		e = errno;
	}
	snprintf(err, errlen, "cannot attach a uprobe to %s in pid %d: %s", what, (int)pid,
		 strerror(e));
	free(l);
	errno = e;
	return NULL;
}

static void destroy_link(struct probe_link *l)
{
	if (l->perf)
		bpf_link__destroy(l->perf);
	else
		close(l->fd);
	free(l);
}

static void *destroy_in_thread(void *l)
{
	destroy_link(l);
	return NULL;
}

void bpfload_destroy_links(struct probe_link **links, size_t n)
{
	pthread_t *threads = malloc((n ? n : 1) * sizeof(*threads));

	/* A link left non-NULL here is being destroyed by its thread; the others are gone. */
	for (size_t i = 0; i < n; i++) {
		if (links[i] &&
		    (!threads || pthread_create(&threads[i], NULL, destroy_in_thread, links[i]) != 0)) {
			destroy_link(links[i]);
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
