// SPDX-License-Identifier: MIT
/* The agent's schedule: due times from the newest backup, interval,
 * jitter and window (in UTC here, so the window cases are exact); the
 * drills' due times from the last drill and drill_interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/schedule.h"
#include "common/err.h"

#define H 3600
#define DAY 86400
/* 2026-12-03 00:00:00 UTC */
#define MIDNIGHT 1796256000

static struct config cfg;
static struct cfg_partition part = { .name = (char *)"orders" };

static int setup(void **state)
{
	struct err err = { 0 };

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(config_defaults(&cfg, &err), 0);
	cfg.interval = 4 * H;
	cfg.jitter = 0;
	part.interval = 0;
	part.has_jitter = part.has_window = false;
	part.drill_interval = 0;
	part.has_drill_interval = false;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

static int64_t due(int64_t newest, int64_t now)
{
	return schedule_next_due(&cfg, &part, "host1", newest, now);
}

static void test_never_backed_up(void **state)
{
	(void)state;
	assert_int_equal(due(0, MIDNIGHT + 5), MIDNIGHT + 5);
}

static void test_just_backed_up(void **state)
{
	(void)state;
	assert_int_equal(due(MIDNIGHT, MIDNIGHT + 1), MIDNIGHT + 4 * H);
	/* a partition's own interval wins over [agent]'s */
	part.interval = H;
	assert_int_equal(due(MIDNIGHT, MIDNIGHT + 1), MIDNIGHT + H);
}

static void test_due_exactly(void **state)
{
	(void)state;
	assert_int_equal(due(MIDNIGHT, MIDNIGHT + 4 * H), MIDNIGHT + 4 * H);
}

/* ten intervals of downtime: one backup due now, not ten */
static void test_downtime(void **state)
{
	int64_t now = MIDNIGHT + 40 * H + 17, d = due(MIDNIGHT, now);

	(void)state;
	assert_int_equal(d, now);
	/* once it is made (newest = now), the next is an interval on */
	assert_int_equal(due(now, now + 60), now + 4 * H);
}

static void test_window_before(void **state)
{
	(void)state;
	assert_true(config_parse_window("01:00-05:00", &cfg.win_start, &cfg.win_end));
	/* due at 00:10, window opens at 01:00 */
	assert_int_equal(due(MIDNIGHT + 10 * 60 - 4 * H, MIDNIGHT), MIDNIGHT + H);
	/* never backed up, before the window */
	assert_int_equal(due(0, MIDNIGHT + 30), MIDNIGHT + H);
}

static void test_window_inside(void **state)
{
	(void)state;
	assert_true(config_parse_window("01:00-05:00", &cfg.win_start, &cfg.win_end));
	assert_int_equal(due(MIDNIGHT + 2 * H - 4 * H, MIDNIGHT), MIDNIGHT + 2 * H);
	assert_int_equal(due(0, MIDNIGHT + 3 * H), MIDNIGHT + 3 * H);
}

static void test_window_after(void **state)
{
	(void)state;
	assert_true(config_parse_window("01:00-05:00", &cfg.win_start, &cfg.win_end));
	/* due at 06:00: tomorrow at 01:00; 05:00 itself is outside */
	assert_int_equal(due(MIDNIGHT + 2 * H, MIDNIGHT + 3 * H), DAY + MIDNIGHT + H);
	assert_int_equal(due(MIDNIGHT + H, MIDNIGHT + 2 * H), DAY + MIDNIGHT + H);
	/* a missed backup found after the window waits for the next one */
	assert_int_equal(due(MIDNIGHT - 3 * DAY, MIDNIGHT + 12 * H), DAY + MIDNIGHT + H);
}

static void test_window_across_midnight(void **state)
{
	(void)state;
	assert_true(config_parse_window("22:00-02:00", &cfg.win_start, &cfg.win_end));
	assert_int_equal(cfg.win_start, 22 * 60);
	assert_int_equal(cfg.win_end, 2 * 60);
	/* 23:00 and 01:00 are inside */
	assert_int_equal(due(0, MIDNIGHT + 23 * H), MIDNIGHT + 23 * H);
	assert_int_equal(due(0, MIDNIGHT + H), MIDNIGHT + H);
	/* 02:00 and 12:00 are outside: 22:00 the same day */
	assert_int_equal(due(0, MIDNIGHT + 2 * H), MIDNIGHT + 22 * H);
	assert_int_equal(due(0, MIDNIGHT + 12 * H), MIDNIGHT + 22 * H);
	/* a partition's window = none overrides [agent]'s */
	assert_true(config_parse_window("none", &part.win_start, &part.win_end));
	part.has_window = true;
	assert_int_equal(due(0, MIDNIGHT + 12 * H), MIDNIGHT + 12 * H);
}

static void test_window_parse(void **state)
{
	int s, e;

	(void)state;
	assert_true(config_parse_window("00:00-24:00", &s, &e) == false);   /* all day is "none" */
	assert_true(config_parse_window("01:30-24:00", &s, &e));
	assert_int_equal(s, 90);
	assert_int_equal(e, 0);
	assert_false(config_parse_window("1-5", &s, &e));
	assert_false(config_parse_window("01:00-05:00x", &s, &e));
	assert_false(config_parse_window("25:00-05:00", &s, &e));
	assert_false(config_parse_window("01:60-05:00", &s, &e));
	assert_false(config_parse_window("03:00-03:00", &s, &e));
}

static void test_jitter(void **state)
{
	int64_t spread[2] = { -1, -1 };
	char name[32];

	(void)state;
	cfg.jitter = 300;
	for (int i = 0; i < 200; i++) {
		int64_t o;

		snprintf(name, sizeof(name), "part%d", i);
		o = schedule_jitter_offset("host1", name, cfg.jitter);
		assert_true(o >= 0 && o < 300);
		/* stable: the same on every call (and every start) */
		assert_int_equal(o, schedule_jitter_offset("host1", name, cfg.jitter));
		spread[0] = spread[0] < 0 || o < spread[0] ? o : spread[0];
		spread[1] = o > spread[1] ? o : spread[1];
	}
	/* it spreads: not every partition on the same second */
	assert_true(spread[1] - spread[0] > 100);
	assert_int_equal(schedule_jitter_offset("h", "p", 0), 0);
	{
		int64_t o = schedule_jitter_offset("host1", "orders", 300);

		assert_int_equal(due(MIDNIGHT, MIDNIGHT + 1), MIDNIGHT + 4 * H + o);
		assert_int_equal(due(MIDNIGHT, MIDNIGHT + 1), due(MIDNIGHT, MIDNIGHT + 2));
	}
	/* a partition's jitter = 0 turns it off */
	part.has_jitter = true;
	part.jitter = 0;
	assert_int_equal(due(MIDNIGHT, MIDNIGHT + 1), MIDNIGHT + 4 * H);
}

static int64_t drill_due(int64_t last_drill, bool backed_up, int64_t now)
{
	return schedule_drill_due(&cfg, &part, "host1", last_drill, backed_up, now);
}

static void test_drill_due(void **state)
{
	(void)state;
	/* drill_interval 0 (the default): never */
	assert_int_equal(drill_due(0, true, MIDNIGHT), 0);
	assert_int_equal(drill_due(MIDNIGHT - DAY, true, MIDNIGHT), 0);
	cfg.drill_interval = DAY;
	/* nothing committed yet: nothing to drill */
	assert_int_equal(drill_due(0, false, MIDNIGHT), 0);
	/* never drilled: now */
	assert_int_equal(drill_due(0, true, MIDNIGHT + 5), MIDNIGHT + 5);
	/* the last drill + drill_interval, passed or failed alike */
	assert_int_equal(drill_due(MIDNIGHT + 10, true, MIDNIGHT + 20), MIDNIGHT + DAY + 10);
	assert_int_equal(drill_due(MIDNIGHT, true, MIDNIGHT + DAY), MIDNIGHT + DAY);
	assert_int_equal(drill_due(MIDNIGHT, true, MIDNIGHT + DAY - 1), MIDNIGHT + DAY);
	/* missed (the agent was down for days): due now, once */
	assert_int_equal(drill_due(MIDNIGHT, true, MIDNIGHT + 5 * DAY), MIDNIGHT + 5 * DAY);
	/* a last drill in the future (the clock set back): not later than an
	 * interval from now */
	assert_int_equal(drill_due(MIDNIGHT + 30 * DAY, true, MIDNIGHT), MIDNIGHT + DAY);
	/* a partition's own drill_interval wins, its 0 turns drills off */
	part.has_drill_interval = true;
	part.drill_interval = H;
	assert_int_equal(drill_due(MIDNIGHT, true, MIDNIGHT + 1), MIDNIGHT + H);
	part.drill_interval = 0;
	assert_int_equal(drill_due(MIDNIGHT, true, MIDNIGHT + 1), 0);
	assert_int_equal(config_drill_interval(&cfg, NULL), DAY);
}

static void test_drill_due_window(void **state)
{
	int64_t d;

	(void)state;
	cfg.drill_interval = DAY;
	assert_true(config_parse_window("01:00-05:00", &cfg.win_start, &cfg.win_end));
	/* due at 12:00, outside the window: at its next opening */
	d = drill_due(MIDNIGHT - 12 * H, true, MIDNIGHT + 6 * H);
	assert_int_equal(d, MIDNIGHT + DAY + H);
	assert_true(schedule_in_window(d, cfg.win_start, cfg.win_end));
	/* inside: unchanged */
	assert_int_equal(drill_due(MIDNIGHT - DAY + 2 * H, true, MIDNIGHT + H),
			 MIDNIGHT + 2 * H);
}

static void test_jitter_in_window(void **state)
{
	int64_t o, d;

	(void)state;
	cfg.jitter = 2 * H;
	assert_true(config_parse_window("01:00-02:00", &cfg.win_start, &cfg.win_end));
	o = schedule_jitter_offset("host1", "orders", cfg.jitter);
	d = due(0, MIDNIGHT + 12 * H);
	assert_int_equal(d, DAY + MIDNIGHT + H + o % H);
	assert_true(schedule_in_window(d, cfg.win_start, cfg.win_end));
}

/* the backoff: 30 s, doubled per failure in a row, at most 32 min and an interval */
static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(schedule_backoff(0, 4 * H), 0);
	assert_int_equal(schedule_backoff(1, 4 * H), 30);
	assert_int_equal(schedule_backoff(2, 4 * H), 60);
	assert_int_equal(schedule_backoff(3, 4 * H), 120);
	assert_int_equal(schedule_backoff(7, 4 * H), 30 * 64);
	assert_int_equal(schedule_backoff(8, 4 * H), 30 * 64);
	assert_int_equal(schedule_backoff(4000000000u, 4 * H), 30 * 64);
	/* never more than the interval */
	assert_int_equal(schedule_backoff(7, 600), 600);
	assert_int_equal(schedule_backoff(1, 10), 10);
}

