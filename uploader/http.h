/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_HTTP_H
#define SNAPSHIP_UPLOADER_HTTP_H

/*
 * The HTTP engine of the remote stores (internal to uploader/): libcurl's
 * multi interface, driven by one transfer thread per engine.  It knows
 * nothing of any store: no signing scheme, no XML, no bucket.  A driver
 * (s3.c) plugs in through hooks called for every attempt.
 *
 * Any thread builds a request (struct http_req, usually on its stack or in
 * its own object) and either runs it to its end (http_run(), or
 * http_submit() + http_wait() + http_check()) or lets it run while it does
 * something else and learns of its end through on_done.  The engine:
 *   - calls the hooks' fake, then sign, before every attempt (so a retry
 *     minutes later carries a fresh signature);
 *   - retries what is worth it, with exponential backoff and jitter
 *     (http_backoff()): transport errors that pass (resets, timeouts,
 *     refused connections: at most HTTP_CONNECT_ATTEMPTS of those), and
 *     answers the retry_reason hook (default: http_status_transient())
 *     names; per request, so per part of a multipart upload;
 *   - ends an attempt that moved no byte either way for stall_timeout s;
 *   - reuses connections and curl handles across requests;
 *   - streams the request body from the caller's buffer and the answer's
 *     body into the caller's buffer (or a buffer of the request's own).
 *
 * Ownership: everything passed to the engine is borrowed, for the call
 * (options, "what" texts) or until the request has ended (the request
 * itself, its body, fixed buffer, content type, borrowed header values);
 * the engine copies what it keeps.  A request owns path, query, out and
 * errbody: http_req_release() frees them.
 */

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uploader/sbuf.h"

struct err;
struct http_engine;
struct http_attempt;

#define HTTP_HDR_MAX 7                   /* headers of a request (not the hooks') */
#define HTTP_HVAL_MAX 96                 /* a copied header value, with its NUL */
#define HTTP_CAPTURE_MAX 65              /* a captured header value, with its NUL */
#define HTTP_ERRBODY_MAX (64u << 10)     /* error bodies kept for messages */
#define HTTP_OUT_DEFAULT (1u << 20)      /* out_max after http_req_init() */
#define HTTP_CONNECT_ATTEMPTS 3          /* "connection refused" rarely passes */

struct http_header {
	const char *name;
	const char *value;
};

struct http_req {
	/* The request: set by the caller before http_submit(). */
	const char *method;         /* GET HEAD PUT POST DELETE (a literal) */
	char *path;                 /* wire path, "/a%20b" (owned, malloc'd) */
	char *query;                /* wire query without '?', or NULL (owned) */
	struct http_header hdrs[HTTP_HDR_MAX];
	char hval[HTTP_HDR_MAX][HTTP_HVAL_MAX];  /* http_req_header() values */
	size_t nhdrs;
	const char *content_type;   /* sent unsigned after the hooks' headers */
	const void *body;           /* PUT/POST body (borrowed) */
	size_t body_len;
	const char *capture;        /* a header to keep in captured, or NULL */
	char label[400];            /* for log lines: "PUT \"key\" part 3" */
	/* Where the body of a 2xx answer goes: into fixed (fixed_cap bytes,
	 * more is dropped), or else into out, up to out_max bytes (more ends
	 * the request with -EFBIG). */
	char *fixed;
	size_t fixed_cap;
	uint64_t range_off;         /* asked Range from here: a 200 answer's
				     * body is skipped up to it */
	size_t out_max;
	/* Optional: called on the engine thread when the request has ended,
	 * with no engine lock held; the request is the caller's again when it
	 * returns.  Such a request is never http_wait()ed for. */
	void (*on_done)(struct http_req *r, void *arg);
	void *on_done_arg;
	/* The engine's cancel hook (http_engine_opts.cancelled) may end this
	 * request with -ECANCELED (uploads of data; never the requests that
	 * clean up after a cancellation). */
	bool cancellable;
	/* A read that no cleanup needs (a listing, a HEAD): the engine's
	 * reads hook (http_engine_opts.reads_cancelled) may end it with
	 * -ECANCELED. */
	bool is_read;

	/* The answer: valid once the request has ended. */
	int result;                 /* 0: an HTTP answer (status); -ECANCELED,
				     * -EFBIG, -ENOMEM; -EIO: none (cc) */
	long status;
	struct sbuf out;            /* the body when not fixed (owned) */
	size_t rlen;                /* bytes of the body kept */
	struct sbuf errbody;        /* the body of a non-2xx answer (owned) */
	int cc;                     /* CURLcode of the last attempt */
	long os_errno;              /* its socket errno, 0 if unknown */
	long ssl_verify;            /* after CURLE_PEER_FAILED_VERIFICATION:
				     * the TLS library's verify result
				     * (OpenSSL X509_V_ERR_*; 0: the chain
				     * was good, the host name was not) */
	char errbuf[CURL_ERROR_SIZE];
	char etag[128];             /* header values, "" when absent */
	char date[64];
	char last_modified[64];
	char captured[HTTP_CAPTURE_MAX];
	uint64_t content_length;
	bool have_length;

	/* Engine state: http.c only. */
	struct {
		struct http_engine *e;
		struct http_req *next;
		unsigned attempt;
		double next_at;     /* monotonic time of the next attempt */
		double moved_at;    /* last time a byte moved either way */
		curl_off_t moved_up, moved_down;
		uint64_t skip;
		size_t body_off;
		bool stalled, too_big, done, cancel;
		CURL *easy;
		struct curl_slist *slist;
		char *url;
	} eng;
};

