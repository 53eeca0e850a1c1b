// SPDX-License-Identifier: MIT
/*
 * Restore by time (issue 13): the times an operator types (when_parse —
 * RFC 3339 with offsets, fractions, a space for T, a date alone, leap days
 * and leap seconds, relative "2h ago" in the config's units; bad input
 * refused with a message saying what is accepted) and the backup restore
 * --at picks from a listing (catalog_at — exactly at, between, before the
 * first, after the last, ties, several partitions).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent/catalog.h"
#include "common/err.h"
#include "common/when.h"

#define NS 1000000000LL
/* 2026-12-03T08:00:00Z */
#define T0 1796284800LL
/* "now" for the relative times: 2026-12-03T08:00:00.75Z */
#define NOW (T0 * NS + 750000000LL)

static int64_t at_ns(const char *s)
{
	struct when w;
	struct err err = { 0 };

	if (when_parse("--at", s, NOW, &w, &err)) {
		print_error("when_parse(\"%s\"): %s\n", s, err.msg);
		fail();
	}
	return w.ns;
}

static void parses_to(const char *s, int64_t ns, int64_t last_ns)
{
	struct when w;
	struct err err = { 0 };

	if (when_parse("--at", s, NOW, &w, &err)) {
		print_error("when_parse(\"%s\"): %s\n", s, err.msg);
		fail();
	}
	if (w.ns != ns || w.last_ns != last_ns) {
		print_error("\"%s\": got %lld..%lld, want %lld..%lld\n", s, (long long)w.ns,
			    (long long)w.last_ns, (long long)ns, (long long)last_ns);
		fail();
	}
}

/* s is refused, the message naming it, why (want) and what is accepted */
static void refused(const char *s, const char *want)
{
	struct when w;
	struct err err = { 0 };

	if (!when_parse("--at", s, NOW, &w, &err)) {
		print_error("\"%s\" was accepted (%lld)\n", s, (long long)w.ns);
		fail();
	}
	assert_int_equal(err.code, -EINVAL);
	assert_non_null(strstr(err.msg, "--at \""));
	assert_non_null(strstr(err.msg, "use RFC 3339 (2026-12-03T08:00:00Z) or a duration ago (2h ago)"));
	if (!strstr(err.msg, want)) {
		print_error("\"%s\": message \"%s\" lacks \"%s\"\n", s, err.msg, want);
		fail();
	}
}

static void test_rfc3339(void **state)
{
	(void)state;
	/* to the second: the whole second */
	parses_to("2026-12-03T08:00:00Z", T0 * NS, T0 * NS + NS - 1);
	parses_to("2026-12-03t08:00:00z", T0 * NS, T0 * NS + NS - 1);
	parses_to("2026-12-03 08:00:00Z", T0 * NS, T0 * NS + NS - 1);
	parses_to("  2026-12-03T08:00:00Z\t", T0 * NS, T0 * NS + NS - 1);
	/* offsets: east of UTC is earlier in UTC */
	assert_int_equal(at_ns("2026-12-03T10:00:00+02:00"), T0 * NS);
	assert_int_equal(at_ns("2026-12-03T02:30:00-05:30"), T0 * NS);
	assert_int_equal(at_ns("2026-12-03T08:00:00+00:00"), T0 * NS);
	assert_int_equal(at_ns("2026-12-03T08:00:00-00:00"), T0 * NS);
	/* an offset across midnight and the year's end */
	assert_int_equal(at_ns("2027-01-01T01:00:00+02:00"), at_ns("2026-12-31T23:00:00Z"));
	/* fractions cover their last digit; more than 9 digits are cut */
	parses_to("2026-12-03T07:59:58.25Z", (T0 - 2) * NS + 250000000LL,
		  (T0 - 2) * NS + 259999999LL);
	parses_to("2026-12-03T07:59:58.000000001Z", (T0 - 2) * NS + 1, (T0 - 2) * NS + 1);
	parses_to("2026-12-03T07:59:58.1234567891234Z", (T0 - 2) * NS + 123456789LL,
		  (T0 - 2) * NS + 123456789LL);
	parses_to("2026-12-03T07:59:58.5+01:00", (T0 - 3602) * NS + 500000000LL,
		  (T0 - 3602) * NS + 599999999LL);
	/* a date alone: its midnight UTC, that second */
	parses_to("2026-12-03", (T0 - 8 * 3600) * NS, (T0 - 8 * 3600) * NS + NS - 1);
	/* the epoch and the last whole second that fits */
	parses_to("1970-01-01T00:00:00Z", 0, NS - 1);
	assert_true(at_ns("2262-04-11T23:47:15Z") > 0);
}

