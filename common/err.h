/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_ERR_H
#define SNAPSHIP_COMMON_ERR_H

/*
 * The error a user reads: what failed, on what, and what to do.
 *
 * Every action returns 0 or a negative errno-style code and, when it fails,
 * fills a caller-provided struct err with a complete sentence.  The first
 * error set wins; err_wrap() prefixes context as the error travels up.
 */

#include <stdarg.h>
#include <stddef.h>

#define ERR_MSG_MAX 1024

struct err {
	int code;               /* negative errno (or -EIO for library errors) */
	char msg[ERR_MSG_MAX];  /* never holds a secret */
};

/* Set err (when non-NULL and not yet set) and return code (< 0). */
int err_set(struct err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the message already in err with "context: ".  Returns err->code. */
int err_wrap(struct err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Forget a previous error (to try an alternative). */
void err_clear(struct err *err);

/* "No such file or directory" and friends for a negative code. */
const char *err_str(int code);

/*
 * msg without a leading "region NAME: " (the store layer's messages for a
 * configured region start so), for lines that name the region themselves.
 * Returns a pointer into msg.
 */
const char *err_strip_region(const char *region, const char *msg);

#endif
