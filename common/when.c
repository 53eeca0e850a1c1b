// SPDX-License-Identifier: MIT
/*
 * Times typed by an operator (when.h): RFC 3339 through strptime(3) and
 * timegm(3) on a string whose shape was checked first (strptime alone
 * skips blanks and takes any number of digits), durations through the
 * config's parser (util_parse_duration).
 */
#include "common/when.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define NS 1000000000LL
/* the last second whose every nanosecond fits in an int64_t: 2262-04-11 */
#define WHEN_MAX_S (INT64_MAX / NS - 1)
#define WHEN_HINT "use RFC 3339 (2026-12-03T08:00:00Z) or a duration ago (2h ago)"

static int bad(struct err *err, const char *name, const char *s, const char *why)
{
	return err_set(err, -EINVAL, "%s \"%s\": %s: " WHEN_HINT, name, UTIL_ESC(s), why);
}

static bool digits_at(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* The config's unit letter of a unit word ("hours" -> 'h'), or 0. */
static char unit_letter(const char *word, size_t len)
{
	static const struct { const char *word; char letter; } units[] = {
		{ "s", 's' }, { "sec", 's' }, { "secs", 's' }, { "second", 's' },
		{ "seconds", 's' }, { "m", 'm' }, { "min", 'm' }, { "mins", 'm' },
		{ "minute", 'm' }, { "minutes", 'm' }, { "h", 'h' }, { "hour", 'h' },
		{ "hours", 'h' }, { "d", 'd' }, { "day", 'd' }, { "days", 'd' },
		{ "w", 'w' }, { "week", 'w' }, { "weeks", 'w' },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].word) == len && !strncasecmp(units[i].word, word, len))
			return units[i].letter;
	return 0;
}

/* "2h", "2 h", "2 hours" (s: the text before " ago", len bytes) into seconds. */
static int parse_ago(const char *s, size_t len, int64_t *seconds_ret)
{
	char buf[32];
	size_t n = 0, u;
	char letter;

	while (n < len && isdigit((unsigned char)s[n]))
		n++;
	if (!n || n > 18)
		return -EINVAL;
	for (u = n; u < len && s[u] == ' '; u++)
		;
	letter = unit_letter(s + u, len - u);
	if (!letter)
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%.*s%c", (int)n, s, letter);
	return util_parse_duration(buf, seconds_ret);
}

/* now, or "<duration> ago": whole seconds before now_ns.  1 when s is
 * neither (an RFC 3339 time, maybe). */
static int parse_relative(const char *name, const char *s, int64_t now_ns,
			  struct when *w, struct err *err)
{
	size_t len = strlen(s);
	int64_t now_s = now_ns / NS, ago = 0;

	if (strcasecmp(s, "now")) {
		if (len < 5 || strcasecmp(s + len - 3, "ago") || s[len - 4] != ' ')
			return 1;
		len -= 4;
		while (len && s[len - 1] == ' ')
			len--;
		if (parse_ago(s, len, &ago))
			return bad(err, name, s, "not a duration ago (2h ago, 90m ago, 3d ago, 1w ago)");
		if (ago > now_s)
			return bad(err, name, s, "that is before 1970");
	}
	w->ns = (now_s - ago) * NS;
	w->last_ns = w->ns + NS - 1;
	w->digits = 0;
	return 0;
}

/* ".25" (p after the seconds): the fraction in ns and its digits; *p moved. */
static int parse_fraction(const char **p, int64_t *frac_ns, int *digits)
{
	const char *q = *p;
	int64_t f = 0;
	int d = 0;

	*frac_ns = 0;
	*digits = 0;
	if (*q != '.')
		return 0;
	if (!isdigit((unsigned char)*++q))
		return -EINVAL;
	for (; isdigit((unsigned char)*q); q++)
		if (d < 9) {
			f = f * 10 + (*q - '0');
			d++;
		}
	for (int i = d; i < 9; i++)
		f *= 10;
	*frac_ns = f;
	*digits = d;
	*p = q;
	return 0;
}

