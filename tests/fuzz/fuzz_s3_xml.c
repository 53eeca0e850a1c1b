// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the XML answers of an S3 server (uploader/s3_xml.c).
 * Every input goes through every parser: <Error>, ListObjectsV2,
 * ListMultipartUploads, CreateMultipartUpload, CompleteMultipartUpload and
 * DeleteObjects results.  Also, as a NUL-terminated string: the time
 * parser, and the escaping snapship writes into request bodies, which must
 * read back as the same text (for every text s3_xml_text_ok() accepts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static __attribute__((noreturn)) void bug(const char *what, const char *s)
{
	fprintf(stderr, "fuzz_s3_xml: %s: \"%s\"\n", what, s ? s : "(null)");
	abort();
}

static void parsers(const char *body, size_t len)
{
	struct s3_xml_error e;
	struct s3_xml_list page;
	struct s3_xml_uploads ups;
	struct s3_xml_deleted del;
	struct s3_xml_versions vs;
	struct s3_xml_lock lk;
	struct err err = { 0 };
	char *upload_id = NULL;

	s3_xml_error(body, len, &e);
	if (!s3_xml_list_v2(body, len, &page, &err)) {
		for (size_t i = 0; i < page.n; i++)
			if (!page.objs[i].key)
				bug("a listed object without a key", "");
		if (page.truncated && (!page.next_token || !page.next_token[0]))
			bug("a truncated page without a token", page.next_token);
		s3_xml_list_free(&page);
	}
	err_clear(&err);
	if (!s3_xml_uploads(body, len, &ups, &err)) {
		for (size_t i = 0; i < ups.n; i++)
			if (!ups.u[i].key || !ups.u[i].upload_id)
				bug("an upload without a key or id", "");
		s3_xml_uploads_free(&ups);
	}
	err_clear(&err);
	if (!s3_xml_initiate(body, len, &upload_id, &err)) {
		if (!upload_id || !upload_id[0])
			bug("an empty upload id accepted", upload_id);
		free(upload_id);
	}
	err_clear(&err);
	s3_xml_complete(body, len, &e, &err);
	err_clear(&err);
	if (!s3_xml_delete_result(body, len, &del, &err))
		s3_xml_deleted_free(&del);
	err_clear(&err);
	if (!s3_xml_versions(body, len, &vs, &err)) {
		for (size_t i = 0; i < vs.n; i++)
			if (!vs.v[i].key || !vs.v[i].version_id)
				bug("a version without a key or id", "");
		if (vs.truncated && (!vs.next_key_marker || !vs.next_key_marker[0]))
			bug("a truncated version page without a marker", vs.next_key_marker);
		s3_xml_versions_free(&vs);
	}
	err_clear(&err);
	if (!s3_xml_lock(body, len, &lk, &err) && lk.days < 0)
		bug("a negative default retention", lk.mode);
}

/* What snapship escapes into a request body reads back unchanged. */
static void escape_round_trip(const char *s)
{
	struct sbuf b = { 0 };
	struct err err = { 0 };
	char *id = NULL;

	if (!*s || !s3_xml_text_ok(s))
		return;
	sbuf_add(&b, "<InitiateMultipartUploadResult><UploadId>");
	s3_xml_escape(&b, s);
	sbuf_add(&b, "</UploadId></InitiateMultipartUploadResult>");
	if (!sbuf_ok(&b)) {
		sbuf_free(&b);
		return;
	}
	if (s3_xml_initiate(b.s, b.len, &id, &err))
		bug("escaped text does not parse back", s);
	if (strcmp(id, s))
		bug("escaped text reads back changed", s);
	free(id);
	sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	int64_t ns;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	parsers(s, size);
	s3_xml_parse_time(s, &ns);
	escape_round_trip(s);
	free(s);
	return 0;
}
