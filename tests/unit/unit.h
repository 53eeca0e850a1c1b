/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_TESTS_UNIT_UNIT_H
#define SNAPSHIP_TESTS_UNIT_UNIT_H

/*
 * Honest skips for cmocka programs.  A case that cannot run here calls
 * unit_skip("reason"), which prints "SKIP: reason" (the line tests/run.sh
 * reports) and skips the case.  unit_main() runs the group and returns
 * 77 — skipped — when every case skipped, so a program that tested nothing
 * is never counted as passed; otherwise cmocka's count of failed cases.
 * Include after <cmocka.h>.
 */

#include <stdarg.h>
#include <stdio.h>

static unsigned unit_skipped;

__attribute__((format(printf, 1, 2), unused))
static void unit_skip(const char *fmt, ...)
{
	va_list ap;

	fputs("SKIP: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	unit_skipped++;
	skip();
}

#define unit_main(tests, setup, teardown)                                     \
	unit_finish(cmocka_run_group_tests(tests, setup, teardown),           \
		    sizeof(tests) / sizeof((tests)[0]))

__attribute__((unused))
static int unit_finish(int failed, size_t n)
{
	if (failed == 0 && n > 0 && unit_skipped == n) {
		printf("SKIP: all %zu cases skipped (see above)\n", n);
		return 77;
	}
	return failed;
}

#endif
