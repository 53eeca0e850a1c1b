// SPDX-License-Identifier: MIT
/*
 * SigV4 signer against published vectors:
 *   tests/data/sigv4/v4/<case>/  the AWS SigV4 test suite (aws-c-auth's
 *                                tests/aws-signing-test-suite/v4, header
 *                                signing cases; see tests/data/sigv4/README.md)
 *   tests/data/sigv4/s3/<case>/  the S3 worked examples of the AWS docs
 * Each case asserts the exact canonical request, string to sign and
 * signature (and, for the suite, the whole Authorization header and the
 * headers the signer adds).  Plus encoding and error unit tests.
 *
 * SIGV4_WRITE_DERIVED=1 writes a missing header-canonical-request.txt /
 * header-string-to-sign.txt of a case, and only when the signature computed
 * from them equals the published one (how the derived files were made).
 */
#include "common/err.h"
#include "uploader/sigv4.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <setjmp.h>
#include <cmocka.h>

#define DATA_DIR "tests/data/sigv4"
#define MAX_HEADERS 32

struct vcase {
	char dir[1024];
	char name[300];
	bool s3;
};

/* ---- small file helpers ---- */

static char *read_file(const char *dir, const char *name, size_t *len_ret)
{
	char path[1024];
	FILE *f;
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n);
	fclose(f);
	buf[len] = '\0';
	if (len_ret)
		*len_ret = len;
	return buf;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wx");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Expected files end without a newline, but some copies have one. */
static void chomp(char *s)
{
	size_t n = strlen(s);

	if (n && s[n - 1] == '\n')
		s[n - 1] = '\0';
}

/* ---- parsing a raw HTTP request of the suite ---- */

struct raw_request {
	char method[16];
	char *path;                     /* malloc'd */
	char *query;                    /* malloc'd or NULL */
	char *names[MAX_HEADERS];
	char *values[MAX_HEADERS];
	size_t n;
	const char *body;               /* into text */
	size_t body_len;
};

static void raw_free(struct raw_request *r)
{
	free(r->path);
	free(r->query);
	for (size_t i = 0; i < r->n; i++) {
		free(r->names[i]);
		free(r->values[i]);
	}
}

/*
 * "METHOD URI HTTP/1.1\nName:value\n continuation\n...\n\nbody".  The URI
 * may contain spaces (get-space).  A continuation line (starting with
 * white space) is another value of the previous header: the suite's
 * get-header-value-multiline signs "value1,value2,value3".
 */
static void raw_parse(char *text, size_t len, struct raw_request *r)
{
	char *line = text, *eol, *sp1, *sp2, *uri;

	memset(r, 0, sizeof(*r));
	eol = strchr(line, '\n');
	if (eol)
		*eol = '\0';
	sp1 = strchr(line, ' ');
	sp2 = strrchr(line, ' ');
	assert_non_null(sp1);
	assert_true(sp2 > sp1);
	assert_true((size_t)(sp1 - line) < sizeof(r->method));
	memcpy(r->method, line, (size_t)(sp1 - line));
	*sp2 = '\0';
	uri = sp1 + 1;
	if (strchr(uri, '?')) {
		*strchr(uri, '?') = '\0';
		r->query = strdup(uri + strlen(uri) + 1);
	}
	r->path = strdup(uri);
	line = eol ? eol + 1 : text + len;
	while (line < text + len) {
		char *colon;

		eol = strchr(line, '\n');
		if (eol)
			*eol = '\0';
		if (!*line) {            /* blank line: the body follows */
			line = eol ? eol + 1 : text + len;
			break;
		}
		if (*line == ' ' || *line == '\t') {
			assert_true(r->n > 0 && r->n < MAX_HEADERS);
			r->names[r->n] = strdup(r->names[r->n - 1]);
			r->values[r->n] = strdup(line);
			r->n++;
		} else {
			colon = strchr(line, ':');
			assert_non_null(colon);
			assert_true(r->n < MAX_HEADERS);
			r->names[r->n] = strndup(line, (size_t)(colon - line));
			r->values[r->n] = strdup(colon + 1);
			r->n++;
		}
		line = eol ? eol + 1 : text + len;
	}
	r->body = line < text + len ? line : "";
	r->body_len = line < text + len ? (size_t)(text + len - line) : 0;
}

