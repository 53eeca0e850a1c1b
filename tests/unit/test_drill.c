// SPDX-License-Identifier: MIT
/* The drill's pieces that need no store: XML escaping (entities, characters
 * XML 1.0 forbids, bytes that are not UTF-8, cutting), failure names, the
 * default scratch directory and region, the drill record's round trip and
 * a bad record, the JUnit text for a failure, and the removal of leftovers
 * (only drill-<partition>-<backup-id> directories, never links or other
 * names, never through a link inside a copy), and the drill lock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/config.h"
#include "agent/drill.h"
#include "agent/drill_priv.h"
#include "agent/drill_report.h"
#include "agent/geo.h"
#include "common/err.h"
#include "unit.h"

#define ID "20261203T081631Z-abc123"

static char *xe(const char *s, size_t len)
{
	static char buf[512];

	return drill_xml_escape(s, buf, len);
}

static void test_xml_escape(void **state)
{
	(void)state;
	assert_string_equal(xe("a&b<c>d\"e'f", 512), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	assert_string_equal(xe("tab\there\nnl\rcr", 512), "tab\there\nnl\rcr");
	/* C0 controls, ESC, DEL is allowed in XML 1.0 (kept) */
	assert_string_equal(xe("a\x01" "b\x1b" "c\x7f", 512), "a?b?c\x7f");
	/* UTF-8 kept, broken UTF-8 replaced byte by byte */
	assert_string_equal(xe("h\xc3\xa9 \xe2\x82\xac", 512), "h\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(xe("x\xff\xfey", 512), "x??y");
	assert_string_equal(xe("\xc3", 512), "?");                 /* cut short */
	assert_string_equal(xe("\xc0\xaf", 512), "??");            /* overlong '/' */
	assert_string_equal(xe("\xed\xa0\x80", 512), "???");       /* a surrogate */
	assert_string_equal(xe("\xef\xbf\xbe", 512), "?");         /* U+FFFE */
	assert_string_equal(xe("\xf4\x90\x80\x80", 512), "????");  /* past U+10FFFF */
	assert_string_equal(xe(NULL, 512), "");
	/* cut before an entity that would not fit, never inside it */
	assert_string_equal(xe("ab&cd", 6), "ab");
	assert_string_equal(xe("ab&cd", 8), "ab&amp;");
	assert_string_equal(xe("\xc3\xa9\xc3\xa9", 4), "\xc3\xa9");
}

static void test_failure_names(void **state)
{
	(void)state;
	assert_string_equal(drill_failure_name(DRILL_OK), "ok");
	assert_string_equal(drill_failure_name(DRILL_MISSING), "missing");
	assert_string_equal(drill_failure_name(DRILL_UNREACHABLE), "unreachable");
	assert_string_equal(drill_failure_name(DRILL_CORRUPT), "corrupt");
	assert_string_equal(drill_failure_name(DRILL_CHECKSUM), "checksum");
	assert_string_equal(drill_failure_name(DRILL_RPO), "rpo");
	assert_string_equal(drill_failure_name(DRILL_RTO), "rto");
	assert_string_equal(drill_failure_name(DRILL_ERROR), "error");
	assert_string_equal(drill_failure_name(DRILL_CANCELLED), "cancelled");
	assert_string_equal(drill_failure_name((enum drill_failure)99), "error");
}

static void test_default_region(void **state)
{
	struct regions rs = { .n = 1 };

	(void)state;
	rs.v[0].primary = true;
	assert_int_equal(drill_default_region(&rs), 0);
	rs.n = 3;
	assert_int_equal(drill_default_region(&rs), 1);
	rs.v[1].primary = true;   /* never the primary when a secondary exists */
	assert_int_equal(drill_default_region(&rs), 2);
}

static char tmp[] = "/tmp/test_drill.XXXXXX";

