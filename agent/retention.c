// SPDX-License-Identifier: MIT
#include "agent/retention.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/config.h"

void ret_policy_of(const struct config *cfg, const struct cfg_partition *p,
		   struct ret_policy *pol_ret)
{
	struct cfg_retention r;

	config_retention(cfg, p, &r);
	*pol_ret = (struct ret_policy){
		.keep_last = r.keep_last, .keep_within = r.keep_within,
		.keep_hourly = r.keep_hourly, .keep_daily = r.keep_daily,
		.keep_weekly = r.keep_weekly, .keep_monthly = r.keep_monthly,
		.max_age = r.max_age, .max_age_newest = r.max_age_newest,
	};
}

int64_t ret_lock_span(const struct ret_policy *pol, int64_t interval)
{
	const int64_t span[] = {
		pol->keep_within, pol->keep_hourly * 3600, pol->keep_daily * 86400,
		pol->keep_weekly * 7 * 86400, pol->keep_monthly * 31 * 86400,
		pol->keep_last * (interval > 0 ? interval : 0),
	};
	int64_t longest = 0;

	if (pol->max_age > 0)
		return pol->max_age;
	for (size_t i = 0; i < sizeof(span) / sizeof(span[0]); i++)
		if (span[i] > longest)
			longest = span[i];
	return longest;
}

/* a + b, at most RET_LOCK_MAX (a, b >= 0 once clamped) */
static int64_t lock_add(int64_t a, int64_t b)
{
	if (a < 0)
		a = 0;
	if (b < 0)
		b = 0;
	if (a > RET_LOCK_MAX || b > RET_LOCK_MAX - a)
		return RET_LOCK_MAX;
	return a + b;
}

int64_t ret_lock_until(int64_t snap_s, int64_t span, int64_t margin, int64_t now)
{
	int64_t until = lock_add(lock_add(snap_s, span), margin);
	int64_t floor = lock_add(now, margin);

	return until > floor ? until : floor;
}

/* floor(a / b) for b > 0 */
static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

enum { B_HOUR, B_DAY, B_WEEK, B_MONTH, B_KINDS };

/* The UTC hour, day, ISO week or month t falls in, as a number. */
static int64_t bucket(int kind, int64_t t)
{
	int64_t day = floor_div(t, 86400);
	struct tm tm;
	time_t tt = (time_t)t;

	switch (kind) {
	case B_HOUR:
		return floor_div(t, 3600);
	case B_DAY:
		return day;
	case B_WEEK:
		/* 1970-01-01 was a Thursday: weeks from Monday 1969-12-29 */
		return floor_div(day + 3, 7);
	default:
		if (!gmtime_r(&tt, &tm))
			return day;
		return (int64_t)tm.tm_year * 12 + tm.tm_mon;
	}
}

/* Newest first; the same time: the larger id first. */
static int newest_first(const void *a, const void *b, void *ctx)
{
	const struct ret_item *items = ctx;
	const struct ret_item *x = &items[*(const size_t *)a], *y = &items[*(const size_t *)b];

	if (x->time != y->time)
		return x->time < y->time ? 1 : -1;
	return -strcmp(x->id ? x->id : "", y->id ? y->id : "");
}

static const char *const bucket_rule[B_KINDS] = {
	"keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
};

/* The keep rules over items in order (newest first). */
static void keep_rules(const struct ret_policy *pol, struct ret_item *items,
		       const size_t *order, size_t n, int64_t now)
{
	const int64_t want[B_KINDS] = { pol->keep_hourly, pol->keep_daily,
					pol->keep_weekly, pol->keep_monthly };
	int64_t got[B_KINDS] = { 0 }, last[B_KINDS];
	bool seen[B_KINDS] = { false };

	for (size_t k = 0; k < n; k++) {
		struct ret_item *it = &items[order[k]];

		it->keep = false;
		it->rule = "none";
		if ((int64_t)k < pol->keep_last) {
			it->keep = true;
			it->rule = "keep_last";
		} else if (pol->keep_within > 0 && it->time >= now - pol->keep_within) {
			it->keep = true;
			it->rule = "keep_within";
		}
		/* every bucket rule sees every item: the newest of a bucket
		 * counts for the rule even when another rule kept it */
		for (int b = 0; b < B_KINDS; b++) {
			int64_t key = bucket(b, it->time);

			if (got[b] >= want[b] || (seen[b] && key == last[b]))
				continue;
			seen[b] = true;
			last[b] = key;
			got[b]++;
			if (!it->keep) {
				it->keep = true;
				it->rule = bucket_rule[b];
			}
		}
	}
}

void ret_decide(const struct ret_policy *pol, struct ret_item *items, size_t n,
		int64_t now)
{
	size_t *order;

	if (!n)
		return;
	order = malloc(n * sizeof(*order));
	if (!order) {
		/* out of memory: keep everything (deleting needs certainty) */
		for (size_t k = 0; k < n; k++) {
			items[k].keep = true;
			items[k].rule = "newest";
		}
		return;
	}
	for (size_t k = 0; k < n; k++)
		order[k] = k;
	qsort_r(order, n, sizeof(*order), newest_first, items);
	keep_rules(pol, items, order, n, now);
	for (size_t k = 0; k < n; k++) {
		struct ret_item *it = &items[order[k]];

		bool too_old = pol->max_age > 0 && it->time < now - pol->max_age;

		if (too_old && (k > 0 || pol->max_age_newest)) {
			it->keep = false;
			it->rule = "max_age";
		} else if (k == 0 && (too_old || !it->keep)) {
			it->keep = true;
			it->rule = "newest";
		}
	}
	free(order);
}
