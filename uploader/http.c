// SPDX-License-Identifier: MIT
/*
 * The HTTP engine (http.h): one thread per engine runs every request of a
 * store through libcurl's multi interface.  Callers queue requests under
 * the engine's lock; the thread moves them to its own lists (pending:
 * waiting for their next attempt; active: on the wire), starts the due
 * attempts, drives curl, and ends, retries or reaps (cancelled) requests.
 */
#include "uploader/http.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HTTP_BACKOFF_BASE 0.25           /* seconds, doubled per attempt */
#define HTTP_BACKOFF_MAX 20.0
#define HTTP_EASY_POOL 32

struct http_engine {
	char *who;
	char *base_url;
	char *ca_file;
	bool insecure;
	bool no_proxy;
	long connect_timeout, stall_timeout;
	unsigned max_attempts;
	const struct http_hooks *hooks;
	void *hooks_ctx;
	bool (*cancelled)(void *ctx);
	bool (*reads_cancelled)(void *ctx);
	void *cancel_ctx;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started;
	bool stopping;                   /* under lock */
	CURLM *multi;
	struct http_req *queue, *queue_tail;  /* submitted, under lock */
	/* engine thread only: */
	struct http_req *active, *pending;
	CURL *pool[HTTP_EASY_POOL];
	unsigned npool;
	unsigned rand_state;
};

/* The header lines of one attempt, built by the engine and the sign hook. */
struct http_attempt {
	struct curl_slist *sl;
	struct sbuf line;
	bool bad;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init(void)
{
	curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int http_global_init(struct err *err)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_code != CURLE_OK)
		return err_set(err, -EIO, "cannot initialise libcurl: %s",
			       curl_easy_strerror(curl_init_code));
	return 0;
}

/* ------------------------------------------------------------------ */
/* pure parts                                                          */

double http_backoff(unsigned *seed, unsigned attempt)
{
	double d = HTTP_BACKOFF_BASE;

	for (unsigned i = 1; i < attempt && d < HTTP_BACKOFF_MAX; i++)
		d *= 2;
	if (d > HTTP_BACKOFF_MAX)
		d = HTTP_BACKOFF_MAX;
	/* half fixed, half random: spread the retries of parallel parts */
	return d / 2 + d / 2 * ((double)rand_r(seed) / RAND_MAX);
}

bool http_status_transient(long status)
{
	/* 501 Not Implemented and 505 are answers, not passing trouble */
	return (status >= 500 && status != 501 && status != 505) ||
	       status == 429 || status == 408;
}