static void test_scratch_dir(void **state)
{
	struct config cfg = { .state_dir = tmp };
	struct cfg_partition p = { .name = (char *)"db" };
	char buf[4096], want[4096], path[4096];

	(void)state;
	snprintf(want, sizeof(want), "%s/drill", tmp);
	assert_string_equal(drill_scratch_dir(&cfg, NULL, buf, sizeof(buf)), want);
	/* a bare name (zero-config form): the state dir */
	assert_string_equal(drill_scratch_dir(&cfg, &p, buf, sizeof(buf)), want);
	/* a partition on the state dir's filesystem: the state dir */
	snprintf(path, sizeof(path), "%s/part", tmp);
	assert_int_equal(mkdir(path, 0700), 0);
	p.path = path;
	assert_string_equal(drill_scratch_dir(&cfg, &p, buf, sizeof(buf)), want);
	/* another filesystem (/proc): next to its snapshots */
	p.path = (char *)"/proc/self";
	assert_string_equal(drill_scratch_dir(&cfg, &p, buf, sizeof(buf)), "/proc/.snapship/drill");
	p.snapshot_dir = (char *)"/proc/snaps";
	assert_string_equal(drill_scratch_dir(&cfg, &p, buf, sizeof(buf)), "/proc/snaps/drill");
	rmdir(path);
}

static void test_drillrec(void **state)
{
	struct drill_result res = { .partition = "db", .region = "west",
				    .backup_id = ID, .started = 1800000000,
				    .rpo_s = 3600.5, .rto_s = 12.25, .bytes = 1 << 20,
				    .failure = DRILL_RPO,
				    .message = "partition db, region west: too old" };
	struct drillrec r, back;
	struct err err = { 0 };
	char path[4096];
	FILE *f;

	(void)state;
	/* none yet: zeroed, 0 */
	assert_int_equal(drillrec_load(tmp, "h1", "db", &back, &err), 0);
	assert_int_equal(back.last_drill, 0);
	drillrec_from_result(&res, &r);
	assert_false(r.passed);
	assert_string_equal(r.failure, "rpo");
	assert_int_equal(r.last_pass, 0);
	assert_int_equal(drillrec_save(tmp, "h1", "db", &r, &err), 0);
	assert_int_equal(drillrec_load(tmp, "h1", "db", &back, &err), 0);
	assert_int_equal(back.last_drill, 1800000000);
	assert_false(back.passed);
	assert_string_equal(back.failure, "rpo");
	assert_string_equal(back.region, "west");
	assert_string_equal(back.backup_id, ID);
	assert_true(back.rpo_s == 3600.5 && back.rto_s == 12.25);
	assert_int_equal(back.bytes, 1 << 20);
	assert_string_equal(back.message, res.message);
	/* a pass */
	res.failure = DRILL_OK;
	drillrec_from_result(&res, &r);
	assert_true(r.passed);
	assert_string_equal(r.failure, "");
	assert_int_equal(r.last_pass, 1800000000);
	/* a bad record: -EBADMSG, zeroed, the message names the file */
	snprintf(path, sizeof(path), "%s/drills/h1/db.json", tmp);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"last_drill\": \"yesterday\"}", f);
	fclose(f);
	assert_int_equal(drillrec_load(tmp, "h1", "db", &back, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(back.last_drill, 0);
	/* names that are not names */
	err_clear(&err);
	assert_int_equal(drillrec_save(tmp, "../h", "db", &r, &err), -EINVAL);
	unlink(path);
}

static void test_junit_failure(void **state)
{
	struct drill_result res = { .partition = "db", .region = "west",
				    .backup_id = ID, .rpo_s = 1, .rto_s = 2.5,
				    .failure = DRILL_CORRUPT,
				    .object = "h1/db/" ID "/data.tar.zst",
				    .message = "partition db, region west: <bad> & \"worse\"" };
	char *x = drill_report_junit("h1", &res, 1);

	(void)state;
	assert_non_null(x);
	assert_non_null(strstr(x, "<testcase classname=\"snapship.drill.h1\" name=\"db\" time=\"2.500\">"));
	assert_non_null(strstr(x, "<failure type=\"corrupt\" message=\"partition db, region west: &lt;bad&gt; &amp; &quot;worse&quot;\">"));
	assert_non_null(strstr(x, "<property name=\"backup_id\" value=\"" ID "\"/>"));
	assert_non_null(strstr(x, "tests=\"1\" failures=\"1\""));
	assert_null(strstr(x, "<bad>"));
	free(x);
}

static void touch_dir(const char *name)
{
	char p[4096];

	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	assert_int_equal(mkdir(p, 0700), 0);
}

static bool exists(const char *name)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", tmp, name);
	return !lstat(p, &st);
}