static const char *raw_header(const struct raw_request *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcasecmp(r->names[i], name))
			return r->values[i];
	return NULL;
}

static int64_t parse_timestamp(const char *ts)
{
	struct tm tm = { 0 };

	assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return (int64_t)timegm(&tm);
}

static bool in_list(json_t *list, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v)
		if (json_is_string(v) && !strcasecmp(json_string_value(v), name))
			return true;
	return false;
}

/* The part of an Authorization header after "Signature=". */
static const char *auth_signature(const char *auth)
{
	const char *s = strstr(auth, "Signature=");

	assert_non_null(s);
	return s + 10;
}

/* ---- one vector ---- */

static void run_vector(void **state)
{
	const struct vcase *vc = *state;
	char *ctx_text, *text, *creq, *sts, *sig = NULL;
	const char *expected_auth = NULL, *signed_headers_file;
	struct sigv4_header hdrs[MAX_HEADERS];
	struct sigv4_credentials creds = { 0 };
	struct sigv4_params p = { 0 };
	struct sigv4_request req = { 0 };
	struct sigv4_signed out;
	struct raw_request raw;
	struct err err = { 0 };
	json_error_t jerr;
	json_t *ctx, *unsigned_headers;
	char payload[65];
	size_t len;
	bool sign_body, from_signed;

	ctx_text = read_file(vc->dir, "context.json", NULL);
	assert_non_null(ctx_text);
	ctx = json_loads(ctx_text, 0, &jerr);
	assert_non_null(ctx);
	creds.access_key_id = json_string_value(json_object_get(json_object_get(ctx, "credentials"), "access_key_id"));
	creds.secret_access_key = json_string_value(json_object_get(json_object_get(ctx, "credentials"), "secret_access_key"));
	creds.session_token = json_string_value(json_object_get(json_object_get(ctx, "credentials"), "token"));
	sign_body = json_is_true(json_object_get(ctx, "sign_body"));
	unsigned_headers = json_object_get(ctx, "unsigned_headers");

	/* The request: header-signed-request.txt (the request as signed by the
	 * suite, with the headers the signer adds), else request.txt. */
	signed_headers_file = "header-signed-request.txt";
	text = read_file(vc->dir, signed_headers_file, &len);
	from_signed = text != NULL;
	if (!text)
		text = read_file(vc->dir, "request.txt", &len);
	assert_non_null(text);
	raw_parse(text, len, &raw);
	if (from_signed) {
		expected_auth = raw_header(&raw, "Authorization");
		assert_non_null(expected_auth);
	}

	/* payload hash */
	if (sign_body && json_string_value(json_object_get(ctx, "signed_body_value")))
		snprintf(payload, sizeof(payload), "%s",
			 json_string_value(json_object_get(ctx, "signed_body_value")));
	else if (sign_body)
		assert_int_equal(sigv4_sha256_hex(raw.body, raw.body_len, payload), 0);
	else
		strcpy(payload, SIGV4_EMPTY_SHA256);

	/* the headers to sign: the request's own, not the ones the signer adds */
	req.nheaders = 0;
	for (size_t i = 0; i < raw.n; i++) {
		const char *n = raw.names[i];

		if (!strcasecmp(n, "Authorization") || !strcasecmp(n, "X-Amz-Date") ||
		    (creds.session_token && !strcasecmp(n, "X-Amz-Security-Token")) ||
		    (sign_body && !strcasecmp(n, "x-amz-content-sha256")) ||
		    in_list(unsigned_headers, n))
			continue;
		hdrs[req.nheaders].name = n;
		hdrs[req.nheaders++].value = raw.values[i];
	}
	req.method = raw.method;
	req.path = raw.path;
	req.query = raw.query;
	req.headers = hdrs;
	req.payload_sha256 = payload;

	p.creds = &creds;
	p.region = json_string_value(json_object_get(ctx, "region"));
	p.service = json_string_value(json_object_get(ctx, "service"));
	p.time = parse_timestamp(json_string_value(json_object_get(ctx, "timestamp")));
	if (json_is_true(json_object_get(ctx, "s3")))
		p.flags |= SIGV4_S3;
	else if (json_is_true(json_object_get(ctx, "normalize")))
		p.flags |= SIGV4_NORMALIZE_PATH;
	if (sign_body)
		p.flags |= SIGV4_CONTENT_SHA256;

	assert_int_equal(sigv4_sign(&p, &req, &out, &err), 0);

	/* the published signature */
	sig = read_file(vc->dir, "header-signature.txt", NULL);
	if (sig)
		chomp(sig);
	if (expected_auth && sig)
		assert_string_equal(auth_signature(expected_auth), sig);
	creq = read_file(vc->dir, "header-canonical-request.txt", NULL);
	sts = read_file(vc->dir, "header-string-to-sign.txt", NULL);
	if ((!creq || !sts) && getenv("SIGV4_WRITE_DERIVED") && expected_auth &&
	    !strcmp(out.signature, auth_signature(expected_auth))) {
		if (!creq) {
			write_file(vc->dir, "header-canonical-request.txt", out.canonical_request);
			creq = strdup(out.canonical_request);
		}
		if (!sts) {
			write_file(vc->dir, "header-string-to-sign.txt", out.string_to_sign);
			sts = strdup(out.string_to_sign);
		}
	}
	if (!creq || !sts)
		fail_msg("%s: no header-canonical-request.txt / header-string-to-sign.txt", vc->name);
	chomp(creq);
	chomp(sts);
	assert_string_equal(out.canonical_request, creq);
	assert_string_equal(out.string_to_sign, sts);
	if (!sig && !expected_auth) {
		/* an earlier revision of the suite kept for its canonical
		 * request and string to sign; its signature was not kept */
		if (!json_is_true(json_object_get(ctx, "signature_unpublished")))
			fail_msg("%s: no published signature", vc->name);
	} else {
		assert_string_equal(out.signature,
				    sig ? sig : auth_signature(expected_auth));
	}

	/* the whole Authorization header and the headers the signer adds */
	if (expected_auth && !vc->s3) {
		assert_string_equal(out.authorization, expected_auth);
		assert_string_equal(out.amz_date, raw_header(&raw, "X-Amz-Date"));
		if (creds.session_token)
			assert_string_equal(raw_header(&raw, "X-Amz-Security-Token"),
					    creds.session_token);
		if (sign_body)
			assert_string_equal(raw_header(&raw, "x-amz-content-sha256"), payload);
	}
	if (vc->s3) {
		/* the docs print "Credential=...,SignedHeaders=...,Signature=" */
		char want[512];

		snprintf(want, sizeof(want), "Credential=%s/", creds.access_key_id);
		assert_non_null(strstr(out.authorization, want));
	}
	/* the secret appears nowhere in what the signer hands out */
	assert_null(strstr(out.canonical_request, creds.secret_access_key));
	assert_null(strstr(out.string_to_sign, creds.secret_access_key));
	assert_null(strstr(out.authorization, creds.secret_access_key));

	sigv4_signed_free(&out);
	free(sig);
	free(creq);
	free(sts);
	raw_free(&raw);
	free(text);
	json_decref(ctx);
	free(ctx_text);
}