bool http_transport_transient(int curl_code)
{
	switch ((CURLcode)curl_code) {
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

/* ------------------------------------------------------------------ */
/* requests                                                            */

void http_req_init(struct http_req *r, const char *method)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->out_max = HTTP_OUT_DEFAULT;   /* answers we do not expect to be big */
}

void http_req_release(struct http_req *r)
{
	free(r->path);
	free(r->query);
	sbuf_free(&r->out);
	sbuf_free(&r->errbody);
	r->path = r->query = NULL;
}

void http_req_header(struct http_req *r, const char *name, const char *fmt, ...)
{
	va_list ap;

	assert(r->nhdrs < HTTP_HDR_MAX);
	va_start(ap, fmt);
	vsnprintf(r->hval[r->nhdrs], sizeof(r->hval[0]), fmt, ap);
	va_end(ap);
	r->hdrs[r->nhdrs].name = name;
	r->hdrs[r->nhdrs].value = r->hval[r->nhdrs];
	r->nhdrs++;
}

void http_req_header_ref(struct http_req *r, const char *name,
			 const char *value)
{
	assert(r->nhdrs < HTTP_HDR_MAX);
	r->hdrs[r->nhdrs].name = name;
	r->hdrs[r->nhdrs].value = value;
	r->nhdrs++;
}

static void attempt_line(struct http_attempt *a, const char *line)
{
	struct curl_slist *n = curl_slist_append(a->sl, line);

	a->bad |= !n;
	a->sl = n ? n : a->sl;
}

void http_attempt_header(struct http_attempt *a, const char *name,
			 const char *value)
{
	a->line.len = 0;
	sbuf_printf(&a->line, "%s: %s", name, value);
	a->bad |= a->line.oom;
	if (!a->line.oom)
		attempt_line(a, a->line.s);
}

/* ---- curl callbacks (engine thread) ---- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * nmemb, n;
	long status = 0;

	curl_easy_getinfo(r->eng.easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		if (r->errbody.len < HTTP_ERRBODY_MAX)
			sbuf_addn(&r->errbody, data,
				  len < HTTP_ERRBODY_MAX - r->errbody.len ?
				  len : HTTP_ERRBODY_MAX - r->errbody.len);
		return len;
	}
	if (status == 200 && r->eng.skip) {     /* the server ignored Range */
		n = r->eng.skip < len ? (size_t)r->eng.skip : len;
		data += n;
		len -= n;
		r->eng.skip -= n;
	}
	if (r->fixed) {
		n = len < r->fixed_cap - r->rlen ? len : r->fixed_cap - r->rlen;
		memcpy(r->fixed + r->rlen, data, n);
		r->rlen += n;
		return size * nmemb;
	}
	if (r->out.len + len > r->out_max) {
		r->eng.too_big = true;
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

static void clear_headers(struct http_req *r)
{
	r->etag[0] = r->date[0] = r->last_modified[0] = '\0';
	r->captured[0] = '\0';
	r->have_length = false;
}

static bool header_is(const char *data, size_t nlen, const char *name)
{
	return nlen == strlen(name) && !strncasecmp(data, name, nlen);
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * nitems;
	const char *colon = memchr(data, ':', len);
	size_t nlen, vlen;
	char num[32];

	if (len >= 5 && !memcmp(data, "HTTP/", 5)) {
		/* a new answer (after a 100 Continue, say) */
		clear_headers(r);
		return len;
	}
	if (!colon)
		return len;
	nlen = (size_t)(colon - data);
	colon++;
	vlen = len - nlen - 1;
	if (header_is(data, nlen, "ETag")) {
		header_value(r->etag, sizeof(r->etag), colon, vlen);
	} else if (r->capture && header_is(data, nlen, r->capture)) {
		header_value(r->captured, sizeof(r->captured), colon, vlen);
	} else if (header_is(data, nlen, "Date")) {
		header_value(r->date, sizeof(r->date), colon, vlen);
	} else if (header_is(data, nlen, "Last-Modified")) {
		header_value(r->last_modified, sizeof(r->last_modified), colon,
			     vlen);
	} else if (header_is(data, nlen, "Content-Length")) {
		char *end;

		header_value(num, sizeof(num), colon, vlen);
		errno = 0;
		r->content_length = strtoull(num, &end, 10);
		r->have_length = !errno && end != num && !*end;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct http_req *r = ud;
	size_t n = size * nitems;

	if (n > r->body_len - r->eng.body_off)
		n = r->body_len - r->eng.body_off;
	if (n)
		memcpy(buf, (const char *)r->body + r->eng.body_off, n);
	r->eng.body_off += n;
	return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct http_req *r = ud;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->eng.body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* Whether the hooks end r now: a cancellable request once the cancel
 * hook says so, a read once the reads hook does. */
static bool hooks_end(const struct http_engine *e, const struct http_req *r)
{
	if (r->cancellable && e->cancelled && e->cancelled(e->cancel_ctx))
		return true;
	return r->is_read && e->reads_cancelled && e->reads_cancelled(e->cancel_ctx);
}

/* True (and r marked cancelled) when the cancel hooks end r now. */
static bool engine_cancels(struct http_engine *e, struct http_req *r)
{
	if (!hooks_end(e, r))
		return false;
	__atomic_store_n(&r->eng.cancel, true, __ATOMIC_RELEASE);
	return true;
}

/* A stall: no byte moved either way for stall_timeout seconds (curl's own
 * low-speed check averages over a window and reacts seconds late). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_req *r = ud;
	double now = util_now_mono();

	(void)dltotal;
	(void)ultotal;
	if (dlnow != r->eng.moved_down || ulnow != r->eng.moved_up) {
		r->eng.moved_down = dlnow;
		r->eng.moved_up = ulnow;
		r->eng.moved_at = now;
		return engine_cancels(r->eng.e, r);
	}
	if (now - r->eng.moved_at >= (double)r->eng.e->stall_timeout) {
		r->eng.stalled = true;
		return 1;
	}
	return engine_cancels(r->eng.e, r);
}

/* ------------------------------------------------------------------ */
/* the engine thread                                                   */

static void list_push(struct http_req **head, struct http_req *r)
{
	r->eng.next = *head;
	*head = r;
}

static void list_remove(struct http_req **head, struct http_req *r)
{
	for (struct http_req **p = head; *p; p = &(*p)->eng.next)
		if (*p == r) {
			*p = r->eng.next;
			r->eng.next = NULL;
			return;
		}
}

/* The request is over: wake whoever waits for it. */
static void finish(struct http_engine *e, struct http_req *r, int result)
{
	r->result = result;
	if (r->on_done) {
		/* nobody waits: r is the caller's once this returns */
		r->eng.done = true;
		r->on_done(r, r->on_done_arg);
		return;
	}
	pthread_mutex_lock(&e->lock);
	r->eng.done = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static void easy_release(struct http_engine *e, struct http_req *r)
{
	if (r->eng.easy) {
		curl_multi_remove_handle(e->multi, r->eng.easy);
		if (e->npool < HTTP_EASY_POOL) {
			curl_easy_reset(r->eng.easy);
			e->pool[e->npool++] = r->eng.easy;
		} else {
			curl_easy_cleanup(r->eng.easy);
		}
		r->eng.easy = NULL;
	}
	curl_slist_free_all(r->eng.slist);
	r->eng.slist = NULL;
	free(r->eng.url);
	r->eng.url = NULL;
}

/* Why the attempt failed (for the retry log line), or NULL if it did not
 * or retrying would not help. */
static const char *attempt_failure(struct http_engine *e, struct http_req *r,
				   char *buf, size_t len)
{
	if (r->cc != CURLE_OK) {
		if (!http_transport_transient(r->cc))
			return NULL;
		snprintf(buf, len, "%s", r->errbuf[0] ? r->errbuf :
			 curl_easy_strerror((CURLcode)r->cc));
		return buf;
	}
	if (r->status >= 200 && r->status < 300)
		return NULL;
	if (e->hooks && e->hooks->retry_reason)
		return e->hooks->retry_reason(e->hooks_ctx, r, buf, len);
	if (!http_status_transient(r->status))
		return NULL;
	snprintf(buf, len, "HTTP %ld", r->status);
	return buf;
}

static void attempt_done(struct http_engine *e, struct http_req *r, int cc)
{
	unsigned max = e->max_attempts;
	const char *why;
	char buf[CURL_ERROR_SIZE + 32];
	double delay;

	if (cc == CURLE_ABORTED_BY_CALLBACK && r->eng.stalled) {
		cc = CURLE_OPERATION_TIMEDOUT;
		snprintf(r->errbuf, sizeof(r->errbuf),
			 "no data moved for %ld s", e->stall_timeout);
	}
	r->cc = cc;
	if (r->eng.easy) {
		if (cc == CURLE_OK)
			curl_easy_getinfo(r->eng.easy, CURLINFO_RESPONSE_CODE,
					  &r->status);
		else
			curl_easy_getinfo(r->eng.easy, CURLINFO_OS_ERRNO,
					  &r->os_errno);
		if (cc == CURLE_PEER_FAILED_VERIFICATION)
			curl_easy_getinfo(r->eng.easy, CURLINFO_SSL_VERIFYRESULT,
					  &r->ssl_verify);
	}
	easy_release(e, r);
	if (cc != CURLE_OK && __atomic_load_n(&r->eng.cancel, __ATOMIC_ACQUIRE)) {
		finish(e, r, -ECANCELED);
		return;
	}
	if (r->eng.too_big || r->out.oom) {
		finish(e, r, -EFBIG);
		return;
	}
	why = attempt_failure(e, r, buf, sizeof(buf));
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
		max = max < HTTP_CONNECT_ATTEMPTS ? max : HTTP_CONNECT_ATTEMPTS;
	if (!why || r->eng.attempt + 1 >= max ||
	    __atomic_load_n(&r->eng.cancel, __ATOMIC_ACQUIRE)) {
		finish(e, r, cc == CURLE_OK ? 0 : -EIO);
		return;
	}
	r->eng.attempt++;
	delay = http_backoff(&e->rand_state, r->eng.attempt);
	r->eng.next_at = util_now_mono() + delay;
	log_info("%s: %s: %s; retrying in %.1f s (attempt %u of %u)",
		 e->who, r->label[0] ? r->label : r->method, why, delay,
		 r->eng.attempt + 1, max);
	list_push(&e->pending, r);
}

/* The header lines of an attempt: the request's and the sign hook's, then
 * the engine's own (unsigned).  NULL when out of memory. */
static struct curl_slist *attempt_headers(struct http_engine *e,
					  struct http_req *r, int *ret)
{
	struct http_attempt a = { 0 };

	*ret = 0;
	for (size_t i = 0; i < r->nhdrs; i++)
		http_attempt_header(&a, r->hdrs[i].name, r->hdrs[i].value);
	if (e->hooks && e->hooks->sign)
		*ret = e->hooks->sign(e->hooks_ctx, r, &a);
	attempt_line(&a, "Expect:");
	if (r->content_type)
		http_attempt_header(&a, "Content-Type", r->content_type);
	sbuf_free(&a.line);
	if (!*ret && a.bad)
		*ret = -ENOMEM;
	if (*ret) {
		curl_slist_free_all(a.sl);
		return NULL;
	}
	return a.sl;
}

#define SETOPT(h, opt, val) (curl_easy_setopt((h), (opt), (val)) != CURLE_OK)

/* The options of an attempt on easy handle h: false when one failed. */
static bool attempt_options(struct http_engine *e, struct http_req *r, CURL *h)
{
	bool bad = false;

	bad |= SETOPT(h, CURLOPT_URL, r->eng.url);
	bad |= SETOPT(h, CURLOPT_PRIVATE, r);
	bad |= SETOPT(h, CURLOPT_HTTPHEADER, r->eng.slist);
	bad |= SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	bad |= SETOPT(h, CURLOPT_PATH_AS_IS, 1L);
	bad |= SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	bad |= SETOPT(h, CURLOPT_USERAGENT, "snapship");
	bad |= SETOPT(h, CURLOPT_CONNECTTIMEOUT, e->connect_timeout);
	bad |= SETOPT(h, CURLOPT_NOPROGRESS, 0L);
	bad |= SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	bad |= SETOPT(h, CURLOPT_XFERINFODATA, r);
	bad |= SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	bad |= SETOPT(h, CURLOPT_ERRORBUFFER, r->errbuf);
	bad |= SETOPT(h, CURLOPT_WRITEFUNCTION, on_write);
	bad |= SETOPT(h, CURLOPT_WRITEDATA, r);
	bad |= SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	bad |= SETOPT(h, CURLOPT_HEADERDATA, r);
	bad |= SETOPT(h, CURLOPT_BUFFERSIZE, 256L << 10);
	if (e->ca_file)
		bad |= SETOPT(h, CURLOPT_CAINFO, e->ca_file);
	if (e->no_proxy)
		bad |= SETOPT(h, CURLOPT_NOPROXY, "*");
	if (e->insecure) {
		bad |= SETOPT(h, CURLOPT_SSL_VERIFYPEER, 0L);
		bad |= SETOPT(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (!strcmp(r->method, "HEAD")) {
		bad |= SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT")) {
		bad |= SETOPT(h, CURLOPT_UPLOAD, 1L);
		bad |= SETOPT(h, CURLOPT_READFUNCTION, on_read);
		bad |= SETOPT(h, CURLOPT_READDATA, r);
		bad |= SETOPT(h, CURLOPT_SEEKFUNCTION, on_seek);
		bad |= SETOPT(h, CURLOPT_SEEKDATA, r);
		bad |= SETOPT(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		bad |= SETOPT(h, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
	} else if (!strcmp(r->method, "POST")) {
		bad |= SETOPT(h, CURLOPT_POST, 1L);
		bad |= SETOPT(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		bad |= SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (!strcmp(r->method, "DELETE")) {
		bad |= SETOPT(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	return !bad;
}

static void attempt_reset(struct http_req *r)
{
	r->status = 0;
	r->rlen = 0;
	r->out.len = 0;
	r->errbody.len = 0;
	r->eng.too_big = false;
	r->eng.skip = r->range_off;
	clear_headers(r);
	r->eng.body_off = 0;
	r->errbuf[0] = '\0';
	r->os_errno = 0;
	r->ssl_verify = 0;
	r->eng.stalled = false;
	r->eng.moved_at = util_now_mono();
	r->eng.moved_up = r->eng.moved_down = 0;
}

static void start_attempt(struct http_engine *e, struct http_req *r)
{
	bool bad = false;
	int ret;
	CURL *h;

	attempt_reset(r);
	if (e->hooks && e->hooks->fake && e->hooks->fake(e->hooks_ctx, r)) {
		attempt_done(e, r, CURLE_OK);
		return;
	}
	r->eng.slist = attempt_headers(e, r, &ret);
	if (ret) {
		finish(e, r, -ENOMEM);
		return;
	}
	if (asprintf(&r->eng.url, "%s%s%s%s", e->base_url, r->path,
		     r->query ? "?" : "", r->query ? r->query : "") < 0) {
		r->eng.url = NULL;
		bad = true;
	}
	h = e->npool ? e->pool[--e->npool] : curl_easy_init();
	if (!h || bad) {
		if (h)
			curl_easy_cleanup(h);
		easy_release(e, r);
		finish(e, r, -ENOMEM);
		return;
	}
	r->eng.easy = h;
	if (!attempt_options(e, r, h) ||
	    curl_multi_add_handle(e->multi, h) != CURLM_OK) {
		easy_release(e, r);
		finish(e, r, -EIO);
		return;
	}
	list_push(&e->active, r);
}

/* Cancelled requests end now (and every one the cancel hooks end). */
static void reap_cancelled(struct http_engine *e)
{
	struct http_req *gone = NULL, *r, *next;
	bool data = e->cancelled && e->cancelled(e->cancel_ctx);
	bool reads = e->reads_cancelled && e->reads_cancelled(e->cancel_ctx);

	pthread_mutex_lock(&e->lock);
	for (r = data || reads ? e->active : NULL; r; r = r->eng.next)
		if ((data && r->cancellable) || (reads && r->is_read))
			__atomic_store_n(&r->eng.cancel, true, __ATOMIC_RELEASE);
	for (r = data || reads ? e->pending : NULL; r; r = r->eng.next)
		if ((data && r->cancellable) || (reads && r->is_read))
			__atomic_store_n(&r->eng.cancel, true, __ATOMIC_RELEASE);
	for (r = e->active; r; r = next) {
		next = r->eng.next;
		if (r->eng.cancel) {
			list_remove(&e->active, r);
			list_push(&gone, r);
		}
	}
	for (r = e->pending; r; r = next) {
		next = r->eng.next;
		if (r->eng.cancel) {
			list_remove(&e->pending, r);
			list_push(&gone, r);
		}
	}
	pthread_mutex_unlock(&e->lock);
	for (r = gone; r; r = next) {
		next = r->eng.next;
		easy_release(e, r);
		finish(e, r, -ECANCELED);
	}
}

/* Take the queue; true when the engine is stopping. */
static bool take_queue(struct http_engine *e)
{
	struct http_req *r, *next;
	bool stop;

	pthread_mutex_lock(&e->lock);
	for (r = e->queue; r; r = next) {
		next = r->eng.next;
		list_push(&e->pending, r);
	}
	e->queue = e->queue_tail = NULL;
	stop = e->stopping;
	pthread_mutex_unlock(&e->lock);
	return stop;
}

/* Start the attempts that are due; *wait_s: until the next one is. */
static void start_due(struct http_engine *e, double *wait_s)
{
	struct http_req *r, *next, *due = NULL;
	double now = util_now_mono();

	for (r = e->pending; r; r = next) {
		next = r->eng.next;
		if (r->eng.next_at <= now) {
			list_remove(&e->pending, r);
			list_push(&due, r);
		} else if (r->eng.next_at - now < *wait_s) {
			*wait_s = r->eng.next_at - now;
		}
	}
	for (r = due; r; r = next) {
		next = r->eng.next;
		r->eng.next = NULL;
		start_attempt(e, r);
	}
}

static void *engine_main(void *arg)
{
	struct http_engine *e = arg;

	for (;;) {
		struct http_req *r;
		struct CURLMsg *m;
		double now, wait_s = 10.0;
		int running, left;
		bool stop;

		stop = take_queue(e);
		reap_cancelled(e);
		start_due(e, &wait_s);
		curl_multi_perform(e->multi, &running);
		while ((m = curl_multi_info_read(e->multi, &left))) {
			void *priv = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
			r = priv;
			list_remove(&e->active, r);
			attempt_done(e, r, m->data.result);
		}
		if (stop && !e->active && !e->pending)
			break;
		if (e->pending) {
			/* a retry may have been scheduled just now */
			now = util_now_mono();
			for (r = e->pending; r; r = r->eng.next)
				if (r->eng.next_at - now < wait_s)
					wait_s = r->eng.next_at - now;
		}
		/* the stall check (on_progress) runs when curl is called */
		if (e->active && wait_s > 1.0)
			wait_s = 1.0;
		/* the cancel hook is asked at least this often */
		if ((e->cancelled || e->reads_cancelled) && (e->active || e->pending) &&
		    wait_s > 0.25)
			wait_s = 0.25;
		if (wait_s < 0)
			wait_s = 0;
		curl_multi_poll(e->multi, NULL, 0, (int)(wait_s * 1000) + 1, NULL);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* the callers' side                                                   */

void http_submit(struct http_engine *e, struct http_req *r)
{
	r->eng.e = e;
	r->eng.done = false;
	r->eng.cancel = false;
	r->result = 0;
	r->eng.attempt = 0;
	r->eng.next_at = 0;
	r->eng.next = NULL;
	pthread_mutex_lock(&e->lock);
	if (e->queue_tail)
		e->queue_tail->eng.next = r;
	else
		e->queue = r;
	e->queue_tail = r;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
}

void http_wait(struct http_engine *e, struct http_req *r)
{
	pthread_mutex_lock(&e->lock);
	while (!r->eng.done)
		pthread_cond_wait(&e->cond, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

void http_cancel(struct http_engine *e, struct http_req *r)
{
	pthread_mutex_lock(&e->lock);
	__atomic_store_n(&r->eng.cancel, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
}

int http_check(struct http_engine *e, const struct http_req *r,
	       const char *what, struct err *err)
{
	const struct http_hooks *h = e->hooks;

	if (r->result == -ECANCELED)
		return err_set(err, -ECANCELED, "%s: %s: cancelled", e->who, what);
	if (r->result == -EFBIG)
		return err_set(err, -EFBIG, "%s: %s: the server's answer is too big",
			       e->who, what);
	if (r->result == -ENOMEM)
		return err_set(err, -ENOMEM, "%s: %s: out of memory", e->who, what);
	if (r->result < 0) {
		if (h && h->transport_error)
			return h->transport_error(e->hooks_ctx, what, r, err);
		return err_set(err, -EIO, "%s: %s: %s (curl error %d)", e->who,
			       what, r->errbuf[0] ? r->errbuf :
			       curl_easy_strerror((CURLcode)r->cc), r->cc);
	}
	if (r->status >= 200 && r->status < 300)
		return 0;
	if (h && h->http_error)
		return h->http_error(e->hooks_ctx, what, r, err);
	return err_set(err, -EIO, "%s: %s: HTTP %ld", e->who, what, r->status);
}

int http_run(struct http_engine *e, struct http_req *r, const char *what,
	     struct err *err)
{
	snprintf(r->label, sizeof(r->label), "%s", what);
	http_submit(e, r);
	http_wait(e, r);
	return http_check(e, r, what, err);
}

/* ------------------------------------------------------------------ */
/* new and free                                                        */

void http_engine_free(struct http_engine *e)
{
	if (!e)
		return;
	if (e->thread_started) {
		pthread_mutex_lock(&e->lock);
		e->stopping = true;
		pthread_mutex_unlock(&e->lock);
		curl_multi_wakeup(e->multi);
		pthread_join(e->thread, NULL);
	}
	for (unsigned i = 0; i < e->npool; i++)
		curl_easy_cleanup(e->pool[i]);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->who);
	free(e->base_url);
	free(e->ca_file);
	free(e);
}

int http_engine_new(const struct http_engine_opts *o,
		    struct http_engine **e_ret, struct err *err)
{
	struct http_engine *e;
	int ret;

	*e_ret = NULL;
	ret = http_global_init(err);
	if (ret)
		return ret;
	e = calloc(1, sizeof(*e));
	if (!e)
		return err_set(err, -ENOMEM, "%s: out of memory", o->who);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->rand_state = (unsigned)time(NULL) ^ (unsigned)getpid() ^
			(unsigned)(uintptr_t)e;
	e->who = strdup(o->who);
	e->base_url = strdup(o->base_url);
	e->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	e->insecure = o->insecure_tls;
	e->no_proxy = o->no_proxy;
	e->connect_timeout = o->connect_timeout;
	e->stall_timeout = o->stall_timeout;
	e->max_attempts = o->max_attempts;
	e->hooks = o->hooks;
	e->hooks_ctx = o->hooks_ctx;
	e->cancelled = o->cancelled;
	e->reads_cancelled = o->reads_cancelled;
	e->cancel_ctx = o->cancel_ctx;
	e->multi = curl_multi_init();
	if (!e->who || !e->base_url || (o->ca_file && !e->ca_file) || !e->multi) {
		ret = err_set(err, -ENOMEM, "%s: out of memory", o->who);
		goto out_free;
	}
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)o->max_connections);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)o->max_connections);
	ret = -pthread_create(&e->thread, NULL, engine_main, e);
	if (ret) {
		ret = err_set(err, ret, "%s: cannot start a thread: %s", o->who,
			      err_str(ret));
		goto out_free;
	}
	e->thread_started = true;
	*e_ret = e;
	return 0;
out_free:
	http_engine_free(e);
	return ret;
}
