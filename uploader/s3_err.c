// SPDX-License-Identifier: MIT
/*
 * The S3 store's errors: an HTTP answer or a transport failure turned into
 * a message that says what failed, on what, and how to fix it
 * (s3_http_error(), s3_transport_error()), and which answers are worth
 * retrying (the engine's retry_reason hook).
 */
#include "uploader/s3_priv.h"

#include "common/err.h"
#include "uploader/s3_xml.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* OpenSSL's X509_V_ERR_* verify results that are not about trust */
enum {
	TLS_V_CERT_NOT_YET_VALID = 9,
	TLS_V_CERT_HAS_EXPIRED = 10,
	TLS_V_HOSTNAME_MISMATCH = 62,
	TLS_V_IP_ADDRESS_MISMATCH = 64,
};

/* A certificate curl refused (CURLE_PEER_FAILED_VERIFICATION): curl checks
 * the host name itself after the TLS library accepted the chain, and then
 * says so only in its text ("... target host name '...'"). */
static int tls_refused(const struct s3_names *n, long verify, const char *why,
		       struct err *err)
{
	if (strstr(why, "target host name"))
		verify = TLS_V_HOSTNAME_MISMATCH;
	switch (verify) {
	case TLS_V_CERT_HAS_EXPIRED:
		return err_set(err, -EPROTO,
			       "%s: the TLS certificate of %s has expired (%s); have the server's certificate renewed (and check this host's clock: date)",
			       n->who, n->endpoint, why);
	case TLS_V_CERT_NOT_YET_VALID:
		return err_set(err, -EPROTO,
			       "%s: the TLS certificate of %s is not valid yet (%s); check this host's clock (timedatectl, NTP)",
			       n->who, n->endpoint, why);
	case TLS_V_HOSTNAME_MISMATCH:
	case TLS_V_IP_ADDRESS_MISMATCH:
		return err_set(err, -EPROTO,
			       "%s: the TLS certificate of %s does not name that host (%s); use a host name the certificate names in the endpoint, or have it reissued for this one",
			       n->who, n->endpoint, why);
	default:
		return err_set(err, -EPROTO,
			       "%s: the TLS certificate of %s is not trusted (%s); point %s at the PEM of the CA that signed it",
			       n->who, n->endpoint, why,
			       n->fix_ca ? n->fix_ca : "ca_file (or AWS_CA_BUNDLE)");
	}
}

int s3_transport_error(const struct s3_names *n, const char *what,
		       int curl_code, long os_errno, long ssl_verify,
		       const char *detail, struct err *err)
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
		return tls_refused(n, ssl_verify, detail && detail[0] ? detail : why,
				   err);
	case CURLE_SSL_CACERT_BADFILE:
		return err_set(err, -EPROTO,
			       "%s: the CA file given to verify %s cannot be used (%s); point %s at a PEM file of CA certificates",
			       n->who, n->endpoint, detail && detail[0] ? detail : why,
			       n->fix_ca ? n->fix_ca : "ca_file (or AWS_CA_BUNDLE)");
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
/* the engine's hooks                                                  */

const char *s3_retry_reason(void *ctx, const struct http_req *r, char *buf,
			    size_t len)
{
	struct s3_xml_error e;

	(void)ctx;
	if (http_status_transient(r->status)) {
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

int s3_hook_http_error(void *ctx, const char *what, const struct http_req *r,
		       struct err *err)
{
	const struct s3_store *s = ctx;

	return s3_http_error(&s->names, what, r->status, r->errbody.s,
			     r->errbody.len, r->date[0] ? r->date : NULL, err);
}

int s3_hook_transport_error(void *ctx, const char *what,
			    const struct http_req *r, struct err *err)
{
	const struct s3_store *s = ctx;

	return s3_transport_error(&s->names, what, r->cc, r->os_errno,
				  r->ssl_verify, r->errbuf, err);
}
