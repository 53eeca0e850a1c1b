// SPDX-License-Identifier: MIT
/* The adaptive low-impact rule (agent/lowimpact.h) on synthetic pressure
 * readings: no clock, no /proc — lowimpact_step alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/lowimpact.h"

#define MIB (1ull << 20)

static void steps(struct lowimpact *li, unsigned n, double io, double cpu)
{
	for (unsigned i = 0; i < n; i++)
		lowimpact_step(li, io, cpu);
}

/* Calm: the rate grows by step per sample until it is unlimited (0). */
static void test_calm_grows_to_unlimited(void **state)
{
	struct lowimpact li;
	uint64_t before;

	(void)state;
	lowimpact_init(&li, NULL);
	assert_int_equal(li.rate, li.par.start);
	before = li.rate;
	lowimpact_step(&li, 1, 5);
	assert_int_equal(li.rate, before + li.par.step);
	steps(&li, 200, 1, 5);
	assert_int_equal(li.rate, 0);          /* above the ceiling: no limit */
	assert_int_equal(li.backoffs, 0);
	assert_int_equal(li.pauses, 0);
}

/* Rising io pressure halves the rate, never below the floor. */
static void test_high_io_backs_off_to_floor(void **state)
{
	struct lowimpact li;
	uint64_t r0;

	(void)state;
	lowimpact_init(&li, NULL);
	steps(&li, 20, 0, 0);
	r0 = li.rate;
	assert_true(r0 > li.par.floor);
	lowimpact_step(&li, li.par.high_io + 10, 0);   /* smoothed: (0 + 35) / 2 */
	lowimpact_step(&li, li.par.high_io + 10, 0);
	assert_true(li.rate < r0);
	assert_true(li.backoffs >= 1);
	steps(&li, 50, li.par.high_io + 10, 0);
	assert_int_equal(li.rate, li.par.floor);
	assert_true(li.io_max >= li.par.high_io + 10);
}

/* One spike is smoothed away; a sustained very high reading pauses (the
 * floor) at once, and calm afterwards lets the rate climb again. */
static void test_spike_pause_and_recovery(void **state)
{
	struct lowimpact li;
	uint64_t r0;

	(void)state;
	lowimpact_init(&li, NULL);
	steps(&li, 10, 0, 0);
	r0 = li.rate;
	lowimpact_step(&li, li.par.high_io * 1.5, 0);  /* average below high */
	assert_true(li.rate > r0);
	steps(&li, 3, 100, 0);
	assert_int_equal(li.rate, li.par.floor);
	assert_true(li.pauses >= 1);
	steps(&li, 4, 0, 0);
	assert_true(li.rate > li.par.floor);
}

/* CPU pressure counts too, with its own thresholds. */
static void test_cpu_pressure(void **state)
{
	struct lowimpact li;

	(void)state;
	lowimpact_init(&li, "/sys/fs/cgroup/db.slice");
	steps(&li, 10, 0, li.par.high_cpu - 5);     /* below: grows */
	assert_true(li.rate > li.par.start);
	assert_int_equal(li.backoffs, 0);
	steps(&li, 30, 0, li.par.pause_cpu + 5);
	assert_int_equal(li.rate, li.par.floor);
	assert_true(li.pauses >= 1);
	assert_string_equal(li.cgroup, "/sys/fs/cgroup/db.slice");
}

/* The floor holds however long the pressure lasts: a backup still moves. */
static void test_floor_is_never_zero(void **state)
{
	struct lowimpact li;

	(void)state;
	lowimpact_init(&li, NULL);
	steps(&li, 1000, 100, 100);
	assert_int_equal(li.rate, li.par.floor);
	assert_true(li.par.floor >= MIB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calm_grows_to_unlimited),
		cmocka_unit_test(test_high_io_backs_off_to_floor),
		cmocka_unit_test(test_spike_pause_and_recovery),
		cmocka_unit_test(test_cpu_pressure),
		cmocka_unit_test(test_floor_is_never_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
