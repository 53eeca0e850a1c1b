// SPDX-License-Identifier: MIT
/* notify_*: a datagram socket as NOTIFY_SOCKET (what systemd listens on
 * for a Type=notify service) receives READY=1, STATUS=..., WATCHDOG=1,
 * RELOADING=1 and STOPPING=1; without NOTIFY_SOCKET nothing is sent;
 * WATCHDOG_USEC/WATCHDOG_PID give the watchdog interval. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/notify.h"

static int sock = -1;
static char path[108];

static int setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	snprintf(path, sizeof(path), "/tmp/snapship-test-notify-%ld.sock", (long)getpid());
	unlink(path);
	strcpy(sa.sun_path, path);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)))
		return -1;
	return setenv("NOTIFY_SOCKET", path, 1);
}

static int teardown(void **state)
{
	(void)state;
	close(sock);
	unlink(path);
	return 0;
}

/* The next datagram (within 5 s) into buf; its length or -1 if none came. */
static ssize_t next_msg(char *buf, size_t len, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	n = recv(sock, buf, len - 1, 0);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void expect(const char *want)
{
	char buf[4096];

	assert_true(next_msg(buf, sizeof(buf), 5000) >= 0);
	assert_string_equal(buf, want);
}

static void test_messages(void **state)
{
	(void)state;
	notify_ready();
	expect("READY=1");
	notify_status("backing up %s (%s)", "orders", "upload");
	expect("STATUS=backing up orders (upload)");
	notify_watchdog();
	expect("WATCHDOG=1");
	notify_reloading();
	expect("RELOADING=1");
	notify_stopping();
	expect("STOPPING=1");
	/* one line: a newline in the text cannot start another assignment */
	notify_status("a\nMAINPID=1");
	expect("STATUS=a\\x0aMAINPID=1");
	/* NOTIFY_SOCKET stays for the next call */
	notify_ready();
	expect("READY=1");
}

static void test_no_socket(void **state)
{
	char buf[256];

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	notify_ready();
	notify_status("x");
	notify_watchdog();
	assert_int_equal(next_msg(buf, sizeof(buf), 200), -1);
	setenv("NOTIFY_SOCKET", path, 1);
}

static void test_watchdog_usec(void **state)
{
	char pid[32];

	(void)state;
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(notify_watchdog_usec(), 0);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(notify_watchdog_usec(), 30000000);
	/* meant for another process: not ours */
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_no_socket),
		cmocka_unit_test(test_watchdog_usec),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
