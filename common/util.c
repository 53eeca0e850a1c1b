// SPDX-License-Identifier: MIT
#include "common/util.h"

#include <openssl/sha.h>

#include <ctype.h>
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
