/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_SIGNALS_H
#define SNAPSHIP_AGENT_SIGNALS_H

/*
 * SIGINT, SIGTERM and SIGHUP as requests, not deaths: the handler only sets
 * a flag and writes a byte into a self-pipe, and the code stops at its next
 * safe point (backup_opts.cancelled, the stores' cancel hook, the restore
 * and verify loops), unwinds as on a failure and exits 128 + the signal.
 * A second SIGINT/SIGTERM while a stop is pending exits at once with
 * 128 + sig: whatever is left (a snapshot in the journal, temporary
 * objects) the next run's cow_recover and store cleanup remove.
 *
 * The state is the process's (one module, no handle).  Every function is
 * safe to call before signals_install() (nothing pending).
 */

#include <stdbool.h>

/* Catch SIGINT, SIGTERM and SIGHUP (a flag + a self-pipe; async-signal-safe), ignore SIGPIPE.
 * Idempotent. A second SIGINT/SIGTERM while a stop is already pending exits the process at
 * once with 128+sig (the next run cleans up). 0 or -errno. */
int signals_install(void);
/* The agent: SIGHUP asks for a reload (signals_take_reload) instead of a stop. */
void signals_hup_reloads(bool on);
/* 0, or the signal number of the first stop request (SIGINT, SIGTERM, or SIGHUP when it does
 * not reload). */
int signals_stop(void);
/* true once per SIGHUP received while hup_reloads is on. */
bool signals_take_reload(void);
/* A descriptor that becomes readable when any caught signal arrives (poll it to sleep
 * interruptibly); drained by signals_drain(). Owned by the module. */
int signals_fd(void);
void signals_drain(void);
/* Fits backup_opts.cancelled: true once a stop was requested. ctx unused. */
bool signals_cancelled(void *ctx);
/*
 * Whether a stop also ends the stores' listings and HEADs (the stores'
 * reads_cancelled hook, signals_reads_cancelled): off until a command
 * turns it on, which it may where nothing it does after a stop needs a
 * listing or a HEAD (the cleanup after a cancelled backup deletes and
 * aborts, which are never cancelled): the agent, and the listing of list,
 * status, restore and ls.  A stalled listing then no longer holds a stop
 * for the stall timeout.
 */
void signals_reads_stop(bool on);
/* Fits store_opts.reads_cancelled: a stop was requested and reads stop. */
bool signals_reads_cancelled(void *ctx);

/* "SIGINT", "SIGTERM", "SIGHUP" or "signal N" (a static string for N). */
const char *signals_name(int sig);

#endif
