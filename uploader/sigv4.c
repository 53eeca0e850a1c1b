// SPDX-License-Identifier: MIT
/*
 * AWS Signature Version 4 header signing with OpenSSL 3 (SHA-256, HMAC).
 *
 *   canonical request = METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n PAYLOAD
 *   string to sign    = AWS4-HMAC-SHA256 \n DATE \n SCOPE \n hex(sha256(creq))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, day), region),
 *                                   service), "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Everything here is a pure function of its arguments; see sigv4.h.
 */
#include "uploader/sigv4.h"

#include "common/err.h"
#include "common/util.h"
#include "uploader/sbuf.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char hexdig[] = "0123456789ABCDEF";

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static void enc_byte(struct sbuf *b, unsigned char c, bool keep_slash)
{
	char e[3];

	if (is_unreserved(c) || (keep_slash && c == '/')) {
		sbuf_addc(b, (char)c);
		return;
	}
	e[0] = '%';
	e[1] = hexdig[c >> 4];
	e[2] = hexdig[c & 15];
	sbuf_addn(b, e, 3);
}

char *sigv4_uri_encode(const char *s, size_t len, bool keep_slash)
{
	struct sbuf b = { 0 };

	for (size_t i = 0; i < len; i++)
		enc_byte(&b, (unsigned char)s[i], keep_slash);
	return sbuf_take(&b);
}

/* The byte a "%XX" at s stands for, or -1 when s is not such an escape. */
static int pct_byte(const char *s, size_t left)
{
	int h, l;

	if (left < 3 || s[0] != '%')
		return -1;
	h = util_hexval(s[1]);
	l = util_hexval(s[2]);
	if (h < 0 || l < 0)
		return -1;
	return h * 16 + l;
}

/* Decode %XX escapes ('+' stays '+') and encode strictly into b. */
static void reencode(struct sbuf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int c = pct_byte(s + i, len - i);

		if (c >= 0)
			i += 2;
		else
			c = (unsigned char)s[i];
		enc_byte(b, (unsigned char)c, false);
	}
}

/* ---- canonical URI ---- */

/* S3: each byte encoded once; "%2F" stays an escaped slash. */
static void canonical_path_s3(struct sbuf *b, const char *path)
{
	size_t len = strlen(path);

	if (!len || path[0] != '/')
		sbuf_addc(b, '/');
	for (size_t i = 0; i < len; i++) {
		int c = pct_byte(path + i, len - i);

		if (c < 0) {
			enc_byte(b, (unsigned char)path[i], true);
			continue;
		}
		i += 2;
		enc_byte(b, (unsigned char)c, c != '/');
	}
}

/*
 * Generic: remove "." and ".." segments and empty segments (RFC 3986
 * 5.2.4 plus collapsing "//"), keeping a trailing slash.  Returns a
 * malloc'd path starting with '/', NULL when out of memory.
 */
static char *normalize_path(const char *path)
{
	size_t len = strlen(path), n = 0;
	size_t *starts, *lens;
	bool trailing = false;
	struct sbuf b = { 0 };
	const char *p = path;

	starts = calloc(len + 1, sizeof(*starts));
	lens = calloc(len + 1, sizeof(*lens));
	if (!starts || !lens) {
		free(starts);
		free(lens);
		return NULL;
	}
	while (*p) {
		const char *seg;
		size_t sl;

		while (*p == '/')
			p++;
		if (!*p) {
			trailing = true;
			break;
		}
		seg = p;
		while (*p && *p != '/')
			p++;
		sl = (size_t)(p - seg);
		trailing = false;
		if (sl == 1 && seg[0] == '.') {
			trailing = true;
		} else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
			if (n)
				n--;
			trailing = true;
		} else {
			starts[n] = (size_t)(seg - path);
			lens[n++] = sl;
		}
	}
	for (size_t i = 0; i < n; i++) {
		sbuf_addc(&b, '/');
		sbuf_addn(&b, path + starts[i], lens[i]);
	}
	if (!n || trailing)
		sbuf_addc(&b, '/');
	free(starts);
	free(lens);
	return sbuf_take(&b);
}

static int canonical_path(struct sbuf *b, const char *path, unsigned flags)
{
	char *norm = NULL;
	const char *p = path;

	if (flags & SIGV4_S3) {
		canonical_path_s3(b, path);
		return 0;
	}
	if (flags & SIGV4_NORMALIZE_PATH) {
		norm = normalize_path(path);
		if (!norm)
			return -ENOMEM;
		p = norm;
	}
	if (!p[0] || p[0] != '/')
		sbuf_addc(b, '/');
	for (; *p; p++)
		enc_byte(b, (unsigned char)*p, true);
	free(norm);
	return 0;
}

