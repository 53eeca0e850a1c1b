// SPDX-License-Identifier: MIT
/*
 * The S3 store: objects in a bucket of AWS S3 or a compatible server (Ceph
 * RGW), through libcurl's multi interface and SigV4 (sigv4.c).
 *
 * One engine thread per store runs every HTTP request of the store: callers
 * (the writer thread of a backup, restore's fetch workers, list/delete)
 * queue a request and wait for it, or, for the parts of a streamed put,
 * let it run while they fill the next part.  The engine signs each attempt
 * afresh (so a retry minutes later still has a valid date), retries with
 * exponential backoff and jitter what is worth retrying (5xx, 429,
 * RequestTimeout, resets, stalls: per request, so per part), and reuses
 * connections across requests.
 *
 * A put streams: bytes fill a part buffer; a small object that never fills
 * one part is sent with one PutObject at commit; a bigger one becomes a
 * multipart upload whose parts go up in parallel (parts_in_flight) while
 * the next is filled, each with its payload SHA-256 signed so the server
 * checks every byte.  Memory: (parts_in_flight + 1) part buffers, reused.
 * Part sizes grow with the part number (s3_part_size()) because the final
 * size is unknown and S3 allows at most 10,000 parts.
 *
 * User metadata x-amz-meta-snapship-sha256 (the SHA-256 of the object) is
 * set on single-request objects only: a multipart upload's metadata must be
 * given when it is created, before the bytes are known.  The manifest
 * records every object's SHA-256 either way.
 *
 * No secret reaches a log line or an error: the secret key lives in the
 * store (wiped on free) and in the derived signing key only.
 *
 * Fault injection (SNAPSHIP_FAULT, common/fault.h), checked per HTTP
 * attempt besides the store.* points of store.c: "s3.request" answers an
 * attempt with 503 SlowDown without sending it (transient: retried),
 * "s3.request.fatal" with 403 AccessDenied (permanent).
 */
#include "uploader/s3.h"

#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"
#include "uploader/sigv4.h"
#include "uploader/store.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S3_ERRBODY_MAX (64u << 10)       /* error bodies kept for messages */
#define S3_XMLBODY_MAX (32u << 20)       /* list pages and other XML answers */
#define S3_BUF_MIN (64u << 10)           /* first allocation of a part buffer */
#define S3_DELETE_BATCH 1000
#define S3_BACKOFF_BASE 0.25             /* seconds, doubled per attempt */
#define S3_BACKOFF_MAX 20.0
#define S3_CONNECT_ATTEMPTS 3            /* "connection refused" is rarely transient */
#define S3_HDR_MAX 6
#define S3_EASY_POOL 32
#define S3_SECRET_MAX 4096

/* ------------------------------------------------------------------ */
/* pure helpers (s3.h)                                                 */

uint64_t s3_part_size(uint64_t base, unsigned n)
{
	uint64_t size = base;
	unsigned steps;

	if (!n || n > S3_MAX_PARTS || !base)
		return 0;
	steps = (n - 1) / S3_PART_GROWTH_EVERY;
	while (steps-- && size < S3_MAX_PART_SIZE)
		size *= 2;
	return size > S3_MAX_PART_SIZE ? S3_MAX_PART_SIZE : size;
}

uint64_t s3_parts_capacity(uint64_t base, unsigned n)
{
	uint64_t total = 0;

	for (unsigned i = 1; i <= n && i <= S3_MAX_PARTS; i++)
		total += s3_part_size(base, i);
	return total;
}

