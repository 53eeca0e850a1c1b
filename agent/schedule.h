/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_SCHEDULE_H
#define SNAPSHIP_AGENT_SCHEDULE_H

/*
 * When a partition's next backup is due (design §9): pure arithmetic over
 * the config, the newest committed backup and the clock; no I/O.  The
 * window is in local time (the TZ of the process), across midnight
 * allowed (22:00-04:00).  Every pointer argument is only read.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/config.h"
#include "agent/runrec.h"

#define SCHEDULE_BACKOFF_MIN_S 30   /* a failed backup is retried no sooner */
#define SCHEDULE_BACKOFF_DOUBLINGS 6

/* Next due time of partition p: newest committed backup time + interval (+ a jitter fixed per
 * host+partition so restarts keep it), moved into the window if one is set; a missed backup is
 * due now (once). newest = 0: never backed up, due now (in the window). */
int64_t schedule_next_due(const struct config *cfg, const struct cfg_partition *p,
			  const char *host, int64_t newest, int64_t now);

/* The wait before retrying after fails failed attempts in a row: 0 for none, else
 * SCHEDULE_BACKOFF_MIN_S doubled per failure after the first (at most 6 times: 32 min), and
 * never more than interval (a retry at the latest when the next backup would be due anyway). */
int64_t schedule_backoff(unsigned fails, int64_t interval);

/* When the agent backs partition p up next: schedule_next_due, but after failures (the run
 * record run: failures_in_row, last_attempt; NULL: none) not before last_attempt +
 * schedule_backoff, moved into the window as a due time is.  What the agent waits for, and what
 * status --json and the metrics say as next_due. */
int64_t schedule_next_try(const struct config *cfg, const struct cfg_partition *p,
			  const char *host, int64_t newest, const struct runrec *run, int64_t now);

/* The fixed jitter offset of host+partition: in [0, jitter), 0 if jitter <= 0. */
int64_t schedule_jitter_offset(const char *host, const char *partition, int64_t jitter);

/* Whether local time t is inside the window [start, end) (minutes after
 * midnight; start == end: no window, always true). */
bool schedule_in_window(int64_t t, int start, int end);

/* When the agent's next drill of p is due (agent/drill.h): the last drill
 * (the agent's or a `snapship drill` by hand, passed or failed: a drill is
 * a report, not retried sooner) + drill_interval, now when never drilled or
 * missed, never more than an interval from now (a clock set back), moved
 * into p's window as a backup is.  0: no drill (drill_interval 0, or
 * backed_up false: nothing committed to drill yet). */
int64_t schedule_drill_due(const struct config *cfg, const struct cfg_partition *p,
			   const char *host, int64_t last_drill, bool backed_up, int64_t now);

#endif
