/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_LOCK_H
#define SNAPSHIP_AGENT_LOCK_H

/*
 * The host lock: flock(<state_dir>/lock), one snapshot run per host at a
 * time (backup, clean, repair).  Dropped by the kernel when the process
 * dies, so a crashed run never leaves it held.
 */

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

#endif
