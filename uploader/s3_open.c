// SPDX-License-Identifier: MIT
/*
 * Opening the S3 store: a location, options and the environment become a
 * struct s3_store (bucket, prefix, endpoint and addressing, region,
 * credentials, sizes and timeouts) and its HTTP engine.  No request is
 * sent: the first operation talks to the server.  Every problem found here
 * is a configuration error.
 *
 * No secret reaches a log line or an error: the secret key lives in the
 * store (wiped on free) and in the derived signing key only.
 */
#include "uploader/s3_priv.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/sigv4.h"
#include "uploader/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define S3_SECRET_MAX 4096

/* ------------------------------------------------------------------ */
/* pure helpers (s3.h)                                                 */

int s3_read_secret_file(const char *path, const char *config_key,
			char **secret_ret, struct err *err)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	*secret_ret = NULL;
	ret = util_open_secret(path, config_key, &fd, err);
	if (ret)
		return ret;
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
	else if (!strstr(endpoint, "://"))
		slen = 0;       /* HOST[:PORT]: https */
	else
		return err_set(err, -EINVAL,
			       "endpoint \"%s\": expected https://HOST[:PORT] (or HOST[:PORT], which means https)",
			       endpoint);
	a = slen ? endpoint + slen + 3 : endpoint;
	end = a + strcspn(a, "/?#");
	if (end == a || memchr(a, ' ', (size_t)(end - a)) ||
	    strspn(end, "/") != strlen(end))
		return err_set(err, -EINVAL,
			       "endpoint \"%s\": expected http://HOST[:PORT] or https://HOST[:PORT] without a path",
			       endpoint);
	*scheme_ret = slen ? strndup(endpoint, slen) : strdup("https");
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

/* The host of authority ("host:port", "[v6]:port") into host (256 bytes),
 * a trailing dot dropped; false when there is none or it is too long. */
static bool authority_host(const char *authority, char host[256])
{
	const char *end;
	size_t n;

	if (authority[0] == '[') {              /* [v6]:port */
		end = strchr(authority, ']');
		if (!end)
			return false;
		authority++;
	} else {
		end = strchr(authority, ':');
		if (!end)
			end = authority + strlen(authority);
	}
	n = (size_t)(end - authority);
	if (!n || n >= 256)
		return false;
	memcpy(host, authority, n);
	host[n] = '\0';
	if (host[n - 1] == '.')                 /* "localhost." */
		host[n - 1] = '\0';
	return true;
}

bool s3_host_is_ip(const char *authority)
{
	char host[256];
	struct in_addr a4;
	struct in6_addr a6;

	return authority_host(authority, host) &&
	       (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1);
}