/* ---- canonical query ---- */

struct qparam {
	char *name;
	char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

char *sigv4_canonical_query(const char *query)
{
	struct qparam *qp = NULL;
	size_t n = 0, cap = 0;
	struct sbuf b = { 0 };
	const char *p = query ? query : "";
	bool oom = false;

	while (*p && !oom) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t nlen = eq ? (size_t)(eq - p) : plen;
		struct sbuf nb = { 0 }, vb = { 0 };

		if (plen) {
			if (n == cap) {
				struct qparam *nq;

				cap = cap ? cap * 2 : 8;
				nq = realloc(qp, cap * sizeof(*qp));
				if (!nq) {
					oom = true;
					break;
				}
				qp = nq;
			}
			reencode(&nb, p, nlen);
			if (eq)
				reencode(&vb, eq + 1, plen - nlen - 1);
			qp[n].name = sbuf_take(&nb);
			qp[n].value = sbuf_take(&vb);
			if (!qp[n].name || !qp[n].value) {
				free(qp[n].name);
				free(qp[n].value);
				oom = true;
				break;
			}
			n++;
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	if (!oom && n)
		qsort(qp, n, sizeof(*qp), qparam_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_addc(&b, '&');
		sbuf_add(&b, qp[i].name);
		sbuf_addc(&b, '=');
		sbuf_add(&b, qp[i].value);
		free(qp[i].name);
		free(qp[i].value);
	}
	free(qp);
	if (oom) {
		sbuf_free(&b);
		return NULL;
	}
	return sbuf_take(&b);
}

/* ---- canonical headers ---- */

struct cheader {
	char *name;             /* lower case */
	char *value;            /* trimmed, inner whitespace runs collapsed */
	size_t order;
};

static int cheader_cmp(const void *a, const void *b)
{
	const struct cheader *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char *trimall(const char *v)
{
	struct sbuf b = { 0 };
	bool space = false;

	while (is_ws(*v))
		v++;
	for (; *v; v++) {
		if (is_ws(*v)) {
			space = true;
			continue;
		}
		if (space)
			sbuf_addc(&b, ' ');
		space = false;
		sbuf_addc(&b, *v);
	}
	return sbuf_take(&b);
}

static char *lower(const char *s)
{
	char *l = strdup(s);

	if (l)
		for (char *p = l; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return l;
}

static bool valid_header_name(const char *n)
{
	if (!*n)
		return false;
	for (; *n; n++)
		if ((unsigned char)*n <= ' ' || *n == ':' || (unsigned char)*n >= 127)
			return false;
	return true;
}

/* ---- hashing ---- */

static void hex_lower(const unsigned char *md, size_t len, char *out)
{
	static const char lx[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = lx[md[i] >> 4];
		out[2 * i + 1] = lx[md[i] & 15];
	}
	out[2 * len] = '\0';
}

int sigv4_sha256_hex(const void *buf, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return -EIO;
	hex_lower(md, 32, hex);
	return 0;
}

static int hmac(const void *key, size_t keylen, const char *msg, size_t len,
		unsigned char out[32])
{
	unsigned int outlen = 0;

	if (keylen > (size_t)INT32_MAX ||
	    !HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		  len, out, &outlen) || outlen != 32)
		return -EIO;
	return 0;
}

void sigv4_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

int sigv4_derive_key(const char *secret, const char *date, const char *region,
		     const char *service, struct sigv4_key *key_ret,
		     struct err *err)
{
	unsigned char k1[32], k2[32];
	size_t slen;
	char *ksecret;
	int ret = -EIO;

	if (!secret || !date || strlen(date) != 8 || !region || !service ||
	    strlen(region) >= sizeof(key_ret->region) ||
	    strlen(service) >= sizeof(key_ret->service))
		return err_set(err, -EINVAL, "SigV4: bad signing scope");
	slen = strlen(secret);
	ksecret = malloc(slen + 5);
	if (!ksecret)
		return err_set(err, -ENOMEM, "SigV4: out of memory");
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, secret, slen + 1);
	if (hmac(ksecret, slen + 4, date, 8, k1) ||
	    hmac(k1, 32, region, strlen(region), k2) ||
	    hmac(k2, 32, service, strlen(service), k1) ||
	    hmac(k1, 32, "aws4_request", 12, key_ret->key))
		goto out;
	memcpy(key_ret->date, date, 9);
	strcpy(key_ret->region, region);
	strcpy(key_ret->service, service);
	ret = 0;
out:
	sigv4_wipe(ksecret, slen + 4);
	free(ksecret);
	sigv4_wipe(k1, sizeof(k1));
	sigv4_wipe(k2, sizeof(k2));
	if (ret)
		return err_set(err, ret, "SigV4: HMAC-SHA256 failed (OpenSSL)");
	return 0;
}

void sigv4_amz_date(int64_t t, char amz_date[17])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) ||
	    strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		strcpy(amz_date, "19700101T000000Z");
}

