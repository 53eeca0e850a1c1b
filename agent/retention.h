/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_RETENTION_H
#define SNAPSHIP_AGENT_RETENTION_H

/*
 * Retention policy (design §7): which backups of one partition to keep.
 * Pure: no I/O, no clock (the caller passes now).  A backup is kept when
 * any rule keeps it:
 *   keep_last N      the N newest;
 *   keep_within D    those not older than D;
 *   keep_hourly N, keep_daily N, keep_weekly N, keep_monthly N
 *                    the newest backup of each of the last N hours, days,
 *                    ISO weeks (Monday to Sunday) or months, UTC, that
 *                    have one (as restic and borg count: an empty day does
 *                    not use up one of the N);
 * and the newest backup always ("newest").  Then max_age removes every
 * backup older than it whatever keeps it, but not the newest unless
 * max_age_newest.  0 turns a rule off.
 *
 * Ownership: the strings in items are the caller's and only read; rule is
 * set to a static string.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct cfg_partition;

struct ret_policy {
	int64_t keep_last, keep_within, keep_hourly, keep_daily, keep_weekly,
		keep_monthly, max_age;      /* durations in seconds */
	bool max_age_newest;                /* max_age may delete the newest */
};

struct ret_item {
	const char *id;                     /* backup id: ties of time by id */
	int64_t time;                       /* snapshot time, unix seconds */
	bool keep;                          /* set by ret_decide */
	/* the rule that decided: "keep_last", "keep_within", "keep_hourly",
	 * "keep_daily", "keep_weekly", "keep_monthly", "newest" (kept as the
	 * newest), "max_age" (deleted as too old), "none" (no rule keeps it) */
	const char *rule;
};

/* The policy of partition p (NULL: the global [retention]). */
void ret_policy_of(const struct config *cfg, const struct cfg_partition *p,
		   struct ret_policy *pol_ret);

/*
 * How long after its snapshot the policy keeps a backup at the longest,
 * for its Object Lock (seconds): max_age when set; else the longest of
 * keep_within, keep_hourly hours, keep_daily days, keep_weekly weeks,
 * keep_monthly x 31 days and keep_last x interval (the N newest span N
 * intervals when backups run on schedule).  A backup kept longer than that
 * (the newest, when backups stopped) stays, unlocked.
 */
int64_t ret_lock_span(const struct ret_policy *pol, int64_t interval);

/* The latest retain-until date an S3 server takes: 9999-12-31T23:59:59Z. */
#define RET_LOCK_MAX INT64_C(253402300799)

/*
 * The Object Lock retain-until date (unix s) of a backup snapshotted at
 * snap_s: snap_s + span (ret_lock_span) + margin, but never before
 * now + margin (a server refuses a date in the past: the repair copy of an
 * old backup, a slow upload with a small margin), and never past
 * RET_LOCK_MAX (no int64 overflow either).
 */
int64_t ret_lock_until(int64_t snap_s, int64_t span, int64_t margin, int64_t now);

/* Decide keep/delete for items (any order; not reordered), as of now. */
void ret_decide(const struct ret_policy *pol, struct ret_item *items, size_t n,
		int64_t now);

#endif
