// SPDX-License-Identifier: MIT
/*
 * The HTTP engine (uploader/http.c) on its own, with no S3 in sight: the
 * backoff and retry classification, and requests against a scripted
 * loopback server through hooks a second store would write (a sign hook
 * adding a header per attempt, a fake hook answering without sending).
 */
#include "common/err.h"
#include "common/util.h"
#include "uploader/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

/* ------------------------------------------------------------------ */
/* a scripted server: answers requests in order with script[i]         */

#define SRV_MAX 16

struct srv_answer {
	int status;
	const char *body;
};

static struct srv {
	int lfd, port;
	pthread_t thread;
	struct srv_answer script[SRV_MAX];
	unsigned nscript;
	unsigned nreq;                   /* requests seen */
	char sign[SRV_MAX][32];          /* their X-Test-Sign values */
	char body[SRV_MAX][64];          /* their bodies (cut) */
	char method[SRV_MAX][8];
} srv;

/* Read one request on fd into slot i: false when the client is gone. */
static bool srv_read(int fd, unsigned i)
{
	char buf[8192], *end, *h;
	size_t len = 0, clen = 0;
	ssize_t n;

	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
	}
	buf[len] = '\0';
	sscanf(buf, "%7s", srv.method[i]);
	h = strcasestr(buf, "\r\nX-Test-Sign: ");
	if (h && h < end)
		sscanf(h + 15, "%31s", srv.sign[i]);
	h = strcasestr(buf, "\r\nContent-Length: ");
	if (h && h < end)
		clen = strtoul(h + 18, NULL, 10);
	end += 4;
	while ((size_t)(buf + len - end) < clen && len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
	}
	snprintf(srv.body[i], sizeof(srv.body[i]), "%.*s", (int)clen, end);
	return true;
}

static void *srv_main(void *arg)
{
	int fd;

	(void)arg;
	while ((fd = accept(srv.lfd, NULL, NULL)) >= 0) {
		for (;;) {
			unsigned i = __atomic_load_n(&srv.nreq, __ATOMIC_ACQUIRE);
			const struct srv_answer *a;
			char head[256];

			if (i >= SRV_MAX || !srv_read(fd, i))
				break;
			a = i < srv.nscript ? &srv.script[i] : &srv.script[srv.nscript - 1];
			snprintf(head, sizeof(head),
				 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nETag: \"e%u\"\r\n\r\n",
				 a->status, strlen(a->body), i);
			__atomic_store_n(&srv.nreq, i + 1, __ATOMIC_RELEASE);
			if (write(fd, head, strlen(head)) < 0 ||
			    write(fd, a->body, strlen(a->body)) < 0)
				break;
		}
		close(fd);
	}
	return NULL;
}

static void srv_start(const struct srv_answer *script, unsigned n)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	memset(&srv, 0, sizeof(srv));
	memcpy(srv.script, script, n * sizeof(*script));
	srv.nscript = n;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(srv.lfd >= 0);
	assert_int_equal(bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv.lfd, 8), 0);
	assert_int_equal(getsockname(srv.lfd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&srv.thread, NULL, srv_main, NULL), 0);
}

static void srv_stop(void)
{
	shutdown(srv.lfd, SHUT_RDWR);
	close(srv.lfd);
	pthread_join(srv.thread, NULL);
}

/* ------------------------------------------------------------------ */
/* hooks of a made-up store                                            */

struct store_ctx {
	unsigned signs;                  /* sign hook calls */
	unsigned fakes;                  /* fake hook calls */
	bool fake_503;                   /* answer every attempt with 503 */
};

static int test_sign(void *ctx, const struct http_req *r, struct http_attempt *a)
{
	struct store_ctx *c = ctx;
	char v[32];

	snprintf(v, sizeof(v), "%s-%u", r->method, ++c->signs);
	http_attempt_header(a, "X-Test-Sign", v);
	return 0;
}

static bool test_fake(void *ctx, struct http_req *r)
{
	struct store_ctx *c = ctx;

	c->fakes++;
	if (!c->fake_503)
		return false;
	r->status = 503;
	sbuf_add(&r->errbody, "busy");
	return true;
}

static const struct http_hooks test_hooks = {
	.fake = test_fake,
	.sign = test_sign,
};

static struct http_engine *engine(struct store_ctx *c, unsigned max_attempts)
{
	char base[64];
	struct http_engine_opts o = {
		.who = "store test",
		.base_url = base,
		.connect_timeout = 5,
		.stall_timeout = 10,
		.max_attempts = max_attempts,
		.max_connections = 4,
		.hooks = &test_hooks,
		.hooks_ctx = c,
	};
	struct http_engine *e = NULL;
	struct err err = { 0 };

	snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv.port);
	assert_int_equal(http_engine_new(&o, &e, &err), 0);
	return e;
}

static void req(struct http_req *r, const char *method, const char *path)
{
	http_req_init(r, method);
	r->path = strdup(path);
	assert_non_null(r->path);
}

