// SPDX-License-Identifier: MIT
/* Retention policy on synthetic timelines (agent/retention.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/retention.h"
#include "common/err.h"
#include "tests/unit/unit.h"

#define H 3600
#define D 86400
/* 2026-12-02T12:00:00Z, a Wednesday */
#define NOW ((int64_t)1796212800)

struct tl {
	struct ret_item it[64];
	char ids[64][32];
	size_t n;
};

/* Add a backup age seconds before NOW. */
static void add(struct tl *t, int64_t age)
{
	size_t k = t->n++;

	assert_true(k < 64);
	snprintf(t->ids[k], sizeof(t->ids[k]), "b%02zu", k);
	t->it[k] = (struct ret_item){ .id = t->ids[k], .time = NOW - age };
}

static size_t kept(const struct tl *t)
{
	size_t n = 0;

	for (size_t k = 0; k < t->n; k++)
		n += t->it[k].keep;
	return n;
}

static void expect(const struct tl *t, size_t k, bool keep, const char *rule)
{
	if (t->it[k].keep != keep || strcmp(t->it[k].rule, rule))
		fail_msg("item %zu (age %llds): %s by %s, expected %s by %s", k,
			 (long long)(NOW - t->it[k].time), t->it[k].keep ? "kept" : "deleted",
			 t->it[k].rule, keep ? "kept" : "deleted", rule);
}

/* The lock span: max_age when set, else the longest keep_* span. */
static void test_lock_span(void **state)
{
	struct ret_policy p = { .keep_last = 3, .keep_daily = 7, .keep_hourly = 48 };

	(void)state;
	assert_int_equal(ret_lock_span(&p, 3600), 7 * 86400);
	assert_int_equal(ret_lock_span(&p, 86400 * 10), 30 * 86400);   /* 3 x 10 d */
	p.keep_monthly = 2;
	assert_int_equal(ret_lock_span(&p, 3600), 62 * 86400);
	p.max_age = 5;
	assert_int_equal(ret_lock_span(&p, 3600), 5);
	p = (struct ret_policy){ 0 };
	assert_int_equal(ret_lock_span(&p, 3600), 0);
}

/* The retain-until date: snapshot + span + margin, never before now +
 * margin, never past 9999-12-31 (nor an int64 overflow). */
static void test_lock_until(void **state)
{
	(void)state;
	assert_int_equal(ret_lock_until(NOW - 100, 3600, 60, NOW), NOW - 100 + 3600 + 60);
	/* an old backup (a repair copy) or a slow upload: now + margin */
	assert_int_equal(ret_lock_until(NOW - 86400, 3600, 60, NOW), NOW + 60);
	assert_int_equal(ret_lock_until(NOW - 3600, 3600, 60, NOW), NOW + 60);
	/* keep_monthly = 100000: 8493 years, clamped */
	assert_int_equal(ret_lock_until(NOW, INT64_C(100000) * 31 * 86400, 86400, NOW),
			 RET_LOCK_MAX);
	assert_int_equal(ret_lock_until(NOW, INT64_MAX, INT64_MAX, NOW), RET_LOCK_MAX);
	assert_int_equal(ret_lock_until(INT64_MAX, 1, 1, INT64_MAX), RET_LOCK_MAX);
	assert_int_equal(ret_lock_until(RET_LOCK_MAX - 10, 5, 4, 0), RET_LOCK_MAX - 1);
}

static void test_empty(void **state)
{
	struct ret_policy pol = { .keep_last = 2 };

	(void)state;
	ret_decide(&pol, NULL, 0, NOW);    /* nothing to do, no crash */
}

static void test_keep_last(void **state)
{
	struct ret_policy pol = { .keep_last = 3 };
	struct tl t = { 0 };

	(void)state;
	/* given out of order: the 3 newest are ages 1h, 2h, 3h */
	add(&t, 5 * H); add(&t, 1 * H); add(&t, 4 * H); add(&t, 3 * H); add(&t, 2 * H);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, false, "none");
	expect(&t, 1, true, "keep_last");
	expect(&t, 2, false, "none");
	expect(&t, 3, true, "keep_last");
	expect(&t, 4, true, "keep_last");
	assert_int_equal(kept(&t), 3);
}

static void test_newest_always(void **state)
{
	struct ret_policy pol = { 0 };        /* no rule at all */
	struct tl t = { 0 };

	(void)state;
	add(&t, 10 * D); add(&t, 1 * D); add(&t, 2 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 1, true, "newest");
	expect(&t, 0, false, "none");
	expect(&t, 2, false, "none");
}