/* ---- unit tests ---- */

static void test_uri_encode(void **state)
{
	static const struct {
		const char *in;
		bool keep_slash;
		const char *out;
	} cases[] = {
		{ "a b", true, "a%20b" },
		{ "a+b=c%d", true, "a%2Bb%3Dc%25d" },
		{ "dir/file", true, "dir/file" },
		{ "dir/file", false, "dir%2Ffile" },
		{ "-._~AZaz09", false, "-._~AZaz09" },
		{ "\xc3\xa9t\xc3\xa9", true, "%C3%A9t%C3%A9" },
		{ "!*'();:@&$,?#[]", true, "%21%2A%27%28%29%3B%3A%40%26%24%2C%3F%23%5B%5D" },
		{ "", true, "" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = sigv4_uri_encode(cases[i].in, strlen(cases[i].in),
					   cases[i].keep_slash);

		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
}

static void test_canonical_query(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ NULL, "" },
		{ "", "" },
		{ "b=2&a=1&A=0", "A=0&a=1&b=2" },
		{ "lifecycle", "lifecycle=" },
		{ "a=2&a=1", "a=1&a=2" },
		{ "c+d", "c%2Bd=" },
		{ "prefix=a%20b%2Fc&list-type=2", "list-type=2&prefix=a%20b%2Fc" },
		{ "k=%zz&&x=", "k=%25zz&x=" },
		{ "uploadId=2~abc.DEF_-&partNumber=10", "partNumber=10&uploadId=2~abc.DEF_-" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = sigv4_canonical_query(cases[i].in);

		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
}

static const struct sigv4_credentials ex_creds = {
	.access_key_id = "AKIAIOSFODNN7EXAMPLE",
	.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/* S3 path rules: encoded once, an already encoded path stays as it is. */
static void test_s3_paths(void **state)
{
	static const struct {
		const char *path, *canonical;
	} cases[] = {
		{ "/b/a b+c=d%e", "/b/a%20b%2Bc%3Dd%25e" },
		{ "/b/a%20b%2Bc%3Dd%25e", "/b/a%20b%2Bc%3Dd%25e" },
		{ "/b/x//y/../z", "/b/x//y/../z" },        /* no normalization */
		{ "/b/%C3%A9", "/b/%C3%A9" },
		{ "/b/\xc3\xa9", "/b/%C3%A9" },
		{ "/b/a%2Fb", "/b/a%2Fb" },
		{ "", "/" },
	};
	struct sigv4_header h[] = { { "Host", "s3.example" } };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sigv4_params p = { .creds = &ex_creds, .region = "us-east-1",
					  .service = "s3", .time = 1369353600,
					  .flags = SIGV4_S3 | SIGV4_CONTENT_SHA256 };
		struct sigv4_request r = { .method = "GET", .path = cases[i].path,
					   .headers = h, .nheaders = 1 };
		struct sigv4_signed out;
		struct err err = { 0 };
		char want[256];

		assert_int_equal(sigv4_sign(&p, &r, &out, &err), 0);
		snprintf(want, sizeof(want), "GET\n%s\n\n", cases[i].canonical);
		assert_memory_equal(out.canonical_request, want, strlen(want));
		sigv4_signed_free(&out);
	}
}

/* A cached key gives the same signature; a stale one is not used. */
static void test_key_cache(void **state)
{
	struct sigv4_header h[] = { { "Host", "examplebucket.s3.amazonaws.com" },
				    { "Range", "bytes=0-9" } };
	struct sigv4_params p = { .creds = &ex_creds, .region = "us-east-1",
				  .service = "s3", .time = 1369353600,
				  .flags = SIGV4_S3 | SIGV4_CONTENT_SHA256 };
	struct sigv4_request r = { .method = "GET", .path = "/test.txt",
				   .headers = h, .nheaders = 2 };
	struct sigv4_key key, stale;
	struct sigv4_signed out;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(sigv4_derive_key(ex_creds.secret_access_key, "20130524",
					  "us-east-1", "s3", &key, &err), 0);
	p.key = &key;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), 0);
	assert_string_equal(out.signature,
			    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	sigv4_signed_free(&out);
	assert_int_equal(sigv4_derive_key(ex_creds.secret_access_key, "20130523",
					  "us-east-1", "s3", &stale, &err), 0);
	p.key = &stale;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), 0);
	assert_string_equal(out.signature,
			    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	/* the added headers, in order */
	assert_int_equal(out.nadd, 3);
	assert_string_equal(out.add[0].name, "X-Amz-Date");
	assert_string_equal(out.add[0].value, "20130524T000000Z");
	assert_string_equal(out.add[1].name, "x-amz-content-sha256");
	assert_string_equal(out.add[1].value, SIGV4_EMPTY_SHA256);
	assert_string_equal(out.add[2].name, "Authorization");
	assert_string_equal(out.add[2].value, out.authorization);
	sigv4_signed_free(&out);
	sigv4_wipe(&key, sizeof(key));
}