static void test_calendar_edges(void **state)
{
	(void)state;
	/* leap days: every 4th year, not every 100th, every 400th */
	assert_int_equal(at_ns("2028-02-29T12:00:00Z") + 86400 * NS,
			 at_ns("2028-03-01T12:00:00Z"));
	assert_int_equal(at_ns("2000-02-29"), 951782400LL * NS);
	refused("2026-02-29", "no such date or time");
	refused("2100-02-29T00:00:00Z", "no such date or time");
	refused("2026-04-31T00:00:00Z", "no such date or time");
	refused("2026-13-01", "no such date or time");
	refused("2026-00-10", "no such date or time");
	refused("2026-12-00", "no such date or time");
	refused("2026-12-03T24:00:00Z", "no such date or time");
	refused("2026-12-03T08:60:00Z", "no such date or time");
	/* a leap second is the last instant of :59; :60 elsewhere is not one */
	parses_to("2016-12-31T23:59:60Z", 1483228799LL * NS + NS - 1, 1483228799LL * NS + NS - 1);
	refused("2026-12-03T08:00:60Z", "no such date or time");
	refused("2026-12-03T08:59:61Z", "no such date or time");
	/* out of range */
	refused("1969-12-31T23:59:59Z", "out of range");
	refused("1970-01-01T01:00:00+02:00", "out of range");
	refused("2262-04-12T00:00:00Z", "out of range");
	refused("9999-12-31", "out of range");
}

static void test_relative(void **state)
{
	(void)state;
	/* whole seconds before now, covering that second */
	parses_to("now", T0 * NS, T0 * NS + NS - 1);
	parses_to("NOW", T0 * NS, T0 * NS + NS - 1);
	parses_to("2h ago", (T0 - 7200) * NS, (T0 - 7200) * NS + NS - 1);
	assert_int_equal(at_ns("90m ago"), (T0 - 5400) * NS);
	assert_int_equal(at_ns("3d ago"), (T0 - 3 * 86400) * NS);
	assert_int_equal(at_ns("1w ago"), (T0 - 7 * 86400) * NS);
	assert_int_equal(at_ns("45s ago"), (T0 - 45) * NS);
	assert_int_equal(at_ns("0s ago"), T0 * NS);
	assert_int_equal(at_ns("2 hours ago"), (T0 - 7200) * NS);
	assert_int_equal(at_ns("1 day AGO"), (T0 - 86400) * NS);
	assert_int_equal(at_ns("10 min  ago"), (T0 - 600) * NS);
	assert_int_equal(at_ns("2 weeks ago"), (T0 - 14 * 86400) * NS);
	refused("2 ago", "not a duration ago");
	refused("2x ago", "not a duration ago");
	refused("h ago", "not a duration ago");
	refused("-2h ago", "not a duration ago");
	refused("2h30m ago", "not a duration ago");
	refused("2.5h ago", "not a duration ago");
	refused("99999w ago", "before 1970");
	refused("99999999999999999999w ago", "not a duration ago");
}

static void test_bad_input(void **state)
{
	struct when w;
	struct err err = { 0 };

	(void)state;
	refused("yesterday-ish", "not a time");
	assert_int_equal(when_parse("--at", "yesterday-ish", NOW, &w, &err), -EINVAL);
	assert_string_equal(err.msg, "--at \"yesterday-ish\": not a time: use RFC 3339 (2026-12-03T08:00:00Z) or a duration ago (2h ago)");
	refused("", "not a time");
	refused("   ", "not a time");
	refused("2h", "not a time");
	refused("ago", "not a time");
	refused("2026-12-03T08:00:00", "no time zone: end it with Z (UTC) or an offset such as +02:00");
	refused("2026-12-03T08:00:00+0200", "not a time");
	refused("2026-12-03T08:00:00+24:00", "offset is out of range");
	refused("2026-12-03T08:00:00+02:60", "offset is out of range");
	refused("2026-12-03T08:00:00ZZ", "not a time");
	refused("2026-12-03T08:00:00.Z", "fraction");
	refused("2026-12-03T08:00Z", "not a time");
	refused("2026-12-03X08:00:00Z", "not a time");
	refused("2026-12-3", "not a time");
	refused("26-12-03", "not a time");
	refused("2026/12/03", "not a time");
	refused("20261203T080000Z", "not a time");
	refused("2026-12-03T 8:00:00Z", "not a time");
	refused("2026-12-03T08:00:00Z trailing", "not a time");
	refused("2026-12-03\n08:00:00Z", "not a time");
	/* hostile bytes come back escaped */
	refused("\033[2J", "\\x1b[2J");
	refused("a-very-long-argument-that-is-longer-than-any-time-could-ever-be-0123456789", "not a time");
}

