/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_S3_H
#define SNAPSHIP_UPLOADER_S3_H

/*
 * Internals of the S3 store that are pure functions, shared with the unit
 * tests (tests/unit/test_s3.c).  Callers outside uploader/ use store.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

#define S3_MAX_PARTS 10000u
#define S3_MIN_PART_SIZE (5ull << 20)          /* every part but the last */
#define S3_MAX_PART_SIZE (5ull << 30)
#define S3_DEFAULT_PART_SIZE (8ull << 20)
#define S3_PART_GROWTH_EVERY 1000u             /* parts per size step */

/*
 * The size of part number n (1-based) of a streamed object whose size is
 * not known in advance: base for parts 1..1000, twice that for 1001..2000,
 * and so on (capped at 5 GiB), so 10,000 parts hold more than S3's 5 TiB
 * object limit while small and medium objects keep small parts.  0 when n
 * is 0 or beyond 10,000.
 */
uint64_t s3_part_size(uint64_t base, unsigned n);
/* Bytes parts 1..n hold together. */
uint64_t s3_parts_capacity(uint64_t base, unsigned n);

/*
 * Read a secret access key file: one line, the secret alone.  Refused
 * (-EPERM) when the file is readable or writable by group or others
 * (mode & 077), or when it is not a regular file.  *secret_ret is malloc'd;
 * the caller wipes and frees it.  Messages never contain the secret.
 */
int s3_read_secret_file(const char *path, const char *config_key,
			char **secret_ret, struct err *err);

/* "s3://bucket/pre/fix/" → bucket "bucket", prefix "pre/fix/" ("" none). */
int s3_parse_location(const char *location, char **bucket_ret,
		      char **prefix_ret, struct err *err);

/* "https://host:port/" → scheme "https", authority "host:port"; an
 * endpoint without a scheme ("host:port") is https. */
int s3_parse_endpoint(const char *endpoint, char **scheme_ret,
		      char **authority_ret, struct err *err);

/* The host of an authority ("host[:port]", "[v6]:port") is this host's
 * loopback: localhost, 127.0.0.0/8 or ::1 (plain HTTP never leaves it). */
bool s3_host_is_loopback(const char *authority);
/* The host of an authority is an IPv4 or IPv6 address, not a name. */
bool s3_host_is_ip(const char *authority);

/* Bucket names S3 accepts in a host name (virtual-hosted addressing). */
bool s3_bucket_dns_ok(const char *bucket);

/*
 * The wire path of an object: path_base ("/bucket" or "") + '/' + the
 * URI-encoded prefix+key ('/' kept).  malloc'd; NULL when out of memory.
 */
char *s3_object_path(const char *path_base, const char *prefix,
		     const char *key);

/* Who an error is about and how to fix it, for s3_http_error(). */
struct s3_names {
	const char *who;            /* "region east" / "store s3://b/p" */
	const char *fix_bucket;     /* "[region east] bucket" / "the bucket in --to" */
	const char *fix_keys;       /* where the keys come from */
	const char *fix_region;     /* where the SigV4 region comes from */
	const char *fix_ca;         /* where the CA bundle is set ("ca_file in
				     * [region east]"; NULL: a generic hint) */
	const char *bucket;
	const char *endpoint;       /* "http://127.0.0.1:7480" */
};

/*
 * The error of an HTTP answer (status >= 300) to "what" (e.g. "PUT
 * host/part/data.tar.zst"): S3 Code and Message from the XML body and a
 * hint at the fix.  date is the answer's Date header (for clock skew), or
 * NULL.  Returns the negative code: -ENOENT (no such key), -ENXIO (no such
 * bucket), -EACCES (keys, permissions, clock), -EIO otherwise.
 */
int s3_http_error(const struct s3_names *n, const char *what, long status,
		  const char *body, size_t body_len, const char *date,
		  struct err *err);

/*
 * The error of a request that got no HTTP answer: curl_code is a CURLcode,
 * os_errno the socket errno (0 if unknown), ssl_verify the TLS library's
 * certificate verify result (http_req.ssl_verify), detail curl's error
 * text.  A refused certificate says which check failed (not trusted,
 * expired or not yet valid, another host's name) and what to do.
 */
int s3_transport_error(const struct s3_names *n, const char *what,
		       int curl_code, long os_errno, long ssl_verify,
		       const char *detail, struct err *err);

/* Base64 of len bytes into out (4 * ((len + 2) / 3) + 1 bytes). */
void s3_base64(const unsigned char *in, size_t len, char *out);

#endif
