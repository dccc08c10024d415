/* procmem: reads and writes another process's memory through /proc/PID/mem. */
#ifndef HEAPSPY_PROCMEM_H
#define HEAPSPY_PROCMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opens /proc/PID/mem read-write, falling back to read-only. Returns an fd or -errno. */
int procmem_open(pid_t pid);
/* 0, or -errno (-EIO for a short transfer: the address is not mapped). */
int procmem_read(int fd, uint64_t addr, void *buf, size_t len);
int procmem_write(int fd, uint64_t addr, const void *buf, size_t len);

#endif