static void test_leftovers(void **state)
{
	char p[4096], q[4096];
	struct err err = { 0 };
	unsigned removed = 9;
	FILE *f;

	(void)state;
	assert_true(drill_copy_name("drill-db-" ID, p, sizeof(p)));
	assert_string_equal(p, "db");
	assert_true(drill_copy_name("drill-my-part.2-" ID, p, sizeof(p)));
	assert_string_equal(p, "my-part.2");
	assert_false(drill_copy_name("drill-db-20261203T081631Z-abc12", p, sizeof(p)));
	assert_false(drill_copy_name("drill--" ID, p, sizeof(p)));
	assert_false(drill_copy_name("drill-.x-" ID, p, sizeof(p)));
	assert_false(drill_copy_name("drillx-db-" ID, p, sizeof(p)));
	assert_false(drill_copy_name("drill-db-" ID "x", p, sizeof(p)));

	/* a copy with a file, a subdirectory and a link out of it */
	touch_dir("drill-db-" ID);
	touch_dir("drill-db-" ID "/sub");
	snprintf(p, sizeof(p), "%s/drill-db-%s/sub/f", tmp, ID);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	touch_dir("precious");
	snprintf(p, sizeof(p), "%s/precious/keep", tmp);
	f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/precious", tmp);
	snprintf(q, sizeof(q), "%s/drill-db-%s/sub/link", tmp, ID);
	assert_int_equal(symlink(p, q), 0);
	/* not copies: another name, a link named like a copy, a file named so */
	touch_dir("drill-db-notanid");
	snprintf(q, sizeof(q), "%s/drill-web-%s", tmp, ID);
	assert_int_equal(symlink(p, q), 0);
	snprintf(q, sizeof(q), "%s/drill-app-%s", tmp, ID);
	f = fopen(q, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(drill_remove_leftovers(tmp, &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_false(exists("drill-db-" ID));
	assert_true(exists("precious/keep"));        /* never through the link */
	assert_true(exists("drill-db-notanid"));
	assert_true(exists("drill-web-" ID));
	assert_true(exists("drill-app-" ID));
	/* a missing scratch directory: nothing to do */
	assert_int_equal(drill_remove_leftovers("/nonexistent/drill", &removed, &err), 0);
	assert_int_equal(removed, 0);
	/* a link handed to the removal itself is refused */
	snprintf(q, sizeof(q), "%s/drill-web-%s", tmp, ID);
	assert_int_equal(drill_remove_copy(q, &err), -EINVAL);
	assert_true(exists("precious/keep"));
}

static bool always(void *ctx)
{
	(void)ctx;
	return true;
}

/* One drill at a time: a second lock waits, and gives up when cancelled. */
static void test_lock(void **state)
{
	struct err err = { 0 };
	int a, b;

	(void)state;
	a = drill_lock(tmp, NULL, NULL, &err);
	assert_true(a >= 0);
	/* flock locks are per open file: a second open conflicts */
	b = drill_lock(tmp, always, NULL, &err);
	assert_int_equal(b, -ECANCELED);
	assert_non_null(strstr(err.msg, "another drill"));
	close(a);
	err_clear(&err);
	b = drill_lock(tmp, always, NULL, &err);
	assert_true(b >= 0);
	close(b);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[4200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml_escape),
		cmocka_unit_test(test_failure_names),
		cmocka_unit_test(test_default_region),
		cmocka_unit_test(test_scratch_dir),
		cmocka_unit_test(test_drillrec),
		cmocka_unit_test(test_junit_failure),
		cmocka_unit_test(test_leftovers),
		cmocka_unit_test(test_lock),
	};

	return unit_main(tests, setup, teardown);
}