/* "Z", "+02:00", "-05:30" (the whole rest of the string) in seconds east. */
static int parse_offset(const char *p, int64_t *off_ret)
{
	int hh, mm;

	*off_ret = 0;
	if ((p[0] == 'Z' || p[0] == 'z') && !p[1])
		return 0;
	if ((p[0] != '+' && p[0] != '-') || !digits_at(p + 1, 2) || p[3] != ':' ||
	    !digits_at(p + 4, 2) || p[6])
		return -EINVAL;
	hh = (p[1] - '0') * 10 + (p[2] - '0');
	mm = (p[4] - '0') * 10 + (p[5] - '0');
	if (hh > 23 || mm > 59)
		return -ERANGE;
	*off_ret = (p[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
	return 0;
}

/* The fields of tm (as parsed) name a real date and time: timegm did not
 * have to carry any of them over. */
static bool tm_is_real(const struct tm *want, const struct tm *got)
{
	return want->tm_year == got->tm_year && want->tm_mon == got->tm_mon &&
	       want->tm_mday == got->tm_mday && want->tm_hour == got->tm_hour &&
	       want->tm_min == got->tm_min && want->tm_sec == got->tm_sec;
}

/* "YYYY-MM-DD" and, unless date_only, "THH:MM:SS" (T, t or a space) into tm. */
static int parse_fields(const char *s, bool date_only, struct tm *tm)
{
	char norm[20];
	const char *end;

	memset(tm, 0, sizeof(*tm));
	if (!digits_at(s, 4) || s[4] != '-' || !digits_at(s + 5, 2) || s[7] != '-' ||
	    !digits_at(s + 8, 2))
		return -EINVAL;
	if (date_only) {
		end = strptime(s, "%Y-%m-%d", tm);
		return end && !*end ? 0 : -ERANGE;
	}
	if (!strchr("Tt ", s[10]) || !digits_at(s + 11, 2) || s[13] != ':' ||
	    !digits_at(s + 14, 2) || s[16] != ':' || !digits_at(s + 17, 2))
		return -EINVAL;
	memcpy(norm, s, 19);
	norm[10] = 'T';
	norm[19] = '\0';
	end = strptime(norm, "%Y-%m-%dT%H:%M:%S", tm);
	return end && !*end ? 0 : -ERANGE;
}

static int parse_rfc3339(const char *name, const char *s, struct when *w,
			 struct err *err)
{
	size_t len = strlen(s);
	bool date_only = len == 10, leap = false;
	const char *p = s + 19;
	int64_t frac = 0, off = 0, unit = 1, t;
	struct tm tm, want;
	int digits = 0, ret;

	if (len < 10 || (len > 10 && len < 19))
		return bad(err, name, s, "not a time");
	ret = parse_fields(s, date_only, &tm);
	if (ret)
		return bad(err, name, s, ret == -ERANGE ? "no such date or time" : "not a time");
	if (!date_only) {
		if (parse_fraction(&p, &frac, &digits))
			return bad(err, name, s, "a '.' without fraction digits");
		if (!*p)
			return bad(err, name, s, "no time zone: end it with Z (UTC) or an offset such as +02:00");
		ret = parse_offset(p, &off);
		if (ret)
			return bad(err, name, s, ret == -ERANGE ? "the offset is out of range (at most +-23:59)" :
				   "not a time (the time zone is Z or an offset such as +02:00)");
	}
	if (tm.tm_sec == 60 && tm.tm_min == 59) {
		tm.tm_sec = 59;     /* a leap second: the last instant of :59 */
		leap = true;
	}
	want = tm;
	t = (int64_t)timegm(&tm);
	if (!tm_is_real(&want, &tm))
		return bad(err, name, s, "no such date or time");
	t -= off;
	if (t < 0 || t > WHEN_MAX_S)
		return bad(err, name, s, "out of range (years 1970 to 2262)");
	if (leap) {
		w->ns = w->last_ns = t * NS + NS - 1;
		w->digits = 9;
		return 0;
	}
	for (int i = digits; i < 9; i++)
		unit *= 10;         /* the time covers its last digit */
	w->ns = t * NS + frac;
	w->last_ns = w->ns + unit - 1;
	w->digits = digits;
	return 0;
}

int when_parse(const char *name, const char *s, int64_t now_ns, struct when *w,
	       struct err *err)
{
	char buf[64];
	size_t len;
	const char *b;
	int ret;

	if (!s)
		return bad(err, name, "", "not a time");
	while (*s == ' ' || *s == '\t')
		s++;
	len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (!len || len >= sizeof(buf))
		return bad(err, name, s, "not a time");
	memcpy(buf, s, len);
	buf[len] = '\0';
	b = buf;
	ret = parse_relative(name, b, now_ns, w, err);
	if (ret <= 0)
		return ret;
	if (!isdigit((unsigned char)b[0]))
		return bad(err, name, b, "not a time");
	return parse_rfc3339(name, b, w, err);
}

const char *when_format(int64_t ns, int digits, char *buf, size_t len)
{
	time_t t = (time_t)(ns / NS);
	char frac[16] = "";
	struct tm tm;
	size_t n;

	if (digits > 0) {
		snprintf(frac, sizeof(frac), ".%09lld", (long long)(ns % NS));
		frac[1 + (digits > 9 ? 9 : digits)] = '\0';
	}
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, len, "(time %lld)", (long long)ns);
		return buf;
	}
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, "%sZ", frac);
	return buf;
}