static void test_keep_within(void **state)
{
	struct ret_policy pol = { .keep_within = 2 * D };
	struct tl t = { 0 };

	(void)state;
	add(&t, 1 * H); add(&t, 2 * D); add(&t, 2 * D + 1); add(&t, 5 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_within");
	expect(&t, 1, true, "keep_within");   /* exactly at the edge */
	expect(&t, 2, false, "none");
	expect(&t, 3, false, "none");
}

static void test_hourly_same_hour(void **state)
{
	struct ret_policy pol = { .keep_hourly = 2 };
	struct tl t = { 0 };

	(void)state;
	/* NOW is on the hour: ages 10m and 50m are both in the 11:00 hour */
	add(&t, 10 * 60); add(&t, 50 * 60); add(&t, 70 * 60); add(&t, 110 * 60);
	add(&t, 3 * H);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_hourly");   /* newest of 11:00 */
	expect(&t, 1, false, "none");         /* the same hour, older */
	expect(&t, 2, true, "keep_hourly");   /* newest of 10:00 */
	expect(&t, 3, false, "none");
	expect(&t, 4, false, "none");         /* a third hour: only 2 */
}

static void test_ties(void **state)
{
	struct ret_policy pol = { .keep_last = 1, .keep_daily = 1 };
	struct tl t = { 0 };

	(void)state;
	/* two backups of the same second: the larger id counts as newer */
	add(&t, 1 * H); add(&t, 1 * H);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 1, true, "keep_last");
	expect(&t, 0, false, "none");
}

