/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_SBUF_H
#define SNAPSHIP_UPLOADER_SBUF_H

/*
 * A growing string for building requests, URLs and XML bodies (internal to
 * uploader/).  Appends never fail loudly: the first allocation failure sets
 * oom, later appends do nothing, and the caller checks sbuf_ok() once at the
 * end.  s is always NUL-terminated once anything was appended; the caller
 * owns it (sbuf_free() or take it with sbuf_take()).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static inline bool sbuf_grow(struct sbuf *b, size_t more)
{
	size_t cap;
	char *n;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < b->len + more + 1) {
		if (cap > ((size_t)-1) / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	n = realloc(b->s, cap);
	if (!n) {
		b->oom = true;
		return false;
	}
	b->s = n;
	b->cap = cap;
	return true;
}

static inline void sbuf_addn(struct sbuf *b, const char *s, size_t n)
{
	if (!sbuf_grow(b, n))
		return;
	if (n)
		memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static inline void sbuf_add(struct sbuf *b, const char *s)
{
	sbuf_addn(b, s, strlen(s));
}

static inline void sbuf_addc(struct sbuf *b, char c)
{
	sbuf_addn(b, &c, 1);
}

static inline void sbuf_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sbuf_grow(b, (size_t)n)) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* true when nothing failed; also makes an empty buffer "" */
static inline bool sbuf_ok(struct sbuf *b)
{
	if (!b->oom && !b->s)
		sbuf_addn(b, "", 0);
	return !b->oom;
}

static inline char *sbuf_take(struct sbuf *b)
{
	char *s = sbuf_ok(b) ? b->s : NULL;

	if (!s)
		free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
	b->oom = false;
	return s;
}

static inline void sbuf_free(struct sbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

#endif
