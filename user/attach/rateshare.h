/*
 * rateshare: the heapspy sessions on one process, so that they share its sampling switch. One
 * registry file per process (/run/heapspy/PID-STARTTIME: a pid reused is another process) holds
 * MemProfileRate as it was before any session switched sampling on, and the rate a session switched
 * it to. Each session holds a read lock on the file's byte 1, its share, and changes the file only
 * under the write lock on byte 0. Both are open-file-description locks: the kernel drops them when
 * the session's process dies, however it dies, so a killed session's share goes with it and the
 * next session to leave finds itself the last and restores. Registries of processes gone are
 * removed by the next session to register.
 */
#ifndef HEAPSPY_RATESHARE_H
#define HEAPSPY_RATESHARE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define RATESHARE_DIR "/run/heapspy"

struct rateshare {
	int fd; /* the registry file, -1 when not registered */
	char path[64];
	bool found;   /* the registry held a record when locked */
	int64_t orig; /* MemProfileRate before any session switched it */
	int64_t set;  /* the rate a session switched it to; 0 if none did */
	bool shared;  /* this session holds a share */
};

/*
 * Opens (creating) the registry of process pid and takes its write lock; found, orig and set say
 * what it holds. Errors are one line, meant for the user.
 */
int rateshare_lock(struct rateshare *r, pid_t pid, char *err, size_t errlen);
/* Takes the registry's write lock again, for a session already registered. */
int rateshare_relock(struct rateshare *r);
/* Writes orig and set, and takes this session's share if it holds none yet. */
int rateshare_record(struct rateshare *r, int64_t orig, int64_t set);
/* Whether another live session holds a share (the write lock held). */
bool rateshare_others(const struct rateshare *r);
void rateshare_unlock(struct rateshare *r);
/*
 * Leaves (the write lock held): drops the share and the lock, and removes the registry when no
 * other session holds a share in it, unless it holds a record this session did not share.
 */
void rateshare_leave(struct rateshare *r);

#endif
