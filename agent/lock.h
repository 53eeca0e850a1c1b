/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_LOCK_H
#define SNAPSHIP_AGENT_LOCK_H

/*
 * The host lock: flock(<state_dir>/lock), one snapshot run per host at a
 * time (backup, clean, repair).  Dropped by the kernel when the process
 * dies, so a crashed run never leaves it held.
 */

#include <stdbool.h>

struct err;

/*
 * Take the host lock in state_dir (created 0700 if missing), waiting up to
 * wait_s seconds for a run that holds it.  state_dir is only read.
 * Returns the lock's descriptor (>= 0), which the caller owns and gives
 * back to hostlock_release, or -errno with err set (-EBUSY: held;
 * -ECANCELED: a stop request, signals.h, ended the wait).
 */
int hostlock_acquire(const char *state_dir, int wait_s, struct err *err);
/* Release the lock and close fd; fd < 0 is a no-op. */
void hostlock_release(int fd);

/*
 * A reader's hold on one backup: a shared flock on
 * <state_dir>/reading/<host>/<partition>/<id>.lock, taken by restore (and
 * ls) while they read it, so that prune leaves that backup alone.  The
 * names must be util_name_ok() ones and id a backup id (-EINVAL).
 * Returns the descriptor (>= 0; readlock_release gives it back) or -errno
 * with err set (a reader goes on without it: the state dir may not be
 * writable for it).
 */
int readlock_acquire(const char *state_dir, const char *host, const char *part,
		     const char *id, struct err *err);
/*
 * Prune's side: the same lock taken exclusively, without waiting: -EBUSY
 * when a reader holds it.  The descriptor as readlock_acquire's.
 */
int readlock_exclusive(const char *state_dir, const char *host, const char *part,
		       const char *id, struct err *err);
/* Close fd (< 0: no-op); with remove, unlink the lock file first (prune,
 * once the backup is gone: the exclusive lock is still held then). */
void readlock_release(int fd, const char *state_dir, const char *host,
		      const char *part, const char *id, bool remove);

#endif
