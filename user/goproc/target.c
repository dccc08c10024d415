#include "target.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gorelease.h"
#include "proc.h"
#include "procmem.h"

/* Oldest and newest Go release whose runtime internals heapspy's tables describe. */
#define GO_MINOR_MIN 18
#define GO_MINOR_MAX 27

static int open_binary(struct target *t, char *err, size_t errlen)
{
	char why[256];
	int rc;

	rc = elfbin_open(t->path, &t->elf, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", t->display, why);
		return rc;
	}
	rc = gosym_open(t->elf, &t->sym, why, sizeof(why));
	if (rc) {
		snprintf(err, errlen, "%s is not a Go program (no Go symbol table: %s)", t->display,
			 why);
		return -ENOEXEC;
	}
	gorelease_version(t->elf, t->sym, t->go_version, sizeof(t->go_version),
			  &t->go_version_source);
	gorelease_goexperiment(t->elf, t->sym, t->go_goexperiment, sizeof(t->go_goexperiment));
	snprintf(t->go_experiments, sizeof(t->go_experiments), "%s",
		 gorelease_experiments(t->go_version));
	elfbin_build_id(t->elf, t->build_id, sizeof(t->build_id));
	t->go_minor = gorelease_minor(t->go_version);
	t->go_patch = gorelease_patch(t->go_version);
	if (!t->go_minor) {
		snprintf(err, errlen,
			 "%s: cannot tell its Go release (no build info, no runtime.buildVersion); "
			 "heapspy supports go1.%d to go1.%d",
			 t->display, GO_MINOR_MIN, GO_MINOR_MAX);
		return -ENOTSUP;
	}
	if (t->go_minor < GO_MINOR_MIN) {
		snprintf(
		    err, errlen,
		    "%s was built with %s; heapspy reads go1.%d and later (older symbol tables "
		    "have another layout)",
		    t->display, t->go_version, GO_MINOR_MIN);
		return -ENOTSUP;
	}
	/* A newer release is tried with the newest layout heapspy knows: the probes only read,
	 * and the one write (MemProfileRate) is to a public variable every release has. */
	if (t->go_minor > GO_MINOR_MAX) {
		t->go_minor = GO_MINOR_MAX;
		t->newer_release = true;
	}
	return 0;
}

static void target_init(struct target *t, pid_t pid)
{
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->mem_fd = t->exe_fd = t->pidfd = -1;
}

/*
 * Opens the executable once and names it by its descriptor: every later reader (libelf, libdw,
 * the kernel attaching uprobes) gets this very file, whatever happens to the path meanwhile.
 */
static int pin_executable(struct target *t, const char *file)
{
	struct stat st;

	t->exe_fd = open(file, O_RDONLY | O_CLOEXEC);
	if (t->exe_fd < 0 || fstat(t->exe_fd, &st))
		return -errno;
	t->exe_ino = (uint64_t)st.st_ino;
	snprintf(t->path, sizeof(t->path), "/proc/self/fd/%d", t->exe_fd);
	return 0;
}

static int inspect_error(pid_t pid, int e, char *err, size_t errlen)
{
	if (e == ENOENT || e == ESRCH)
		snprintf(err, errlen, "no process with pid %d", (int)pid);
	else if (e == EACCES || e == EPERM)
		snprintf(err, errlen,
			 "cannot inspect pid %d: permission denied (heapspy needs root, or "
			 "CAP_SYS_PTRACE to read another user's process)",
			 (int)pid);
	else
		snprintf(err, errlen, "cannot inspect pid %d: %s", (int)pid, strerror(e));
	return -e;
}

int target_open_pid(struct target *t, pid_t pid, char *err, size_t errlen)
{
	char link[64];
	ssize_t n;
	int rc;

	target_init(t, pid);
	/* The pidfd first: if the process is still there once its file is open, the file is its. */
	t->pidfd = proc_pidfd(pid);
	if (t->pidfd < 0)
		return inspect_error(pid, -t->pidfd, err, errlen);
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, t->display, sizeof(t->display) - 1);
	if (n < 0)
		return inspect_error(pid, errno, err, errlen);
	t->display[n] = '\0';
	/* The magic link opens the very file the process runs, whatever namespace it lives in. */
	rc = pin_executable(t, link);
	if (!rc && !target_alive(t))
		rc = -ESRCH;
	if (rc)
		return inspect_error(pid, -rc, err, errlen);
	return open_binary(t, err, errlen);
}