static int64_t try_at(int64_t newest, unsigned fails, int64_t last, int64_t now)
{
	struct runrec run = { .failures_in_row = fails, .last_attempt = last,
			      .last_rc = fails ? -5 : 0 };

	return schedule_next_try(&cfg, &part, "host1", newest, &run, now);
}

/* after failures: not before the last attempt + the backoff */
static void test_next_try(void **state)
{
	int64_t now = MIDNIGHT + 10 * H;

	(void)state;
	/* no failure, no record: the due time */
	assert_int_equal(try_at(0, 0, 0, now), now);
	assert_int_equal(schedule_next_try(&cfg, &part, "host1", 0, NULL, now), now);
	assert_int_equal(try_at(MIDNIGHT, 0, now - 5, now), now);
	/* never backed up, failed 5 s ago: 25 s from now, not now */
	assert_int_equal(try_at(0, 1, now - 5, now), now + 25);
	/* the third failure in a row: 2 min after it */
	assert_int_equal(try_at(0, 3, now - 5, now), now - 5 + 120);
	/* a backoff already over: due now */
	assert_int_equal(try_at(0, 1, now - 31, now), now);
	/* an interval not yet over wins over a shorter backoff */
	assert_int_equal(try_at(now - H, 1, now - 5, now), now + 3 * H);
	/* the backoff never waits more than an interval after the failure */
	part.interval = 600;
	assert_int_equal(try_at(0, 7, now - 5, now), now - 5 + 600);
	part.interval = 0;
	/* a retry outside the window waits for it to open */
	assert_true(config_parse_window("01:00-05:00", &cfg.win_start, &cfg.win_end));
	assert_int_equal(try_at(0, 1, MIDNIGHT + 5 * H - 10, MIDNIGHT + 5 * H - 5),
			 DAY + MIDNIGHT + H);
	assert_int_equal(try_at(0, 1, MIDNIGHT + 2 * H, MIDNIGHT + 2 * H + 1),
			 MIDNIGHT + 2 * H + 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_never_backed_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_just_backed_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_due_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_downtime, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_before, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_across_midnight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_due_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jitter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jitter_in_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_try, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
