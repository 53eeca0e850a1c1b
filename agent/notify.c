// SPDX-License-Identifier: MIT
#include "agent/notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* sd_notify with unset_environment 0: the agent notifies again and again */
static void notify_send(const char *state)
{
	int ret;

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

	if (!getenv("NOTIFY_SOCKET"))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* one line: a newline would end the assignment early */
	util_escape_ctl(text, shown, sizeof(shown));
	snprintf(state, sizeof(state), "STATUS=%s", shown);
	notify_send(state);
}

uint64_t notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