void sigv4_signed_free(struct sigv4_signed *s)
{
	if (!s)
		return;
	free(s->canonical_request);
	free(s->string_to_sign);
	free(s->signed_headers);
	free(s->authorization);
	memset(s, 0, sizeof(*s));
}

static void free_cheaders(struct cheader *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* Canonical headers and signed headers of the request plus ours. */
static int build_headers(const struct sigv4_request *req,
			 const struct sigv4_header *extra, size_t nextra,
			 struct sbuf *canon, struct sbuf *signed_names,
			 struct err *err)
{
	size_t n = req->nheaders + nextra;
	struct cheader *h = calloc(n ? n : 1, sizeof(*h));
	bool have_host = false;
	int ret = 0;

	if (!h)
		return err_set(err, -ENOMEM, "SigV4: out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct sigv4_header *src = i < req->nheaders ?
			&req->headers[i] : &extra[i - req->nheaders];

		if (!src->name || !src->value || !valid_header_name(src->name)) {
			ret = err_set(err, -EINVAL, "SigV4: bad header name \"%s\"",
				      src->name ? src->name : "(null)");
			goto out;
		}
		h[i].name = lower(src->name);
		h[i].value = trimall(src->value);
		h[i].order = i;
		if (!h[i].name || !h[i].value) {
			ret = err_set(err, -ENOMEM, "SigV4: out of memory");
			goto out;
		}
		if (i < req->nheaders &&
		    (!strcmp(h[i].name, "authorization") ||
		     !strcmp(h[i].name, "x-amz-date"))) {
			ret = err_set(err, -EINVAL,
				      "SigV4: the request already has a %s header; the signer adds it",
				      h[i].name);
			goto out;
		}
		for (size_t j = 0; j < nextra; j++)
			if (i < req->nheaders && !strcasecmp(src->name, extra[j].name)) {
				ret = err_set(err, -EINVAL,
					      "SigV4: the request already has a %s header; the signer adds it",
					      h[i].name);
				goto out;
			}
		if (!strcmp(h[i].name, "host"))
			have_host = true;
	}
	if (!have_host) {
		ret = err_set(err, -EINVAL, "SigV4: the request has no Host header");
		goto out;
	}
	qsort(h, n, sizeof(*h), cheader_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i && !strcmp(h[i].name, h[i - 1].name)) {
			/* repeated header: values joined in order */
			canon->len--;             /* drop the '\n' */
			sbuf_addc(canon, ',');
			sbuf_add(canon, h[i].value);
			sbuf_addc(canon, '\n');
			continue;
		}
		if (i)
			sbuf_addc(signed_names, ';');
		sbuf_add(signed_names, h[i].name);
		sbuf_add(canon, h[i].name);
		sbuf_addc(canon, ':');
		sbuf_add(canon, h[i].value);
		sbuf_addc(canon, '\n');
	}
	if (!sbuf_ok(canon) || !sbuf_ok(signed_names))
		ret = err_set(err, -ENOMEM, "SigV4: out of memory");
out:
	free_cheaders(h, n);
	return ret;
}

/* The canonical request into creq, the signed header names into names. */
static int canonical_request(const struct sigv4_params *p,
			     const struct sigv4_request *req,
			     const struct sigv4_header *extra, size_t nextra,
			     const char *payload, struct sbuf *creq,
			     struct sbuf *names, struct err *err)
{
	struct sbuf canon = { 0 };
	char *query = NULL;
	int ret;

