/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Only the target's threads: a uprobe is planted in the file, so every process that maps the
 * binary hits it, and the perf-event kind of link filters by process only as far as the kernel's
 * consumer filter goes (two processes of one binary were seen to mix). The loader writes the
 * target's process id as the kernel knows it before attaching; 0 keeps every hit (a loader in a
 * pid namespace of its own cannot name it).
 */
#ifndef HEAPSPY_BPF_TARGET_H
#define HEAPSPY_BPF_TARGET_H

__u32 target_tgid;

static __always_inline bool in_target(void)
{
	return !target_tgid || bpf_get_current_pid_tgid() >> 32 == target_tgid;
}

#endif
