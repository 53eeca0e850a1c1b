/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_WHEN_H
#define SNAPSHIP_COMMON_WHEN_H

/*
 * A point in time typed by an operator (restore --at, list --at):
 *
 *   2026-12-03T08:00:00Z          RFC 3339: 'T', 't' or a space between
 *   2026-12-03 10:00:00+02:00     date and time; Z or an offset +HH:MM;
 *   2026-12-03T07:59:58.25Z       1 to 9 fraction digits (more are cut)
 *   2026-12-03                    a date alone: its midnight UTC
 *   now, 2h ago, 90m ago, 3d ago  a duration ago, in the units of the
 *   1w ago, 2 hours ago           config's durations (s m h d w) or their
 *                                 words (sec, min, hour(s), day(s), ...)
 *
 * A time covers its last written digit: 08:00:00Z is the whole second
 * 08:00:00.000000000 to .999999999 (list shows snapshot times to the
 * second, and a time copied from it must pick that backup); 07:59:58.25Z
 * covers .25 to .259999999.  Relative times and "now" count whole seconds.
 * A leap second (:60, RFC 3339 allows it) is the last instant of :59 —
 * POSIX time has none.  A date-time without Z or an offset is refused:
 * snapship shows every time in UTC, and a local time would be a guess.
 * Years 1970 to 2262 (nanoseconds since the epoch in 64 bits).
 */

#include <stddef.h>
#include <stdint.h>

struct err;

struct when {
	int64_t ns;        /* the first nanosecond the time covers (unix epoch) */
	int64_t last_ns;   /* the last one: "at or before" compares with this */
	int digits;        /* fraction digits given (0 to 9): how it is shown */
};

/*
 * Parse s (the option's argument; name: the option, for messages such as
 * `--at "yesterday-ish": not a time: ...`) relative to now_ns into *w.
 * 0, or -EINVAL with err saying why and what is accepted.
 */
int when_parse(const char *name, const char *s, int64_t now_ns, struct when *w,
	       struct err *err);

/*
 * RFC 3339 in UTC of ns, with digits fraction digits (0: to the second,
 * "2026-12-03T07:59:58Z"), into buf (returned); at least 32 bytes.
 */
const char *when_format(int64_t ns, int digits, char *buf, size_t len);

#endif