static void test_format(void **state)
{
	char b[48];

	(void)state;
	assert_string_equal(when_format(T0 * NS + 999999999LL, 0, b, sizeof(b)),
			    "2026-12-03T08:00:00Z");
	assert_string_equal(when_format(T0 * NS + 250000000LL, 2, b, sizeof(b)),
			    "2026-12-03T08:00:00.25Z");
	assert_string_equal(when_format(0, 0, b, sizeof(b)), "1970-01-01T00:00:00Z");
	/* what it prints parses back to the same time */
	assert_int_equal(at_ns(when_format(T0 * NS + 123456789LL, 9, b, sizeof(b))),
			 T0 * NS + 123456789LL);
}

/* ---- catalog_at on synthetic listings ---- */

static struct manifest ms[8];
static struct catalog_list list;

static void add(const char *partition, const char *id, int64_t snap_s, int64_t snap_extra_ns)
{
	struct manifest *m = &ms[list.n++];

	memset(m, 0, sizeof(*m));
	snprintf(m->backup_id, sizeof(m->backup_id), "%s", id);
	m->partition = (char *)partition;
	m->snap_time_ns = snap_s * NS + snap_extra_ns;
	list.m = ms;
}

static const char *id_of(const struct manifest *m)
{
	return m ? m->backup_id : "(none)";
}

static void expect(const char *part, int64_t at, const char *pick, const char *next)
{
	struct catalog_at a;

	catalog_at(&list, part, at, &a);
	assert_string_equal(id_of(a.pick), pick);
	assert_string_equal(id_of(a.next), next);
}

static void test_catalog_at(void **state)
{
	struct catalog_at a;

	(void)state;
	list.n = 0;
	/* listed by partition, then oldest first, as catalog_list does */
	add("orders", "20261203T040000Z-aaaaaa", T0 - 4 * 3600, 5);
	add("orders", "20261203T060000Z-bbbbbb", T0 - 2 * 3600, 5);
	add("orders", "20261203T080000Z-cccccc", T0, 0);
	add("users", "20261203T070000Z-dddddd", T0 - 3600, 0);
	/* exactly at a snapshot time (and at its second, as list shows it) */
	expect("orders", (T0 - 2 * 3600) * NS + 5, "20261203T060000Z-bbbbbb", "20261203T080000Z-cccccc");
	expect("orders", (T0 - 2 * 3600) * NS + 4, "20261203T040000Z-aaaaaa", "20261203T060000Z-bbbbbb");
	expect("orders", T0 * NS, "20261203T080000Z-cccccc", "(none)");
	/* between two */
	expect("orders", (T0 - 3 * 3600) * NS, "20261203T040000Z-aaaaaa", "20261203T060000Z-bbbbbb");
	/* after the last */
	expect("orders", (T0 + 86400) * NS, "20261203T080000Z-cccccc", "(none)");
	/* before the first: nothing, the first is next; oldest says when */
	catalog_at(&list, "orders", (T0 - 5 * 3600) * NS, &a);
	assert_null(a.pick);
	assert_string_equal(id_of(a.next), "20261203T040000Z-aaaaaa");
	assert_string_equal(id_of(a.oldest), "20261203T040000Z-aaaaaa");
	assert_string_equal(id_of(a.newest), "20261203T080000Z-cccccc");
	assert_int_equal(a.n, 3);
	/* several partitions: each on its own */
	expect("users", T0 * NS, "20261203T070000Z-dddddd", "(none)");
	expect("users", (T0 - 2 * 3600) * NS, "(none)", "20261203T070000Z-dddddd");
	catalog_at(&list, "nosuch", T0 * NS, &a);
	assert_int_equal(a.n, 0);
	assert_null(a.pick);
	assert_null(a.next);
	assert_null(a.oldest);
}

static void test_catalog_at_ties(void **state)
{
	(void)state;
	list.n = 0;
	/* two backups of one snapshot time (same second, same ns): the newer
	 * by catalog_cmp_age (the id) is picked, whatever the listing order */
	add("p", "20261203T070000Z-ffffff", T0 - 3600, 0);
	add("p", "20261203T070000Z-111111", T0 - 3600, 0);
	add("p", "20261203T075959Z-222222", T0 - 1, 0);
	expect("p", (T0 - 3600) * NS, "20261203T070000Z-ffffff", "20261203T075959Z-222222");
	expect("p", (T0 - 3600) * NS - 1, "(none)", "20261203T070000Z-111111");
	/* one second, two snapshots: the ns decide */
	list.n = 0;
	add("p", "20261203T080000Z-aaaaaa", T0, 700);
	add("p", "20261203T080000Z-bbbbbb", T0, 300);
	expect("p", T0 * NS + 500, "20261203T080000Z-bbbbbb", "20261203T080000Z-aaaaaa");
	expect("p", T0 * NS + NS - 1, "20261203T080000Z-aaaaaa", "(none)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_calendar_edges),
		cmocka_unit_test(test_relative),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_catalog_at),
		cmocka_unit_test(test_catalog_at_ties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