/*
 * A store's hooks, all optional, all called on the engine thread.  ctx is
 * the engine options' hooks_ctx.
 */
struct http_hooks {
	/* Before an attempt: true to answer it without sending it (fault
	 * injection): set r->status and append a body to r->errbody. */
	bool (*fake)(void *ctx, struct http_req *r);
	/* Before an attempt that is sent: add the headers that authenticate
	 * it with http_attempt_header().  0, or -errno to end the request
	 * with -ENOMEM. */
	int (*sign)(void *ctx, const struct http_req *r, struct http_attempt *a);
	/* After an attempt that got an answer other than 2xx: why it is worth
	 * retrying (a short text written into buf) or NULL when it is final.
	 * Default: "HTTP <status>" when http_status_transient(). */
	const char *(*retry_reason)(void *ctx, const struct http_req *r,
				    char *buf, size_t len);
	/* The error of a request that ended in an HTTP answer (>= 300), and of
	 * one that got none (r->cc, r->os_errno, r->errbuf): set err, return
	 * the negative code.  what: "GET \"key\"".  Defaults: "WHO: WHAT: HTTP
	 * 404" and "WHO: WHAT: curl's message (curl error N)", -EIO. */
	int (*http_error)(void *ctx, const char *what, const struct http_req *r,
			  struct err *err);
	int (*transport_error)(void *ctx, const char *what,
			       const struct http_req *r, struct err *err);
};

struct http_engine_opts {
	const char *who;            /* starts log lines and errors: "region east" */
	const char *base_url;       /* "https://host:port": each URL's start */
	const char *ca_file;        /* PEM bundle, NULL: the system's */
	bool insecure_tls;          /* no TLS verification (tests only) */
	bool no_proxy;              /* never through a proxy of the environment
				     * (http_proxy, ...): for this host's own */
	long connect_timeout;       /* seconds */
	long stall_timeout;         /* seconds without a byte moving */
	unsigned max_attempts;      /* per request; 1 = no retry */
	unsigned max_connections;   /* kept open, and at once per host */
	const struct http_hooks *hooks;  /* borrowed for the engine's life */
	void *hooks_ctx;
	/* Asked on the engine thread about every quarter second and from
	 * curl's progress callback (NULL: never): once true, every
	 * cancellable request in flight or waiting ends with -ECANCELED. */
	bool (*cancelled)(void *ctx);
	/* Asked as cancelled is (NULL: never): once true, every is_read
	 * request in flight or waiting ends with -ECANCELED too. */
	bool (*reads_cancelled)(void *ctx);
	void *cancel_ctx;            /* of both hooks */
};

/*
 * libcurl's global initialisation, once per process: 0, or -EIO with err
 * set.  http_engine_new() calls it too; a driver may call it first to
 * report it before its own configuration errors.
 */
int http_global_init(struct err *err);

/*
 * A new engine and its thread.  Strings of o are copied.  *e_ret is the
 * caller's: http_engine_free().  -ENOMEM, -EIO or a pthread error, err set.
 */
int http_engine_new(const struct http_engine_opts *o,
		    struct http_engine **e_ret, struct err *err);
/* Waits for the requests in flight to end, stops the thread, frees e.
 * NULL is a no-op. */
void http_engine_free(struct http_engine *e);

/* Zero r and set method (a literal) and the defaults. */
void http_req_init(struct http_req *r, const char *method);
/* Free what r owns (path, query, out, errbody; not the caller's buffers). */
void http_req_release(struct http_req *r);
/* A header whose value is formatted into r (cut to HTTP_HVAL_MAX - 1). */
void http_req_header(struct http_req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A header whose value is borrowed until the request has ended. */
void http_req_header_ref(struct http_req *r, const char *name,
			 const char *value);

/* For the sign hook: one more header line of this attempt (copied). */
void http_attempt_header(struct http_attempt *a, const char *name,
			 const char *value);

/* Queue r (any thread).  r and what it borrows stay untouched until it
 * has ended. */
void http_submit(struct http_engine *e, struct http_req *r);
/* Wait until r (submitted without on_done) has ended. */
void http_wait(struct http_engine *e, struct http_req *r);
/* Ask r to end soon with -ECANCELED (any thread; a no-op once it ended). */
void http_cancel(struct http_engine *e, struct http_req *r);
/* After r ended: 0 for a 2xx answer, else the error (err set, through the
 * hooks for answers and transport errors). */
int http_check(struct http_engine *e, const struct http_req *r,
	       const char *what, struct err *err);
/* Label r with what, submit it, wait for it and check it. */
int http_run(struct http_engine *e, struct http_req *r, const char *what,
	     struct err *err);

/* The pure parts, for the hooks and the unit tests. */

/* Seconds to wait before retry number attempt (1-based): 0.25 s doubled per
 * attempt up to 20 s, half of it fixed and half random (rand_r(seed)). */
double http_backoff(unsigned *seed, unsigned attempt);
/* A status that says "try again later": 5xx but 501 and 505, 429, 408. */
bool http_status_transient(long status);
/* A CURLcode of trouble that may pass (resets, timeouts, refused...). */
bool http_transport_transient(int curl_code);

#endif
