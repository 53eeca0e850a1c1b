// SPDX-License-Identifier: MIT
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/util.h"

static enum log_level cur_level = LOG_WARN;
static void (*log_hook)(enum log_level level, const char *line);

void log_set_hook(void (*hook)(enum log_level level, const char *line))
{
	log_hook = hook;
}

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_ERROR] = "error: ",
		[LOG_WARN] = "warning: ",
		[LOG_INFO] = "",
		[LOG_DEBUG] = "debug: ",
	};
	char line[2048], shown[4 * sizeof(line)];
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* names from a store may hold control characters (a partition named
	 * to set the window title): never send them to a terminal or split
	 * the line.  One write per line so concurrent writers do not
	 * interleave. */
	util_escape_ctl(line, shown, sizeof(shown));
	fprintf(stderr, "snapship: %s%s\n", names[level], shown);
	if (log_hook)
		log_hook(level, shown);
}
