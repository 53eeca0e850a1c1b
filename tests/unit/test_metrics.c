// SPDX-License-Identifier: MIT
/* The metrics file's text for a synthetic state (run records, geo state of
 * the latest backups), line by line; label values escaped as the
 * exposition format says; the drill facts from drill records (a pass, a
 * failure with its kind, none); metrics_write replaces the file atomically
 * (mode 0644, no temporary file left) and run records round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/backup.h"
#include "agent/config.h"
#include "agent/metrics.h"
#include "agent/runrec.h"
#include "common/err.h"

#define NOW_S 1800000000LL
#define NOW_NS (NOW_S * 1000000000LL)

/* Is line (whole) in text? */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

#define assert_line(text, line) do {                                          \
		if (!has_line((text), (line)))                                \
			fail_msg("missing line: %s\n--- text:\n%s", (line), (text)); \
	} while (0)

static void test_render(void **state)
{
	struct runrec ok = { .last_attempt = NOW_S - 60, .last_success = NOW_S - 60,
			     .duration_s = 12.5, .snapshot_held_s = 10.25,
			     .logical_bytes = 1048576, .stored_bytes = 4096,
			     .failures_total = 2, .slowed_s = 1.5 };
	struct runrec bad = { .last_attempt = NOW_S - 30, .last_success = 0, .last_rc = -5,
			      .last_error = (char *)"boom", .duration_s = 3,
			      .failures_total = 7 };
	struct geo_state gs = { .committed_ns = NOW_NS - 100 * 1000000000LL, .n = 2 };
	struct metrics_part parts[] = {
		{ .partition = "db", .run = &ok, .next_due = NOW_S + 3600, .retained = 3, .gs = &gs },
		{ .partition = "logs", .run = &bad, .retained = 0 },
		{ .partition = "fresh", .run = NULL, .retained = -1 },
	};
	char *text;

	(void)state;
	strcpy(gs.r[0].name, "west");
	gs.r[0].state = RS_VERIFIED;
	gs.r[0].lag_s = 4.5;
	strcpy(gs.r[1].name, "north");
	gs.r[1].state = RS_PENDING;
	gs.r[1].lag_s = -1;
	assert_int_equal(metrics_render("h1", parts, 3, NOW_NS, &text), 0);
	assert_line(text, "# HELP snapship_last_success_timestamp_seconds Unix time of the last successful backup of the partition (0: none recorded).");
	assert_line(text, "# TYPE snapship_last_success_timestamp_seconds gauge");
	assert_line(text, "snapship_last_success_timestamp_seconds{host=\"h1\",partition=\"db\"} 1799999940");
	assert_line(text, "snapship_last_success_timestamp_seconds{host=\"h1\",partition=\"logs\"} 0");
	assert_line(text, "snapship_last_success_timestamp_seconds{host=\"h1\",partition=\"fresh\"} 0");
	assert_line(text, "snapship_last_attempt_timestamp_seconds{host=\"h1\",partition=\"logs\"} 1799999970");
	assert_line(text, "snapship_last_attempt_success{host=\"h1\",partition=\"db\"} 1");
	assert_line(text, "snapship_last_attempt_success{host=\"h1\",partition=\"logs\"} 0");
	assert_null(strstr(text, "snapship_last_attempt_success{host=\"h1\",partition=\"fresh\"}"));
	assert_line(text, "snapship_backup_duration_seconds{host=\"h1\",partition=\"db\"} 12.5");
	assert_line(text, "snapship_backup_duration_seconds{host=\"h1\",partition=\"logs\"} 3");
	assert_line(text, "snapship_backup_logical_bytes{host=\"h1\",partition=\"db\"} 1048576");
	assert_line(text, "snapship_backup_stored_bytes{host=\"h1\",partition=\"db\"} 4096");
	assert_null(strstr(text, "snapship_backup_stored_bytes{host=\"h1\",partition=\"logs\"}"));
	assert_line(text, "snapship_backups_retained{host=\"h1\",partition=\"db\"} 3");
	assert_line(text, "snapship_backups_retained{host=\"h1\",partition=\"logs\"} 0");
	assert_null(strstr(text, "snapship_backups_retained{host=\"h1\",partition=\"fresh\"}"));
	assert_line(text, "# TYPE snapship_failures_total counter");
	assert_line(text, "snapship_failures_total{host=\"h1\",partition=\"db\"} 2");
	assert_line(text, "snapship_failures_total{host=\"h1\",partition=\"logs\"} 7");
	assert_line(text, "snapship_failures_total{host=\"h1\",partition=\"fresh\"} 0");
	assert_line(text, "snapship_snapshot_held_seconds{host=\"h1\",partition=\"db\"} 10.25");
	assert_line(text, "snapship_next_due_timestamp_seconds{host=\"h1\",partition=\"db\"} 1800003600");
	assert_null(strstr(text, "snapship_next_due_timestamp_seconds{host=\"h1\",partition=\"logs\"}"));
	assert_line(text, "snapship_backup_slowed_seconds{host=\"h1\",partition=\"db\"} 1.5");
	assert_line(text, "snapship_geo_protected{host=\"h1\",partition=\"db\",region=\"west\"} 1");
	assert_line(text, "snapship_geo_protected{host=\"h1\",partition=\"db\",region=\"north\"} 0");
	assert_line(text, "snapship_replication_lag_seconds{host=\"h1\",partition=\"db\",region=\"west\"} 4.5");
	assert_line(text, "snapship_replication_lag_seconds{host=\"h1\",partition=\"db\",region=\"north\"} 100");
	assert_line(text, "snapship_metrics_timestamp_seconds{host=\"h1\"} 1800000000");
	/* every family's samples together, after its HELP and TYPE */
	assert_true(strstr(text, "# TYPE snapship_backups_retained gauge") <
		    strstr(text, "snapship_backups_retained{"));
	assert_true(strstr(text, "snapship_backups_retained{host=\"h1\",partition=\"logs\"}") <
		    strstr(text, "# HELP snapship_failures_total"));
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);
}