static void test_unsigned_payload_and_token(void **state)
{
	struct sigv4_credentials c = ex_creds;
	struct sigv4_header h[] = { { "host", "h" } };
	struct sigv4_params p = { .creds = &c, .region = "r", .service = "s3",
				  .time = 0, .flags = SIGV4_S3 | SIGV4_CONTENT_SHA256 };
	struct sigv4_request r = { .method = "PUT", .path = "/k", .headers = h,
				   .nheaders = 1, .payload_sha256 = SIGV4_UNSIGNED_PAYLOAD };
	struct sigv4_signed out;
	struct err err = { 0 };

	(void)state;
	c.session_token = "TOKEN";
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), 0);
	assert_string_equal(out.canonical_request,
			    "PUT\n/k\n\nhost:h\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n"
			    "x-amz-date:19700101T000000Z\nx-amz-security-token:TOKEN\n\n"
			    "host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n"
			    "UNSIGNED-PAYLOAD");
	assert_int_equal(out.nadd, 4);
	assert_string_equal(out.add[2].name, "X-Amz-Security-Token");
	assert_string_equal(out.add[2].value, "TOKEN");
	sigv4_signed_free(&out);
}

static void test_errors(void **state)
{
	struct sigv4_header no_host[] = { { "Range", "bytes=0-1" } };
	struct sigv4_header dup_date[] = { { "Host", "h" }, { "X-Amz-Date", "x" } };
	struct sigv4_header bad_name[] = { { "Host", "h" }, { "a b", "x" } };
	struct sigv4_params p = { .creds = &ex_creds, .region = "r",
				  .service = "s3", .time = 0, .flags = SIGV4_S3 };
	struct sigv4_request r = { .method = "GET", .path = "/" };
	struct sigv4_signed out;
	struct err err = { 0 };

	(void)state;
	r.headers = no_host;
	r.nheaders = 1;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "Host"));
	err_clear(&err);
	r.headers = dup_date;
	r.nheaders = 2;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "x-amz-date"));
	err_clear(&err);
	r.headers = bad_name;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), -EINVAL);
	err_clear(&err);
	p.creds = NULL;
	assert_int_equal(sigv4_sign(&p, &r, &out, &err), -EINVAL);
	assert_null(out.authorization);
}

