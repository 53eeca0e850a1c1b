// SPDX-License-Identifier: MIT
#include "common/util.h"

#include <openssl/sha.h>

#include <ctype.h>
#include <fcntl.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

double util_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t util_now_unix_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_scaled(const char *s, const char *units, const uint64_t *mult,
			uint64_t *val_ret)
{
	char *end;
	unsigned long long v;
	const char *u;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == '\0') {
		*val_ret = v * mult[0];
		return 0;
	}
	if (end[1] != '\0' && !(end[1] == 'i' && end[2] == 'B' && end[3] == '\0') &&
	    !(end[1] == 'B' && end[2] == '\0'))
		return -EINVAL;
	u = strchr(units, *end);
	if (!u || *end == '\0')
		return -EINVAL;
	if (v > UINT64_MAX / mult[u - units + 1])
		return -ERANGE;
	*val_ret = v * mult[u - units + 1];
	return 0;
}

int util_parse_size(const char *s, uint64_t *bytes_ret)
{
	static const uint64_t mult[] = { 1, 1ULL << 10, 1ULL << 10, 1ULL << 20,
					 1ULL << 30, 1ULL << 40 };

	return parse_scaled(s, "kKMGT", mult, bytes_ret);
}

int util_parse_duration(const char *s, int64_t *seconds_ret)
{
	static const uint64_t mult[] = { 1, 1, 60, 3600, 86400, 604800 };
	uint64_t v;
	int ret;

	if (s && strlen(s) > 1 && strchr("smhdw", s[strlen(s) - 1]) == NULL &&
	    !isdigit((unsigned char)s[strlen(s) - 1]))
		return -EINVAL;
	ret = parse_scaled(s, "smhdw", mult, &v);
	if (ret)
		return ret;
	if (v > INT64_MAX)
		return -ERANGE;
	*seconds_ret = (int64_t)v;
	return 0;
}

void util_hex(const unsigned char *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * len] = '\0';
}

void util_sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char md[32];

	SHA256(buf, len, md);
	util_hex(md, 32, out);
}

const char *util_human_size(uint64_t bytes, char *buf, size_t buflen)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, buflen, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, buflen, "%.1f %s", v, units[u]);
	return buf;
}

int util_mkdir_p(const char *path, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_random(void *buf, size_t n)
{
	char *p = buf;

	while (n) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int util_open_secret(const char *path, const char *config_key, int *fd_ret,
		     struct err *err)
{
	struct stat st;
	int fd, ret;

	*fd_ret = -1;
	/* O_NONBLOCK: a FIFO in its place must not hang us (refused below) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_set(err, -errno, "%s %s: cannot open: %s", config_key,
			       path, err_str(-errno));
	if (fstat(fd, &st)) {
		ret = err_set(err, -errno, "%s %s: %s", config_key, path,
			      err_str(-errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err_set(err, -EINVAL, "%s %s: not a regular file",
			      config_key, path);
		goto out_close;
	}
	if (st.st_mode & 077) {
		ret = err_set(err, -EPERM,
			      "%s %s is accessible to group or others (mode %04o); it holds a secret: chmod 600 %s",
			      config_key, path, (unsigned)(st.st_mode & 07777), path);
		goto out_close;
	}
	*fd_ret = fd;
	return 0;

out_close:
	close(fd);
	return ret;
}

bool util_dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

bool util_name_ok(const char *s)
{
	size_t n = 0;

	if (!s || !s[0] || s[0] == '.')
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (n >= UTIL_NAME_MAX)
			return false;
		if (!(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') ||
		      ('0' <= c && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/*
 * Length of the printable UTF-8 character at p (2 to 4 bytes), or 0 when
 * the bytes there are not one: invalid, overlong, a surrogate, beyond
 * U+10FFFF, or a character that moves the cursor or flips the text (C1
 * controls, U+2028/U+2029, bidi embeddings, overrides and isolates).
 */
static size_t utf8_printable(const unsigned char *p)
{
	uint32_t cp;
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0fu;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;       /* also stops at the terminating NUL */
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0x200e ||
	    cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return n;
}

static char *escape(const char *s, char *buf, size_t len, bool backslash)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "(null)");
	size_t o = 0, safe = 0, w;

	if (!len)
		return buf;
	while (*p) {
		char piece[5];
		size_t n = utf8_printable(p), plen;

		if (n) {
			plen = 0;       /* copied from p below */
		} else if (*p == '\\' && backslash) {
			memcpy(piece, "\\\\", 2);
			plen = 2;
			n = 1;
		} else if (*p < 0x20 || *p >= 0x7f) {
			piece[0] = '\\';
			piece[1] = 'x';
			piece[2] = digits[*p >> 4];
			piece[3] = digits[*p & 15];
			plen = 4;
			n = 1;
		} else {
			piece[0] = (char)*p;
			plen = 1;
			n = 1;
		}
		w = plen ? plen : n;
		if (o + w + 1 > len) {
			/* cut where a whole rendering ends, and say so */
			o = safe;
			if (o + 4 <= len) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(buf + o, plen ? piece : (const char *)p, w);
		o += w;
		p += n;
		if (o + 4 <= len)
			safe = o;
	}
	buf[o] = '\0';
	return buf;
}

char *util_escape(const char *s, char *buf, size_t len)
{
	return escape(s, buf, len, true);
}

char *util_escape_ctl(const char *s, char *buf, size_t len)
{
	return escape(s, buf, len, false);
}

int util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
