/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_SIGV4_H
#define SNAPSHIP_UPLOADER_SIGV4_H

/*
 * AWS Signature Version 4, header signing (AWS4-HMAC-SHA256), as pure
 * functions: a request description and credentials in, the canonical
 * request, string to sign, signature and the headers to add out.  No I/O, no
 * clock (the caller passes the time), no logging: a secret never leaves
 * this module except inside the derived signing key.
 *
 * Paths:
 *   SIGV4_S3 set   — S3 rules: the canonical URI is the request path with each
 *                    byte URI-encoded once (existing %XX escapes are kept as
 *                    the byte they stand for, so an already encoded path stays
 *                    as it is); no dot-segment or slash normalization.
 *   SIGV4_S3 clear — the generic AWS rules of the SigV4 test suite: the path
 *                    (optionally normalized, SIGV4_NORMALIZE_PATH) is encoded
 *                    again, so "%20" on the wire becomes "%2520" ("double
 *                    encoding").
 * Query strings are canonicalized the same way in both modes: split on '&',
 * each name and value percent-decoded ('+' stays a plus) and re-encoded with
 * the RFC 3986 unreserved set, sorted by name then value.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* hex SHA-256 of zero bytes */
#define SIGV4_EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

enum {
	SIGV4_S3 = 1u << 0,              /* S3 path rules (see above) */
	SIGV4_NORMALIZE_PATH = 1u << 1,  /* generic rules only: drop ".", "..", "//" */
	SIGV4_CONTENT_SHA256 = 1u << 2,  /* add and sign x-amz-content-sha256 */
};

struct sigv4_header {
	const char *name;
	const char *value;
};

/* Borrowed by sigv4_sign(); the secret is used only to derive the key. */
struct sigv4_credentials {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;       /* NULL: none */
};

/* The signing key of one day, region and service: cache it per day. */
struct sigv4_key {
	char date[9];                    /* YYYYMMDD */
	char region[64];
	char service[32];
	unsigned char key[32];
};

struct sigv4_request {
	const char *method;              /* "GET" */
	const char *path;                /* as sent: "/bucket/a%20b" ("" = "/") */
	const char *query;               /* as sent, without '?'; NULL or "" = none */
	const struct sigv4_header *headers;  /* signed, in any order; needs Host */
	size_t nheaders;
	const char *payload_sha256;      /* hex, SIGV4_UNSIGNED_PAYLOAD, NULL = empty */
};

struct sigv4_params {
	const struct sigv4_credentials *creds;
	const char *region;              /* "us-east-1" */
	const char *service;             /* "s3" */
	int64_t time;                    /* unix seconds of the request */
	unsigned flags;                  /* SIGV4_* */
	/* Optional: used when its date, region and service match, else a key
	 * is derived for this call only. */
	const struct sigv4_key *key;
};

#define SIGV4_ADD_MAX 4

/* The result.  sigv4_signed_free() frees the strings; the struct is the
 * caller's. */
struct sigv4_signed {
	char amz_date[17];               /* 20150830T123600Z */
	char signature[65];              /* hex */
	char *canonical_request;
	char *string_to_sign;
	char *signed_headers;            /* "host;x-amz-date" */
	char *authorization;             /* the Authorization header value */
	/* Headers to send besides the request's own, in this order:
	 * X-Amz-Date, [x-amz-content-sha256], [X-Amz-Security-Token],
	 * Authorization.  Values point into this struct or the params. */
	struct sigv4_header add[SIGV4_ADD_MAX];
	size_t nadd;
};

/*
 * Sign req.  The request's headers must not contain Authorization or
 * X-Amz-Date (the signer adds them), nor x-amz-content-sha256 when
 * SIGV4_CONTENT_SHA256 is set, nor X-Amz-Security-Token when the
 * credentials carry a token.  0 or -EINVAL/-ENOMEM/-EIO with err set;
 * *out is zeroed first and needs sigv4_signed_free() only on success.
 */
int sigv4_sign(const struct sigv4_params *p, const struct sigv4_request *req,
	       struct sigv4_signed *out, struct err *err);
void sigv4_signed_free(struct sigv4_signed *s);

/* Derive the signing key for date (YYYYMMDD), region and service. */
int sigv4_derive_key(const char *secret, const char *date, const char *region,
		     const char *service, struct sigv4_key *key_ret,
		     struct err *err);
/* Overwrite a key (and anything else) before freeing it. */
void sigv4_wipe(void *p, size_t len);

/* "20150830T123600Z" for a unix time (UTC). */
void sigv4_amz_date(int64_t t, char amz_date[17]);

/*
 * URI-encode len bytes of s with the RFC 3986 unreserved set
 * (A-Z a-z 0-9 - . _ ~), upper-case hex; '/' is kept when keep_slash.
 * Returns a malloc'd string, NULL when out of memory.
 */
char *sigv4_uri_encode(const char *s, size_t len, bool keep_slash);

/* Lower-case hex SHA-256 of buf into hex (65 bytes).  0 or -EIO. */
int sigv4_sha256_hex(const void *buf, size_t len, char hex[65]);

/* The canonical query string of a raw query (malloc'd; NULL: ENOMEM). */
char *sigv4_canonical_query(const char *query);

#endif
