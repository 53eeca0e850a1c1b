// SPDX-License-Identifier: MIT
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "common/util.h"

static enum log_level cur_level = LOG_WARN;
static enum log_format cur_format = LOG_FORMAT_TEXT;
static bool to_journal;
static void (*log_hook)(enum log_level level, const char *line);
static _Thread_local char ctx_partition[UTIL_NAME_MAX + 1], ctx_region[UTIL_NAME_MAX + 1];

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

void log_set_format(enum log_format format)
{
	cur_format = format;
}

enum log_format log_get_format(void)
{
	return cur_format;
}

int log_parse_format(const char *s, enum log_format *format_ret)
{
	if (!strcmp(s, "text"))
		*format_ret = LOG_FORMAT_TEXT;
	else if (!strcmp(s, "json"))
		*format_ret = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

bool log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	to_journal = false;
	if (!js || sscanf(js, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(2, &st))
		return false;
	to_journal = (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
	return to_journal;
}

void log_set_context(const char *partition, const char *region)
{
	snprintf(ctx_partition, sizeof(ctx_partition), "%s", partition ? partition : "");
	snprintf(ctx_region, sizeof(ctx_region), "%s", region ? region : "");
}

/* One JSON object (compact, one line) for the json format; NULL when out
 * of memory. */
static char *json_line(enum log_level level, const char *msg)
{
	static const char *const names[] = {
		[LOG_ERROR] = "error", [LOG_WARN] = "warning",
		[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
	};
	char when[96];
	struct timespec ts;
	struct tm tm;
	json_t *o;
	char *s;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, ts.tv_nsec / 1000000);
	o = json_pack("{s:s, s:s, s:s}", "time", when, "level", names[level], "msg", msg);
	if (o && ctx_partition[0])
		json_object_set_new(o, "partition", json_string(ctx_partition));
	if (o && ctx_region[0])
		json_object_set_new(o, "region", json_string(ctx_region));
	s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(o);
	return s;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_ERROR] = "error: ",
		[LOG_WARN] = "warning: ",
		[LOG_INFO] = "",
		[LOG_DEBUG] = "debug: ",
	};
	static const char *const prio[] = {
		[LOG_ERROR] = SD_ERR, [LOG_WARN] = SD_WARNING,
		[LOG_INFO] = SD_INFO, [LOG_DEBUG] = SD_DEBUG,
	};
	char line[2048], shown[4 * sizeof(line)];
	const char *pfx = to_journal ? prio[level] : "";
	char *js = NULL;
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
	if (cur_format == LOG_FORMAT_JSON)
		js = json_line(level, shown);
	if (js)
		fprintf(stderr, "%s%s\n", pfx, js);
	else
		fprintf(stderr, "%ssnapship: %s%s\n", pfx, names[level], shown);
	free(js);
	if (log_hook)
		log_hook(level, shown);
}