	sbuf_add(creq, req->method);
	sbuf_addc(creq, '\n');
	ret = canonical_path(creq, req->path, p->flags);
	if (ret) {
		ret = err_set(err, ret, "SigV4: out of memory");
		goto out;
	}
	sbuf_addc(creq, '\n');
	query = sigv4_canonical_query(req->query);
	if (!query) {
		ret = err_set(err, -ENOMEM, "SigV4: out of memory");
		goto out;
	}
	sbuf_add(creq, query);
	sbuf_addc(creq, '\n');
	ret = build_headers(req, extra, nextra, &canon, names, err);
	if (ret)
		goto out;
	sbuf_add(creq, canon.s);
	sbuf_addc(creq, '\n');
	sbuf_add(creq, names->s);
	sbuf_addc(creq, '\n');
	sbuf_add(creq, payload);
	if (!sbuf_ok(creq))
		ret = err_set(err, -ENOMEM, "SigV4: out of memory");
out:
	free(query);
	sbuf_free(&canon);
	return ret;
}

/* HMAC of the string to sign with the day's key (p->key when it is it). */
static int signature(const struct sigv4_params *p, const char *day,
		     const struct sbuf *sts, unsigned char sig[32],
		     struct err *err)
{
	struct sigv4_key local;
	const struct sigv4_key *key;
	int ret;

	if (p->key && !strcmp(p->key->date, day) &&
	    !strcmp(p->key->region, p->region) &&
	    !strcmp(p->key->service, p->service)) {
		key = p->key;            /* the cached key is today's */
	} else {
		ret = sigv4_derive_key(p->creds->secret_access_key, day,
				       p->region, p->service, &local, err);
		if (ret)
			return ret;
		key = &local;
	}
	ret = hmac(key->key, sizeof(key->key), sts->s, sts->len, sig);
	if (key == &local)
		sigv4_wipe(&local, sizeof(local));
	if (ret)
		return err_set(err, ret, "SigV4: HMAC-SHA256 failed (OpenSSL)");
	return 0;
}

int sigv4_sign(const struct sigv4_params *p, const struct sigv4_request *req,
	       struct sigv4_signed *out, struct err *err)
{
	struct sigv4_header extra[3];
	size_t nextra = 0;
	struct sbuf creq = { 0 }, names = { 0 }, sts = { 0 };
	struct sbuf auth = { 0 };
	const char *payload;
	char day[9], creq_hash[65];
	unsigned char sig[32];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!p || !p->creds || !p->creds->access_key_id ||
	    !p->creds->secret_access_key || !p->region || !p->service ||
	    !req || !req->method || !req->path)
		return err_set(err, -EINVAL, "SigV4: missing argument");
	payload = req->payload_sha256 ? req->payload_sha256 : SIGV4_EMPTY_SHA256;
	sigv4_amz_date(p->time, out->amz_date);
	memcpy(day, out->amz_date, 8);
	day[8] = '\0';

	extra[nextra].name = "X-Amz-Date";
	extra[nextra++].value = out->amz_date;
	if (p->flags & SIGV4_CONTENT_SHA256) {
		extra[nextra].name = "x-amz-content-sha256";
		extra[nextra++].value = payload;
	}
	if (p->creds->session_token) {
		extra[nextra].name = "X-Amz-Security-Token";
		extra[nextra++].value = p->creds->session_token;
	}

	ret = canonical_request(p, req, extra, nextra, payload, &creq, &names,
				err);
	if (ret)
		goto out;

	/* string to sign */
	ret = sigv4_sha256_hex(creq.s, creq.len, creq_hash);
	if (ret) {
		ret = err_set(err, ret, "SigV4: SHA-256 failed (OpenSSL)");
		goto out;
	}
	sbuf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s",
		    out->amz_date, day, p->region, p->service, creq_hash);
	if (!sbuf_ok(&sts)) {
		ret = err_set(err, -ENOMEM, "SigV4: out of memory");
		goto out;
	}

	ret = signature(p, day, &sts, sig, err);
	if (ret)
		goto out;
	hex_lower(sig, sizeof(sig), out->signature);
	sbuf_printf(&auth, SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
		    p->creds->access_key_id, day, p->region, p->service,
		    names.s, out->signature);
	if (!sbuf_ok(&auth)) {
		ret = err_set(err, -ENOMEM, "SigV4: out of memory");
		goto out;
	}

	out->canonical_request = sbuf_take(&creq);
	out->string_to_sign = sbuf_take(&sts);
	out->signed_headers = sbuf_take(&names);
	out->authorization = sbuf_take(&auth);
	for (size_t i = 0; i < nextra; i++)
		out->add[out->nadd++] = extra[i];
	out->add[out->nadd].name = "Authorization";
	out->add[out->nadd++].value = out->authorization;
	ret = 0;
out:
	sbuf_free(&creq);
	sbuf_free(&names);
	sbuf_free(&sts);
	sbuf_free(&auth);
	if (ret)
		sigv4_signed_free(out);
	return ret;
}