/* ------------------------------------------------------------------ */

static void test_backoff(void **state)
{
	unsigned seed = 42, seed2 = 42;

	(void)state;
	for (int i = 0; i < 100; i++) {
		double d1 = http_backoff(&seed, 1), d2 = http_backoff(&seed, 2);
		double d10 = http_backoff(&seed, 10), d99 = http_backoff(&seed, 99);

		/* half fixed, half jitter: 0.25 s doubled per attempt, <= 20 s */
		assert_true(d1 >= 0.125 && d1 <= 0.25);
		assert_true(d2 >= 0.25 && d2 <= 0.5);
		assert_true(d10 >= 10.0 && d10 <= 20.0);
		assert_true(d99 >= 10.0 && d99 <= 20.0);
	}
	/* the jitter comes from the seed alone */
	seed = 42;
	assert_true(http_backoff(&seed, 3) == http_backoff(&seed2, 3));
}

static void test_classify(void **state)
{
	(void)state;
	assert_true(http_status_transient(500));
	assert_true(http_status_transient(502));
	assert_true(http_status_transient(503));
	assert_true(http_status_transient(504));
	assert_true(http_status_transient(429));
	assert_true(http_status_transient(408));
	assert_false(http_status_transient(501));
	assert_false(http_status_transient(505));
	assert_false(http_status_transient(400));
	assert_false(http_status_transient(403));
	assert_false(http_status_transient(404));
	assert_false(http_status_transient(200));
	assert_true(http_transport_transient(CURLE_COULDNT_CONNECT));
	assert_true(http_transport_transient(CURLE_RECV_ERROR));
	assert_true(http_transport_transient(CURLE_OPERATION_TIMEDOUT));
	assert_true(http_transport_transient(CURLE_GOT_NOTHING));
	assert_false(http_transport_transient(CURLE_OK));
	assert_false(http_transport_transient(CURLE_PEER_FAILED_VERIFICATION));
	assert_false(http_transport_transient(CURLE_URL_MALFORMAT));
}

/* 503, 503, 200: retried, signed afresh each time, the body kept. */
static void test_retry_signed(void **state)
{
	static const struct srv_answer script[] = {
		{ 503, "busy" }, { 503, "busy" }, { 200, "hello" },
	};
	struct store_ctx c = { 0 };
	struct http_engine *e;
	struct http_req r;
	struct err err = { 0 };

	(void)state;
	srv_start(script, 3);
	e = engine(&c, 8);
	req(&r, "GET", "/obj");
	assert_int_equal(http_run(e, &r, "GET obj", &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.rlen, 5);
	assert_string_equal(r.out.s, "hello");
	assert_string_equal(r.etag, "\"e2\"");
	assert_true(r.have_length && r.content_length == 5);
	assert_int_equal(srv.nreq, 3);
	assert_int_equal(c.signs, 3);
	assert_string_equal(srv.sign[0], "GET-1");
	assert_string_equal(srv.sign[2], "GET-3");
	http_req_release(&r);
	http_engine_free(e);
	srv_stop();
}

/* A final answer is not retried; without error hooks the engine says
 * what failed itself. */
static void test_final_and_default_errors(void **state)
{
	static const struct srv_answer script[] = { { 404, "nope" } };
	struct store_ctx c = { 0 };
	struct http_engine *e;
	struct http_req r;
	struct err err = { 0 };

	(void)state;
	srv_start(script, 1);
	e = engine(&c, 8);
	req(&r, "GET", "/missing");
	assert_int_equal(http_run(e, &r, "GET missing", &err), -EIO);
	assert_string_equal(err.msg, "store test: GET missing: HTTP 404");
	assert_int_equal(srv.nreq, 1);
	assert_int_equal(r.errbody.len, 4);
	http_req_release(&r);
	http_engine_free(e);
	srv_stop();
}

/* PUT streams the caller's buffer; a GET for a Range the server ignored
 * (200 with the whole object) keeps only the asked bytes. */
static void test_bodies(void **state)
{
	static const struct srv_answer script[] = {
		{ 200, "" }, { 200, "0123456789" },
	};
	static const char data[] = "payload bytes";
	struct store_ctx c = { 0 };
	struct http_engine *e;
	struct http_req r;
	struct err err = { 0 };
	char buf[4];

	(void)state;
	srv_start(script, 2);
	e = engine(&c, 8);
	req(&r, "PUT", "/obj");
	r.body = data;
	r.body_len = strlen(data);
	assert_int_equal(http_run(e, &r, "PUT obj", &err), 0);
	assert_string_equal(srv.method[0], "PUT");
	assert_string_equal(srv.body[0], data);
	http_req_release(&r);

	req(&r, "GET", "/obj");
	r.fixed = buf;
	r.fixed_cap = sizeof(buf);
	r.range_off = 3;
	http_req_header(&r, "Range", "bytes=%d-%d", 3, 6);
	assert_int_equal(http_run(e, &r, "GET obj", &err), 0);
	assert_int_equal(r.rlen, 4);
	assert_memory_equal(buf, "3456", 4);
	http_req_release(&r);
	http_engine_free(e);
	srv_stop();
}

/* The fake hook answers without sending; max_attempts bounds retries. */
static void test_fake_hook(void **state)
{
	static const struct srv_answer script[] = { { 200, "" } };
	struct store_ctx c = { .fake_503 = true };
	struct http_engine *e;
	struct http_req r;
	struct err err = { 0 };

	(void)state;
	srv_start(script, 1);
	e = engine(&c, 2);
	req(&r, "GET", "/obj");
	assert_int_equal(http_run(e, &r, "GET obj", &err), -EIO);
	assert_int_equal(r.status, 503);
	assert_int_equal(c.fakes, 2);
	assert_int_equal(c.signs, 0);
	assert_int_equal(srv.nreq, 0);
	http_req_release(&r);
	http_engine_free(e);
	srv_stop();
}

/* The engine's cancel hook: once it says so, a cancellable request held by
 * a server that never answers ends with -ECANCELED (promptly: the loop asks
 * every quarter second); a read (is_read) goes on until the reads hook
 * says so too; one marked neither goes on until http_cancel. */
static bool cancel_now, reads_now;

static bool test_cancelled(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&cancel_now, __ATOMIC_ACQUIRE);
}

