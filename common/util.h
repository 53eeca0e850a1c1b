/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_COMMON_UTIL_H
#define SNAPSHIP_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

/* Allocation that aborts the program on failure is not used: callers check. */

/* Monotonic and wall clocks. */
double util_now_mono(void);          /* seconds */
int64_t util_now_unix_ns(void);

/* Parse "64M", "1G", "4096" (binary multiples) into bytes. */
int util_parse_size(const char *s, uint64_t *bytes_ret);
/* Parse "4h", "30d", "90s", "5m", "2w" into seconds. */
int util_parse_duration(const char *s, int64_t *seconds_ret);

/* The value of one hex digit (either case), or -1. */
int util_hexval(char c);
/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void util_hex(const unsigned char *bytes, size_t len, char *out);
/* SHA-256 of a buffer as 64 hex digits (OpenSSL). */
void util_sha256_hex(const void *buf, size_t len, char out[65]);

/* Human-readable size ("1.5 GiB") into buf. */
const char *util_human_size(uint64_t bytes, char *buf, size_t buflen);

/* mkdir -p with mode; 0 or -errno. */
int util_mkdir_p(const char *path, unsigned mode);

/* Write all of buf to fd (retrying on EINTR/short writes); 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);

/* Fill buf with n random bytes from getrandom(2); 0 or -errno. */
int util_random(void *buf, size_t n);

/*
 * Open a file that holds a secret (an S3 secret key, an encryption key) for
 * reading: it must be a regular file that neither group nor others can
 * access (refused with -EPERM: "chmod 600").  config_key names the setting
 * in messages.  *fd_ret: the caller closes it.
 */
struct err;
int util_open_secret(const char *path, const char *config_key, int *fd_ret,
		     struct err *err);

/* true when path is an existing directory with no entries besides . and .. */
bool util_dir_is_empty(const char *path);

/*
 * snapship's grammar for the names it puts in keys and paths (host,
 * partition and region names): 1 to UTIL_NAME_MAX bytes of letters,
 * digits, '-', '_' and '.', not starting with '.' (so never "." or "..").
 */
#define UTIL_NAME_MAX 64
bool util_name_ok(const char *s);

/*
 * s rendered for a terminal or a log line: printable ASCII and printable
 * UTF-8 as they are; control characters (C0, DEL, C1, so ESC and BEL),
 * Unicode line separators and bidi overrides, and bytes that are not valid
 * UTF-8 as \xNN; a backslash as \\.  Written into buf (len > 0), cut
 * before an escape that would not fit and then ending in "..."; returns
 * buf.  NULL s renders as "(null)".
 */
char *util_escape(const char *s, char *buf, size_t len);
/* The same without doubling backslashes: for text that may already hold
 * escapes (a whole log line). */
char *util_escape_ctl(const char *s, char *buf, size_t len);

/* An escaped copy in a buffer that lives to the end of the enclosing
 * block (a compound literal): printf("%s\n", UTIL_ESC(name)). */
#define UTIL_ESC_LEN 2048
#define UTIL_ESC(s) util_escape((s), (char[UTIL_ESC_LEN]){ 0 }, UTIL_ESC_LEN)
/* For a message that may already hold escapes (backslashes kept). */
#define UTIL_ESC_CTL(s) util_escape_ctl((s), (char[UTIL_ESC_LEN]){ 0 }, UTIL_ESC_LEN)

#endif