int target_open_path(struct target *t, const char *path, pid_t pid, char *err, size_t errlen)
{
	int rc;

	target_init(t, pid);
	snprintf(t->display, sizeof(t->display), "%s", path);
	rc = pin_executable(t, path);
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-rc));
		return rc;
	}
	t->pidfd = pid ? proc_pidfd(pid) : -1;
	if (t->pidfd < 0 && pid) {
		snprintf(err, errlen, "cannot follow the program heapspy started: %s",
			 strerror(-t->pidfd));
		return t->pidfd;
	}
	return open_binary(t, err, errlen);
}

int target_changed_error(const struct target *t, char *err, size_t errlen)
{
	char link[64];
	struct stat st;

	/* An exiting process loses its executable before its pidfd says it exited. */
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)t->pid);
	if (stat(link, &st) == 0 && target_alive(t))
		snprintf(err, errlen, "pid %d exec'd another program while heapspy attached to %s",
			 (int)t->pid, t->display);
	else
		snprintf(err, errlen, "pid %d exited while heapspy attached", (int)t->pid);
	return -ESRCH;
}

int target_locate(struct target *t, char *err, size_t errlen)
{
	char maps[64], line[PATH_MAX + 128];
	FILE *f;
	int found = 0;

	/* The memory first: it stays that of the image mapped now, whatever the process runs later.
	 */
	t->mem_fd = procmem_open(t->pid);
	if (t->mem_fd < 0 && !target_same_image(t))
		return target_changed_error(t, err, errlen);
	if (t->mem_fd < 0) {
		snprintf(err, errlen, "cannot open the memory of pid %d: %s", (int)t->pid,
			 strerror(-t->mem_fd));
		return t->mem_fd;
	}
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)t->pid);
	f = fopen(maps, "re");
	if (!f) {
		int e = errno;

		if (!target_same_image(t))
			return target_changed_error(t, err, errlen);
		snprintf(err, errlen, "cannot read %s: %s", maps, strerror(e));
		return -e;
	}
	while (fgets(line, sizeof(line), f)) {
		uint64_t start, end, off, ino;
		unsigned maj, min;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64 " %x:%x %" SCNu64, &start,
			   &end, &off, &maj, &min, &ino) != 6)
			continue;
		/* Match by inode, not name: the name may be another namespace's or "(deleted)". */
		if (ino != t->exe_ino)
			continue;
		if (!found) {
			t->map_start = start;
			t->map_offset = off;
			t->bias =
			    elfbin_is_pie(t->elf) ? start - off - elfbin_base_vaddr(t->elf) : 0;
			found = 1;
		}
		t->map_limit = end;
	}
	fclose(f);
	/* Still the same process and image after the maps were read: they and the memory are its.
	 */
	if (!target_same_image(t))
		return target_changed_error(t, err, errlen);
	if (!found) {
		snprintf(err, errlen, "pid %d does not map %s", (int)t->pid, t->display);
		return -ENOENT;
	}
	return 0;
}

void target_close(struct target *t)
{
	int fds[] = {t->mem_fd, t->exe_fd, t->pidfd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	gosym_close(t->sym);
	elfbin_close(t->elf);
	t->sym = NULL;
	t->elf = NULL;
	t->mem_fd = t->exe_fd = t->pidfd = -1;
}

bool target_alive(const struct target *t)
{
	return t->pidfd >= 0 && proc_running(t->pidfd);
}

bool target_same_image(const struct target *t)
{
	char link[64];
	struct stat st;

	/* The pidfd last: alive after the stat, the pid named no other process at the stat. */
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)t->pid);
	return stat(link, &st) == 0 && (uint64_t)st.st_ino == t->exe_ino && target_alive(t);
}

int target_read(const struct target *t, uint64_t vaddr, void *buf, size_t len)
{
	if (t->mem_fd < 0 || !vaddr)
		return -EBADF;
	return procmem_read(t->mem_fd, target_runtime_addr(t, vaddr), buf, len);
}

int target_write(const struct target *t, uint64_t vaddr, const void *buf, size_t len)
{
	if (t->mem_fd < 0 || !vaddr)
		return -EBADF;
	if (!target_same_image(t))
		return -ESRCH;
	return procmem_write(t->mem_fd, target_runtime_addr(t, vaddr), buf, len);
}

/* PROC_PID_INIT_INO: the initial pid namespace's inode number, fixed in the kernel. */
#define INIT_PID_NS_INO 0xEFFFFFFCu

uint32_t target_kernel_tgid(const struct target *t)
{
	struct stat st;

	if (stat("/proc/self/ns/pid", &st) != 0 || st.st_ino != INIT_PID_NS_INO)
		return 0;
	return (uint32_t)t->pid;
}
