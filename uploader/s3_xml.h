/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_S3_XML_H
#define SNAPSHIP_UPLOADER_S3_XML_H

/*
 * The XML of S3 responses, parsed with expat (internal to uploader/, and
 * used by the unit tests).  Every parser takes the whole body, refuses a
 * DOCTYPE (no entity tricks from a hostile server), bounds nesting and text
 * sizes, and returns 0 or a negative errno with err set (-EBADMSG for XML
 * that is not what S3 sends).  Strings in results are malloc'd and belong
 * to the result; each *_free() frees them (a zeroed result is valid).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct sbuf;

/* <Error><Code/><Message/>...</Error> */
struct s3_xml_error {
	char code[64];
	char message[256];
	char region[64];           /* <Region> of AuthorizationHeaderMalformed */
	char server_time[40];      /* <ServerTime> of RequestTimeTooSkewed */
};

/*
 * 1 when body holds an <Error> (e filled), 0 when it holds something else,
 * -EBADMSG when it is not XML.  e is cleared first.
 */
int s3_xml_error(const char *body, size_t len, struct s3_xml_error *e);

/* ListObjectsV2 */
struct s3_xml_object {
	char *key;
	uint64_t size;
	int64_t mtime_ns;
};

struct s3_xml_list {
	struct s3_xml_object *objs;
	size_t n, cap;
	bool truncated;
	char *next_token;          /* NextContinuationToken, NULL when none */
};

int s3_xml_list_v2(const char *body, size_t len, struct s3_xml_list *page,
		   struct err *err);
void s3_xml_list_free(struct s3_xml_list *page);

/* ListMultipartUploads */
struct s3_xml_upload {
	char *key;
	char *upload_id;
};

struct s3_xml_uploads {
	struct s3_xml_upload *u;
	size_t n, cap;
	bool truncated;
	char *next_key_marker;
	char *next_upload_id_marker;
};

int s3_xml_uploads(const char *body, size_t len, struct s3_xml_uploads *ups,
		   struct err *err);
void s3_xml_uploads_free(struct s3_xml_uploads *ups);

/* InitiateMultipartUploadResult: *upload_id_ret is malloc'd. */
int s3_xml_initiate(const char *body, size_t len, char **upload_id_ret,
		    struct err *err);

/*
 * CompleteMultipartUpload answers 200 OK and may still carry an <Error>
 * (the server failed while assembling).  0: a
 * CompleteMultipartUploadResult; 1: an <Error> (e filled); < 0: neither.
 */
int s3_xml_complete(const char *body, size_t len, struct s3_xml_error *e,
		    struct err *err);

/* DeleteResult: the keys that failed (with Quiet only those are listed). */
struct s3_xml_delete_error {
	char *key;
	char code[64];
	char message[256];
};

struct s3_xml_deleted {
	struct s3_xml_delete_error *errs;
	size_t n, cap;
};

int s3_xml_delete_result(const char *body, size_t len,
			 struct s3_xml_deleted *d, struct err *err);
void s3_xml_deleted_free(struct s3_xml_deleted *d);

/* ListObjectVersions: versions and delete markers, in the server's order. */
struct s3_xml_version {
	char *key;
	char *version_id;
	char *etag;                 /* as sent (quotes and all); NULL: none */
	bool delete_marker;
};

struct s3_xml_versions {
	struct s3_xml_version *v;
	size_t n, cap;
	bool truncated;
	char *next_key_marker;
	char *next_version_id_marker;
};

int s3_xml_versions(const char *body, size_t len, struct s3_xml_versions *vs,
		    struct err *err);
void s3_xml_versions_free(struct s3_xml_versions *vs);

/* ObjectLockConfiguration (GetObjectLockConfiguration). */
struct s3_xml_lock {
	bool enabled;              /* ObjectLockEnabled = Enabled */
	char mode[16];             /* Rule/DefaultRetention/Mode, "" none */
	int64_t days;              /* its Days (Years x 365), 0 none */
};

int s3_xml_lock(const char *body, size_t len, struct s3_xml_lock *lk,
		struct err *err);

/* Append s to b with &, <, >, " and ' escaped. */
void s3_xml_escape(struct sbuf *b, const char *s);
/* false when s holds characters XML 1.0 cannot carry (controls, bad UTF-8) */
bool s3_xml_text_ok(const char *s);

/* "2009-10-12T17:50:30.000Z" → unix ns; -EINVAL when it is not that. */
int s3_xml_parse_time(const char *s, int64_t *ns_ret);

#endif