static void test_daily_skips_empty_days(void **state)
{
	struct ret_policy pol = { .keep_daily = 3 };
	struct tl t = { 0 };

	(void)state;
	/* days with backups: today (2), 1 day ago, 4 days ago, 9 days ago */
	add(&t, 1 * H); add(&t, 2 * H); add(&t, 1 * D); add(&t, 4 * D); add(&t, 9 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_daily");
	expect(&t, 1, false, "none");
	expect(&t, 2, true, "keep_daily");
	expect(&t, 3, true, "keep_daily");    /* the 3rd day that has one */
	expect(&t, 4, false, "none");
}

static void test_weekly_iso(void **state)
{
	struct ret_policy pol = { .keep_weekly = 2 };
	struct tl t = { 0 };

	(void)state;
	/* NOW is Wednesday 12:00: Monday 00:00 is 2.5 days back */
	add(&t, 1 * D);                    /* Tuesday: this week */
	add(&t, 2 * D + 11 * H);           /* Monday 01:00: this week, older */
	add(&t, 2 * D + 13 * H);           /* Sunday 23:00: last week */
	add(&t, 8 * D);                    /* last week's Tuesday: older */
	add(&t, 14 * D);                   /* two weeks ago */
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_weekly");
	expect(&t, 1, false, "none");
	expect(&t, 2, true, "keep_weekly");
	expect(&t, 3, false, "none");
	expect(&t, 4, false, "none");
}

static void test_monthly(void **state)
{
	struct ret_policy pol = { .keep_monthly = 2 };
	struct tl t = { 0 };

	(void)state;
	/* December (2 days in), November 30th, November 1st, October */
	add(&t, 1 * D); add(&t, 2 * D + 13 * H); add(&t, 31 * D); add(&t, 40 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_monthly");
	expect(&t, 1, true, "keep_monthly");  /* Nov 29 23:00 */
	expect(&t, 2, false, "none");
	expect(&t, 3, false, "none");
}

static void test_union(void **state)
{
	struct ret_policy pol = { .keep_last = 2, .keep_daily = 3, .keep_monthly = 3 };
	struct tl t = { 0 };

	(void)state;
	add(&t, 1 * H); add(&t, 5 * H); add(&t, 6 * H); add(&t, 1 * D + H);
	add(&t, 1 * D + 2 * H); add(&t, 3 * D); add(&t, 40 * D); add(&t, 45 * D);
	add(&t, 70 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_last");
	expect(&t, 1, true, "keep_last");
	expect(&t, 2, false, "none");         /* today's third */
	expect(&t, 3, true, "keep_daily");    /* yesterday's newest */
	expect(&t, 4, false, "none");
	expect(&t, 5, true, "keep_daily");    /* the third day */
	expect(&t, 6, true, "keep_monthly");  /* October */
	expect(&t, 7, false, "none");
	expect(&t, 8, false, "none");         /* September: the 4th month */
	assert_int_equal(kept(&t), 5);
}

static void test_max_age(void **state)
{
	struct ret_policy pol = { .keep_last = 10, .max_age = 30 * D };
	struct tl t = { 0 };

	(void)state;
	add(&t, 1 * D); add(&t, 29 * D); add(&t, 31 * D); add(&t, 100 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "keep_last");
	expect(&t, 1, true, "keep_last");
	expect(&t, 2, false, "max_age");      /* keep_last keeps it; max_age wins */
	expect(&t, 3, false, "max_age");
}

static void test_max_age_newest(void **state)
{
	struct ret_policy pol = { .keep_last = 2, .max_age = 30 * D };
	struct tl t = { 0 };

	(void)state;
	/* the host stopped backing up: every backup is too old */
	add(&t, 40 * D); add(&t, 50 * D); add(&t, 60 * D);
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, true, "newest");        /* never the newest */
	expect(&t, 1, false, "max_age");
	expect(&t, 2, false, "max_age");
	pol.max_age_newest = true;            /* unless the config says so */
	ret_decide(&pol, t.it, t.n, NOW);
	expect(&t, 0, false, "max_age");
	assert_int_equal(kept(&t), 0);
}

/* The defaults: the last 2, purged at 90 days; overrides per partition. */
static void test_policy_of_config(void **state)
{
	char path[] = "/tmp/snapship-ret-XXXXXX";
	struct config cfg;
	struct err err = { 0 };
	struct ret_policy pol;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(config_defaults(&cfg, &err), 0);
	ret_policy_of(&cfg, NULL, &pol);
	assert_int_equal(pol.keep_last, 2);
	assert_int_equal(pol.max_age, 90 * D);
	assert_int_equal(pol.keep_within + pol.keep_daily + pol.keep_hourly, 0);
	assert_false(pol.max_age_newest);
	config_free(&cfg);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("[retention]\nkeep_daily = 30\nmax_age = 60d\n"
	      "[partition a]\npath = /a\nkeep_last = 5\nmax_age = 0\nmax_age_deletes_newest = yes\n"
	      "[partition b]\npath = /b\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	ret_policy_of(&cfg, config_partition(&cfg, "a"), &pol);
	assert_int_equal(pol.keep_last, 5);
	assert_int_equal(pol.keep_daily, 30);
	assert_int_equal(pol.max_age, 0);
	assert_true(pol.max_age_newest);
	ret_policy_of(&cfg, config_partition(&cfg, "b"), &pol);
	assert_int_equal(pol.keep_last, 2);
	assert_int_equal(pol.max_age, 60 * D);
	assert_false(pol.max_age_newest);
	config_free(&cfg);

	/* keep_within longer than a partition's max_age: its line */
	f = fopen(path, "w");
	fputs("[retention]\nkeep_within = 10d\n[partition a]\npath = /a\nmax_age = 5d\n", f);
	fclose(f);
	assert_int_not_equal(config_load(path, &cfg, &err), 0);
	assert_non_null(strstr(err.msg, ":5:"));
	assert_non_null(strstr(err.msg, "partition a"));
	err = (struct err){ 0 };
	f = fopen(path, "w");
	fputs("[partition a]\npath = /a\nkeep_weekly = many\n", f);
	fclose(f);
	assert_int_not_equal(config_load(path, &cfg, &err), 0);
	if (!strstr(err.msg, ":3:"))
		fail_msg("%s", err.msg);
	err = (struct err){ 0 };
	f = fopen(path, "w");
	fputs("[retention]\nmax_age_deletes_newest = perhaps\n", f);
	fclose(f);
	assert_int_not_equal(config_load(path, &cfg, &err), 0);
	assert_non_null(strstr(err.msg, ":2:"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_lock_span),
		cmocka_unit_test(test_keep_last),
		cmocka_unit_test(test_newest_always),
		cmocka_unit_test(test_keep_within),
		cmocka_unit_test(test_hourly_same_hour),
		cmocka_unit_test(test_ties),
		cmocka_unit_test(test_daily_skips_empty_days),
		cmocka_unit_test(test_weekly_iso),
		cmocka_unit_test(test_monthly),
		cmocka_unit_test(test_union),
		cmocka_unit_test(test_lock_until),
		cmocka_unit_test(test_max_age),
		cmocka_unit_test(test_max_age_newest),
		cmocka_unit_test(test_policy_of_config),
	};

	return unit_main(tests, NULL, NULL);
}