int s3_read_secret_file(const char *path, const char *config_key,
			char **secret_ret, struct err *err)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd, ret;

	*secret_ret = NULL;
	/* O_NONBLOCK: a FIFO in its place must not hang us (refused below) */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_set(err, -errno, "%s %s: cannot open: %s", config_key,
			       path, err_str(-errno));
	if (fstat(fd, &st)) {
		ret = err_set(err, -errno, "%s %s: %s", config_key, path,
			      err_str(-errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err_set(err, -EINVAL, "%s %s: not a regular file",
			      config_key, path);
		goto out;
	}
	if (st.st_mode & 077) {
		ret = err_set(err, -EPERM,
			      "%s %s is accessible to group or others (mode %04o); it holds a secret: chmod 600 %s",
			      config_key, path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	buf = malloc(S3_SECRET_MAX + 1);
	if (!buf) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (len < S3_SECRET_MAX &&
	       (n = read(fd, buf + len, S3_SECRET_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = err_set(err, -errno, "%s %s: cannot read: %s",
				      config_key, path, err_str(-errno));
			goto out;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
		       buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	if (!len || len >= S3_SECRET_MAX || strpbrk(buf, " \t\r\n")) {
		ret = err_set(err, -EINVAL,
			      "%s %s: expected the secret access key alone on one line",
			      config_key, path);
		goto out;
	}
	*secret_ret = buf;
	buf = NULL;
	ret = 0;
out:
	if (buf) {
		sigv4_wipe(buf, S3_SECRET_MAX + 1);
		free(buf);
	}
	close(fd);
	return ret;
}

int s3_parse_location(const char *location, char **bucket_ret,
		      char **prefix_ret, struct err *err)
{
	const char *b, *slash;
	char *bucket, *prefix;
	size_t plen;

	*bucket_ret = *prefix_ret = NULL;
	if (strncmp(location, "s3://", 5))
		return err_set(err, -EINVAL, "store \"%s\": not an s3://bucket/prefix location",
			       location);
	b = location + 5;
	slash = strchr(b, '/');
	bucket = slash ? strndup(b, (size_t)(slash - b)) : strdup(b);
	if (!bucket)
		return err_set(err, -ENOMEM, "out of memory");
	if (!bucket[0] || strspn(bucket, "abcdefghijklmnopqrstuvwxyz"
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(bucket)) {
		free(bucket);
		/* never echo the location: it may hold user:secret@ */
		return err_set(err, -EINVAL,
			       "bad bucket name in an s3:// location (letters, digits, '.', '-' and '_' only; no user:password@); use s3://BUCKET/PREFIX");
	}
	/* the prefix: no empty, "." or ".." component; ends with '/' */
	b = slash ? slash + 1 : "";
	plen = strlen(b);
	while (plen && b[plen - 1] == '/')
		plen--;
	prefix = malloc(plen + 2);
	if (!prefix) {
		free(bucket);
		return err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(prefix, b, plen);
	prefix[plen] = plen ? '/' : '\0';
	prefix[plen + 1] = '\0';
	for (const char *p = prefix; *p;) {
		const char *e = strchr(p, '/');
		size_t n = (size_t)(e - p);

		if (!n || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			free(bucket);
			free(prefix);
			return err_set(err, -EINVAL,
				       "store \"%s\": the prefix has an empty, \".\" or \"..\" component",
				       location);
		}
		p = e + 1;
	}
	*bucket_ret = bucket;
	*prefix_ret = prefix;
	return 0;
}

int s3_parse_endpoint(const char *endpoint, char **scheme_ret,
		      char **authority_ret, struct err *err)
{
	const char *a, *end;
	size_t slen;

	*scheme_ret = *authority_ret = NULL;
	/* user:password@ would be a secret: never echo such an endpoint */
	if (strchr(endpoint, '@'))
		return err_set(err, -EINVAL,
			       "the endpoint has user information (\"...@\"); give keys with access_key_id and secret_access_key_file or AWS_ACCESS_KEY_ID, and the endpoint as http(s)://HOST[:PORT]");
	if (!strncasecmp(endpoint, "https://", 8))
		slen = 5;
	else if (!strncasecmp(endpoint, "http://", 7))
		slen = 4;
	else
		return err_set(err, -EINVAL,
			       "endpoint \"%s\": expected http://HOST[:PORT] or https://HOST[:PORT]",
			       endpoint);
	a = endpoint + slen + 3;
	end = a + strcspn(a, "/?#");
	if (end == a || memchr(a, ' ', (size_t)(end - a)) ||
	    strspn(end, "/") != strlen(end))
		return err_set(err, -EINVAL,
			       "endpoint \"%s\": expected http://HOST[:PORT] or https://HOST[:PORT] without a path",
			       endpoint);
	*scheme_ret = strndup(endpoint, slen);
	*authority_ret = strndup(a, (size_t)(end - a));
	if (!*scheme_ret || !*authority_ret) {
		free(*scheme_ret);
		free(*authority_ret);
		*scheme_ret = *authority_ret = NULL;
		return err_set(err, -ENOMEM, "out of memory");
	}
	for (char *p = *scheme_ret; *p; p++)
		*p = (char)(*p | 0x20);
	return 0;
}

bool s3_bucket_dns_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63 || b[0] == '-' || b[0] == '.' || b[n - 1] == '-' ||
	    b[n - 1] == '.' || strstr(b, ".."))
		return false;
	for (; *b; b++)
		if (!((*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9') ||
		      *b == '-' || *b == '.'))
			return false;
	return true;
}

char *s3_object_path(const char *path_base, const char *prefix,
		     const char *key)
{
	struct sbuf b = { 0 };
	char *full, *enc;

	if (asprintf(&full, "%s%s", prefix, key) < 0)
		return NULL;
	enc = sigv4_uri_encode(full, strlen(full), true);
	free(full);
	if (!enc)
		return NULL;
	sbuf_add(&b, path_base);
	sbuf_addc(&b, '/');
	sbuf_add(&b, enc);
	free(enc);
	return sbuf_take(&b);
}

void s3_base64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* "the clock is 20 minutes ahead" from the server's Date header. */
static void skew_text(const char *date, char *buf, size_t len)
{
	time_t server = date ? curl_getdate(date, NULL) : -1;
	long d;

	if (server == (time_t)-1) {
		snprintf(buf, len, "off by more than 15 minutes");
		return;
	}
	d = (long)(time(NULL) - server);
	snprintf(buf, len, "%s by %ld min %ld s (server time %s)",
		 d >= 0 ? "ahead" : "behind", labs(d) / 60, labs(d) % 60, date);
}

int s3_http_error(const struct s3_names *n, const char *what, long status,
		  const char *body, size_t body_len, const char *date,
		  struct err *err)
{
	struct s3_xml_error e;
	char detail[400], skew[128];
	const char *c;

	if (s3_xml_error(body, body_len, &e) != 1)
		memset(&e, 0, sizeof(e));
	c = e.code;
	if (e.code[0] && e.message[0])
		snprintf(detail, sizeof(detail), "HTTP %ld %s: %.200s", status,
			 e.code, e.message);
	else if (e.code[0])
		snprintf(detail, sizeof(detail), "HTTP %ld %s", status, e.code);
	else
		snprintf(detail, sizeof(detail), "HTTP %ld", status);

	if (!strcmp(c, "NoSuchBucket"))
		return err_set(err, -ENXIO,
			       "%s: bucket \"%s\" does not exist (HTTP %ld NoSuchBucket); create it or fix %s",
			       n->who, n->bucket, status, n->fix_bucket);
	if (!strcmp(c, "NoSuchKey") || (status == 404 && !c[0]))
		return err_set(err, -ENOENT, "%s: %s: no such object (%s)",
			       n->who, what, detail);
	if (!strcmp(c, "NoSuchUpload"))
		return err_set(err, -ENOENT,
			       "%s: %s: the multipart upload is gone (%s); it was aborted, perhaps by another snapship clean",
			       n->who, what, detail);
	if (!strcmp(c, "InvalidAccessKeyId"))
		return err_set(err, -EACCES,
			       "%s: the server does not know the access key id (%s); check %s",
			       n->who, detail, n->fix_keys);
	if (!strcmp(c, "SignatureDoesNotMatch"))
		return err_set(err, -EACCES,
			       "%s: the request signature does not match (HTTP %ld SignatureDoesNotMatch): the secret key is wrong; check %s",
			       n->who, status, n->fix_keys);
	if (!strcmp(c, "RequestTimeTooSkewed")) {
		skew_text(date, skew, sizeof(skew));
		return err_set(err, -EACCES,
			       "%s: this host's clock is %s (HTTP %ld RequestTimeTooSkewed); fix the clock (timedatectl, NTP)",
			       n->who, skew, status);
	}
	if (!strcmp(c, "AccessDenied") || !strcmp(c, "AllAccessDisabled") ||
	    (status == 403 && !c[0]))
		return err_set(err, -EACCES,
			       "%s: %s: access denied (%s); give the user of these keys permission on bucket \"%s\" (user or bucket policy)",
			       n->who, what, detail, n->bucket);
	if (!strcmp(c, "AuthorizationHeaderMalformed") && e.region[0])
		return err_set(err, -EACCES,
			       "%s: the server expects SigV4 region \"%s\" (%s); fix %s",
			       n->who, e.region, detail, n->fix_region);
	if (!strcmp(c, "AuthorizationHeaderMalformed") ||
	    !strcmp(c, "IllegalLocationConstraintException"))
		return err_set(err, -EACCES, "%s: %s: %s; check %s", n->who,
			       what, detail, n->fix_region);
	if (status == 301 || status == 307 || !strcmp(c, "PermanentRedirect"))
		return err_set(err, -EIO,
			       "%s: bucket \"%s\" is served by another endpoint (%s); fix the endpoint and %s",
			       n->who, n->bucket, detail, n->fix_region);
	if (!strcmp(c, "QuotaExceeded") || !strcmp(c, "EntityTooLarge"))
		return err_set(err, -EDQUOT, "%s: %s: %s; raise the quota or free space in bucket \"%s\"",
			       n->who, what, detail, n->bucket);
	if (status >= 500 || status == 429 || !strcmp(c, "SlowDown"))
		return err_set(err, -EIO,
			       "%s: %s: the server keeps failing (%s) and retries did not help; check the server (%s)",
			       n->who, what, detail, n->endpoint);
	return err_set(err, -EIO, "%s: %s: %s", n->who, what, detail);
}

int s3_transport_error(const struct s3_names *n, const char *what,
		       int curl_code, long os_errno, const char *detail,
		       struct err *err)
{
	const char *why = os_errno > 0 ? strerror((int)os_errno) :
			  (detail && detail[0] ? detail :
			   curl_easy_strerror((CURLcode)curl_code));

	switch ((CURLcode)curl_code) {
	case CURLE_COULDNT_CONNECT:
		return err_set(err, os_errno > 0 ? -(int)os_errno : -ECONNREFUSED,
			       "%s: cannot connect to %s (%s): is the endpoint right and the server up?",
			       n->who, n->endpoint, why);
	case CURLE_COULDNT_RESOLVE_HOST:
		return err_set(err, -EHOSTUNREACH,
			       "%s: cannot resolve the host of %s (%s): is the endpoint right?",
			       n->who, n->endpoint, detail && detail[0] ? detail : why);
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(err, -ETIMEDOUT,
			       "%s: %s: %s stalled (%s) and retries did not help: is the server overloaded or the network broken?",
			       n->who, what, n->endpoint, detail && detail[0] ? detail : why);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		return err_set(err, -EPROTO,
			       "%s: the TLS certificate of %s is not trusted (%s); point ca_file (or AWS_CA_BUNDLE) at the CA that signed it",
			       n->who, n->endpoint, detail && detail[0] ? detail : why);
	case CURLE_SSL_CONNECT_ERROR:
		return err_set(err, -EPROTO,
			       "%s: TLS handshake with %s failed (%s): does the endpoint speak https?",
			       n->who, n->endpoint, detail && detail[0] ? detail : why);
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return err_set(err, -ECONNRESET,
			       "%s: %s: the connection to %s broke (%s) and retries did not help",
			       n->who, what, n->endpoint, why);
	default:
		return err_set(err, -EIO, "%s: %s: %s (curl error %d)", n->who,
			       what, detail && detail[0] ? detail :
			       curl_easy_strerror((CURLcode)curl_code), curl_code);
	}
}

/* ------------------------------------------------------------------ */
/* requests and the engine                                             */

struct s3_store;

struct s3_req {
	struct s3_store *s;
	const char *method;         /* GET HEAD PUT POST DELETE */
	char *path;                 /* wire path (malloc'd) */
	char *query;                /* wire query without '?' or NULL */
	struct sigv4_header hdrs[S3_HDR_MAX];
	char hval[S3_HDR_MAX][96];
	size_t nhdrs;
	const char *body;           /* request body (borrowed) */
	size_t body_len;
	char payload[65];           /* hex SHA-256 of the body */

	/* the answer */
	char *fixed;                /* GET into the caller's buffer ... */
	size_t fixed_cap;
	uint64_t range_off;         /* ... for a Range starting here */
	uint64_t skip;
	struct sbuf out;            /* ... or into ours, up to out_max */
	size_t out_max;
	size_t rlen;                /* bytes of the answer body kept */
	bool too_big;
	struct sbuf errbody;        /* the body of an error answer */
	long status;
	int cc;                     /* CURLcode of the last attempt */
	long os_errno;
	char errbuf[CURL_ERROR_SIZE];
	char etag[128];
	char meta_sha256[65];       /* x-amz-meta-snapship-sha256 */
	char date[64];
	char last_modified[64];
	uint64_t content_length;
	bool have_length;

	char label[400];            /* "PUT "key" part 3", for log lines */

	/* engine state */
	unsigned attempt;
	double next_at;             /* monotonic time of the next attempt */
	double moved_at;            /* last time a byte moved either way */
	curl_off_t moved_up, moved_down;
	bool stalled;
	CURL *easy;
	struct curl_slist *slist;
	char *url;
	size_t body_off;
	struct s3_req *next;

	/* completion, under s->lock */
	bool done;
	bool cancel;
	int result;                 /* 0: an HTTP answer; < 0: none */
	void (*on_done)(struct s3_req *r);   /* engine thread, s->lock held */
	void *owner;
	void *owner2;
};

struct s3_store {
	struct s3_names names;
	char *who, *fix_bucket, *fix_keys, *fix_region;
	char *bucket;
	char *prefix;               /* "" or "a/b/" */
	char *endpoint;             /* scheme://authority, for messages */
	char *url_base;             /* scheme://[bucket.]authority */
	char *host;                 /* Host header */
	char *path_base;            /* "/bucket" (path style) or "" */
	char *region;
	char *access_key_id, *secret, *token;
	struct sigv4_credentials creds;
	char *ca_file;
	bool insecure;
	uint64_t part_size;
	unsigned inflight;
	long connect_timeout, stall_timeout;
	unsigned max_attempts;
	bool content_md5;

	/* engine */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started;
	bool stopping;
	CURLM *multi;
	struct s3_req *queue, *queue_tail;  /* submitted, under lock */
	/* engine thread only: */
	struct s3_req *active, *pending;
	CURL *pool[S3_EASY_POOL];
	unsigned npool;
	struct sigv4_key key;
	unsigned rand_state;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init(void)
{
	curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void req_init(struct s3_store *s, struct s3_req *r, const char *method)
{
	memset(r, 0, sizeof(*r));
	r->s = s;
	r->method = method;
	r->out_max = 1u << 20;      /* answers we do not expect to be big */
	strcpy(r->payload, SIGV4_EMPTY_SHA256);
}

/* Release what a request owns (not the caller's buffers). */
static void req_free(struct s3_req *r)
{
	free(r->path);
	free(r->query);
	sbuf_free(&r->out);
	sbuf_free(&r->errbody);
	r->path = r->query = NULL;
}

static void req_header(struct s3_req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void req_header(struct s3_req *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	assert(r->nhdrs < S3_HDR_MAX);
	va_start(ap, fmt);
	vsnprintf(r->hval[r->nhdrs], sizeof(r->hval[0]), fmt, ap);
	va_end(ap);
	r->hdrs[r->nhdrs].name = name;
	r->hdrs[r->nhdrs].value = r->hval[r->nhdrs];
	r->nhdrs++;
}

/* Target: the object key (relative to the store) or the bucket (NULL). */
static int req_target(struct s3_req *r, const char *key, struct err *err)
{
	struct s3_store *s = r->s;

	free(r->path);
	r->path = key ? s3_object_path(s->path_base, s->prefix, key) :
			strdup(s->path_base[0] ? s->path_base : "/");
	if (!r->path)
		return err_set(err, -ENOMEM, "%s: out of memory", s->who);
	return 0;
}

static int req_query(struct s3_req *r, struct sbuf *q, struct err *err)
{
	free(r->query);
	r->query = sbuf_take(q);
	if (!r->query)
		return err_set(err, -ENOMEM, "%s: out of memory", r->s->who);
	return 0;
}

/* Append "&name=value" (value URI-encoded) to a query being built. */
static void query_add(struct sbuf *q, const char *name, const char *value)
{
	char *enc;

	if (q->len)
		sbuf_addc(q, '&');
	sbuf_add(q, name);
	if (!value)
		return;
	sbuf_addc(q, '=');
	enc = sigv4_uri_encode(value, strlen(value), false);
	if (!enc) {
		q->oom = true;
		return;
	}
	sbuf_add(q, enc);
	free(enc);
}

static int req_body(struct s3_req *r, const void *body, size_t len,
		    struct err *err)
{
	r->body = body;
	r->body_len = len;
	if (sigv4_sha256_hex(len ? body : "", len, r->payload))
		return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)", r->s->who);
	return 0;
}

/* ---- curl callbacks (engine thread) ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct s3_req *r = ud;
	size_t len = size * nmemb, n;
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		if (r->errbody.len < S3_ERRBODY_MAX)
			sbuf_addn(&r->errbody, data,
				  len < S3_ERRBODY_MAX - r->errbody.len ?
				  len : S3_ERRBODY_MAX - r->errbody.len);
		return len;
	}
	if (status == 200 && r->skip) {         /* the server ignored Range */
		n = r->skip < len ? (size_t)r->skip : len;
		data += n;
		len -= n;
		r->skip -= n;
	}
	if (r->fixed) {
		n = len < r->fixed_cap - r->rlen ? len : r->fixed_cap - r->rlen;
		memcpy(r->fixed + r->rlen, data, n);
		r->rlen += n;
		return size * nmemb;
	}
	if (r->out.len + len > r->out_max) {
		r->too_big = true;
		return 0;
	}
	sbuf_addn(&r->out, data, len);
	if (r->out.oom)
		return 0;
	r->rlen = r->out.len;
	return size * nmemb;
}

static void header_value(char *dst, size_t size, const char *v, size_t len)
{
	while (len && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
		       v[len - 1] == ' '))
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* An ETag header value without its quotes (and a weak "W/" mark). */
static void etag_copy(char *dst, size_t size, const char *v)
{
	size_t len;

	if (!strncmp(v, "W/", 2))
		v += 2;
	if (*v == '"')
		v++;
	len = strlen(v);
	if (len && v[len - 1] == '"')
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
	struct s3_req *r = ud;
	size_t len = size * nitems;
	const char *colon = memchr(data, ':', len);
	size_t nlen;
	char num[32];

	if (len >= 5 && !memcmp(data, "HTTP/", 5)) {
		/* a new answer (after a 100 Continue, say) */
		r->etag[0] = r->date[0] = r->last_modified[0] = '\0';
	r->meta_sha256[0] = '\0';
		r->meta_sha256[0] = '\0';
		r->have_length = false;
		return len;
	}
	if (!colon)
		return len;
	nlen = (size_t)(colon - data);
	colon++;
	if (nlen == 4 && !strncasecmp(data, "ETag", 4)) {
		header_value(r->etag, sizeof(r->etag), colon, len - nlen - 1);
	} else if (nlen == 26 &&
		   !strncasecmp(data, "x-amz-meta-snapship-sha256", 26)) {
		header_value(r->meta_sha256, sizeof(r->meta_sha256), colon,
			     len - nlen - 1);
	} else if (nlen == 4 && !strncasecmp(data, "Date", 4)) {
		header_value(r->date, sizeof(r->date), colon, len - nlen - 1);
	} else if (nlen == 13 && !strncasecmp(data, "Last-Modified", 13)) {
		header_value(r->last_modified, sizeof(r->last_modified), colon,
			     len - nlen - 1);
	} else if (nlen == 14 && !strncasecmp(data, "Content-Length", 14)) {
		char *end;

		header_value(num, sizeof(num), colon, len - nlen - 1);
		errno = 0;
		r->content_length = strtoull(num, &end, 10);
		r->have_length = !errno && end != num && !*end;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct s3_req *r = ud;
	size_t n = size * nitems;

	if (n > r->body_len - r->body_off)
		n = r->body_len - r->body_off;
	if (n)
		memcpy(buf, r->body + r->body_off, n);
	r->body_off += n;
	return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct s3_req *r = ud;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* A stall: no byte moved either way for stall_timeout seconds (curl's own
 * low-speed check averages over a window and reacts seconds late). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct s3_req *r = ud;
	double now = util_now_mono();

	(void)dltotal;
	(void)ultotal;
	if (dlnow != r->moved_down || ulnow != r->moved_up) {
		r->moved_down = dlnow;
		r->moved_up = ulnow;
		r->moved_at = now;
		return 0;
	}
	if (now - r->moved_at >= (double)r->s->stall_timeout) {
		r->stalled = true;
		return 1;
	}
	return 0;
}

/* ---- the engine ---- */

static void list_push(struct s3_req **head, struct s3_req *r)
{
	r->next = *head;
	*head = r;
}

static void list_remove(struct s3_req **head, struct s3_req *r)
{
	for (struct s3_req **p = head; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			r->next = NULL;
			return;
		}
}

/* The request is over: wake whoever waits for it. */
static void finish(struct s3_store *s, struct s3_req *r, int result)
{
	pthread_mutex_lock(&s->lock);
	r->result = result;
	r->done = true;
	if (r->on_done)
		r->on_done(r);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void easy_release(struct s3_store *s, struct s3_req *r)
{
	if (r->easy) {
		curl_multi_remove_handle(s->multi, r->easy);
		if (s->npool < S3_EASY_POOL) {
			curl_easy_reset(r->easy);
			s->pool[s->npool++] = r->easy;
		} else {
			curl_easy_cleanup(r->easy);
		}
		r->easy = NULL;
	}
	curl_slist_free_all(r->slist);
	r->slist = NULL;
	free(r->url);
	r->url = NULL;
}

static double backoff(unsigned *seed, unsigned attempt)
{
	double d = S3_BACKOFF_BASE;

	for (unsigned i = 1; i < attempt && d < S3_BACKOFF_MAX; i++)
		d *= 2;
	if (d > S3_BACKOFF_MAX)
		d = S3_BACKOFF_MAX;
	/* half fixed, half random: spread the retries of parallel parts */
	return d / 2 + d / 2 * ((double)rand_r(seed) / RAND_MAX);
}

static bool curl_transient(int cc)
{
	switch ((CURLcode)cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
		return true;
	default:
		return false;
	}
}

/* Why the attempt failed (for the retry log line), or NULL if it did not. */
static const char *attempt_failure(struct s3_req *r, char *buf, size_t len)
{
	struct s3_xml_error e;

	if (r->cc != CURLE_OK) {
		if (!curl_transient(r->cc))
			return NULL;
		snprintf(buf, len, "%s", r->errbuf[0] ? r->errbuf :
			 curl_easy_strerror((CURLcode)r->cc));
		return buf;
	}
	/* 501 Not Implemented and 505 are answers, not passing trouble */
	if ((r->status >= 500 && r->status != 501 && r->status != 505) ||
	    r->status == 429 || r->status == 408) {
		if (s3_xml_error(r->errbody.s, r->errbody.len, &e) == 1)
			snprintf(buf, len, "HTTP %ld %s", r->status, e.code);
		else
			snprintf(buf, len, "HTTP %ld", r->status);
		return buf;
	}
	if (r->status == 400 &&
	    s3_xml_error(r->errbody.s, r->errbody.len, &e) == 1 &&
	    (!strcmp(e.code, "RequestTimeout") || !strcmp(e.code, "SlowDown") ||
	     !strcmp(e.code, "InternalError"))) {
		snprintf(buf, len, "HTTP %ld %s", r->status, e.code);
		return buf;
	}
	return NULL;
}

static void attempt_done(struct s3_store *s, struct s3_req *r, int cc)
{
	unsigned max = s->max_attempts;
	const char *why;
	char buf[CURL_ERROR_SIZE + 32];
	double delay;

	if (cc == CURLE_ABORTED_BY_CALLBACK && r->stalled) {
		cc = CURLE_OPERATION_TIMEDOUT;
		snprintf(r->errbuf, sizeof(r->errbuf),
			 "no data moved for %ld s", r->s->stall_timeout);
	}
	r->cc = cc;
	if (r->easy) {
		if (cc == CURLE_OK)
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
		else
			curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &r->os_errno);
	}
	easy_release(s, r);
	if (r->too_big || r->out.oom) {
		finish(s, r, -EFBIG);
		return;
	}
	why = attempt_failure(r, buf, sizeof(buf));
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
		max = max < S3_CONNECT_ATTEMPTS ? max : S3_CONNECT_ATTEMPTS;
	if (!why || r->attempt + 1 >= max ||
	    __atomic_load_n(&r->cancel, __ATOMIC_ACQUIRE)) {
		finish(s, r, cc == CURLE_OK ? 0 : -EIO);
		return;
	}
	r->attempt++;
	delay = backoff(&s->rand_state, r->attempt);
	r->next_at = util_now_mono() + delay;
	log_info("%s: %s: %s; retrying in %.1f s (attempt %u of %u)",
		 s->who, r->label[0] ? r->label : r->method, why, delay,
		 r->attempt + 1, max);
	list_push(&s->pending, r);
}

/* An injected failure: an answer the server did not give. */
static bool fake_answer(struct s3_store *s, struct s3_req *r)
{
	int code = 0;

	if (fault_hit("s3.request", &code)) {
		r->status = 503;
		sbuf_add(&r->errbody, "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
			 "<Message>injected fault (s3.request)</Message></Error>");
	} else if (fault_hit("s3.request.fatal", &code)) {
		r->status = 403;
		sbuf_add(&r->errbody, "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
			 "<Message>injected fault (s3.request.fatal)</Message></Error>");
	} else {
		return false;
	}
	attempt_done(s, r, CURLE_OK);
	return true;
}

static int sign_request(struct s3_store *s, struct s3_req *r,
			struct sigv4_signed *sig)
{
	struct sigv4_header h[S3_HDR_MAX + 1];
	struct sigv4_params p = {
		.creds = &s->creds, .region = s->region, .service = "s3",
		.time = (int64_t)time(NULL),
		.flags = SIGV4_S3 | SIGV4_CONTENT_SHA256,
	};
	struct sigv4_request req = {
		.method = r->method, .path = r->path, .query = r->query,
		.headers = h, .nheaders = r->nhdrs + 1, .payload_sha256 = r->payload,
	};
	char day[17];
	struct err err = { 0 };

	h[0].name = "Host";
	h[0].value = s->host;
	memcpy(h + 1, r->hdrs, r->nhdrs * sizeof(h[0]));
	sigv4_amz_date(p.time, day);
	day[8] = '\0';
	if (strcmp(s->key.date, day) || strcmp(s->key.region, s->region)) {
		if (sigv4_derive_key(s->secret, day, s->region, "s3", &s->key, &err))
			return err.code;
	}
	p.key = &s->key;
	return sigv4_sign(&p, &req, sig, &err);
}

#define SETOPT(e, opt, val) (curl_easy_setopt((e), (opt), (val)) != CURLE_OK)

static void start_attempt(struct s3_store *s, struct s3_req *r)
{
	struct sigv4_signed sig;
	struct sbuf line = { 0 };
	struct curl_slist *sl = NULL, *n;
	bool bad = false;
	CURL *e;

	r->status = 0;
	r->rlen = 0;
	r->out.len = 0;
	r->errbody.len = 0;
	r->too_big = false;
	r->skip = r->range_off;
	r->etag[0] = r->date[0] = r->last_modified[0] = '\0';
	r->meta_sha256[0] = '\0';
	r->have_length = false;
	r->body_off = 0;
	r->errbuf[0] = '\0';
	r->os_errno = 0;
	r->stalled = false;
	r->moved_at = util_now_mono();
	r->moved_up = r->moved_down = 0;
	if (fake_answer(s, r))
		return;
	if (sign_request(s, r, &sig)) {
		finish(s, r, -ENOMEM);
		return;
	}
	/* the headers: ours and the signer's, all signed; curl's, unsigned */
	sbuf_printf(&line, "Host: %s", s->host);
	n = curl_slist_append(sl, line.s);
	bad |= !n;
	sl = n ? n : sl;
	for (size_t i = 0; i < r->nhdrs + sig.nadd; i++) {
		const struct sigv4_header *h = i < r->nhdrs ? &r->hdrs[i] :
					       &sig.add[i - r->nhdrs];

		line.len = 0;
		sbuf_printf(&line, "%s: %s", h->name, h->value);
		n = curl_slist_append(sl, line.s);
		bad |= !n || line.oom;
		sl = n ? n : sl;
	}
	n = curl_slist_append(sl, "Expect:");
	bad |= !n;
	sl = n ? n : sl;
	if (!strcmp(r->method, "POST")) {
		n = curl_slist_append(sl, "Content-Type: application/xml");
		bad |= !n;
		sl = n ? n : sl;
	}
	sigv4_signed_free(&sig);
	sbuf_free(&line);
	r->slist = sl;
	if (asprintf(&r->url, "%s%s%s%s", s->url_base, r->path,
		     r->query ? "?" : "", r->query ? r->query : "") < 0) {
		r->url = NULL;
		bad = true;
	}
	e = s->npool ? s->pool[--s->npool] : curl_easy_init();
	if (!e || bad) {
		if (e)
			curl_easy_cleanup(e);
		easy_release(s, r);
		finish(s, r, -ENOMEM);
		return;
	}
	r->easy = e;
	bad |= SETOPT(e, CURLOPT_URL, r->url);
	bad |= SETOPT(e, CURLOPT_PRIVATE, r);
	bad |= SETOPT(e, CURLOPT_HTTPHEADER, r->slist);
	bad |= SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	bad |= SETOPT(e, CURLOPT_PATH_AS_IS, 1L);
	bad |= SETOPT(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	bad |= SETOPT(e, CURLOPT_USERAGENT, "snapship");
	bad |= SETOPT(e, CURLOPT_CONNECTTIMEOUT, s->connect_timeout);
	bad |= SETOPT(e, CURLOPT_NOPROGRESS, 0L);
	bad |= SETOPT(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	bad |= SETOPT(e, CURLOPT_XFERINFODATA, r);
	bad |= SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
	bad |= SETOPT(e, CURLOPT_ERRORBUFFER, r->errbuf);
	bad |= SETOPT(e, CURLOPT_WRITEFUNCTION, on_write);
	bad |= SETOPT(e, CURLOPT_WRITEDATA, r);
	bad |= SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
	bad |= SETOPT(e, CURLOPT_HEADERDATA, r);
	bad |= SETOPT(e, CURLOPT_BUFFERSIZE, 256L << 10);
	if (s->ca_file)
		bad |= SETOPT(e, CURLOPT_CAINFO, s->ca_file);
	if (s->insecure) {
		bad |= SETOPT(e, CURLOPT_SSL_VERIFYPEER, 0L);
		bad |= SETOPT(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (!strcmp(r->method, "HEAD")) {
		bad |= SETOPT(e, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT")) {
		bad |= SETOPT(e, CURLOPT_UPLOAD, 1L);
		bad |= SETOPT(e, CURLOPT_READFUNCTION, on_read);
		bad |= SETOPT(e, CURLOPT_READDATA, r);
		bad |= SETOPT(e, CURLOPT_SEEKFUNCTION, on_seek);
		bad |= SETOPT(e, CURLOPT_SEEKDATA, r);
		bad |= SETOPT(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		bad |= SETOPT(e, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
	} else if (!strcmp(r->method, "POST")) {
		bad |= SETOPT(e, CURLOPT_POST, 1L);
		bad |= SETOPT(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		bad |= SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (!strcmp(r->method, "DELETE")) {
		bad |= SETOPT(e, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (bad || curl_multi_add_handle(s->multi, e) != CURLM_OK) {
		easy_release(s, r);
		finish(s, r, -EIO);
		return;
	}
	list_push(&s->active, r);
}

/* Cancelled requests end now (engine thread). */
static void reap_cancelled(struct s3_store *s)
{
	struct s3_req *gone = NULL, *r, *next;

	pthread_mutex_lock(&s->lock);
	for (r = s->active; r; r = next) {
		next = r->next;
		if (r->cancel) {
			list_remove(&s->active, r);
			list_push(&gone, r);
		}
	}
	for (r = s->pending; r; r = next) {
		next = r->next;
		if (r->cancel) {
			list_remove(&s->pending, r);
			list_push(&gone, r);
		}
	}
	pthread_mutex_unlock(&s->lock);
	for (r = gone; r; r = next) {
		next = r->next;
		easy_release(s, r);
		finish(s, r, -ECANCELED);
	}
}

static void *engine_main(void *arg)
{
	struct s3_store *s = arg;

	for (;;) {
		struct s3_req *r, *next, *due = NULL;
		struct CURLMsg *m;
		double now, wait_s = 10.0;
		int running, left;
		bool stop;

		pthread_mutex_lock(&s->lock);
		for (r = s->queue; r; r = next) {
			next = r->next;
			list_push(&s->pending, r);
		}
		s->queue = s->queue_tail = NULL;
		stop = s->stopping;
		pthread_mutex_unlock(&s->lock);

		reap_cancelled(s);
		now = util_now_mono();
		for (r = s->pending; r; r = next) {
			next = r->next;
			if (r->next_at <= now) {
				list_remove(&s->pending, r);
				list_push(&due, r);
			} else if (r->next_at - now < wait_s) {
				wait_s = r->next_at - now;
			}
		}
		for (r = due; r; r = next) {
			next = r->next;
			r->next = NULL;
			start_attempt(s, r);
		}
		curl_multi_perform(s->multi, &running);
		while ((m = curl_multi_info_read(s->multi, &left))) {
			void *priv = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
			r = priv;
			list_remove(&s->active, r);
			attempt_done(s, r, m->data.result);
		}
		if (stop && !s->active && !s->pending)
			break;
		if (s->pending) {
			/* a retry may have been scheduled just now */
			now = util_now_mono();
			for (r = s->pending; r; r = r->next)
				if (r->next_at - now < wait_s)
					wait_s = r->next_at - now;
		}
		/* the stall check (on_progress) runs when curl is called */
		if (s->active && wait_s > 1.0)
			wait_s = 1.0;
		if (wait_s < 0)
			wait_s = 0;
		curl_multi_poll(s->multi, NULL, 0, (int)(wait_s * 1000) + 1, NULL);
	}
	return NULL;
}

static void submit(struct s3_store *s, struct s3_req *r)
{
	r->done = false;
	r->cancel = false;
	r->result = 0;
	r->attempt = 0;
	r->next_at = 0;
	r->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->queue_tail)
		s->queue_tail->next = r;
	else
		s->queue = r;
	s->queue_tail = r;
	pthread_mutex_unlock(&s->lock);
	curl_multi_wakeup(s->multi);
}

static void wait_done(struct s3_store *s, struct s3_req *r)
{
	pthread_mutex_lock(&s->lock);
	while (!r->done)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

/* "PUT "host/part/x"" for messages */
static void what_text(char *buf, size_t len, const char *verb, const char *key)
{
	if (key)
		snprintf(buf, len, "%s \"%.300s\"", verb, key);
	else
		snprintf(buf, len, "%s", verb);
}

/* After a request: 0 for a 2xx answer, else the error (err set). */
static int req_check(struct s3_store *s, struct s3_req *r, const char *what,
		     struct err *err)
{
	if (r->result == -ECANCELED)
		return err_set(err, -ECANCELED, "%s: %s: cancelled", s->who, what);
	if (r->result == -EFBIG)
		return err_set(err, -EFBIG, "%s: %s: the server's answer is too big",
			       s->who, what);
	if (r->result == -ENOMEM)
		return err_set(err, -ENOMEM, "%s: %s: out of memory", s->who, what);
	if (r->result < 0)
		return s3_transport_error(&s->names, what, r->cc, r->os_errno,
					  r->errbuf, err);
	if (r->status >= 200 && r->status < 300)
		return 0;
	return s3_http_error(&s->names, what, r->status, r->errbody.s,
			     r->errbody.len, r->date[0] ? r->date : NULL, err);
}

/* Run r to its end and check it. */
static int run(struct s3_store *s, struct s3_req *r, const char *what,
	       struct err *err)
{
	snprintf(r->label, sizeof(r->label), "%s", what);
	submit(s, r);
	wait_done(s, r);
	return req_check(s, r, what, err);
}

/* ------------------------------------------------------------------ */
/* open and free                                                       */

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int env_uint(const char *name, unsigned lo, unsigned hi, unsigned *out,
		    struct err *err)
{
	const char *v = env(name);
	unsigned long n;
	char *end;

	if (!v)
		return 0;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return err_set(err, -EINVAL, "%s=%s: expected a number from %u to %u",
			       name, v, lo, hi);
	*out = (unsigned)n;
	return 0;
}

static void s3_free_store(struct s3_store *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_mutex_unlock(&s->lock);
		curl_multi_wakeup(s->multi);
		pthread_join(s->thread, NULL);
	}
	for (unsigned i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	if (s->secret) {
		sigv4_wipe(s->secret, strlen(s->secret));
		free(s->secret);
	}
	if (s->token) {
		sigv4_wipe(s->token, strlen(s->token));
		free(s->token);
	}
	sigv4_wipe(&s->key, sizeof(s->key));
	free(s->access_key_id);
	free(s->who);
	free(s->fix_bucket);
	free(s->fix_keys);
	free(s->fix_region);
	free(s->bucket);
	free(s->prefix);
	free(s->endpoint);
	free(s->url_base);
	free(s->host);
	free(s->path_base);
	free(s->region);
	free(s->ca_file);
	free(s);
}

static void s3_free(void *priv)
{
	s3_free_store(priv);
}

static int oom(struct s3_store *s, struct err *err)
{
	return err_set(err, -ENOMEM, "%s: out of memory", s->who ? s->who : "s3");
}

/* Credentials: the config's key id and secret file, else the environment. */
static int open_credentials(struct s3_store *s, const struct store_opts *o,
			    struct err *err)
{
	const char *id = o->access_key_id, *secret;
	int ret;

	if (id || o->secret_access_key_file) {
		if (!id || !o->secret_access_key_file)
			return err_set(err, -EINVAL,
				       "%s: set both access_key_id and secret_access_key_file%s%s%s",
				       s->who, o->name ? " in [region " : "",
				       o->name ? o->name : "", o->name ? "]" : "");
		ret = s3_read_secret_file(o->secret_access_key_file,
					  "secret_access_key_file", &s->secret, err);
		if (ret)
			return err_wrap(err, "%s", s->who);
		s->access_key_id = strdup(id);
		if (asprintf(&s->fix_keys,
			     "access_key_id and secret_access_key_file of %s%s%s",
			     o->name ? "[region " : "the store", o->name ? o->name : "",
			     o->name ? "]" : "") < 0)
			s->fix_keys = NULL;
	} else {
		id = env("AWS_ACCESS_KEY_ID");
		secret = env("AWS_SECRET_ACCESS_KEY");
		if (!id || !secret)
			return err_set(err, -EINVAL,
				       "%s: no S3 credentials: set %s%s%sAWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
				       s->who,
				       o->name ? "access_key_id and secret_access_key_file in [region " : "",
				       o->name ? o->name : "", o->name ? "], or " : "");
		s->access_key_id = strdup(id);
		s->secret = strdup(secret);
		if (env("AWS_SESSION_TOKEN")) {
			s->token = strdup(env("AWS_SESSION_TOKEN"));
			if (!s->token)
				return oom(s, err);
		}
		s->fix_keys = strdup("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	}
	if (!s->access_key_id || !s->secret || !s->fix_keys)
		return oom(s, err);
	s->creds.access_key_id = s->access_key_id;
	s->creds.secret_access_key = s->secret;
	s->creds.session_token = s->token;
	return 0;
}

static int open_numbers(struct s3_store *s, const struct store_opts *o,
			struct err *err)
{
	unsigned inflight = o->parts_in_flight, connect = o->connect_timeout;
	unsigned stall = o->stall_timeout, attempts = o->max_attempts;
	uint64_t part = o->part_size;
	const char *v;
	int ret;

	if (!part && (v = env("SNAPSHIP_S3_PART_SIZE")) && util_parse_size(v, &part))
		return err_set(err, -EINVAL, "SNAPSHIP_S3_PART_SIZE=%s: expected a size such as 16M", v);
	if (!part)
		part = S3_DEFAULT_PART_SIZE;
	if (part < S3_MIN_PART_SIZE || part > S3_MAX_PART_SIZE)
		return err_set(err, -EINVAL,
			       "%s: part size %llu is out of range; S3 parts are 5M to 5G",
			       s->who, (unsigned long long)part);
	if ((!inflight && (ret = env_uint("SNAPSHIP_S3_PARTS_IN_FLIGHT", 1, 64, &inflight, err))) ||
	    (!connect && (ret = env_uint("SNAPSHIP_S3_CONNECT_TIMEOUT", 1, 3600, &connect, err))) ||
	    (!stall && (ret = env_uint("SNAPSHIP_S3_STALL_TIMEOUT", 1, 86400, &stall, err))) ||
	    (!attempts && (ret = env_uint("SNAPSHIP_S3_MAX_ATTEMPTS", 1, 100, &attempts, err))))
		return ret;
	s->part_size = part;
	s->inflight = inflight ? inflight : 3;
	if (s->inflight > 64)
		return err_set(err, -EINVAL, "%s: parts in flight %u: at most 64",
			       s->who, s->inflight);
	s->connect_timeout = connect ? (long)connect : 10;
	s->stall_timeout = stall ? (long)stall : 60;
	s->max_attempts = attempts ? attempts : 8;
	s->content_md5 = o->content_md5;
	return 0;
}

static int open_endpoint(struct s3_store *s, const struct store_opts *o,
			 struct err *err)
{
	const char *ep = o->endpoint, *v;
	enum store_addressing addr = o->addressing;
	char *scheme = NULL, *auth = NULL, *deflt = NULL;
	int ret;

	if (!ep)
		ep = env("SNAPSHIP_S3_ENDPOINT");
	if (!ep)
		ep = env("AWS_ENDPOINT_URL_S3");
	if (!ep)
		ep = env("AWS_ENDPOINT_URL");
	if (!ep) {
		if (asprintf(&deflt, "https://s3.%s.amazonaws.com", s->region) < 0)
			return oom(s, err);
		ep = deflt;
	}
	ret = s3_parse_endpoint(ep, &scheme, &auth, err);
	free(deflt);
	if (ret)
		return err_wrap(err, "%s", s->who);
	if (addr == STORE_ADDR_DEFAULT && (v = env("SNAPSHIP_S3_ADDRESSING"))) {
		if (!strcmp(v, "path"))
			addr = STORE_ADDR_PATH;
		else if (!strcmp(v, "virtual"))
			addr = STORE_ADDR_VIRTUAL;
		else
			ret = err_set(err, -EINVAL,
				      "SNAPSHIP_S3_ADDRESSING=%s: expected path or virtual", v);
	}
	if (!ret && addr == STORE_ADDR_VIRTUAL && !s3_bucket_dns_ok(s->bucket))
		ret = err_set(err, -EINVAL,
			      "%s: bucket \"%s\" cannot be a host name (virtual-hosted addressing); use addressing = path",
			      s->who, s->bucket);
	if (ret)
		goto out;
	if (asprintf(&s->endpoint, "%s://%s", scheme, auth) < 0)
		s->endpoint = NULL;
	if (addr == STORE_ADDR_VIRTUAL) {
		if (asprintf(&s->host, "%s.%s", s->bucket, auth) < 0)
			s->host = NULL;
		if (asprintf(&s->url_base, "%s://%s", scheme, s->host ? s->host : "") < 0)
			s->url_base = NULL;
		s->path_base = strdup("");
	} else {
		char *enc = sigv4_uri_encode(s->bucket, strlen(s->bucket), false);

		s->host = strdup(auth);
		s->url_base = s->endpoint ? strdup(s->endpoint) : NULL;
		if (!enc || asprintf(&s->path_base, "/%s", enc) < 0)
			s->path_base = NULL;
		free(enc);
	}
	if (!s->endpoint || !s->host || !s->url_base || !s->path_base)
		ret = oom(s, err);
out:
	free(scheme);
	free(auth);
	return ret;
}

static int s3_open(const char *location, const struct store_opts *o,
		   void **priv_ret, struct err *err)
{
	struct s3_store *s;
	const char *v;
	int ret;

	pthread_once(&curl_once, curl_init);
	if (curl_init_code != CURLE_OK)
		return err_set(err, -EIO, "cannot initialise libcurl: %s",
			       curl_easy_strerror(curl_init_code));
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->rand_state = (unsigned)time(NULL) ^ (unsigned)getpid() ^
			(unsigned)(uintptr_t)s;
	ret = s3_parse_location(location, &s->bucket, &s->prefix, err);
	if (ret)
		goto fail;
	if (o->name) {
		if (asprintf(&s->who, "region %s", o->name) < 0)
			s->who = NULL;
		if (asprintf(&s->fix_bucket, "[region %s] bucket", o->name) < 0)
			s->fix_bucket = NULL;
		if (asprintf(&s->fix_region, "sigv4_region of [region %s]", o->name) < 0)
			s->fix_region = NULL;
	} else {
		if (asprintf(&s->who, "store s3://%s/%s", s->bucket, s->prefix) < 0)
			s->who = NULL;
		else if (s->who[strlen(s->who) - 1] == '/')
			s->who[strlen(s->who) - 1] = '\0';
		s->fix_bucket = strdup("the bucket name in s3://BUCKET/...");
		s->fix_region = strdup("AWS_REGION");
	}
	v = o->region ? o->region : env("AWS_REGION");
	if (!v)
		v = env("AWS_DEFAULT_REGION");
	s->region = strdup(v ? v : "us-east-1");
	if (!s->who || !s->fix_bucket || !s->fix_region || !s->region) {
		ret = oom(s, err);
		goto fail;
	}
	if (strlen(s->region) >= sizeof(s->key.region) || strpbrk(s->region, "/ \t")) {
		ret = err_set(err, -EINVAL, "%s: bad SigV4 region \"%s\"", s->who,
			      s->region);
		goto fail;
	}
	ret = open_endpoint(s, o, err);
	if (!ret)
		ret = open_credentials(s, o, err);
	if (!ret)
		ret = open_numbers(s, o, err);
	if (ret)
		goto fail;
	/* a configured region (o->name) says how to trust its endpoint itself:
	 * the environment must not weaken or replace that */
	v = o->ca_file ? o->ca_file : o->name ? NULL : env("AWS_CA_BUNDLE");
	if (v) {
		if (access(v, R_OK)) {
			ret = err_set(err, -errno, "%s: ca_file %s: %s", s->who, v,
				      err_str(-errno));
			goto fail;
		}
		s->ca_file = strdup(v);
		if (!s->ca_file) {
			ret = oom(s, err);
			goto fail;
		}
	}
	v = o->name ? NULL : env("SNAPSHIP_S3_INSECURE_TLS");
	s->insecure = o->insecure_tls ||
		      (v && (!strcmp(v, "1") || !strcmp(v, "yes")));
	if (s->insecure && !strncmp(s->endpoint, "https:", 6))
		log_warn("%s: TLS CERTIFICATE VERIFICATION IS OFF (insecure_tls): anyone on the network path can read and alter backups; use this for tests only",
			 s->who);
	s->names.who = s->who;
	s->names.fix_bucket = s->fix_bucket;
	s->names.fix_keys = s->fix_keys;
	s->names.fix_region = s->fix_region;
	s->names.bucket = s->bucket;
	s->names.endpoint = s->endpoint;

	s->multi = curl_multi_init();
	if (!s->multi) {
		ret = oom(s, err);
		goto fail;
	}
	curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)s->inflight + 8);
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->inflight + 8);
	ret = -pthread_create(&s->thread, NULL, engine_main, s);
	if (ret) {
		ret = err_set(err, ret, "%s: cannot start a thread: %s", s->who,
			      err_str(ret));
		goto fail;
	}
	s->thread_started = true;
	log_debug("%s: s3://%s/%s at %s, region %s, %s addressing, parts of %llu MiB, %u in flight",
		  s->who, s->bucket, s->prefix, s->endpoint, s->region,
		  s->path_base[0] ? "path" : "virtual-hosted",
		  (unsigned long long)(s->part_size >> 20), s->inflight);
	*priv_ret = s;
	return 0;
fail:
	s3_free_store(s);
	/* all of these are configuration problems (exit status 2) */
	if (ret != -ENOMEM && err) {
		err->code = -EINVAL;
		ret = -EINVAL;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* streamed put                                                        */

static int s3_head(void *priv, const char *key, struct store_obj_info *info_ret,
		   struct err *err);

struct s3_part {
	struct s3_req req;
	char *buf;
	size_t cap, len;
	EVP_MD_CTX *sha;
	unsigned number;
	bool busy;                  /* uploading */
	bool failed;                /* req holds the error */
};

struct s3_writer {
	struct s3_store *s;
	char *key;                  /* store key, for messages */
	char *upload_id;
	struct s3_part *parts;      /* inflight + 1 slots */
	unsigned nparts;
	struct s3_part *cur;        /* being filled */
	unsigned next_number;       /* of cur */
	char **etags;               /* [number - 1], under s->lock */
	unsigned netags;
	unsigned in_flight;         /* under s->lock */
	uint64_t bytes;             /* written so far */
};

static void writer_free(struct s3_writer *w)
{
	for (unsigned i = 0; i < w->nparts; i++) {
		req_free(&w->parts[i].req);
		free(w->parts[i].buf);
		EVP_MD_CTX_free(w->parts[i].sha);
	}
	for (unsigned i = 0; i < w->netags; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->parts);
	free(w->upload_id);
	free(w->key);
	free(w);
}

static int s3_put_begin(void *priv, const char *key, void **wpriv_ret,
			struct err *err)
{
	struct s3_store *s = priv;
	struct s3_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return oom(s, err);
	w->s = s;
	w->key = strdup(key);
	w->nparts = s->inflight + 1;
	w->parts = calloc(w->nparts, sizeof(*w->parts));
	w->next_number = 1;
	if (!w->key || !w->parts) {
		writer_free(w);
		return oom(s, err);
	}
	*wpriv_ret = w;
	return 0;
}

/* The error a failed part left (writer thread). */
static int part_error(struct s3_writer *w, struct s3_part *p, struct err *err)
{
	char what[400];
	int ret;

	snprintf(what, sizeof(what), "PUT \"%.300s\" part %u", w->key, p->number);
	ret = req_check(w->s, &p->req, what, err);
	if (!ret)        /* 2xx without an ETag */
		ret = err_set(err, -EBADMSG,
			      "%s: %s: the server's answer has no ETag",
			      w->s->who, what);
	return ret;
}

/* A free slot for the next part: waits while all are uploading. */
static int take_slot(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = NULL, *failed = NULL;
	uint64_t cur = s3_part_size(s->part_size, w->next_number);
	uint64_t budget = (uint64_t)w->nparts * s->part_size;
	unsigned usable = w->nparts;

	/*
	 * Parts grow every 1,000 parts; fewer of them at once keep the buffers
	 * within the memory the first part size promised (never fewer than
	 * one filling and one in flight).  Slots given up free their buffers.
	 */
	if (cur && cur * usable > budget) {
		usable = (unsigned)(budget / cur);
		if (usable < 2)
			usable = 2;
	}
	pthread_mutex_lock(&s->lock);
	for (;;) {
		for (unsigned i = 0; i < w->nparts && !failed; i++)
			if (w->parts[i].failed)
				failed = &w->parts[i];
		if (failed)
			break;
		for (unsigned i = 0; i < usable && !p; i++)
			if (!w->parts[i].busy)
				p = &w->parts[i];
		if (p)
			break;
		pthread_cond_wait(&s->cond, &s->lock);
	}
	for (unsigned i = usable; i < w->nparts; i++) {
		if (!w->parts[i].busy && w->parts[i].buf) {
			free(w->parts[i].buf);
			w->parts[i].buf = NULL;
			w->parts[i].cap = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (failed)
		return part_error(w, failed, err);
	if (!p->sha)
		p->sha = EVP_MD_CTX_new();
	if (!p->sha || !EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL))
		return err_set(err, -EIO, "%s: SHA-256 init failed (OpenSSL)", s->who);
	req_free(&p->req);
	p->len = 0;
	w->cur = p;
	return 0;
}

static void part_done(struct s3_req *r)
{
	struct s3_writer *w = r->owner;
	struct s3_part *p = r->owner2;

	w->in_flight--;
	p->busy = false;
	if (r->result || r->status < 200 || r->status >= 300 || !r->etag[0]) {
		p->failed = true;
		return;
	}
	w->etags[p->number - 1] = strdup(r->etag);
	if (!w->etags[p->number - 1]) {
		r->result = -ENOMEM;
		p->failed = true;
	}
}

static int create_upload(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_req r;
	struct sbuf q = { 0 };
	char what[400];
	int ret;

	req_init(s, &r, "POST");
	r.out_max = 1u << 20;
	query_add(&q, "uploads", NULL);
	ret = req_target(&r, w->key, err);
	if (!ret)
		ret = req_query(&r, &q, err);
	what_text(what, sizeof(what), "CreateMultipartUpload", w->key);
	if (!ret)
		ret = run(s, &r, what, err);
	if (!ret)
		ret = s3_xml_initiate(r.out.s, r.out.len, &w->upload_id, err);
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	req_free(&r);
	return ret;
}

/* Content-MD5 header of a body */
static int add_md5(struct s3_req *r, const void *body, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char b64[32];

	if (!EVP_Digest(len ? body : "", len, md, &mdlen, EVP_md5(), NULL) ||
	    mdlen != 16)
		return -EIO;
	s3_base64(md, 16, b64);
	req_header(r, "Content-MD5", "%s", b64);
	return 0;
}

static int part_sha_final(struct s3_writer *w, struct s3_part *p,
			  struct err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hx[] = "0123456789abcdef";

	if (!EVP_DigestFinal_ex(p->sha, md, &mdlen) || mdlen != 32)
		return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)", w->s->who);
	for (unsigned i = 0; i < 32; i++) {
		p->req.payload[2 * i] = hx[md[i] >> 4];
		p->req.payload[2 * i + 1] = hx[md[i] & 15];
	}
	p->req.payload[64] = '\0';
	return 0;
}

/* Send the current part (writer thread): the upload goes on meanwhile. */
static int flush_part(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = w->cur;
	struct sbuf q = { 0 };
	unsigned number = w->next_number;
	char num[16];
	int ret;

	if (number > S3_MAX_PARTS)
		return err_set(err, -EFBIG,
			       "%s: %s is larger than 10,000 parts of up to 5 GiB hold",
			       s->who, w->key);
	if (!w->upload_id) {
		ret = create_upload(w, err);
		if (ret)
			return ret;
	}
	req_init(s, &p->req, "PUT");
	ret = part_sha_final(w, p, err);
	if (ret)
		return ret;
	p->req.body = p->buf;
	p->req.body_len = p->len;
	p->req.out_max = 1u << 20;
	p->req.on_done = part_done;
	p->req.owner = w;
	p->req.owner2 = p;
	if (s->content_md5 && add_md5(&p->req, p->buf, p->len))
		return err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	snprintf(num, sizeof(num), "%u", number);
	query_add(&q, "partNumber", num);
	query_add(&q, "uploadId", w->upload_id);
	ret = req_target(&p->req, w->key, err);
	if (!ret)
		ret = req_query(&p->req, &q, err);
	if (ret)
		return ret;
	snprintf(p->req.label, sizeof(p->req.label), "PUT \"%.280s\" part %u",
		 w->key, number);

	pthread_mutex_lock(&s->lock);
	if (number > w->netags) {
		unsigned cap = w->netags ? w->netags * 2 : 64;
		char **n;

		if (cap > S3_MAX_PARTS)
			cap = S3_MAX_PARTS;
		n = realloc(w->etags, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&s->lock);
			return oom(s, err);
		}
		memset(n + w->netags, 0, (cap - w->netags) * sizeof(*n));
		w->etags = n;
		w->netags = cap;
	}
	p->number = number;
	p->busy = true;
	w->in_flight++;
	pthread_mutex_unlock(&s->lock);
	submit(s, &p->req);
	w->next_number++;
	w->cur = NULL;
	return 0;
}

static int s3_write(void *wpriv, const void *buf, size_t len, struct err *err)
{
	struct s3_writer *w = wpriv;
	const char *src = buf;
	int ret;

	while (len) {
		struct s3_part *p;
		uint64_t target;
		size_t n;

		if (!w->cur) {
			ret = take_slot(w, err);
			if (ret)
				return ret;
		}
		p = w->cur;
		target = s3_part_size(w->s->part_size, w->next_number);
		if (!target)
			return err_set(err, -EFBIG,
				       "%s: %s is larger than 10,000 parts of up to 5 GiB hold",
				       w->s->who, w->key);
		if (p->len == target) {
			/* full, and more is coming: send it */
			ret = flush_part(w, err);
			if (ret)
				return ret;
			continue;
		}
		n = target - p->len < len ? (size_t)(target - p->len) : len;
		if (p->len + n > p->cap) {
			size_t cap = p->cap ? p->cap : S3_BUF_MIN;
			char *nb;

			while (cap < p->len + n)
				cap *= 2;
			if (cap > target)
				cap = (size_t)target;
			nb = realloc(p->buf, cap);
			if (!nb)
				return oom(w->s, err);
			p->buf = nb;
			p->cap = cap;
		}
		memcpy(p->buf + p->len, src, n);
		if (!EVP_DigestUpdate(p->sha, src, n))
			return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)",
				       w->s->who);
		p->len += n;
		w->bytes += n;
		src += n;
		len -= n;
	}
	return 0;
}

/* Cancel the parts in flight and wait until none is. */
static void cancel_parts(struct s3_writer *w)
{
	struct s3_store *s = w->s;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < w->nparts; i++)
		if (w->parts[i].busy)
			w->parts[i].req.cancel = true;
	pthread_mutex_unlock(&s->lock);
	curl_multi_wakeup(s->multi);
	pthread_mutex_lock(&s->lock);
	while (w->in_flight)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static int abort_upload(struct s3_store *s, const char *key,
			const char *upload_id, struct err *err)
{
	struct s3_req r;
	struct sbuf q = { 0 };
	char what[400];
	int ret;

	req_init(s, &r, "DELETE");
	query_add(&q, "uploadId", upload_id);
	ret = req_target(&r, key, err);
	if (!ret)
		ret = req_query(&r, &q, err);
	what_text(what, sizeof(what), "AbortMultipartUpload", key);
	if (!ret)
		ret = run(s, &r, what, err);
	req_free(&r);
	return ret;
}

static void s3_put_abort(void *wpriv)
{
	struct s3_writer *w = wpriv;
	struct err err = { 0 };

	if (!w)
		return;
	cancel_parts(w);
	if (w->upload_id && abort_upload(w->s, w->key, w->upload_id, &err) &&
	    err.code != -ENOENT)
		log_warn("%s (the unfinished upload stays; snapship clean removes it)",
			 err.msg);
	writer_free(w);
}

/* A small object: one PutObject, with its SHA-256 as user metadata. */
static int put_single(struct s3_writer *w, struct store_obj_info *info_ret,
		      struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = w->cur;
	struct s3_req r;
	char what[400];
	int ret;

	req_init(s, &r, "PUT");
	r.out_max = 1u << 20;
	if (p) {
		struct s3_req tmp;

		/* the part's running hash is the object's */
		req_init(s, &tmp, "PUT");
		p->req = tmp;
		ret = part_sha_final(w, p, err);
		if (ret)
			return ret;
		memcpy(r.payload, p->req.payload, sizeof(r.payload));
		r.body = p->buf;
		r.body_len = p->len;
	}
	req_header(&r, "x-amz-meta-snapship-sha256", "%s", r.payload);
	if (s->content_md5 && add_md5(&r, r.body, r.body_len)) {
		req_free(&r);
		return err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	}
	what_text(what, sizeof(what), "PUT", w->key);
	ret = req_target(&r, w->key, err);
	if (!ret)
		ret = run(s, &r, what, err);
	if (!ret && info_ret) {
		info_ret->size = r.body_len;
		etag_copy(info_ret->etag, sizeof(info_ret->etag), r.etag);
		memcpy(info_ret->sha256, r.payload, 65);
	}
	req_free(&r);
	return ret;
}

static int complete_upload(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct sbuf x = { 0 }, q = { 0 };
	struct s3_xml_error e;
	struct s3_req r;
	char what[400];
	unsigned nparts = w->next_number - 1;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)w;
	int ret;

	sbuf_add(&x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (unsigned i = 0; i < nparts; i++) {
		sbuf_printf(&x, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
		s3_xml_escape(&x, w->etags[i]);
		sbuf_add(&x, "</ETag></Part>");
	}
	sbuf_add(&x, "</CompleteMultipartUpload>");
	if (!sbuf_ok(&x))
		return oom(s, err);
	what_text(what, sizeof(what), "CompleteMultipartUpload", w->key);
	req_init(s, &r, "POST");
	r.out_max = 1u << 20;
	query_add(&q, "uploadId", w->upload_id);
	ret = req_target(&r, w->key, err);
	if (!ret)
		ret = req_query(&r, &q, err);
	if (!ret)
		ret = req_body(&r, x.s, x.len, err);
	/* 200 OK can still carry an <Error>: retry those that say so */
	for (unsigned attempt = 1; !ret; attempt++) {
		ret = run(s, &r, what, err);
		if (ret)
			break;
		ret = s3_xml_complete(r.out.s, r.out.len, &e, err);
		if (ret <= 0)
			break;
		if (attempt < s->max_attempts &&
		    (!strcmp(e.code, "InternalError") || !strcmp(e.code, "SlowDown") ||
		     !strcmp(e.code, "ServiceUnavailable") ||
		     !strcmp(e.code, "RequestTimeout"))) {
			double d = backoff(&seed, attempt);

			log_info("%s: %s: 200 OK with error %s; retrying in %.1f s",
				 s->who, what, e.code, d);
			usleep((useconds_t)(d * 1e6));
			ret = 0;
			continue;
		}
		ret = err_set(err, -EIO, "%s: %s failed inside a 200 OK answer (%s: %.200s)",
			      s->who, what, e.code, e.message);
	}
	if (ret == -ENOENT) {
		/* NoSuchUpload: an earlier attempt (ours, or curl's own resend
		 * on a dead connection) completed it and only the answer was
		 * lost, so the upload is gone because the object exists.  Keys
		 * are unique per backup: the size tells it is ours. */
		struct store_obj_info info;
		struct err e2 = { 0 };

		if (!s3_head(s, w->key, &info, &e2) && info.size == w->bytes) {
			err_clear(err);
			ret = 0;
		}
	}
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	req_free(&r);
	sbuf_free(&x);
	return ret;
}

static int delete_one(struct s3_store *s, const char *key, struct err *err);

static int s3_put_commit(void *wpriv, struct store_obj_info *info_ret,
			 struct err *err)
{
	struct s3_writer *w = wpriv;
	struct s3_store *s = w->s;
	int ret = 0;

	if (!w->upload_id) {
		ret = put_single(w, info_ret, err);
		writer_free(w);
		return ret;
	}
	if (w->cur && w->cur->len)
		ret = flush_part(w, err);          /* the last, short part */
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		while (w->in_flight)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		for (unsigned i = 0; i < w->nparts && !ret; i++)
			if (w->parts[i].failed)
				ret = part_error(w, &w->parts[i], err);
	}
	if (!ret)
		ret = complete_upload(w, err);
	if (ret) {
		s3_put_abort(w);
		return ret;
	}
	/* the server's own word on what it assembled: size and ETag */
	if (info_ret) {
		struct err he = { 0 };

		/* the object exists now; without its ETag the copy checks
		 * compare sizes and SHA-256 only */
		if (s3_head(s, w->key, info_ret, &he)) {
			log_warn("%s (the upload is complete; its ETag is not recorded)", he.msg);
			memset(info_ret, 0, sizeof(*info_ret));
			info_ret->size = w->bytes;
		} else if (info_ret->size != w->bytes) {
			ret = err_set(err, -EIO,
				      "%s: %s holds %llu bytes after CompleteMultipartUpload, not the %llu sent",
				      s->who, w->key, (unsigned long long)info_ret->size,
				      (unsigned long long)w->bytes);
			delete_one(s, w->key, &he);
		}
	}
	writer_free(w);
	return ret;
}

/* ------------------------------------------------------------------ */
/* reads                                                               */

static int s3_head(void *priv, const char *key, struct store_obj_info *info_ret,
		   struct err *err)
{
	struct s3_store *s = priv;
	struct s3_req r;
	char what[400];
	time_t t;
	int ret;

	req_init(s, &r, "HEAD");
	what_text(what, sizeof(what), "HEAD", key);
	ret = req_target(&r, key, err);
	if (!ret)
		ret = run(s, &r, what, err);
	if (!ret && !r.have_length)
		ret = err_set(err, -EBADMSG, "%s: %s: no Content-Length in the answer",
			      s->who, what);
	if (!ret) {
		memset(info_ret, 0, sizeof(*info_ret));
		info_ret->size = r.content_length;
		t = r.last_modified[0] ? curl_getdate(r.last_modified, NULL) : -1;
		info_ret->mtime_ns = t == (time_t)-1 ? 0 : (int64_t)t * 1000000000;
		etag_copy(info_ret->etag, sizeof(info_ret->etag), r.etag);
		if (strlen(r.meta_sha256) == 64)
			memcpy(info_ret->sha256, r.meta_sha256, 65);
	}
	req_free(&r);
	return ret;
}

static int s3_get_range(void *priv, const char *key, uint64_t off, size_t len,
			void *buf, size_t *got_ret, struct err *err)
{
	struct s3_store *s = priv;
	struct store_obj_info info;
	struct s3_req r;
	char what[400];
	int ret;

	*got_ret = 0;
	if (!len)         /* nothing to read, but the object must exist */
		return s3_head(priv, key, &info, err);
	if (off > UINT64_MAX - len)
		return err_set(err, -EINVAL, "%s: reading %s: range out of bounds",
			       s->who, key);
	req_init(s, &r, "GET");
	r.fixed = buf;
	r.fixed_cap = len;
	r.range_off = off;
	req_header(&r, "Range", "bytes=%llu-%llu", (unsigned long long)off,
		   (unsigned long long)(off + len - 1));
	what_text(what, sizeof(what), "GET", key);
	snprintf(r.label, sizeof(r.label), "%s", what);
	ret = req_target(&r, key, err);
	if (!ret) {
		submit(s, &r);
		wait_done(s, &r);
		if (r.result == 0 && r.status == 416) {
			/* InvalidRange: off is at or past the end */
			ret = 0;
			r.rlen = 0;
		} else {
			ret = req_check(s, &r, what, err);
		}
	}
	if (!ret)
		*got_ret = r.rlen;
	req_free(&r);
	return ret;
}

/* ------------------------------------------------------------------ */
/* list                                                                */

static int s3_list(void *priv, const char *prefix, store_list_fn fn, void *ctx,
		   struct err *err)
{
	struct s3_store *s = priv;
	size_t plen = strlen(s->prefix);
	char *full = NULL, *token = NULL;
	char what[400];
	int ret = 0;

	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
		return oom(s, err);
	what_text(what, sizeof(what), "ListObjectsV2", full[0] ? full : NULL);
	do {
		struct s3_xml_list page;
		struct sbuf q = { 0 };
		struct s3_req r;

		req_init(s, &r, "GET");
		r.out_max = S3_XMLBODY_MAX;
		query_add(&q, "list-type", "2");
		query_add(&q, "max-keys", "1000");
		query_add(&q, "prefix", full);
		if (token)
			query_add(&q, "continuation-token", token);
		ret = req_target(&r, NULL, err);
		if (!ret)
			ret = req_query(&r, &q, err);
		if (!ret)
			ret = run(s, &r, what, err);
		if (!ret)
			ret = s3_xml_list_v2(r.out.s, r.out.len, &page, err);
		req_free(&r);
		if (ret) {
			if (ret == -EBADMSG)
				err_wrap(err, "%s", s->who);
			break;
		}
		free(token);
		token = page.truncated ? page.next_token : NULL;
		if (!page.truncated)
			free(page.next_token);
		page.next_token = NULL;
		for (size_t i = 0; i < page.n && !ret; i++) {
			const char *k = page.objs[i].key;
			struct store_obj_info info = {
				.size = page.objs[i].size,
				.mtime_ns = page.objs[i].mtime_ns,
			};

			/* "directory" markers and keys outside our prefix */
			if (strncmp(k, s->prefix, plen) || !k[plen] ||
			    k[strlen(k) - 1] == '/')
				continue;
			ret = fn(ctx, k + plen, &info);
		}
		s3_xml_list_free(&page);
	} while (!ret && token);
	free(token);
	free(full);
	return ret;
}

/* ------------------------------------------------------------------ */
/* delete                                                              */

static int delete_one(struct s3_store *s, const char *key, struct err *err)
{
	struct s3_req r;
	char what[400];
	int ret;

	req_init(s, &r, "DELETE");
	what_text(what, sizeof(what), "DELETE", key);
	snprintf(r.label, sizeof(r.label), "%s", what);
	ret = req_target(&r, key, err);
	if (!ret) {
		submit(s, &r);
		wait_done(s, &r);
		struct s3_xml_error e;

		/* S3 answers 204 for a missing key: a 404 that is not
		 * NoSuchKey is a missing bucket, which must not pass */
		if (r.result == 0 && r.status == 404 &&
		    !(s3_xml_error(r.errbody.s, r.errbody.len, &e) == 1 &&
		      !strcmp(e.code, "NoSuchBucket")))
			ret = 0;            /* already gone */
		else
			ret = req_check(s, &r, what, err);
	}
	req_free(&r);
	return ret;
}

/* DeleteObjects of up to 1000 keys; *fallback_ret when unsupported. */
static int delete_batch(struct s3_store *s, const char *const *keys, size_t n,
			bool *fallback_ret, struct err *err)
{
	struct sbuf x = { 0 }, q = { 0 };
	struct s3_xml_deleted d;
	struct s3_xml_error e;
	struct s3_req r;
	int ret;

	*fallback_ret = false;
	sbuf_add(&x, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++) {
		sbuf_add(&x, "<Object><Key>");
		s3_xml_escape(&x, s->prefix);
		s3_xml_escape(&x, keys[i]);
		sbuf_add(&x, "</Key></Object>");
	}
	sbuf_add(&x, "</Delete>");
	if (!sbuf_ok(&x))
		return oom(s, err);
	req_init(s, &r, "POST");
	r.out_max = S3_XMLBODY_MAX;
	query_add(&q, "delete", NULL);
	ret = req_target(&r, NULL, err);
	if (!ret)
		ret = req_query(&r, &q, err);
	if (!ret)
		ret = req_body(&r, x.s, x.len, err);
	if (!ret && add_md5(&r, x.s, x.len))
		ret = err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	if (ret)
		goto out;
	snprintf(r.label, sizeof(r.label), "DeleteObjects (%zu keys)", n);
	submit(s, &r);
	wait_done(s, &r);
	if (r.result == 0 && (r.status == 501 || r.status == 405 ||
			      (r.status == 400 &&
			       s3_xml_error(r.errbody.s, r.errbody.len, &e) == 1 &&
			       !strcmp(e.code, "NotImplemented")))) {
		*fallback_ret = true;
		goto out;
	}
	ret = req_check(s, &r, "DeleteObjects", err);
	if (ret)
		goto out;
	ret = s3_xml_delete_result(r.out.s, r.out.len, &d, err);
	if (ret) {
		err_wrap(err, "%s", s->who);
		goto out;
	}
	for (size_t i = 0; i < d.n && !ret; i++) {
		if (!strcmp(d.errs[i].code, "NoSuchKey"))
			continue;
		ret = err_set(err, !strcmp(d.errs[i].code, "AccessDenied") ? -EACCES : -EIO,
			      "%s: DELETE \"%.300s\": %s: %.200s", s->who,
			      d.errs[i].key ? d.errs[i].key : "?", d.errs[i].code,
			      d.errs[i].message);
	}
	s3_xml_deleted_free(&d);
out:
	req_free(&r);
	sbuf_free(&x);
	return ret;
}

static int s3_delete(void *priv, const char *const *keys, size_t n,
		     struct err *err)
{
	struct s3_store *s = priv;
	bool fallback = false;
	int ret = 0;

	for (size_t i = 0; i < n && !ret;) {
		size_t batch = 0;

		/* keys XML cannot carry go one by one */
		if (fallback || !s3_xml_text_ok(keys[i]) || !s3_xml_text_ok(s->prefix)) {
			ret = delete_one(s, keys[i], err);
			i++;
			continue;
		}
		while (i + batch < n && batch < S3_DELETE_BATCH &&
		       s3_xml_text_ok(keys[i + batch]))
			batch++;
		ret = delete_batch(s, keys + i, batch, &fallback, err);
		if (!ret && !fallback)
			i += batch;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* unfinished multipart uploads                                        */

static int s3_abort_incomplete(void *priv, const char *prefix,
			       unsigned *count_ret, struct err *err)
{
	struct s3_store *s = priv;
	size_t plen = strlen(s->prefix);
	char *full = NULL, *key_marker = NULL, *id_marker = NULL;
	unsigned count = 0;
	int ret = 0;

	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
		return oom(s, err);
	do {
		struct s3_xml_uploads ups;
		struct sbuf q = { 0 };
		struct s3_req r;

		req_init(s, &r, "GET");
		r.out_max = S3_XMLBODY_MAX;
		query_add(&q, "uploads", NULL);
		query_add(&q, "prefix", full);
		if (key_marker)
			query_add(&q, "key-marker", key_marker);
		if (id_marker)
			query_add(&q, "upload-id-marker", id_marker);
		ret = req_target(&r, NULL, err);
		if (!ret)
			ret = req_query(&r, &q, err);
		if (!ret)
			ret = run(s, &r, "ListMultipartUploads", err);
		if (!ret)
			ret = s3_xml_uploads(r.out.s, r.out.len, &ups, err);
		req_free(&r);
		if (ret) {
			if (ret == -EBADMSG)
				err_wrap(err, "%s", s->who);
			break;
		}
		free(key_marker);
		free(id_marker);
		key_marker = ups.truncated ? ups.next_key_marker : NULL;
		id_marker = ups.truncated ? ups.next_upload_id_marker : NULL;
		if (!ups.truncated) {
			free(ups.next_key_marker);
			free(ups.next_upload_id_marker);
		}
		ups.next_key_marker = ups.next_upload_id_marker = NULL;
		for (size_t i = 0; i < ups.n && !ret; i++) {
			struct err e2 = { 0 };

			if (strncmp(ups.u[i].key, s->prefix, plen))
				continue;
			ret = abort_upload(s, ups.u[i].key + plen,
					   ups.u[i].upload_id, &e2);
			if (ret == -ENOENT) {       /* gone meanwhile */
				ret = 0;
				continue;
			}
			if (ret)
				err_set(err, ret, "%s", e2.msg);
			else
				count++;
		}
		s3_xml_uploads_free(&ups);
	} while (!ret && key_marker);
	free(key_marker);
	free(id_marker);
	free(full);
	if (count_ret)
		*count_ret = count;
	return ret;
}

static uint64_t s3_store_part_size(void *priv)
{
	return ((struct s3_store *)priv)->part_size;
}

const struct store_ops store_s3_ops = {
	.scheme = "s3",
	.features = STORE_FEAT_RANGE | STORE_FEAT_ATOMIC_PUT,
	.open_opts = s3_open,
	.free = s3_free,
	.put_begin = s3_put_begin,
	.write = s3_write,
	.put_commit = s3_put_commit,
	.put_abort = s3_put_abort,
	.get_range = s3_get_range,
	.head = s3_head,
	.list = s3_list,
	.delete = s3_delete,
	.abort_incomplete = s3_abort_incomplete,
	.part_size = s3_store_part_size,
};
