// SPDX-License-Identifier: MIT
/* status_build's judgement of each partition (one region: no state read):
 * never, stale (rpo_max of the partition, of [agent], or 2 x interval),
 * ok; configured partitions always listed, others not judged by age;
 * the worst state gives the exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent/status.h"
#include "common/err.h"

#define NOW_NS (2000000000LL * 1000000000LL)
#define HOUR 3600

static struct manifest mk(const char *part, const char *id, int64_t age_s)
{
	struct manifest m;

	memset(&m, 0, sizeof(m));
	m.partition = (char *)part;
	strcpy(m.backup_id, id);
	m.snap_time_ns = NOW_NS - age_s * 1000000000LL;
	return m;
}

static const struct status_row *row_of(const struct status_result *res, const char *part)
{
	for (size_t i = 0; i < res->n; i++)
		if (!strcmp(res->rows[i].partition, part))
			return &res->rows[i];
	fail_msg("no row for %s", part);
	return NULL;
}

static void test_judge(void **state)
{
	struct cfg_partition parts[] = {
		{ .name = (char *)"fresh", .path = (char *)"/f" },
		{ .name = (char *)"old", .path = (char *)"/o" },
		{ .name = (char *)"none", .path = (char *)"/n" },
		{ .name = (char *)"own", .path = (char *)"/w", .rpo_max = 10 * HOUR },
	};
	struct config cfg = { .interval = HOUR, .parts = parts, .nparts = 4 };
	struct manifest m[] = {
		mk("old", "20260101T000000Z-000001", 3 * HOUR),
		mk("fresh", "20260101T000000Z-000002", 5 * HOUR),
		mk("fresh", "20260101T000000Z-000003", HOUR),
		mk("own", "20260101T000000Z-000004", 5 * HOUR),
		mk("stray", "20260101T000000Z-000005", 1000 * HOUR),
	};
	struct catalog_list list = { .m = m, .n = 5 };
	struct regions rs = { .n = 1 };
	struct status_in in = { .state_dir = "/nonexistent", .rs = &rs, .host = "h",
				.cfg = &cfg, .configured = true, .now_ns = NOW_NS };
	struct status_result res;

	(void)state;
	assert_int_equal(status_build(&in, &list, &res), 0);
	assert_int_equal(res.n, 5);
	/* by name */
	assert_string_equal(res.rows[0].partition, "fresh");
	assert_string_equal(res.rows[4].partition, "stray");
	assert_int_equal(row_of(&res, "fresh")->state, STATUS_OK);
	assert_int_equal(row_of(&res, "fresh")->backups, 2);
	assert_string_equal(row_of(&res, "fresh")->latest->backup_id, "20260101T000000Z-000003");
	assert_int_equal(row_of(&res, "fresh")->rpo_max, 2 * HOUR);
	assert_int_equal(row_of(&res, "old")->state, STATUS_STALE);
	assert_int_equal(row_of(&res, "none")->state, STATUS_NEVER);
	assert_null(row_of(&res, "none")->latest);
	assert_int_equal(row_of(&res, "own")->state, STATUS_OK);       /* its own 10 h */
	assert_int_equal(row_of(&res, "stray")->state, STATUS_OK);     /* not judged */
	assert_false(row_of(&res, "stray")->configured);
	assert_int_equal(row_of(&res, "stray")->rpo_max, 0);
	assert_int_equal(res.not_ok, 2);
	assert_int_equal(res.worst, STATUS_NEVER);
	assert_int_equal(status_exit(res.worst), 5);
	status_result_free(&res);

	/* [agent] rpo_max = 4h: old is ok, own keeps 10 h; no config: every
	 * partition judged, none not listed */
	cfg.rpo_max = 4 * HOUR;
	in.configured = false;
	assert_int_equal(status_build(&in, &list, &res), 0);
	assert_int_equal(res.n, 4);
	assert_int_equal(row_of(&res, "old")->state, STATUS_OK);
	assert_int_equal(row_of(&res, "stray")->state, STATUS_STALE);
	assert_int_equal(row_of(&res, "stray")->rpo_max, 4 * HOUR);
	assert_int_equal(res.worst, STATUS_STALE);
	assert_int_equal(status_exit(res.worst), 4);
	status_result_free(&res);

	/* nothing at all */
	list.n = 0;
	assert_int_equal(status_build(&in, &list, &res), 0);
	assert_int_equal(res.n, 0);
	assert_int_equal(status_exit(res.worst), 0);
	status_result_free(&res);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(status_state_name(STATUS_OK), "ok");
	assert_string_equal(status_state_name(STATUS_AT_RISK), "at risk");
	assert_string_equal(status_state_name(STATUS_STALE), "stale");
	assert_string_equal(status_state_name(STATUS_NEVER), "never");
	assert_int_equal(status_exit(STATUS_OK), 0);
	assert_int_equal(status_exit(STATUS_AT_RISK), 3);
	assert_int_equal(status_exit(STATUS_STALE), 4);
	assert_int_equal(status_exit(STATUS_NEVER), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_judge),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