/* ---- the vector list ---- */

static int vcase_cmp(const void *a, const void *b)
{
	const struct vcase *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static size_t find_cases(const char *sub, bool s3, struct vcase *v, size_t max)
{
	char dir[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", getenv("SIGV4_DATA") ? getenv("SIGV4_DATA") : DATA_DIR, sub);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		if (de->d_name[0] == '.')
			continue;
		if (strlen(dir) + strlen(de->d_name) + 2 > sizeof(v[n].dir) ||
		    strlen(sub) + strlen(de->d_name) + 2 > sizeof(v[n].name))
			continue;
		snprintf(v[n].dir, sizeof(v[n].dir), "%.500s/%.255s", dir, de->d_name);
		snprintf(v[n].name, sizeof(v[n].name), "%.40s/%.255s", sub, de->d_name);
		v[n].s3 = s3;
		n++;
	}
	closedir(d);
	qsort(v, n, sizeof(*v), vcase_cmp);
	return n;
}

int main(void)
{
	static struct vcase cases[256];
	static struct CMUnitTest tests[256 + 16];
	size_t nv4, ns3, n = 0;
	int failed;

	nv4 = find_cases("v4", false, cases, 200);
	ns3 = find_cases("s3", true, cases + nv4, 50);
	if (nv4 < 30 || ns3 < 4) {
		fprintf(stderr, "test_sigv4: the vectors in " DATA_DIR " are missing (run from the repository root)\n");
		return 1;
	}
	for (size_t i = 0; i < nv4 + ns3; i++) {
		tests[n].name = cases[i].name;
		tests[n].test_func = run_vector;
		tests[n].initial_state = &cases[i];
		n++;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_uri_encode);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_canonical_query);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_s3_paths);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_key_cache);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_unsigned_payload_and_token);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_errors);
	failed = _cmocka_run_group_tests("sigv4", tests, n, NULL, NULL);
	return failed ? 1 : 0;
}
