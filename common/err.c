// SPDX-License-Identifier: MIT
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int err_set(struct err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code >= 0)
		code = -EIO;
	if (!err || err->code)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int err_wrap(struct err *err, const char *fmt, ...)
{
	char buf[ERR_MSG_MAX + 256];
	size_t n;
	va_list ap;

	if (!err)
		return -EIO;
	va_start(ap, fmt);
	vsnprintf(buf, 256, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = ':';
	buf[n++] = ' ';
	memcpy(buf + n, err->msg, sizeof(err->msg));
	buf[n + sizeof(err->msg) - 1] = '\0';
	memcpy(err->msg, buf, sizeof(err->msg) - 1);
	err->msg[sizeof(err->msg) - 1] = '\0';
	return err->code ? err->code : -EIO;
}

void err_clear(struct err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

const char *err_str(int code)
{
	return strerror(code < 0 ? -code : code);
}

const char *err_strip_region(const char *region, const char *msg)
{
	size_t n = strlen(region);

	if (!strncmp(msg, "region ", 7) && !strncmp(msg + 7, region, n) &&
	    msg[7 + n] == ':' && msg[8 + n] == ' ')
		return msg + 9 + n;
	return msg;
}