static void test_render_drills(void **state)
{
	struct drillrec pass = { .last_drill = NOW_S - 600, .last_pass = NOW_S - 600,
				 .passed = true, .region = "west", .rpo_s = 3600.5,
				 .rto_s = 12.25, .bytes = 1000000 };
	struct drillrec rpo = { .last_drill = NOW_S - 60, .last_pass = NOW_S - 86400,
				.passed = false, .failure = "rpo", .region = "west",
				.rpo_s = 90000, .rto_s = 2, .bytes = 5 };
	struct drillrec missing = { .last_drill = NOW_S - 30, .passed = false,
				    .failure = "missing", .region = "east", .rpo_s = -1,
				    .rto_s = -1 };
	struct drillrec none = { .rpo_s = -1, .rto_s = -1 };
	struct metrics_part parts[] = {
		{ .partition = "db", .retained = -1, .drill = &pass },
		{ .partition = "logs", .retained = -1, .drill = &rpo },
		{ .partition = "new", .retained = -1, .drill = &missing },
		{ .partition = "never", .retained = -1, .drill = &none },
		{ .partition = "norec", .retained = -1 },
	};
	const char *kinds[] = { "missing", "unreachable", "corrupt", "checksum", "rpo", "rto", "error" };
	char *text, line[256];

	(void)state;
	assert_int_equal(metrics_render("h1", parts, 5, NOW_NS, &text), 0);
	assert_line(text, "# TYPE snapship_drill_last_timestamp_seconds gauge");
	assert_line(text, "snapship_drill_last_timestamp_seconds{host=\"h1\",partition=\"db\"} 1799999400");
	assert_line(text, "snapship_drill_last_success_timestamp_seconds{host=\"h1\",partition=\"db\"} 1799999400");
	assert_line(text, "snapship_drill_last_success_timestamp_seconds{host=\"h1\",partition=\"logs\"} 1799913600");
	assert_line(text, "snapship_drill_last_success_timestamp_seconds{host=\"h1\",partition=\"new\"} 0");
	assert_line(text, "snapship_drill_rpo_seconds{host=\"h1\",partition=\"db\"} 3600.5");
	assert_line(text, "snapship_drill_rto_seconds{host=\"h1\",partition=\"db\"} 12.25");
	assert_line(text, "snapship_drill_rpo_seconds{host=\"h1\",partition=\"logs\"} 90000");
	assert_line(text, "snapship_drill_bytes{host=\"h1\",partition=\"db\"} 1000000");
	/* not measured (no backup found): omitted */
	assert_null(strstr(text, "snapship_drill_rpo_seconds{host=\"h1\",partition=\"new\"}"));
	assert_null(strstr(text, "snapship_drill_rto_seconds{host=\"h1\",partition=\"new\"}"));
	assert_line(text, "# TYPE snapship_drill_passed gauge");
	assert_line(text, "snapship_drill_passed{host=\"h1\",partition=\"db\",region=\"west\"} 1");
	assert_line(text, "snapship_drill_passed{host=\"h1\",partition=\"logs\",region=\"west\"} 0");
	assert_line(text, "snapship_drill_passed{host=\"h1\",partition=\"new\",region=\"east\"} 0");
	/* the failure as a state set: every kind, 1 for the one that failed */
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		snprintf(line, sizeof(line), "snapship_drill_failure{host=\"h1\",partition=\"db\",region=\"west\",failure=\"%s\"} 0",
			 kinds[k]);
		assert_line(text, line);
		snprintf(line, sizeof(line), "snapship_drill_failure{host=\"h1\",partition=\"logs\",region=\"west\",failure=\"%s\"} %d",
			 kinds[k], !strcmp(kinds[k], "rpo"));
		assert_line(text, line);
		snprintf(line, sizeof(line), "snapship_drill_failure{host=\"h1\",partition=\"new\",region=\"east\",failure=\"%s\"} %d",
			 kinds[k], !strcmp(kinds[k], "missing"));
		assert_line(text, line);
	}
	assert_null(strstr(text, "failure=\"cancelled\""));
	assert_null(strstr(text, "failure=\"ok\""));
	/* never drilled: no drill sample at all */
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		snprintf(line, sizeof(line), "%.*s", (int)(strchr(l, '\n') - l), l);
		if (!strncmp(line, "snapship_drill_", 15))
			assert_true(!strstr(line, "\"never\"") && !strstr(line, "\"norec\""));
	}
	assert_true(strstr(text, "# TYPE snapship_drill_failure gauge") <
		    strstr(text, "snapship_drill_failure{"));
	free(text);
}

