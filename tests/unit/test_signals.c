// SPDX-License-Identifier: MIT
/* signals.c: a stop request sets the flag (first signal kept), SIGHUP is a
 * stop or a reload, the self-pipe wakes a poll and drains, SIGPIPE is
 * ignored, a second SIGINT/SIGTERM exits at once with 128 + sig.  The
 * module's state is the process's: every case runs in a child of its own
 * and reports through its exit status (0 ok, else the failed check). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/signals.h"

/* Run fn in a child; its wait status. */
static int in_child(int (*fn)(void))
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

#define CHECK(n, cond) do { if (!(cond)) return (n); } while (0)

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int child_before_install(void)
{
	/* nothing pending, nothing to poll, harmless calls */
	CHECK(1, signals_stop() == 0);
	CHECK(2, !signals_cancelled(NULL));
	CHECK(3, !signals_take_reload());
	CHECK(4, signals_fd() < 0);
	signals_drain();
	return 0;
}

static int child_term(void)
{
	CHECK(1, signals_install() == 0);
	CHECK(2, signals_install() == 0);          /* idempotent */
	CHECK(3, signals_fd() >= 0);
	CHECK(4, !readable(signals_fd(), 0));
	CHECK(5, !signals_cancelled(NULL));
	CHECK(6, raise(SIGTERM) == 0);           /* still alive: caught */
	CHECK(7, signals_stop() == SIGTERM);
	CHECK(8, signals_cancelled(NULL));
	CHECK(9, readable(signals_fd(), 1000));
	signals_drain();
	CHECK(10, !readable(signals_fd(), 0));
	CHECK(11, !signals_take_reload());
	CHECK(12, !strcmp(signals_name(SIGTERM), "SIGTERM"));
	return 0;
}

static int child_pipe(void)
{
	CHECK(1, signals_install() == 0);
	CHECK(2, raise(SIGPIPE) == 0);           /* ignored */
	CHECK(3, signals_stop() == 0);
	return 0;
}

static int child_hup_reload(void)
{
	CHECK(1, signals_install() == 0);
	signals_hup_reloads(true);
	CHECK(2, raise(SIGHUP) == 0);
	CHECK(3, raise(SIGHUP) == 0);
	CHECK(4, signals_stop() == 0);           /* a reload is not a stop */
	CHECK(5, !signals_cancelled(NULL));
	CHECK(6, readable(signals_fd(), 1000));
	signals_drain();
	CHECK(7, signals_take_reload());         /* once per SIGHUP */
	CHECK(8, signals_take_reload());
	CHECK(9, !signals_take_reload());
	return 0;
}

static int child_hup_stop(void)
{
	CHECK(1, signals_install() == 0);
	CHECK(2, raise(SIGHUP) == 0);
	CHECK(3, signals_stop() == SIGHUP);
	CHECK(4, signals_cancelled(NULL));
	CHECK(5, !signals_take_reload());
	CHECK(6, raise(SIGHUP) == 0);            /* a second HUP: still alive */
	CHECK(7, signals_stop() == SIGHUP);
	return 0;
}

static int child_second_int(void)
{
	CHECK(1, signals_install() == 0);
	CHECK(2, raise(SIGINT) == 0);
	CHECK(3, signals_stop() == SIGINT);
	raise(SIGINT);                           /* _exit(130) in the handler */
	return 99;
}

static int child_term_then_int(void)
{
	CHECK(1, signals_install() == 0);
	CHECK(2, raise(SIGTERM) == 0);
	raise(SIGINT);                           /* _exit(130) */
	return 99;
}

static void test_before_install(void **state)
{
	int st = in_child(child_before_install);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_term_flag_and_fd(void **state)
{
	int st = in_child(child_term);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_sigpipe_ignored(void **state)
{
	int st = in_child(child_pipe);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_hup_reloads(void **state)
{
	int st = in_child(child_hup_reload);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_hup_stops(void **state)
{
	int st = in_child(child_hup_stop);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_second_signal_exits(void **state)
{
	int st = in_child(child_second_int);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 128 + SIGINT);
	st = in_child(child_term_then_int);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 128 + SIGINT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_before_install),
		cmocka_unit_test(test_term_flag_and_fd),
		cmocka_unit_test(test_sigpipe_ignored),
		cmocka_unit_test(test_hup_reloads),
		cmocka_unit_test(test_hup_stops),
		cmocka_unit_test(test_second_signal_exits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