bool s3_host_is_loopback(const char *authority)
{
	char host[256];
	struct in_addr a4;
	struct in6_addr a6;

	if (!authority_host(authority, host))
		return false;
	if (!strcasecmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
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
	http_engine_free(s->http);      /* first: it may still sign */
	if (s->secret) {
		sigv4_wipe(s->secret, strlen(s->secret));
		free(s->secret);
	}
	if (s->token) {
		sigv4_wipe(s->token, strlen(s->token));
		free(s->token);
	}
	if (s->del_secret) {
		sigv4_wipe(s->del_secret, strlen(s->del_secret));
		free(s->del_secret);
	}
	sigv4_wipe(&s->key, sizeof(s->key));
	sigv4_wipe(&s->del_key, sizeof(s->del_key));
	free(s->access_key_id);
	free(s->del_access_key_id);
	free(s->fix_del);
	free(s->who);
	free(s->fix_bucket);
	free(s->fix_keys);
	free(s->fix_region);
	free(s->fix_ca);
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

void s3_free(void *priv)
{
	s3_free_store(priv);
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
				return s3_oom(s, err);
		}
		s->fix_keys = strdup("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	}
	if (!s->access_key_id || !s->secret || !s->fix_keys)
		return s3_oom(s, err);
	s->creds.access_key_id = s->access_key_id;
	s->creds.secret_access_key = s->secret;
	s->creds.session_token = s->token;
	return 0;
}

/* Deletions' credentials: prune_access_key_id and its secret file, else
 * the store's one credential. */
static int open_prune_credentials(struct s3_store *s, const struct store_opts *o,
				  struct err *err)
{
	const char *id = o->prune_access_key_id;
	int ret;

	if (o->name)
		ret = asprintf(&s->fix_del,
			       "prune_access_key_id and prune_secret_access_key_file in [region %s]",
			       o->name);
	else
		ret = asprintf(&s->fix_del, "%s",
			       "a config whose [region] sets prune_access_key_id and prune_secret_access_key_file");
	if (ret < 0) {
		s->fix_del = NULL;
		return s3_oom(s, err);
	}
	s->del_creds = s->creds;
	if (!id && !o->prune_secret_access_key_file)
		return 0;
	if (!id || !o->prune_secret_access_key_file)
		return err_set(err, -EINVAL,
			       "%s: set both prune_access_key_id and prune_secret_access_key_file%s%s%s",
			       s->who, o->name ? " in [region " : "",
			       o->name ? o->name : "", o->name ? "]" : "");
	ret = s3_read_secret_file(o->prune_secret_access_key_file,
				  "prune_secret_access_key_file", &s->del_secret, err);
	if (ret)
		return err_wrap(err, "%s", s->who);
	s->del_access_key_id = strdup(id);
	if (!s->del_access_key_id)
		return s3_oom(s, err);
	s->del_creds.access_key_id = s->del_access_key_id;
	s->del_creds.secret_access_key = s->del_secret;
	s->del_creds.session_token = NULL;
	s->del_own = true;
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
	/* AWS wants Content-MD5 (or a checksum) on every put with a lock */
	s->content_md5 = o->content_md5 || o->object_lock;
	s->object_lock = o->object_lock;
	s->cancelled = o->cancelled;
	s->reads_cancelled = o->reads_cancelled;
	s->cancel_ctx = o->cancel_ctx;
	return 0;
}

/*
 * Plain http:// is for this host only (the traffic never leaves it): to any
 * other host it needs allow_http (SNAPSHIP_S3_ALLOW_HTTP=1 for a store
 * without a [region]), since anyone on the path could read and change the
 * backups and the requests.
 */
static int open_plain_http(struct s3_store *s, const struct store_opts *o,
			   const char *scheme, const char *auth, struct err *err)
{
	const char *v = o->name ? NULL : env("SNAPSHIP_S3_ALLOW_HTTP");

	if (strcmp(scheme, "http") || s3_host_is_loopback(auth))
		return 0;
	if (o->allow_http || (v && (!strcmp(v, "1") || !strcmp(v, "yes")))) {
		log_warn("%s: endpoint http://%s is plain HTTP (allow_http): anyone on the network path can read and alter backups",
			 s->who, auth);
		return 0;
	}
	if (o->name)
		return err_set(err, -EINVAL,
			       "%s: endpoint http://%s is plain HTTP to another host: anyone on the network path could read and alter backups; use https:// (with ca_file = the CA's PEM for a private CA), or set allow_http = yes in [region %s] if that network is trusted",
			       s->who, auth, o->name);
	return err_set(err, -EINVAL,
		       "%s: endpoint http://%s is plain HTTP to another host: anyone on the network path could read and alter backups; use https:// (with AWS_CA_BUNDLE for a private CA), or set SNAPSHIP_S3_ALLOW_HTTP=1 if that network is trusted",
		       s->who, auth);
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
			return s3_oom(s, err);
		ep = deflt;
	}
	ret = s3_parse_endpoint(ep, &scheme, &auth, err);
	free(deflt);
	if (ret)
		return err_wrap(err, "%s", s->who);
	ret = open_plain_http(s, o, scheme, auth, err);
	if (ret)
		goto out;
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
	/* BUCKET.1.2.3.4 is a name for a resolver to place anywhere (and not
	 * the loopback plain http was allowed for) */
	if (!ret && addr == STORE_ADDR_VIRTUAL && s3_host_is_ip(auth))
		ret = err_set(err, -EINVAL,
			      "%s: endpoint %s is an IP address: virtual-hosted addressing needs a host name (BUCKET.HOST); use addressing = path",
			      s->who, auth);
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
		ret = s3_oom(s, err);
out:
	free(scheme);
	free(auth);
	return ret;
}

/* The engine that runs the store's requests, with the S3 hooks. */
static int open_engine(struct s3_store *s, struct err *err)
{
	const struct http_engine_opts o = {
		.who = s->who,
		.base_url = s->url_base,
		.ca_file = s->ca_file,
		.insecure_tls = s->insecure,
		/* plain http is accepted for loopback: a proxy would carry it
		 * off the host */
		.no_proxy = s3_host_is_loopback(strstr(s->endpoint, "://") + 3),
		.connect_timeout = s->connect_timeout,
		.stall_timeout = s->stall_timeout,
		.max_attempts = s->max_attempts,
		.max_connections = s->inflight + 8,
		.hooks = &s3_http_hooks,
		.hooks_ctx = s,
		.cancelled = s->cancelled,
		.reads_cancelled = s->reads_cancelled,
		.cancel_ctx = s->cancel_ctx,
	};

	return http_engine_new(&o, &s->http, err);
}

int s3_open(const char *location, const struct store_opts *o,
	    void **priv_ret, struct err *err)
{
	struct s3_store *s;
	const char *v;
	int ret;

	ret = http_global_init(err);
	if (ret)
		return ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, -ENOMEM, "out of memory");
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
		if (asprintf(&s->fix_ca, "ca_file in [region %s]", o->name) < 0)
			s->fix_ca = NULL;
	} else {
		if (asprintf(&s->who, "store s3://%s/%s", s->bucket, s->prefix) < 0)
			s->who = NULL;
		else if (s->who[strlen(s->who) - 1] == '/')
			s->who[strlen(s->who) - 1] = '\0';
		if (asprintf(&s->fix_bucket, "the bucket name in %s%ss3://BUCKET/...",
			     o->given_as ? o->given_as : "",
			     o->given_as ? " " : "") < 0)
			s->fix_bucket = NULL;
		s->fix_region = strdup("AWS_REGION");
		s->fix_ca = strdup("AWS_CA_BUNDLE");
	}
	v = o->region ? o->region : env("AWS_REGION");
	if (!v)
		v = env("AWS_DEFAULT_REGION");
	s->region = strdup(v ? v : "us-east-1");
	if (!s->who || !s->fix_bucket || !s->fix_region || !s->fix_ca || !s->region) {
		ret = s3_oom(s, err);
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
		ret = open_prune_credentials(s, o, err);
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
			ret = s3_oom(s, err);
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
	s->names.fix_ca = s->fix_ca;
	s->names.bucket = s->bucket;
	s->names.endpoint = s->endpoint;

	ret = open_engine(s, err);
	if (ret)
		goto fail;
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