static bool test_reads_cancelled(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&reads_now, __ATOMIC_ACQUIRE);
}

static void note_done(struct http_req *r, void *arg)
{
	(void)r;
	__atomic_store_n((bool *)arg, true, __ATOMIC_RELEASE);
}

static bool wait_done(const bool *done, double seconds)
{
	double until = util_now_mono() + seconds;

	while (!__atomic_load_n(done, __ATOMIC_ACQUIRE) && util_now_mono() < until)
		usleep(10000);
	return __atomic_load_n(done, __ATOMIC_ACQUIRE);
}

static void test_cancel_hook(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct store_ctx c = { 0 };
	struct http_engine_opts o = {
		.who = "store test", .connect_timeout = 5, .stall_timeout = 60,
		.max_attempts = 1, .max_connections = 4, .hooks = &test_hooks,
		.hooks_ctx = &c, .cancelled = test_cancelled,
		.reads_cancelled = test_reads_cancelled,
	};
	struct http_engine *e = NULL;
	struct http_req up, del, rd;
	struct err err = { 0 };
	bool up_done = false, del_done = false, rd_done = false;
	char base[64];
	double t0;
	int lfd;

	(void)state;
	/* a listener that never accepts: connections sit in its backlog */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", ntohs(a.sin_port));
	o.base_url = base;
	assert_int_equal(http_engine_new(&o, &e, &err), 0);

	req(&up, "PUT", "/part");
	up.body = "data";
	up.body_len = 4;
	up.cancellable = true;
	up.on_done = note_done;
	up.on_done_arg = &up_done;
	req(&del, "DELETE", "/upload");
	del.on_done = note_done;
	del.on_done_arg = &del_done;
	req(&rd, "GET", "/?list-type=2");
	rd.is_read = true;
	rd.on_done = note_done;
	rd.on_done_arg = &rd_done;
	http_submit(e, &up);
	http_submit(e, &del);
	http_submit(e, &rd);
	assert_false(wait_done(&up_done, 0.5));     /* held, not cancelled */
	t0 = util_now_mono();
	__atomic_store_n(&cancel_now, true, __ATOMIC_RELEASE);
	assert_true(wait_done(&up_done, 10));
	printf("# the cancellable request ended %.2f s after the hook said so\n",
	       util_now_mono() - t0);
	assert_int_equal(up.result, -ECANCELED);
	assert_int_equal(http_check(e, &up, "PUT part", &err), -ECANCELED);
	assert_false(wait_done(&rd_done, 0.5));     /* a read: not by this hook */
	t0 = util_now_mono();
	__atomic_store_n(&reads_now, true, __ATOMIC_RELEASE);
	assert_true(wait_done(&rd_done, 10));
	printf("# the read ended %.2f s after the reads hook said so\n",
	       util_now_mono() - t0);
	assert_int_equal(rd.result, -ECANCELED);
	assert_false(wait_done(&del_done, 0.5));    /* not cancellable */
	http_cancel(e, &del);
	assert_true(wait_done(&del_done, 10));
	assert_int_equal(del.result, -ECANCELED);
	http_req_release(&up);
	http_req_release(&del);
	http_req_release(&rd);
	http_engine_free(e);
	close(lfd);
	__atomic_store_n(&cancel_now, false, __ATOMIC_RELEASE);
	__atomic_store_n(&reads_now, false, __ATOMIC_RELEASE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_retry_signed),
		cmocka_unit_test(test_final_and_default_errors),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_fake_hook),
		cmocka_unit_test(test_cancel_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
