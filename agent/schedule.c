// SPDX-License-Identifier: MIT
#include "agent/schedule.h"

#include <string.h>
#include <time.h>

/* FNV-1a over "host/partition": the same on every start of the agent, and
 * different hosts spread their runs over the jitter */
int64_t schedule_jitter_offset(const char *host, const char *partition, int64_t jitter)
{
	uint64_t h = 14695981039346656037ull;
	const char *parts[3] = { host, "/", partition };

	if (jitter <= 0)
		return 0;
	for (int i = 0; i < 3; i++)
		for (const unsigned char *c = (const unsigned char *)parts[i]; c && *c; c++)
			h = (h ^ *c) * 1099511628211ull;
	return (int64_t)(h % (uint64_t)jitter);
}

/* seconds after local midnight of t */
static int time_of_day(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	return tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

bool schedule_in_window(int64_t t, int start, int end)
{
	int tod = time_of_day(t), s = start * 60, e = end * 60;

	if (start == end)
		return true;
	if (s < e)
		return tod >= s && tod < e;
	return tod >= s || tod < e;   /* across midnight */
}

/* The first time after t (not in the window) at which the window opens:
 * today's start, or tomorrow's (mktime handles DST and month ends). */
static int64_t window_open_after(int64_t t, int start)
{
	time_t tt = (time_t)t, open;
	struct tm tm;

	for (int day = 0; day < 3; day++) {
		localtime_r(&tt, &tm);
		tm.tm_mday += day;
		tm.tm_hour = start / 60;
		tm.tm_min = start % 60;
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		open = mktime(&tm);
		if (open != (time_t)-1 && (int64_t)open > t)
			return open;
	}
	return t + 86400;   /* not reached with a sane TZ */
}

/* The first time from earliest on (not before now) at which p may run:
 * earliest, or (outside p's window) the window's next opening plus the
 * host's jitter offset, kept inside it.  A backup and a drill alike. */
static int64_t next_time(const struct config *cfg, const struct cfg_partition *p,
			 const char *host, int64_t earliest, int64_t now)
{
	int64_t jitter = config_jitter(cfg, p);
	int64_t offset = schedule_jitter_offset(host, p ? p->name : "", jitter);
	int64_t due = earliest < now ? now : earliest, open, len;
	int start, end;

	config_window(cfg, p, &start, &end);
	if (schedule_in_window(due, start, end))
		return due;
	/* spread hosts over the window too: the jitter offset after it opens,
	 * kept inside it */
	open = window_open_after(due, start);
	len = ((end - start + 1440) % 1440) * 60;
	return open + (len > 0 ? offset % len : 0);
}

int64_t schedule_drill_due(const struct config *cfg, const struct cfg_partition *p,
			   const char *host, int64_t last_drill, bool backed_up, int64_t now)
{
	int64_t every = config_drill_interval(cfg, p), due;

	if (every <= 0 || !backed_up)
		return 0;
	due = last_drill > 0 ? last_drill + every : now;
	if (due > now + every)
		due = now + every;    /* the clock went back: not later than a whole interval */
	if (due < now)
		due = now;            /* never drilled, or missed: due now, once */
	return next_time(cfg, p, host, due, now);
}

int64_t schedule_next_due(const struct config *cfg, const struct cfg_partition *p,
			  const char *host, int64_t newest, int64_t now)
{
	return schedule_next_try(cfg, p, host, newest, NULL, now);
}

int64_t schedule_backoff(unsigned fails, int64_t interval)
{
	int64_t back;

	if (!fails)
		return 0;
	back = (int64_t)SCHEDULE_BACKOFF_MIN_S <<
	       (fails - 1 < SCHEDULE_BACKOFF_DOUBLINGS ? fails - 1 : SCHEDULE_BACKOFF_DOUBLINGS);
	return interval > 0 && back > interval ? interval : back;
}

int64_t schedule_next_try(const struct config *cfg, const struct cfg_partition *p,
			  const char *host, int64_t newest, const struct runrec *run, int64_t now)
{
	int64_t interval = config_interval(cfg, p), jitter = config_jitter(cfg, p);
	int64_t offset = schedule_jitter_offset(host, p ? p->name : "", jitter);
	/* never backed up, or missed while the agent was down: due now, once
	 * (the backup it makes is the newest, so the next is an interval on) */
	int64_t due = newest > 0 ? newest + interval + offset : now;

	if (run && run->failures_in_row && run->last_attempt > 0) {
		int64_t retry = run->last_attempt + schedule_backoff(run->failures_in_row, interval);

		if (retry > due)
			due = retry;
	}
	return next_time(cfg, p, host, due, now);
}
