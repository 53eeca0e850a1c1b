/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_LOG_H
#define SNAPSHIP_COMMON_LOG_H

/*
 * One line per event on stderr ("snapship: warning: ..."), suitable for
 * journald.  Never pass a secret to these functions.
 */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

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
