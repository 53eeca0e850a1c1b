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

#include <stdbool.h>
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
 * back to hostlock_release, or -errno with err set (-EBUSY: held;
 * -ECANCELED: a stop request, signals.h, ended the wait).
 */
int hostlock_acquire_as(const char *state_dir, int wait_s, const char *what,
			struct err *err);
/* hostlock_acquire_as(state_dir, wait_s, NULL, err) */
int hostlock_acquire(const char *state_dir, int wait_s, struct err *err);
/* The pid the holder's note names from now on (0: this process's): the
 * supervised agent's worker names the agent's, its supervisor. */
void hostlock_note_pid(long pid);
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

/*
 * Take the agent lock (no waiting): the descriptor (>= 0, the caller's,
 * given back to hostlock_release) or -EBUSY with err naming the running
 * agent's pid.
 */
int agentlock_acquire(const char *state_dir, struct err *err);

#endif
