// SPDX-License-Identifier: MIT
#include "agent/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static int worker_fd = -1;   /* notify_to_supervisor */

void notify_to_supervisor(int fd)
{
	worker_fd = fd;
}

/* One line of the worker's protocol to the supervisor (one write: the
 * pipe keeps lines under PIPE_BUF whole).  A supervisor gone (EPIPE) is
 * noticed by PR_SET_PDEATHSIG, not here. */
static void line_send(const char *line)
{
	char buf[3000];
	int n = snprintf(buf, sizeof(buf), "%s\n", line);

	if (n > 0 && (size_t)n < sizeof(buf) && write(worker_fd, buf, (size_t)n) < 0)
		log_debug("cannot write to the supervisor: %s", strerror(errno));
}

/* sd_notify with unset_environment 0: the agent notifies again and again */
static void notify_send(const char *state)
{
	char line[2600];
	int ret;

	if (worker_fd >= 0) {   /* only READY/RELOADING go on, as lines */
		if (!strcmp(state, "READY=1"))
			line_send("ready");
		else if (!strcmp(state, "RELOADING=1"))
			line_send("reloading");
		else if (!strncmp(state, "STATUS=", 7) && snprintf(line, sizeof(line), "status %s",
								      state + 7) > 0)
			line_send(line);
		return;
	}
	if (!getenv("NOTIFY_SOCKET"))
		return;
	ret = sd_notify(0, state);
	if (ret < 0)
		log_debug("sd_notify(%s): %s", state, err_str(ret));
}

void notify_ready(void)
{
	notify_send("READY=1");
}

void notify_reloading(void)
{
	notify_send("RELOADING=1");
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

void notify_status(const char *fmt, ...)
{
	char text[512], shown[4 * sizeof(text)], state[sizeof(shown) + 8];
	va_list ap;

	if (!getenv("NOTIFY_SOCKET") && worker_fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* one line: a newline would end the assignment early */
	util_escape_ctl(text, shown, sizeof(shown));
	snprintf(state, sizeof(state), "STATUS=%s", shown);
	notify_send(state);
}

void notify_next(int64_t when)
{
	char line[64];

	if (worker_fd < 0)
		return;
	snprintf(line, sizeof(line), "next %lld", (long long)when);
	line_send(line);
}

uint64_t notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (worker_fd >= 0)
		return 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
