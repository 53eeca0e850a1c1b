/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_LOG_H
#define SNAPSHIP_COMMON_LOG_H

/*
 * One line per event on stderr ("snapship: warning: ..."), suitable for
 * journald.  Never pass a secret to these functions.
 *
 * Two formats (log_set_format): text, the default, and json, one object
 * per line {"time", "level", "msg"[, "partition"][, "region"]} for log
 * shippers.  When stderr is the journal (JOURNAL_STREAM names its device
 * and inode: log_detect_journal), every line starts with its syslog
 * priority "<N>" (sd-daemon.h), which journald takes as the priority.
 */

#include <stdbool.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/* "text" or "json" into *format_ret: 0, or -EINVAL for anything else. */
int log_parse_format(const char *s, enum log_format *format_ret);

/* Look at JOURNAL_STREAM ("DEV:INO") and fstat(2): prefix the priority
 * when they match.  Returns whether they did. */
bool log_detect_journal(void);

/*
 * What the lines of this thread are about, for the json format: the
 * partition and region (NULL: none).  Copied; names longer than 64 bytes
 * are cut.
 */
void log_set_context(const char *partition, const char *region);

/* hook(level, line) for every line logged (as printed, control characters
 * escaped; level filter applied); NULL: none. */
void log_set_hook(void (*hook)(enum log_level level, const char *line));

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
