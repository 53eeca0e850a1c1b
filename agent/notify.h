/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_NOTIFY_H
#define SNAPSHIP_AGENT_NOTIFY_H

/*
 * The service manager's side channel (systemd Type=notify): libsystemd's
 * sd_notify.  Every function is a no-op when NOTIFY_SOCKET is not set
 * (a shell, cron) and never fails the caller: a manager that does not
 * listen is not an error of the backup.  Nothing is kept; the strings are
 * only read.
 */

#include <stdint.h>

void notify_ready(void);          /* READY=1 */
void notify_reloading(void);      /* RELOADING=1 (+ READY=1 again when done: notify_ready) */
void notify_stopping(void);       /* STOPPING=1 */
/* STATUS=<text>: what the agent is doing, one line (control characters
 * and newlines escaped). */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_watchdog(void);       /* WATCHDOG=1 */
/* The watchdog interval in microseconds (sd_watchdog_enabled), 0 if none:
 * ping at least every half of it. */
uint64_t notify_watchdog_usec(void);

/*
 * The worker of the supervised agent (agent/supervise.c): from now on
 * nothing goes to systemd; lines go to fd instead (the supervisor's pipe,
 * the caller's): "STATUS=TEXT" for notify_status, "ready" and "reloading"
 * for notify_ready/notify_reloading, "next UNIX_SECONDS" for notify_next;
 * the watchdog and STOPPING are the supervisor's own.
 */
void notify_to_supervisor(int fd);
/* The worker hands over: the next round is at when (no-op unless
 * notify_to_supervisor). */
void notify_next(int64_t when);

#endif
