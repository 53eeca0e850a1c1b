/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_LOCK_H
#define SNAPSHIP_AGENT_LOCK_H

/*
 * The host lock: flock(<state_dir>/lock), one snapshot run per host at a
 * time (backup, clean, repair, the agent's backups).  Dropped by the
 * kernel when the process dies, so a crashed run never leaves it held.
 * The holder writes "PID WHAT" into the file, so a run that waits can name
 * it ("waiting for the host lock held by the agent (pid 123)").
 *
 * The agent lock: flock(<state_dir>/agent.lock), one snapshot agent per
 * host, held for the agent's life.
 */

#include <stddef.h>

struct err;

/* Wait for ever (hostlock_acquire's wait_s). */
#define HOSTLOCK_WAIT_FOREVER (-1)

/*
 * Take the host lock in state_dir (created 0700 if missing), waiting up to
 * wait_s seconds (HOSTLOCK_WAIT_FOREVER: no bound) for a run that holds
 * it; when it has to wait it says so once (log_warn), naming the holder.
 * what names this run for others ("backup", "the agent"; NULL:
 * "snapship").  state_dir and what are only read.
 * Returns the lock's descriptor (>= 0), which the caller owns and gives
 * back to hostlock_release, or -errno with err set (-EBUSY: held).
 */
int hostlock_acquire_as(const char *state_dir, int wait_s, const char *what,
			struct err *err);
/* hostlock_acquire_as(state_dir, wait_s, NULL, err) */
int hostlock_acquire(const char *state_dir, int wait_s, struct err *err);
/* Release the lock and close fd; fd < 0 is a no-op. */
void hostlock_release(int fd);

/*
 * Take the agent lock (no waiting): the descriptor (>= 0, the caller's,
 * given back to hostlock_release) or -EBUSY with err naming the running
 * agent's pid.
 */
int agentlock_acquire(const char *state_dir, struct err *err);

#endif