static void test_label_escaping(void **state)
{
	struct runrec r = { .failures_total = 1 };
	struct metrics_part parts[] = {
		{ .partition = "a\"b\\c\nd", .run = &r, .retained = -1 },
		{ .partition = "plain.name-1_x", .run = &r, .retained = -1 },
	};
	char *text;

	(void)state;
	assert_int_equal(metrics_render("h\"x", parts, 2, NOW_NS, &text), 0);
	assert_line(text, "snapship_failures_total{host=\"h\\\"x\",partition=\"a\\\"b\\\\c\\nd\"} 1");
	assert_line(text, "snapship_failures_total{host=\"h\\\"x\",partition=\"plain.name-1_x\"} 1");
	/* no raw newline inside a sample: every line starts with # or snapship_ */
	for (const char *p = text; *p; p = strchr(p, '\n') + 1)
		assert_true(*p == '#' || !strncmp(p, "snapship_", 9));
	free(text);
}

static char tmpdir[] = "/tmp/snapship-test-metrics-XXXXXX";

static int count_entries(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_write_atomic(void **state)
{
	char file[256], sdir[256];
	struct config cfg = { 0 };
	struct err err = { 0 };
	struct metrics_due due = { "db", NOW_S };
	struct stat st;
	FILE *f;
	char buf[8192];
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(tmpdir));
	snprintf(file, sizeof(file), "%s/snapship.prom", tmpdir);
	snprintf(sdir, sizeof(sdir), "%s/state", tmpdir);
	cfg.state_dir = sdir;
	cfg.metrics_file = file;
	/* an old file is replaced whole */
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("old\n", f);
	fclose(f);
	/* no region: listed nothing (a warning), the run records still go out */
	assert_int_equal(runrec_note(sdir, "h1", "db", -5, "upload failed: 503", NULL, 2.0, &err), 0);
	assert_int_equal(metrics_write(&cfg, "h1", &due, 1, &err), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	f = fopen(file, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_null(strstr(buf, "old\n"));
	assert_line(buf, "snapship_failures_total{host=\"h1\",partition=\"db\"} 1");
	assert_line(buf, "snapship_last_attempt_success{host=\"h1\",partition=\"db\"} 0");
	assert_line(buf, "snapship_next_due_timestamp_seconds{host=\"h1\",partition=\"db\"} 1800000000");
	/* only the file and the state dir: no temporary file left */
	assert_int_equal(count_entries(tmpdir), 2);
	/* an unwritable place: an error naming the file, nothing left */
	cfg.metrics_file = (char *)"/nonexistent-dir/x.prom";
	assert_int_not_equal(metrics_write(&cfg, "h1", NULL, 0, &err), 0);
	assert_non_null(strstr(err.msg, "/nonexistent-dir/x.prom"));
}

static void test_runrec(void **state)
{
	struct backup_result res = { 0 };
	struct runrec r;
	struct err err = { 0 };
	char sdir[256];

	(void)state;
	snprintf(sdir, sizeof(sdir), "%s/state", tmpdir);
	assert_int_equal(runrec_load(sdir, "h1", "none", &r, &err), 0);
	assert_int_equal(r.last_attempt, 0);
	res.m.logical_bytes = 100;
	res.m.stored_bytes = 50;
	res.m.snap_time_ns = 1000000000LL;
	res.m.finished_ns = 3500000000LL;
	assert_int_equal(runrec_note(sdir, "h1", "db", 0, NULL, &res, 4.0, &err), 0);
	assert_int_equal(runrec_note(sdir, "h1", "db", -5, "bad \x1b name", NULL, 1.0, &err), 0);
	assert_int_equal(runrec_load(sdir, "h1", "db", &r, &err), 0);
	assert_int_equal(r.failures_total, 2);   /* one in test_write_atomic */
	assert_int_equal(r.last_rc, -5);
	assert_string_equal(r.last_error, "bad \\x1b name");
	assert_true(r.last_success > 0 && r.last_success <= r.last_attempt);
	assert_int_equal(r.logical_bytes, 100);  /* the success's, kept */
	assert_int_equal(r.stored_bytes, 50);
	assert_true(r.snapshot_held_s > 2.49 && r.snapshot_held_s < 2.51);
	assert_int_equal(r.failures_in_row, 1);
	runrec_clear(&r);
	/* failures in a row count up, a success resets them */
	assert_int_equal(runrec_note(sdir, "h1", "db", -5, "again", NULL, 1.0, &err), 0);
	assert_int_equal(runrec_load(sdir, "h1", "db", &r, &err), 0);
	assert_int_equal(r.failures_in_row, 2);
	assert_int_equal(r.failures_total, 3);
	runrec_clear(&r);
	assert_int_equal(runrec_note(sdir, "h1", "db", 0, NULL, &res, 4.0, &err), 0);
	assert_int_equal(runrec_load(sdir, "h1", "db", &r, &err), 0);
	assert_int_equal(r.failures_in_row, 0);
	assert_int_equal(r.failures_total, 3);
	runrec_clear(&r);
	/* a record of an earlier version (no failures_in_row) that failed: one */
	{
		static const char old[] = "{\"last_attempt\": 5, \"last_success\": 0, \"last_rc\": -5, \"last_error\": \"x\", \"duration_s\": 1.0, \"snapshot_held_s\": 0.0, \"logical_bytes\": 0, \"stored_bytes\": 0, \"failures_total\": 4, \"slowed_s\": 0.0}";
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/runs/h1/old.json", sdir);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(old, f);
		fclose(f);
		assert_int_equal(runrec_load(sdir, "h1", "old", &r, &err), 0);
		assert_int_equal(r.failures_in_row, 1);
		runrec_clear(&r);
	}
	/* names snapship does not write are refused */
	assert_int_equal(runrec_load(sdir, "h1", "../x", &r, &err), -22);
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	if (strchr(tmpdir, 'X'))
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_drills),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_runrec),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
