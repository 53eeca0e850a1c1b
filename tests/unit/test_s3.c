// SPDX-License-Identifier: MIT
/*
 * The S3 store without a server: key and URL encoding, locations and
 * endpoints, part size selection, the secret file check, the XML of S3
 * answers (ListObjectsV2 pages, errors, CompleteMultipartUpload's error
 * inside 200 OK, DeleteObjects, ListMultipartUploads) and the messages
 * errors turn into.  Then the whole store against a scripted S3 server in
 * this process (loopback): puts small and multipart, ranges, list pages,
 * batch delete, orphan uploads, retries of 503/500/reset/stall/error-in-200,
 * permanent failures (aborted uploads), wrong keys, missing bucket, clock
 * skew, endpoint down, parallel readers and the s3.request fault points.
 */
#include "agent/config.h"
#include "common/err.h"
#include "uploader/s3.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"
#include "uploader/sigv4.h"
#include "uploader/store.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

static const struct s3_names names = {
	.who = "region east",
	.fix_bucket = "[region east] bucket",
	.fix_keys = "access_key_id and secret_access_key_file of [region east]",
	.fix_region = "sigv4_region of [region east]",
	.fix_ca = "ca_file in [region east]",
	.bucket = "backups",
	.endpoint = "http://127.0.0.1:7480",
};

/* ---- encoding, locations, endpoints ---- */

static void test_object_path(void **state)
{
	static const struct {
		const char *base, *prefix, *key, *path;
	} cases[] = {
		{ "/backups", "", "host/part/data.tar.zst", "/backups/host/part/data.tar.zst" },
		{ "/backups", "prod/", "a b/c+d=e%f", "/backups/prod/a%20b/c%2Bd%3De%25f" },
		{ "", "x/", "caf\xc3\xa9/\xe2\x82\xac", "/x/caf%C3%A9/%E2%82%AC" },
		{ "/b", "", "~tilde_-.", "/b/~tilde_-." },
		{ "/b", "", "q?h#s:&$@!*'();,[]", "/b/q%3Fh%23s%3A%26%24%40%21%2A%27%28%29%3B%2C%5B%5D" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = s3_object_path(cases[i].base, cases[i].prefix, cases[i].key);

		assert_non_null(p);
		assert_string_equal(p, cases[i].path);
		free(p);
	}
}

static void test_location(void **state)
{
	char *b, *p;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_parse_location("s3://backups", &b, &p, &err), 0);
	assert_string_equal(b, "backups");
	assert_string_equal(p, "");
	free(b);
	free(p);
	assert_int_equal(s3_parse_location("s3://backups/prod/x//", &b, &p, &err), 0);
	assert_string_equal(b, "backups");
	assert_string_equal(p, "prod/x/");
	free(b);
	free(p);
	assert_int_equal(s3_parse_location("s3://b/a b+c", &b, &p, &err), 0);
	assert_string_equal(p, "a b+c/");
	free(b);
	free(p);
	assert_int_equal(s3_parse_location("s3:///x", &b, &p, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(s3_parse_location("s3://b/a//c", &b, &p, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(s3_parse_location("s3://b/a/../c", &b, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, ".."));
	err_clear(&err);
	assert_null(b);
}

static void test_endpoint(void **state)
{
	char *sc, *au;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_parse_endpoint("http://127.0.0.1:7480", &sc, &au, &err), 0);
	assert_string_equal(sc, "http");
	assert_string_equal(au, "127.0.0.1:7480");
	free(sc);
	free(au);
	assert_int_equal(s3_parse_endpoint("HTTPS://s3.example.com/", &sc, &au, &err), 0);
	assert_string_equal(sc, "https");
	assert_string_equal(au, "s3.example.com");
	free(sc);
	free(au);
	assert_int_equal(s3_parse_endpoint("s3.example.com:8443", &sc, &au, &err), 0);
	assert_string_equal(sc, "https");      /* no scheme: https */
	assert_string_equal(au, "s3.example.com:8443");
	free(sc);
	free(au);
	assert_int_equal(s3_parse_endpoint("ftp://x", &sc, &au, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(s3_parse_endpoint("https://h/path", &sc, &au, &err), -EINVAL);
	err_clear(&err);
	assert_int_equal(s3_parse_endpoint("https://user:pw@h", &sc, &au, &err), -EINVAL);
	assert_null(strstr(err.msg, "pw"));       /* userinfo is a secret */
	err_clear(&err);
	assert_int_equal(s3_parse_endpoint("https://", &sc, &au, &err), -EINVAL);

	assert_true(s3_host_is_loopback("127.0.0.1:7480"));
	assert_true(s3_host_is_loopback("127.200.0.1"));
	assert_true(s3_host_is_loopback("localhost"));
	assert_true(s3_host_is_loopback("LocalHost.:80"));
	assert_true(s3_host_is_loopback("[::1]:7480"));
	assert_false(s3_host_is_loopback("128.0.0.1"));
	assert_false(s3_host_is_loopback("10.1.2.3:80"));
	assert_false(s3_host_is_loopback("localhost.example.com"));
	assert_false(s3_host_is_loopback("127.0.0.1.example.com"));
	assert_false(s3_host_is_loopback("[::2]:80"));
	assert_false(s3_host_is_loopback("[::1"));
	assert_false(s3_host_is_loopback(""));
	assert_true(s3_host_is_ip("127.0.0.1:7480"));
	assert_true(s3_host_is_ip("10.1.2.3"));
	assert_true(s3_host_is_ip("[2001:db8::1]:443"));
	assert_false(s3_host_is_ip("s3.example.com:443"));
	assert_false(s3_host_is_ip("localhost"));
	assert_false(s3_host_is_ip(""));

	assert_true(s3_bucket_dns_ok("backups"));
	assert_true(s3_bucket_dns_ok("my-bucket.example"));
	assert_false(s3_bucket_dns_ok("My_Bucket"));
	assert_false(s3_bucket_dns_ok("ab"));
	assert_false(s3_bucket_dns_ok("a..b"));
	assert_false(s3_bucket_dns_ok("-ab"));
}

static void test_base64(void **state)
{
	char out[32];

	(void)state;
	s3_base64((const unsigned char *)"", 0, out);
	assert_string_equal(out, "");
	s3_base64((const unsigned char *)"f", 1, out);
	assert_string_equal(out, "Zg==");
	s3_base64((const unsigned char *)"fo", 2, out);
	assert_string_equal(out, "Zm8=");
	s3_base64((const unsigned char *)"foobar", 6, out);
	assert_string_equal(out, "Zm9vYmFy");
}

/* ---- part sizes ---- */

static void test_part_size(void **state)
{
	uint64_t base = 8 * MIB;

	(void)state;
	assert_int_equal(s3_part_size(base, 0), 0);
	assert_int_equal(s3_part_size(base, 1), 8 * MIB);
	assert_int_equal(s3_part_size(base, 1000), 8 * MIB);
	assert_int_equal(s3_part_size(base, 1001), 16 * MIB);
	assert_int_equal(s3_part_size(base, 2001), 32 * MIB);
	assert_int_equal(s3_part_size(base, 10000), 4 * GIB);
	assert_int_equal(s3_part_size(base, 10001), 0);
	/* every part but the last at least 5 MiB, none above 5 GiB */
	for (unsigned n = 1; n <= 10000; n++) {
		assert_true(s3_part_size(base, n) >= 5 * MIB);
		assert_true(s3_part_size(base, n) <= 5 * GIB);
		assert_true(n == 1 || s3_part_size(base, n) >= s3_part_size(base, n - 1));
	}
	/* an object of 5 TiB (the S3 maximum) fits in 10,000 parts */
	assert_true(s3_parts_capacity(base, 10000) >= 5 * TIB);
	/* the first 1000 parts keep memory small: 8 GB at 8 MiB parts */
	assert_int_equal(s3_parts_capacity(base, 1000), 1000 * 8 * MIB);
	/* a large configured part size is capped at 5 GiB */
	assert_int_equal(s3_part_size(4 * GIB, 1001), 5 * GIB);
	/* with the smallest parts S3 allows, a little less (4.88 TiB) */
	assert_true(s3_parts_capacity(5 * MIB, 10000) >= 4 * TIB + 880 * GIB);
}

/* ---- the secret file ---- */

static char *write_secret(const char *text, mode_t mode)
{
	char *path = strdup("/tmp/snapship-secret-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void test_secret_file(void **state)
{
	struct err err = { 0 };
	char *secret, *path;

	(void)state;
	path = write_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", 0600);
	assert_int_equal(s3_read_secret_file(path, "secret_access_key_file", &secret, &err), 0);
	assert_string_equal(secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	free(secret);
	/* group or world access: refused, and the message says how to fix it */
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(s3_read_secret_file(path, "secret_access_key_file", &secret, &err), -EPERM);
	assert_non_null(strstr(err.msg, "0640"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_null(strstr(err.msg, "EXAMPLEKEY"));
	assert_null(secret);
	err_clear(&err);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(s3_read_secret_file(path, "secret_access_key_file", &secret, &err), -EPERM);
	err_clear(&err);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(s3_read_secret_file(path, "secret_access_key_file", &secret, &err), 0);
	free(secret);
	unlink(path);
	free(path);

	/* two lines, or empty: not a secret file */
	path = write_secret("SeCrEt1\nSeCrEt2\n", 0600);
	assert_int_equal(s3_read_secret_file(path, "k", &secret, &err), -EINVAL);
	assert_null(strstr(err.msg, "SeCrEt"));
	err_clear(&err);
	unlink(path);
	free(path);
	path = write_secret("\n", 0600);
	assert_int_equal(s3_read_secret_file(path, "k", &secret, &err), -EINVAL);
	err_clear(&err);
	unlink(path);
	free(path);
	assert_int_equal(s3_read_secret_file("/nonexistent/key", "k", &secret, &err), -ENOENT);
	err_clear(&err);
	assert_int_equal(s3_read_secret_file("/tmp", "k", &secret, &err), -EINVAL);
}

/* ---- XML ---- */

static const char list_page1[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>backups</Name><Prefix>prod/</Prefix><KeyCount>3</KeyCount>"
	"<MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>"
	"<Contents><Key>prod/a b+c=d%e</Key><LastModified>2026-11-24T10:00:01.500Z</LastModified>"
	"<ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>"
	"<Contents><Key>prod/caf\xc3\xa9 &amp; &lt;x&gt;</Key><LastModified>2026-11-24T10:00:02Z</LastModified>"
	"<Size>0</Size></Contents>"
	"<Contents><Key>prod/big</Key><LastModified>2026-11-24T10:00:03.000Z</LastModified>"
	"<Size>6597069766656</Size></Contents>"
	"<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
	"</ListBucketResult>";

static void test_xml_list(void **state)
{
	struct s3_xml_list pg;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_xml_list_v2(list_page1, strlen(list_page1), &pg, &err), 0);
	assert_int_equal(pg.n, 3);
	assert_true(pg.truncated);
	assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	assert_string_equal(pg.objs[0].key, "prod/a b+c=d%e");
	assert_int_equal(pg.objs[0].size, 12);
	assert_int_equal(pg.objs[0].mtime_ns, 1795514401500000000LL);
	assert_string_equal(pg.objs[1].key, "prod/caf\xc3\xa9 & <x>");
	assert_int_equal(pg.objs[1].size, 0);
	assert_int_equal(pg.objs[2].size, 6597069766656ULL);
	s3_xml_list_free(&pg);

	/* the last page */
	static const char last[] =
		"<ListBucketResult><IsTruncated>false</IsTruncated>"
		"<Contents><Key>z</Key><Size>1</Size></Contents></ListBucketResult>";
	assert_int_equal(s3_xml_list_v2(last, strlen(last), &pg, &err), 0);
	assert_false(pg.truncated);
	assert_null(pg.next_token);
	assert_int_equal(pg.n, 1);
	s3_xml_list_free(&pg);

	/* an empty bucket */
	static const char empty[] = "<ListBucketResult><KeyCount>0</KeyCount>"
				    "<IsTruncated>false</IsTruncated></ListBucketResult>";
	assert_int_equal(s3_xml_list_v2(empty, strlen(empty), &pg, &err), 0);
	assert_int_equal(pg.n, 0);
	s3_xml_list_free(&pg);
}

static void test_xml_list_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"not xml",
		"<Error><Code>AccessDenied</Code></Error>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>",
		"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><ListBucketResult><Contents><Key>&a;</Key>"
		"</Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>k</Key></Contents>",
		"<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a></a></a></a></a></a></a>"
		"</a></a></a></a></a></a></a></a></a></a></a></a>",
	};
	struct s3_xml_list pg;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err err = { 0 };

		assert_int_not_equal(s3_xml_list_v2(bad[i], strlen(bad[i]), &pg, &err), 0);
		assert_true(err.msg[0]);
		assert_null(pg.objs);
	}
}

static void test_xml_error(void **state)
{
	static const char body[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
		"<BucketName>backups</BucketName><RequestId>tx0001</RequestId></Error>";
	static const char region[] =
		"<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
		"<Region>eu-west-1</Region></Error>";
	struct s3_xml_error e;

	(void)state;
	assert_int_equal(s3_xml_error(body, strlen(body), &e), 1);
	assert_string_equal(e.code, "NoSuchBucket");
	assert_string_equal(e.message, "The specified bucket does not exist");
	assert_int_equal(s3_xml_error(region, strlen(region), &e), 1);
	assert_string_equal(e.region, "eu-west-1");
	assert_int_equal(s3_xml_error("", 0, &e), 0);
	assert_int_equal(s3_xml_error("<html>502</html>", 16, &e), 0);
	assert_int_equal(s3_xml_error("<html>", 6, &e), -EBADMSG);
	assert_string_equal(e.code, "");
}

static void test_xml_complete(void **state)
{
	static const char ok[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key>"
		"<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag></CompleteMultipartUploadResult>";
	/* 200 OK, and still an error: the server failed while assembling */
	static const char err200[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n\n"
		"<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>"
		"<RequestId>656c76696e6727732072657175657374</RequestId></Error>";
	struct s3_xml_error e;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_xml_complete(ok, strlen(ok), &e, &err), 0);
	assert_int_equal(s3_xml_complete(err200, strlen(err200), &e, &err), 1);
	assert_string_equal(e.code, "InternalError");
	assert_int_equal(s3_xml_complete("", 0, &e, &err), -EBADMSG);
	err_clear(&err);
	assert_int_equal(s3_xml_complete("<Other/>", 8, &e, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "Other"));
}

static void test_xml_initiate_uploads_delete(void **state)
{
	static const char init[] =
		"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
		"<UploadId>2~abc.DEF_-</UploadId></InitiateMultipartUploadResult>";
	static const char ups[] =
		"<ListMultipartUploadsResult><Bucket>b</Bucket><KeyMarker></KeyMarker>"
		"<NextKeyMarker>p/k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
		"<IsTruncated>true</IsTruncated>"
		"<Upload><Key>p/k1</Key><UploadId>u1</UploadId><Initiated>2026-11-24T10:00:00.000Z</Initiated></Upload>"
		"<Upload><Key>p/k2</Key><UploadId>u2</UploadId></Upload>"
		"</ListMultipartUploadsResult>";
	static const char del[] =
		"<DeleteResult><Deleted><Key>a</Key></Deleted>"
		"<Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
		"<Error><Key>c</Key><Code>NoSuchKey</Code><Message>gone</Message></Error>"
		"</DeleteResult>";
	struct s3_xml_uploads u;
	struct s3_xml_deleted d;
	struct err err = { 0 };
	char *id;

	(void)state;
	assert_int_equal(s3_xml_initiate(init, strlen(init), &id, &err), 0);
	assert_string_equal(id, "2~abc.DEF_-");
	free(id);
	assert_int_equal(s3_xml_initiate("<InitiateMultipartUploadResult/>", 32, &id, &err), -EBADMSG);
	assert_null(id);
	err_clear(&err);

	assert_int_equal(s3_xml_uploads(ups, strlen(ups), &u, &err), 0);
	assert_int_equal(u.n, 2);
	assert_true(u.truncated);
	assert_string_equal(u.u[0].key, "p/k1");
	assert_string_equal(u.u[1].upload_id, "u2");
	assert_string_equal(u.next_key_marker, "p/k2");
	assert_string_equal(u.next_upload_id_marker, "u2");
	s3_xml_uploads_free(&u);

	assert_int_equal(s3_xml_delete_result(del, strlen(del), &d, &err), 0);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.errs[0].key, "b");
	assert_string_equal(d.errs[0].code, "AccessDenied");
	assert_string_equal(d.errs[1].code, "NoSuchKey");
	s3_xml_deleted_free(&d);
}

/* ListObjectVersions (versions and delete markers) and
 * GetObjectLockConfiguration, as RGW answers them. */
static void test_xml_versions_lock(void **state)
{
	static const char vers[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>b</Name><Prefix>k2</Prefix><IsTruncated>true</IsTruncated>"
		"<NextKeyMarker>k2</NextKeyMarker><NextVersionIdMarker>v1</NextVersionIdMarker>"
		"<DeleteMarker><Key>k2</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest></DeleteMarker>"
		"<Version><Key>k2</Key><VersionId>v1</VersionId><Size>5</Size></Version>"
		"</ListVersionsResult>";
	static const char lock[] =
		"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
		"<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Years>2</Years></DefaultRetention></Rule>"
		"</ObjectLockConfiguration>";
	struct s3_xml_versions vs;
	struct s3_xml_lock lk;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_xml_versions(vers, strlen(vers), &vs, &err), 0);
	assert_int_equal(vs.n, 2);
	assert_true(vs.truncated);
	assert_true(vs.v[0].delete_marker);
	assert_string_equal(vs.v[0].version_id, "m1");
	assert_false(vs.v[1].delete_marker);
	assert_string_equal(vs.v[1].key, "k2");
	assert_string_equal(vs.v[1].version_id, "v1");
	assert_string_equal(vs.next_version_id_marker, "v1");
	s3_xml_versions_free(&vs);
	assert_int_equal(s3_xml_versions("<ListVersionsResult><Version><Key>a</Key></Version></ListVersionsResult>",
					 72, &vs, &err), -EBADMSG);
	err_clear(&err);

	assert_int_equal(s3_xml_lock(lock, strlen(lock), &lk, &err), 0);
	assert_true(lk.enabled);
	assert_string_equal(lk.mode, "GOVERNANCE");
	assert_int_equal(lk.days, 730);
	assert_int_equal(s3_xml_lock("<ObjectLockConfiguration/>", 26, &lk, &err), 0);
	assert_false(lk.enabled);
	assert_int_equal(s3_xml_lock("<Error/>", 8, &lk, &err), -EBADMSG);
}

static void test_xml_escape(void **state)
{
	struct sbuf b = { 0 };
	int64_t ns;

	(void)state;
	s3_xml_escape(&b, "a&b<c>d\"e'f");
	assert_string_equal(b.s, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
	sbuf_free(&b);
	assert_true(s3_xml_text_ok("host/part/20261124T100000Z-abcdef/data.tar.zst"));
	assert_true(s3_xml_text_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	assert_false(s3_xml_text_ok("a\x01" "b"));
	assert_false(s3_xml_text_ok("\xff"));
	assert_false(s3_xml_text_ok("\xc3"));
	assert_false(s3_xml_text_ok("\xef\xbf\xbf"));
	assert_int_equal(s3_xml_parse_time("1970-01-01T00:00:01.25Z", &ns), 0);
	assert_int_equal(ns, 1250000000);
	assert_int_equal(s3_xml_parse_time("1970-01-01 00:00:01Z", &ns), -EINVAL);
	assert_int_equal(s3_xml_parse_time("1970-01-01T00:00:01+02:00", &ns), -EINVAL);
}

/* ---- error messages ---- */

static void expect_http(long status, const char *body, const char *date,
			int code, const char *want1, const char *want2)
{
	struct err err = { 0 };

	assert_int_equal(s3_http_error(&names, "PUT \"h/p/x\"", status, body,
				       body ? strlen(body) : 0, date, &err), code);
	if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
		fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.msg, want1,
			 want2 ? want2 : "");
}

static void test_http_errors(void **state)
{
	char date[64];
	time_t t = time(NULL) - 20 * 60;
	struct tm tm;

	(void)state;
	expect_http(404, "<Error><Code>NoSuchBucket</Code><Message>x</Message></Error>", NULL,
		    -ENXIO, "region east: bucket \"backups\" does not exist (HTTP 404 NoSuchBucket); create it or fix [region east] bucket", NULL);
	expect_http(404, "<Error><Code>NoSuchKey</Code></Error>", NULL, -ENOENT, "no such object", NULL);
	expect_http(404, NULL, NULL, -ENOENT, "no such object (HTTP 404)", NULL);
	expect_http(403, "<Error><Code>InvalidAccessKeyId</Code><Message>m</Message></Error>", NULL,
		    -EACCES, "InvalidAccessKeyId", "check access_key_id and secret_access_key_file of [region east]");
	expect_http(403, "<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message>"
			 "<StringToSign>AWS4-HMAC-SHA256 secret stuff</StringToSign></Error>", NULL,
		    -EACCES, "secret key is wrong", "of [region east]");
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	expect_http(403, "<Error><Code>RequestTimeTooSkewed</Code></Error>", date,
		    -EACCES, "ahead by 20 min", "fix the clock");
	expect_http(403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", NULL,
		    -EACCES, "access denied", "permission on bucket \"backups\"");
	expect_http(400, "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>", NULL,
		    -EACCES, "\"eu-west-1\"", "sigv4_region of [region east]");
	expect_http(503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", NULL,
		    -EIO, "HTTP 503 SlowDown: Please reduce your request rate.", "retries did not help");
	expect_http(400, "<Error><Code>EntityTooSmall</Code><Message>small</Message></Error>", NULL,
		    -EIO, "HTTP 400 EntityTooSmall: small", NULL);
	expect_http(502, "<html>bad gateway</html>", NULL, -EIO, "HTTP 502", NULL);
}

static void test_transport_errors(void **state)
{
	struct err err = { 0 };

	(void)state;
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_COULDNT_CONNECT,
					    ECONNREFUSED, 0, "Failed to connect", &err),
			 -ECONNREFUSED);
	assert_string_equal(err.msg,
			    "region east: cannot connect to http://127.0.0.1:7480 (Connection refused): is the endpoint right and the server up?");
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_OPERATION_TIMEDOUT,
					    0, 0, "Operation too slow", &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "stalled"));
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_PEER_FAILED_VERIFICATION,
					    0, 20, "SSL certificate problem: unable to get local issuer certificate",
					    &err), -EPROTO);
	assert_non_null(strstr(err.msg, "not trusted"));
	assert_non_null(strstr(err.msg, "http://127.0.0.1:7480"));
	assert_non_null(strstr(err.msg, "point ca_file in [region east] at"));
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_PEER_FAILED_VERIFICATION,
					    0, 10, "SSL certificate problem: certificate has expired",
					    &err), -EPROTO);
	assert_non_null(strstr(err.msg, "has expired"));
	assert_non_null(strstr(err.msg, "renewed"));
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_PEER_FAILED_VERIFICATION,
					    0, 1, "SSL: no alternative certificate subject name matches target host name '127.0.0.1'",
					    &err), -EPROTO);
	assert_non_null(strstr(err.msg, "does not name that host"));
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "GET \"k\"", CURLE_SSL_CACERT_BADFILE,
					    0, 0, "error setting certificate file", &err), -EPROTO);
	assert_non_null(strstr(err.msg, "CA file"));
	err_clear(&err);
	assert_int_equal(s3_transport_error(&names, "PUT \"k\" part 3", CURLE_RECV_ERROR,
					    ECONNRESET, 0, "", &err), -ECONNRESET);
	assert_non_null(strstr(err.msg, "Connection reset"));
}

/* ---- [region NAME] store = s3 in the config ---- */

static int load_conf(const char *text, struct config *cfg, struct err *err)
{
	char path[] = "/tmp/snapship-s3conf-XXXXXX";
	int fd = mkstemp(path), ret;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	ret = config_load(path, cfg, err);
	unlink(path);
	return ret;
}

static void expect_conf_error(const char *text, const char *want1, const char *want2)
{
	struct config cfg;
	struct err err = { 0 };

	assert_int_not_equal(load_conf(text, &cfg, &err), 0);
	if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
		fail_msg("\"%s\" lacks \"%s\" / \"%s\"", err.msg, want1, want2 ? want2 : "");
}

/* Endpoints: no scheme means https; http:// to loopback or with allow_http. */
static void test_config_endpoints(void)
{
	static const struct {
		const char *conf, *endpoint;
		bool allow_http;
	} ok[] = {
		{ "endpoint = s3.example:8443\n", "https://s3.example:8443", false },
		{ "endpoint = 127.0.0.1:7480\n", "https://127.0.0.1:7480", false },
		{ "endpoint = http://127.0.0.1:7480\n", "http://127.0.0.1:7480", false },
		{ "endpoint = http://127.9.8.7\n", "http://127.9.8.7", false },
		{ "endpoint = http://localhost:7480\n", "http://localhost:7480", false },
		{ "endpoint = http://[::1]:7480\n", "http://[::1]:7480", false },
		{ "endpoint = http://s3.lan:7480\nallow_http = yes\n", "http://s3.lan:7480", true },
	};
	char text[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct config cfg;
		struct err err = { 0 };

		snprintf(text, sizeof(text), "[region r]\nstore = s3\nbucket = b\n%s", ok[i].conf);
		if (load_conf(text, &cfg, &err))
			fail_msg("%s: %s", ok[i].conf, err.msg);
		assert_string_equal(cfg.regions[0].endpoint, ok[i].endpoint);
		assert_int_equal(cfg.regions[0].allow_http, ok[i].allow_http);
		config_free(&cfg);
	}
}

static void test_config_s3(void **state)
{
	struct config cfg;
	struct err err = { 0 };
	const struct cfg_region *r;

	(void)state;
	assert_int_equal(load_conf("[region east]\nstore = s3\nendpoint = https://s3.east.example:8443\n"
				   "bucket = backups\nprefix = prod/\nsigv4_region = eu-west-1\n"
				   "addressing = virtual\naccess_key_id = AKIAEXAMPLE\n"
				   "secret_access_key_file = /etc/snapship/east.key\n"
				   "ca_file = /etc/ssl/ca.pem\ninsecure_tls = no\npart_size = 16M\n"
				   "parts_in_flight = 4\nprimary = yes\n"
				   "[region west]\nstore = s3\nbucket = backups\n", &cfg, &err), 0);
	r = config_primary(&cfg);
	assert_non_null(r);
	assert_string_equal(r->name, "east");
	assert_string_equal(config_region_location(r), "s3://backups");
	assert_string_equal(r->endpoint, "https://s3.east.example:8443");
	assert_string_equal(r->sigv4_region, "eu-west-1");
	assert_true(r->virtual_hosted);
	assert_string_equal(r->access_key_id, "AKIAEXAMPLE");
	assert_string_equal(r->secret_access_key_file, "/etc/snapship/east.key");
	assert_string_equal(r->ca_file, "/etc/ssl/ca.pem");
	assert_false(r->insecure_tls);
	assert_int_equal(r->part_size, 16 * MIB);
	assert_int_equal(r->parts_in_flight, 4);
	assert_string_equal(r->prefix, "prod/");
	/* defaults: us-east-1, path style, keys from the environment */
	r = &cfg.regions[1];
	assert_string_equal(r->sigv4_region, "us-east-1");
	assert_false(r->virtual_hosted);
	assert_null(r->endpoint);
	assert_null(r->access_key_id);
	config_free(&cfg);

	expect_conf_error("[region r]\nstore = s3\n", ":2:", "no bucket");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\ncolour = red\n", ":4:", "colour");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\naddressing = dns\n", ":4:", "path or virtual");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nendpoint = ftp://s3.example\n", ":4:", "https://");
	/* plain HTTP to another host: refused, naming the way out */
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nendpoint = http://s3.example:80\n", ":4:",
			  "allow_http = yes in [region r]");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nendpoint = http://10.0.0.1\n", ":4:", "plain HTTP");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nallow_http = sure\n", ":4:", "yes or no");
	expect_conf_error("[region r]\nstore = file\npath = /x\nallow_http = yes\n", ":4:", "store = s3");
	test_config_endpoints();
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nendpoint = https://u:SeCrEt@h\n", ":4:", "user information");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\nsecret_access_key_file = rel/key\n", ":4:", "absolute");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\naccess_key_id = AKID\n", "only one of", NULL);
	expect_conf_error("[region r]\nstore = s3\nbucket = b\npart_size = 1M\n", ":4:", "5M to 5G");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\ninsecure_tls = maybe\n", ":4:", "yes or no");
	expect_conf_error("[region r]\nstore = s3\nbucket = b\npath = /x\n", "path is for store = file", NULL);
	expect_conf_error("[region r]\nstore = file\npath = /x\nbucket = b\n", ":4:", "bucket is for store = s3");
	/* a secret never shows in a config error */
	{
		struct config c2;
		struct err e2 = { 0 };

		assert_int_not_equal(load_conf("[region r]\nstore = s3\nendpoint = https://u:SeCrEt@h\n", &c2, &e2), 0);
		assert_null(strstr(e2.msg, "SeCrEt"));
	}
}

/* ---- opening: configuration errors need no server ---- */

static void test_open_errors(void **state)
{
	struct store *st = NULL;
	struct store_opts o = { .name = "east", .endpoint = "http://127.0.0.1:9",
				.region = "us-east-1" };
	struct err err = { 0 };
	char *path;

	(void)state;
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("SNAPSHIP_S3_ENDPOINT");
	/* no credentials anywhere */
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "region east: no S3 credentials"));
	err_clear(&err);
	/* a secret file others can read */
	path = write_secret("secret\n", 0644);
	o.access_key_id = "AKID";
	o.secret_access_key_file = path;
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "region east"));
	assert_non_null(strstr(err.msg, "chmod 600"));
	err_clear(&err);
	/* fine once fixed: opening does not talk to the server */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(store_open_opts("s3://backups/prod", &o, &st, &err), 0);
	assert_string_equal(store_describe(st), "s3://backups/prod");
	store_free(st);
	/* virtual-hosted addressing needs a DNS-safe bucket */
	o.addressing = STORE_ADDR_VIRTUAL;
	assert_int_equal(store_open_opts("s3://Bad_Bucket", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "addressing = path"));
	err_clear(&err);
	/* and a host name: BUCKET.127.0.0.1 is a name a resolver places */
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "is an IP address"));
	err_clear(&err);
	o.addressing = STORE_ADDR_PATH;
	o.endpoint = "ftp://x";
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	err_clear(&err);
	/* plain HTTP to another host: refused before any connection */
	o.endpoint = "http://s3.example.com:7480";
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "region east: endpoint http://s3.example.com:7480 is plain HTTP"));
	assert_non_null(strstr(err.msg, "allow_http = yes in [region east]"));
	err_clear(&err);
	o.allow_http = true;
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), 0);
	store_free(st);
	o.allow_http = false;
	setenv("SNAPSHIP_S3_ALLOW_HTTP", "1", 1);   /* not for a named region */
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	err_clear(&err);
	unsetenv("SNAPSHIP_S3_ALLOW_HTTP");
	o.endpoint = "s3.example.com";              /* no scheme: https */
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), 0);
	store_free(st);
	o.endpoint = "http://127.0.0.1:9";
	o.part_size = 1 << 20;
	assert_int_equal(store_open_opts("s3://backups", &o, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "5M to 5G"));
	err_clear(&err);
	unlink(path);
	free(path);
	/* the zero-config form takes its keys from the environment */
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	setenv("SNAPSHIP_S3_ENDPOINT", "http://127.0.0.1:9", 1);
	assert_int_equal(store_open("s3://b/x/", &st, &err), 0);
	assert_string_equal(store_describe(st), "s3://b/x");
	store_free(st);
	setenv("SNAPSHIP_S3_PARTS_IN_FLIGHT", "0", 1);
	assert_int_equal(store_open("s3://b/x/", &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "SNAPSHIP_S3_PARTS_IN_FLIGHT"));
	unsetenv("SNAPSHIP_S3_PARTS_IN_FLIGHT");
	err_clear(&err);
	setenv("SNAPSHIP_S3_ENDPOINT", "http://s3.example.com", 1);
	assert_int_equal(store_open("s3://b/x/", &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "SNAPSHIP_S3_ALLOW_HTTP=1"));
	err_clear(&err);
	setenv("SNAPSHIP_S3_ALLOW_HTTP", "1", 1);
	assert_int_equal(store_open("s3://b/x/", &st, &err), 0);
	store_free(st);
	unsetenv("SNAPSHIP_S3_ALLOW_HTTP");
	unsetenv("SNAPSHIP_S3_ENDPOINT");
}

/* ------------------------------------------------------------------ */
/* A scripted S3 server on loopback: enough of S3 for the store's whole
 * life cycle, checking every request's SigV4 signature and payload hash,
 * with faults on demand (status codes, resets, stalls, errors in 200). */

#define FAKE_BUCKET "bucket"
#define FAKE_KEY_ID "AKIDFAKE"
#define FAKE_SECRET "fake/secret+key"
#define FAKE_MAX_OBJS 512
#define FAKE_MAX_UPLOADS 64
#define FAKE_MAX_PARTS 64
#define FAKE_MAX_CONNS 64

enum fake_action { FA_STATUS, FA_RESET, FA_STALL, FA_ERROR_IN_200,
		   FA_LOSE_ANSWER /* do it, then drop the connection */ };

struct fake_rule {
	const char *method;
	const char *contains;       /* in path?query */
	unsigned nth;               /* 0: every match */
	enum fake_action action;
	int status;
	const char *code;
	unsigned seconds;
	unsigned matches;
};

struct fake_obj {
	char *key;
	char *data;
	size_t len;
	char meta_sha[65];
	bool multipart;
};

struct fake_upload {
	char id[32];
	char *key;
	char *parts[FAKE_MAX_PARTS + 1];
	size_t lens[FAKE_MAX_PARTS + 1];
	bool live;
};

static struct fake {
	int lfd;
	int port;
	pthread_t thread;
	pthread_mutex_t lock;
	bool stop;
	int conns[FAKE_MAX_CONNS];
	unsigned nthreads;
	pthread_cond_t cond;
	struct fake_obj objs[FAKE_MAX_OBJS];
	size_t nobjs;
	struct fake_upload ups[FAKE_MAX_UPLOADS];
	unsigned next_id;
	struct fake_rule rules[8];
	size_t nrules;
	long skew;                  /* seconds the server's clock is ahead */
	size_t list_page;           /* keys per ListObjectsV2 page */
	/* counters */
	unsigned requests, parts, part_attempts, creates, completes, aborts,
		 puts, deletes, batch_deletes, bad_sigs;
} F;

static char *fake_unescape(const char *s, size_t n)
{
	struct sbuf b = { 0 };

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '&') {
			static const struct { const char *e; char c; } ents[] = {
				{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
				{ "&quot;", '"' }, { "&apos;", '\'' },
			};
			bool hit = false;

			for (size_t j = 0; j < 5 && !hit; j++)
				if (!strncmp(s + i, ents[j].e, strlen(ents[j].e))) {
					sbuf_addc(&b, ents[j].c);
					i += strlen(ents[j].e) - 1;
					hit = true;
				}
			if (hit)
				continue;
		}
		sbuf_addc(&b, s[i]);
	}
	return sbuf_take(&b);
}

/* percent-decode a path or query component */
static char *fake_pct(const char *s, size_t n)
{
	struct sbuf b = { 0 };

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (s[i] == '%' && i + 2 < n + 0 + 1 && sscanf(s + i + 1, "%2x", &v) == 1) {
			sbuf_addc(&b, (char)v);
			i += 2;
		} else {
			sbuf_addc(&b, s[i]);
		}
	}
	return sbuf_take(&b);
}

/* the decoded value of name in a raw query, or NULL */
static char *fake_qget(const char *query, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (!strncmp(p, name, nl) && (len == nl || p[nl] == '='))
			return len == nl ? strdup("") : fake_pct(p + nl + 1, len - nl - 1);
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

struct fake_req {
	char method[16];
	char *path, *query;         /* raw */
	char *names[32], *values[32];
	size_t n;
	char *body;
	size_t len;
};

static const char *fake_hdr(const struct fake_req *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (!strcasecmp(q->names[i], name))
			return q->values[i];
	return NULL;
}

static void fake_req_free(struct fake_req *q)
{
	free(q->path);
	free(q->query);
	for (size_t i = 0; i < q->n; i++) {
		free(q->names[i]);
		free(q->values[i]);
	}
	free(q->body);
	memset(q, 0, sizeof(*q));
}

static bool fake_read_all(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = read(fd, buf, len);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* one request off the connection: false at EOF or on garbage */
static bool fake_read_req(int fd, struct fake_req *q)
{
	char head[16384], *p, *line, *sp, *save = NULL;
	size_t len = 0;
	const char *cl;

	memset(q, 0, sizeof(*q));
	while (len < sizeof(head) - 1) {
		ssize_t n = read(fd, head + len, 1);

		if (n <= 0)
			return false;
		len++;
		if (len >= 4 && !memcmp(head + len - 4, "\r\n\r\n", 4))
			break;
	}
	head[len] = '\0';
	line = strtok_r(head, "\r\n", &save);
	if (!line || !(sp = strchr(line, ' ')))
		return false;
	snprintf(q->method, sizeof(q->method), "%.*s", (int)(sp - line), line);
	p = sp + 1;
	sp = strchr(p, ' ');
	if (!sp)
		return false;
	*sp = '\0';
	if (strchr(p, '?')) {
		q->query = strdup(strchr(p, '?') + 1);
		*strchr(p, '?') = '\0';
	}
	q->path = strdup(p);
	while ((line = strtok_r(NULL, "\r\n", &save)) && q->n < 32) {
		char *c = strchr(line, ':');

		if (!c)
			continue;
		q->names[q->n] = strndup(line, (size_t)(c - line));
		c++;
		while (*c == ' ')
			c++;
		q->values[q->n++] = strdup(c);
	}
	cl = fake_hdr(q, "Content-Length");
	q->len = cl ? strtoull(cl, NULL, 10) : 0;
	q->body = malloc(q->len + 1);
	if (!q->body || !fake_read_all(fd, q->body, q->len))
		return false;
	q->body[q->len] = '\0';
	return true;
}

static void fake_send(int fd, int status, const char *extra_headers,
		      const char *body, size_t len, bool head)
{
	char hdr[1024], date[64];
	time_t t = time(NULL) + F.skew;
	struct tm tm;
	ssize_t n;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(hdr, sizeof(hdr),
		 "HTTP/1.1 %d X\r\nDate: %s\r\nContent-Length: %zu\r\n%s\r\n",
		 status, date, len, extra_headers ? extra_headers : "");
	n = write(fd, hdr, strlen(hdr));
	if (n > 0 && len && !head)
		n = write(fd, body, len);
	(void)n;
}

static void fake_error(int fd, int status, const char *code, const char *msg)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
		 "<Message>%s</Message></Error>", code, msg);
	fake_send(fd, status, "Content-Type: application/xml\r\n", body,
		  strlen(body), false);
}

/* SigV4 check with our own signer: what arrived must be what was signed */
static const char *fake_check_sig(const struct fake_req *q)
{
	const char *auth = fake_hdr(q, "Authorization");
	const char *date = fake_hdr(q, "X-Amz-Date");
	const char *sha = fake_hdr(q, "x-amz-content-sha256");
	struct sigv4_credentials c = { FAKE_KEY_ID, FAKE_SECRET, NULL };
	struct sigv4_header h[32];
	struct sigv4_params p = { .creds = &c, .region = "test-1", .service = "s3",
				  .flags = SIGV4_S3 | SIGV4_CONTENT_SHA256 };
	struct sigv4_request r = { .method = q->method, .path = q->path,
				   .query = q->query, .headers = h,
				   .payload_sha256 = sha };
	struct sigv4_signed out;
	struct tm tm = { 0 };
	char body_sha[65], signed_list[512], *tok, *save = NULL;
	const char *sh, *sig;
	bool ok;

	if (!auth || !date || !sha || !strstr(auth, "Credential=" FAKE_KEY_ID "/"))
		return "InvalidAccessKeyId";
	if (!strptime(date, "%Y%m%dT%H%M%SZ", &tm))
		return "AccessDenied";
	p.time = (int64_t)timegm(&tm);
	if (labs((long)(time(NULL) + F.skew - p.time)) > 15 * 60)
		return "RequestTimeTooSkewed";
	sh = strstr(auth, "SignedHeaders=");
	sig = strstr(auth, "Signature=");
	if (!sh || !sig)
		return "AccessDenied";
	snprintf(signed_list, sizeof(signed_list), "%.*s",
		 (int)strcspn(sh + 14, ","), sh + 14);
	for (tok = strtok_r(signed_list, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		if (!strcmp(tok, "x-amz-date") || !strcmp(tok, "x-amz-content-sha256"))
			continue;
		if (!fake_hdr(q, tok))
			return "AccessDenied";
		h[r.nheaders].name = tok;
		h[r.nheaders++].value = fake_hdr(q, tok);
	}
	if (sigv4_sign(&p, &r, &out, NULL))
		return "AccessDenied";
	ok = !strcmp(out.signature, sig + 10);
	sigv4_signed_free(&out);
	if (!ok)
		return "SignatureDoesNotMatch";
	sigv4_sha256_hex(q->body, q->len, body_sha);
	if (strcmp(body_sha, sha))
		return "XAmzContentSHA256Mismatch";
	return NULL;
}

static struct fake_obj *fake_find(const char *key)
{
	for (size_t i = 0; i < F.nobjs; i++)
		if (!strcmp(F.objs[i].key, key))
			return &F.objs[i];
	return NULL;
}

static void fake_store(const char *key, char *data, size_t len, const char *meta,
		       bool multipart)
{
	struct fake_obj *o = fake_find(key);

	if (!o) {
		assert_true(F.nobjs < FAKE_MAX_OBJS);
		o = &F.objs[F.nobjs++];
		o->key = strdup(key);
	} else {
		free(o->data);
	}
	o->data = data;
	o->len = len;
	snprintf(o->meta_sha, sizeof(o->meta_sha), "%s", meta ? meta : "");
	o->multipart = multipart;
}

static void fake_remove(const char *key)
{
	struct fake_obj *o = fake_find(key);

	if (!o)
		return;
	free(o->key);
	free(o->data);
	*o = F.objs[--F.nobjs];
}

static int fake_key_cmp(const void *a, const void *b)
{
	const struct fake_obj *x = a, *y = b;

	return strcmp(x->key, y->key);
}

static void fake_list(int fd, const struct fake_req *q)
{
	char *prefix = fake_qget(q->query, "prefix");
	char *token = fake_qget(q->query, "continuation-token");
	struct sbuf b = { 0 };
	size_t n = 0, start = token ? strtoul(token, NULL, 10) : 0, i;

	qsort(F.objs, F.nobjs, sizeof(F.objs[0]), fake_key_cmp);
	sbuf_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>");
	for (i = start; i < F.nobjs && n < F.list_page; i++) {
		if (prefix && strncmp(F.objs[i].key, prefix, strlen(prefix)))
			continue;
		sbuf_add(&b, "<Contents><Key>");
		s3_xml_escape(&b, F.objs[i].key);
		sbuf_printf(&b, "</Key><LastModified>2026-11-24T10:00:00.000Z</LastModified>"
			    "<Size>%zu</Size></Contents>", F.objs[i].len);
		n++;
	}
	while (i < F.nobjs && prefix && strncmp(F.objs[i].key, prefix, strlen(prefix)))
		i++;
	if (i < F.nobjs)
		sbuf_printf(&b, "<IsTruncated>true</IsTruncated><NextContinuationToken>%zu"
			    "</NextContinuationToken>", i);
	else
		sbuf_add(&b, "<IsTruncated>false</IsTruncated>");
	sbuf_add(&b, "</ListBucketResult>");
	fake_send(fd, 200, NULL, b.s, b.len, false);
	sbuf_free(&b);
	free(prefix);
	free(token);
}

static struct fake_upload *fake_upload(const char *id)
{
	for (size_t i = 0; id && i < FAKE_MAX_UPLOADS; i++)
		if (F.ups[i].live && !strcmp(F.ups[i].id, id))
			return &F.ups[i];
	return NULL;
}

static void fake_upload_free(struct fake_upload *u)
{
	for (size_t i = 0; i <= FAKE_MAX_PARTS; i++)
		free(u->parts[i]);
	free(u->key);
	memset(u, 0, sizeof(*u));
}

/* Serve one request (F.lock held).  false: drop the connection. */
static bool fake_serve(int fd, struct fake_req *q)
{
	char *key, *upload_id = fake_qget(q->query, "uploadId");
	const char *problem;
	char hdr[256];
	bool is_bucket, lose = false;
	struct fake_obj *o;
	struct fake_upload *u;

	F.requests++;
	if (q->query && strstr(q->query, "partNumber="))
		F.part_attempts++;
	if (getenv("FAKE_S3_LOG"))
		fprintf(stderr, "fake: %s %s?%s (%zu bytes)\n", q->method, q->path,
			q->query ? q->query : "", q->len);
	for (size_t i = 0; i < F.nrules; i++) {
		struct fake_rule *r = &F.rules[i];
		char where[2048];

		snprintf(where, sizeof(where), "%s?%s", q->path, q->query ? q->query : "");
		if (strcmp(r->method, q->method) || !strstr(where, r->contains))
			continue;
		r->matches++;
		if (r->nth && r->matches != r->nth)
			continue;
		free(upload_id);
		switch (r->action) {
		case FA_STATUS:
			fake_error(fd, r->status, r->code, "scripted fault");
			return true;
		case FA_RESET:
			return false;
		case FA_STALL:
			pthread_mutex_unlock(&F.lock);
			sleep(r->seconds);
			pthread_mutex_lock(&F.lock);
			return false;
		case FA_ERROR_IN_200:
			fake_error(fd, 200, r->code, "scripted error inside 200 OK");
			return true;
		case FA_LOSE_ANSWER:
			lose = true;
			fd = -1;
			upload_id = fake_qget(q->query, "uploadId");
			break;
		}
		break;
	}
	problem = fake_check_sig(q);
	if (problem) {
		F.bad_sigs++;
		fake_error(fd, !strcmp(problem, "XAmzContentSHA256Mismatch") ? 400 : 403,
			   problem, "rejected");
		free(upload_id);
		return true;
	}
	if (strncmp(q->path, "/" FAKE_BUCKET, strlen(FAKE_BUCKET) + 1) ||
	    (q->path[strlen(FAKE_BUCKET) + 1] && q->path[strlen(FAKE_BUCKET) + 1] != '/')) {
		fake_error(fd, 404, "NoSuchBucket", "The specified bucket does not exist");
		free(upload_id);
		return true;
	}
	{
		const char *rest = q->path + 1 + strlen(FAKE_BUCKET);

		if (*rest == '/')
			rest++;
		key = fake_pct(rest, strlen(rest));
	}
	is_bucket = !key[0];
	u = fake_upload(upload_id);
	if (!strcmp(q->method, "PUT") && upload_id) {
		char *pn = fake_qget(q->query, "partNumber");
		unsigned n = pn ? (unsigned)atoi(pn) : 0;

		free(pn);
		if (!u || !n || n > FAKE_MAX_PARTS) {
			fake_error(fd, 404, "NoSuchUpload", "no such upload");
		} else {
			free(u->parts[n]);
			u->parts[n] = q->body;
			u->lens[n] = q->len;
			q->body = NULL;
			F.parts++;
			snprintf(hdr, sizeof(hdr), "ETag: \"etag-%u-%zu\"\r\n", n, u->lens[n]);
			fake_send(fd, 200, hdr, "", 0, false);
		}
	} else if (!strcmp(q->method, "PUT")) {
		F.puts++;
		fake_store(key, q->body, q->len, fake_hdr(q, "x-amz-meta-snapship-sha256"), false);
		q->body = NULL;
		fake_send(fd, 200, "ETag: \"x\"\r\n", "", 0, false);
	} else if (!strcmp(q->method, "POST") && q->query && !strcmp(q->query, "uploads")) {
		char body[512];
		size_t i;

		for (i = 0; i < FAKE_MAX_UPLOADS && F.ups[i].live; i++)
			;
		assert_true(i < FAKE_MAX_UPLOADS);
		F.creates++;
		F.ups[i].live = true;
		snprintf(F.ups[i].id, sizeof(F.ups[i].id), "up~%u.x", ++F.next_id);
		F.ups[i].key = strdup(key);
		snprintf(body, sizeof(body), "<?xml version=\"1.0\"?><InitiateMultipartUploadResult>"
			 "<Bucket>" FAKE_BUCKET "</Bucket><UploadId>%s</UploadId>"
			 "</InitiateMultipartUploadResult>", F.ups[i].id);
		fake_send(fd, 200, NULL, body, strlen(body), false);
	} else if (!strcmp(q->method, "POST") && upload_id) {
		/* CompleteMultipartUpload: parts in order, ETags as given */
		struct sbuf data = { 0 };
		const char *p = q->body;
		unsigned want = 1;
		bool bad = !u;

		while (!bad && (p = strstr(p, "<PartNumber>"))) {
			unsigned n = (unsigned)atoi(p + 12);
			char etag[64];

			snprintf(etag, sizeof(etag), "<ETag>&quot;etag-%u-%zu&quot;</ETag>", n,
				 n <= FAKE_MAX_PARTS ? u->lens[n] : 0);
			if (n != want++ || n > FAKE_MAX_PARTS || !u->parts[n] ||
			    !strstr(p, etag)) {
				bad = true;
				break;
			}
			sbuf_addn(&data, u->parts[n], u->lens[n]);
			p++;
		}
		if (bad || want == 1) {
			fake_error(fd, u ? 400 : 404, u ? "InvalidPart" : "NoSuchUpload", "bad part list");
			sbuf_free(&data);
		} else {
			static const char ok[] = "<?xml version=\"1.0\"?><CompleteMultipartUploadResult>"
						 "<Key>k</Key></CompleteMultipartUploadResult>";

			F.completes++;
			sbuf_ok(&data);
			fake_store(u->key, data.s, data.len, NULL, true);
			fake_upload_free(u);
			fake_send(fd, 200, NULL, ok, strlen(ok), false);
		}
	} else if (!strcmp(q->method, "POST") && q->query && !strcmp(q->query, "delete")) {
		const char *p = q->body;
		static const char ok[] = "<DeleteResult></DeleteResult>";

		F.batch_deletes++;
		if (!fake_hdr(q, "Content-MD5")) {
			fake_error(fd, 400, "InvalidRequest", "Content-MD5 missing");
		} else {
			while ((p = strstr(p, "<Key>"))) {
				const char *e = strstr(p, "</Key>");
				char *k = fake_unescape(p + 5, (size_t)(e - p - 5));

				fake_remove(k);
				F.deletes++;
				free(k);
				p = e;
			}
			fake_send(fd, 200, NULL, ok, strlen(ok), false);
		}
	} else if (!strcmp(q->method, "DELETE") && upload_id) {
		if (!u) {
			fake_error(fd, 404, "NoSuchUpload", "no such upload");
		} else {
			F.aborts++;
			fake_upload_free(u);
			fake_send(fd, 204, NULL, "", 0, false);
		}
	} else if (!strcmp(q->method, "DELETE")) {
		F.deletes++;
		fake_remove(key);
		fake_send(fd, 204, NULL, "", 0, false);
	} else if (!strcmp(q->method, "GET") && is_bucket && q->query &&
		   strstr(q->query, "list-type=2")) {
		fake_list(fd, q);
	} else if (!strcmp(q->method, "GET") && is_bucket && q->query &&
		   !strncmp(q->query, "uploads", 7)) {
		struct sbuf b = { 0 };
		char *prefix = fake_qget(q->query, "prefix");

		sbuf_add(&b, "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>");
		for (size_t i = 0; i < FAKE_MAX_UPLOADS; i++) {
			if (!F.ups[i].live || (prefix && strncmp(F.ups[i].key, prefix, strlen(prefix))))
				continue;
			sbuf_add(&b, "<Upload><Key>");
			s3_xml_escape(&b, F.ups[i].key);
			sbuf_printf(&b, "</Key><UploadId>%s</UploadId></Upload>", F.ups[i].id);
		}
		sbuf_add(&b, "</ListMultipartUploadsResult>");
		fake_send(fd, 200, NULL, b.s, b.len, false);
		sbuf_free(&b);
		free(prefix);
	} else if ((!strcmp(q->method, "GET") || !strcmp(q->method, "HEAD")) && !is_bucket) {
		o = fake_find(key);
		if (!o && !strcmp(q->method, "HEAD")) {
			fake_send(fd, 404, NULL, "", 0, true);
		} else if (!o) {
			fake_error(fd, 404, "NoSuchKey", "The specified key does not exist.");
		} else if (!strcmp(q->method, "HEAD")) {
			snprintf(hdr, sizeof(hdr), "Last-Modified: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
				 "x-amz-meta-snapship-sha256: %s\r\n", o->meta_sha);
			fake_send(fd, 200, hdr, "", o->len, true);
		} else {
			const char *range = fake_hdr(q, "Range");
			unsigned long long a = 0, b = 0;

			if (range && sscanf(range, "bytes=%llu-%llu", &a, &b) == 2) {
				if (a >= o->len) {
					fake_error(fd, 416, "InvalidRange", "out of range");
				} else {
					if (b >= o->len)
						b = o->len - 1;
					snprintf(hdr, sizeof(hdr), "Content-Range: bytes %llu-%llu/%zu\r\n",
						 a, b, o->len);
					fake_send(fd, 206, hdr, o->data + a, (size_t)(b - a + 1), false);
				}
			} else {
				fake_send(fd, 200, NULL, o->data, o->len, false);
			}
		}
	} else {
		fake_error(fd, 501, "NotImplemented", "not in the fake");
	}
	free(key);
	free(upload_id);
	return !lose;
}

static void *fake_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct fake_req q;

	while (fake_read_req(fd, &q)) {
		bool keep;

		pthread_mutex_lock(&F.lock);
		keep = !F.stop && fake_serve(fd, &q);
		pthread_mutex_unlock(&F.lock);
		fake_req_free(&q);
		if (!keep)
			break;
	}
	fake_req_free(&q);
	pthread_mutex_lock(&F.lock);
	for (size_t i = 0; i < FAKE_MAX_CONNS; i++)
		if (F.conns[i] == fd)
			F.conns[i] = -1;
	close(fd);
	F.nthreads--;
	pthread_cond_broadcast(&F.cond);
	pthread_mutex_unlock(&F.lock);
	return NULL;
}

static void *fake_accept(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(F.lfd, NULL, NULL);
		pthread_t t;
		size_t i;

		if (fd < 0)
			break;
		pthread_mutex_lock(&F.lock);
		for (i = 0; i < FAKE_MAX_CONNS && F.conns[i] >= 0; i++)
			;
		if (F.stop || i == FAKE_MAX_CONNS) {
			pthread_mutex_unlock(&F.lock);
			close(fd);
			continue;
		}
		F.conns[i] = fd;
		F.nthreads++;
		pthread_mutex_unlock(&F.lock);
		if (pthread_create(&t, NULL, fake_conn, (void *)(intptr_t)fd)) {
			pthread_mutex_lock(&F.lock);
			F.conns[i] = -1;
			F.nthreads--;
			pthread_mutex_unlock(&F.lock);
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int fake_start(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int one = 1;

	(void)state;
	memset(&F, 0, sizeof(F));
	pthread_mutex_init(&F.lock, NULL);
	pthread_cond_init(&F.cond, NULL);
	for (size_t i = 0; i < FAKE_MAX_CONNS; i++)
		F.conns[i] = -1;
	F.list_page = 1000;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(F.lfd >= 0);
	setsockopt(F.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(F.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(F.lfd, 64), 0);
	assert_int_equal(getsockname(F.lfd, (struct sockaddr *)&sa, &sl), 0);
	F.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&F.thread, NULL, fake_accept, NULL), 0);
	return 0;
}

static int fake_stop(void **state)
{
	(void)state;
	pthread_mutex_lock(&F.lock);
	F.stop = true;
	for (size_t i = 0; i < FAKE_MAX_CONNS; i++)
		if (F.conns[i] >= 0)
			shutdown(F.conns[i], SHUT_RDWR);
	pthread_mutex_unlock(&F.lock);
	shutdown(F.lfd, SHUT_RDWR);
	pthread_join(F.thread, NULL);
	close(F.lfd);
	pthread_mutex_lock(&F.lock);
	while (F.nthreads) {
		/* a failed test may leave a client connected: do not hang */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		if (pthread_cond_timedwait(&F.cond, &F.lock, &ts)) {
			pthread_mutex_unlock(&F.lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&F.lock);
	for (size_t i = 0; i < F.nobjs; i++) {
		free(F.objs[i].key);
		free(F.objs[i].data);
	}
	for (size_t i = 0; i < FAKE_MAX_UPLOADS; i++)
		fake_upload_free(&F.ups[i]);
	return 0;
}

static void fake_rules(const struct fake_rule *rules, size_t n)
{
	pthread_mutex_lock(&F.lock);
	if (n)
		memcpy(F.rules, rules, n * sizeof(*rules));
	F.nrules = n;
	pthread_mutex_unlock(&F.lock);
}

static unsigned fake_live_uploads(void)
{
	unsigned n = 0;

	pthread_mutex_lock(&F.lock);
	for (size_t i = 0; i < FAKE_MAX_UPLOADS; i++)
		n += F.ups[i].live;
	pthread_mutex_unlock(&F.lock);
	return n;
}

/* A store on the fake server; secret is the secret file's content. */
static struct store *fake_open(const char *location, const char *secret,
			       struct store_opts *o, struct err *err, int *ret)
{
	char endpoint[64], *path = write_secret(secret, 0600);
	struct store *st = NULL;

	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", F.port);
	o->name = "east";
	o->endpoint = endpoint;
	o->region = "test-1";
	o->access_key_id = FAKE_KEY_ID;
	o->secret_access_key_file = path;
	o->part_size = 5 * MIB;
	o->stall_timeout = o->stall_timeout ? o->stall_timeout : 5;
	*ret = store_open_opts(location, o, &st, err);
	unlink(path);
	free(path);
	return st;
}

static unsigned char *pattern(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len ? len : 1);
	uint32_t x = seed * 2654435761u + 1;

	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
	return b;
}

/* put len bytes in writes of chunk bytes */
static int put_pattern(struct store *st, const char *key, const unsigned char *b,
		       size_t len, size_t chunk, struct err *err)
{
	struct store_writer *w;
	int ret = store_put_begin(st, key, &w, err);

	if (ret)
		return ret;
	for (size_t off = 0; off < len; off += chunk) {
		ret = store_write(w, b + off, len - off < chunk ? len - off : chunk, err);
		if (ret) {
			store_put_abort(w);
			return ret;
		}
	}
	return store_put_commit(w, err);
}

static void check_object(struct store *st, const char *key, const unsigned char *b,
			 size_t len)
{
	struct store_obj_info info;
	struct err err = { 0 };
	void *got;
	size_t glen;

	assert_int_equal(store_head(st, key, &info, &err), 0);
	assert_int_equal(info.size, len);
	assert_int_equal(store_get_all(st, key, len + 1, &got, &glen, &err), 0);
	assert_int_equal(glen, len);
	assert_memory_equal(got, b, len);
	free(got);
}

static void test_fake_roundtrip(void **state)
{
	static const char *const keys[] = {
		"h/p/small", "h/p/a b+c=d%e", "h/p/caf\xc3\xa9 \xe2\x82\xac", "h/p/empty",
		"h/p/exact", "h/p/big",
	};
	static const size_t sizes[] = { 1000, 7, 12345, 0, 5 * MIB, 17 * MIB + 3 };
	struct store_opts o = { 0 };
	struct err err = { 0 };
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET "/pre fix", FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(ret, 0);
	for (size_t i = 0; i < 6; i++) {
		unsigned char *b = pattern(sizes[i], (unsigned)i);

		ret = put_pattern(st, keys[i], b, sizes[i], 1 << 20, &err);
		if (ret)
			fail_msg("%s: %s", keys[i], err.msg);
		check_object(st, keys[i], b, sizes[i]);
		free(b);
	}
	/* single PutObjects carry their SHA-256; 17 MiB went as 4 parts */
	pthread_mutex_lock(&F.lock);
	assert_int_equal(F.creates, 1);
	assert_int_equal(F.parts, 4);
	assert_int_equal(F.completes, 1);
	assert_int_equal(F.bad_sigs, 0);
	assert_true(fake_find("pre fix/h/p/small")->meta_sha[0]);
	assert_true(fake_find("pre fix/h/p/big")->multipart);
	assert_false(fake_find("pre fix/h/p/exact")->multipart);
	pthread_mutex_unlock(&F.lock);

	/* ranges, the end of an object, and past it */
	{
		unsigned char buf[100], *b = pattern(sizes[5], 5);
		size_t got;

		assert_int_equal(store_get_range(st, "h/p/big", 10 * MIB, 100, buf, &got, &err), 0);
		assert_int_equal(got, 100);
		assert_memory_equal(buf, b + 10 * MIB, 100);
		assert_int_equal(store_get_range(st, "h/p/big", sizes[5] - 3, 100, buf, &got, &err), 0);
		assert_int_equal(got, 3);
		assert_int_equal(store_get_range(st, "h/p/big", sizes[5], 100, buf, &got, &err), 0);
		assert_int_equal(got, 0);
		assert_int_equal(store_get_range(st, "h/p/none", 0, 100, buf, &got, &err), -ENOENT);
		assert_non_null(strstr(err.msg, "no such object"));
		err_clear(&err);
		free(b);
	}
	store_free(st);
}

struct listed {
	char keys[16][64];
	size_t n;
};

static int collect(void *ctx, const char *key, const struct store_obj_info *info)
{
	struct listed *l = ctx;

	(void)info;
	assert_true(l->n < 16);
	snprintf(l->keys[l->n++], sizeof(l->keys[0]), "%s", key);
	return 0;
}

static void test_fake_list_delete(void **state)
{
	static const char *const keys[] = { "d/c", "d/a&b<c>", "d/b", "e/x", "d/e" };
	const char *del[] = { "d/a&b<c>", "d/b", "d/none" };
	struct store_opts o = { 0 };
	struct err err = { 0 };
	struct listed l = { 0 };
	struct store *st;
	unsigned n, batches = F.batch_deletes;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET "/ld", FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(ret, 0);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(store_put_buf(st, keys[i], "x", 1, &err), 0);
	F.list_page = 2;            /* continuation tokens */
	assert_int_equal(store_list(st, "d/", collect, &l, &err), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.keys[0], "d/a&b<c>");
	assert_string_equal(l.keys[1], "d/b");
	assert_string_equal(l.keys[2], "d/c");
	assert_string_equal(l.keys[3], "d/e");
	assert_int_equal(store_delete(st, del, 3, &err), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_list(st, "", collect, &l, &err), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.keys[0], "d/c");
	assert_int_equal(F.batch_deletes, batches + 1);

	/* leftovers of a killed writer: abort_incomplete removes them */
	{
		struct store_writer *w;
		unsigned char *b = pattern(6 * MIB, 9);

		assert_int_equal(store_put_begin(st, "d/orphan", &w, &err), 0);
		assert_int_equal(store_write(w, b, 6 * MIB, &err), 0);
		assert_int_equal(store_write(w, b, 1, &err), 0);    /* part 1 goes */
		assert_int_equal(fake_live_uploads(), 1);
		/* pretend the process died: forget w (its memory only) */
		assert_int_equal(store_abort_incomplete(st, "e/", &n, &err), 0);
		assert_int_equal(n, 0);
		assert_int_equal(store_abort_incomplete(st, "d/", &n, &err), 0);
		assert_int_equal(n, 1);
		assert_int_equal(fake_live_uploads(), 0);
		store_put_abort(w);           /* NoSuchUpload now: fine */
		free(b);
	}
	F.list_page = 1000;
	store_free(st);
}

/* 503 on some parts, a reset, a stall: the object still arrives intact */
static void test_fake_retries(void **state)
{
	const struct fake_rule rules[] = {
		{ "PUT", "partNumber=2&", 1, FA_STATUS, 503, "SlowDown", 0, 0 },
		{ "PUT", "partNumber=2&", 1, FA_STATUS, 500, "InternalError", 0, 0 },
		{ "PUT", "partNumber=3&", 1, FA_RESET, 0, NULL, 0, 0 },
		{ "PUT", "partNumber=4&", 1, FA_STALL, 0, NULL, 3, 0 },
		{ "POST", "uploadId=", 1, FA_ERROR_IN_200, 200, "InternalError", 0, 0 },
		{ "GET", "big2", 1, FA_STATUS, 503, "SlowDown", 0, 0 },
	};
	struct store_opts o = { .stall_timeout = 1 };
	struct err err = { 0 };
	unsigned char *b = pattern(22 * MIB, 7);
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET, FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(ret, 0);
	fake_rules(rules, 6);
	pthread_mutex_lock(&F.lock);
	F.part_attempts = 0;
	pthread_mutex_unlock(&F.lock);
	ret = put_pattern(st, "h/big2", b, 22 * MIB, 3 * MIB + 1, &err);
	if (ret)
		fail_msg("%s", err.msg);
	check_object(st, "h/big2", b, 22 * MIB);
	pthread_mutex_lock(&F.lock);
	assert_int_equal(F.part_attempts, 5 + 4);
	pthread_mutex_unlock(&F.lock);
	fake_rules(NULL, 0);
	assert_int_equal(fake_live_uploads(), 0);
	free(b);
	store_free(st);
}

/* The answer to CompleteMultipartUpload is lost; the retry finds the
 * upload gone (NoSuchUpload) because it did complete: that is success. */
static void test_fake_lost_complete(void **state)
{
	const struct fake_rule rules[] = {
		{ "POST", "uploadId=", 1, FA_LOSE_ANSWER, 0, NULL, 0, 0 },
	};
	struct store_opts o = { 0 };
	struct err err = { 0 };
	unsigned char *b = pattern(11 * MIB, 5);
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET "/lost", FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(ret, 0);
	fake_rules(rules, 1);
	ret = put_pattern(st, "k", b, 11 * MIB, 1 << 20, &err);
	fake_rules(NULL, 0);
	if (ret)
		fail_msg("%s", err.msg);
	check_object(st, "k", b, 11 * MIB);
	free(b);
	store_free(st);
}

/* A permanent failure: a clear error, and the upload aborted */
static void test_fake_permanent(void **state)
{
	const struct fake_rule forbidden[] = {
		{ "PUT", "partNumber=2&", 0, FA_STATUS, 403, "AccessDenied", 0, 0 },
	};
	const struct fake_rule down[] = {
		{ "PUT", "partNumber=", 0, FA_STATUS, 503, "SlowDown", 0, 0 },
	};
	struct store_opts o = { .max_attempts = 3 };
	struct err err = { 0 };
	unsigned char *b = pattern(16 * MIB, 3);
	struct store *st;
	unsigned aborts;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET, FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(ret, 0);
	aborts = F.aborts;
	fake_rules(forbidden, 1);
	ret = put_pattern(st, "h/denied", b, 16 * MIB, 1 << 20, &err);
	assert_int_equal(ret, -EACCES);
	assert_non_null(strstr(err.msg, "region east: PUT \"h/denied\" part 2: access denied (HTTP 403 AccessDenied"));
	assert_int_equal(fake_live_uploads(), 0);
	assert_int_equal(F.aborts, aborts + 1);
	assert_null(fake_find("h/denied"));
	err_clear(&err);

	fake_rules(down, 1);
	ret = put_pattern(st, "h/down", b, 16 * MIB, 1 << 20, &err);
	assert_int_equal(ret, -EIO);
	assert_non_null(strstr(err.msg, "HTTP 503 SlowDown"));
	assert_non_null(strstr(err.msg, "retries did not help"));
	assert_int_equal(fake_live_uploads(), 0);
	fake_rules(NULL, 0);
	err_clear(&err);
	free(b);
	store_free(st);
}

/* wrong secret, missing bucket, clock skew, endpoint down: one clear line */
static void test_fake_config_errors(void **state)
{
	struct store_opts o = { 0 };
	struct err err = { 0 };
	struct listed l = { 0 };
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET, "wrong-secret", &o, &err, &ret);
	assert_int_equal(ret, 0);
	assert_int_equal(store_list(st, "", collect, &l, &err), -EACCES);
	assert_non_null(strstr(err.msg, "region east: the request signature does not match"));
	assert_non_null(strstr(err.msg, "secret_access_key_file of [region east]"));
	assert_null(strstr(err.msg, "wrong-secret"));
	store_free(st);
	err_clear(&err);

	memset(&o, 0, sizeof(o));
	st = fake_open("s3://nobucket", FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(store_put_buf(st, "k", "x", 1, &err), -ENXIO);
	assert_string_equal(err.msg, "region east: bucket \"nobucket\" does not exist (HTTP 404 NoSuchBucket); create it or fix [region east] bucket");
	store_free(st);
	err_clear(&err);

	memset(&o, 0, sizeof(o));
	st = fake_open("s3://" FAKE_BUCKET, FAKE_SECRET, &o, &err, &ret);
	F.skew = 20 * 60;
	assert_int_equal(store_list(st, "", collect, &l, &err), -EACCES);
	assert_non_null(strstr(err.msg, "clock is behind by 20 min"));
	F.skew = 0;
	store_free(st);
	err_clear(&err);

	/* a port nobody listens on */
	{
		struct store_opts d = { .name = "east", .endpoint = "http://127.0.0.1:1",
					.access_key_id = FAKE_KEY_ID, .max_attempts = 2 };
		char *path = write_secret("s\n", 0600);

		d.secret_access_key_file = path;
		assert_int_equal(store_open_opts("s3://" FAKE_BUCKET, &d, &st, &err), 0);
		assert_true(store_list(st, "", collect, &l, &err) < 0);
		assert_string_equal(err.msg, "region east: cannot connect to http://127.0.0.1:1 (Connection refused): is the endpoint right and the server up?");
		store_free(st);
		unlink(path);
		free(path);
	}
}

/* Restore reads from several threads at once. */
struct reader {
	struct store *st;
	const unsigned char *b;
	unsigned seed;
	int failures;
};

static void *read_many(void *arg)
{
	struct reader *r = arg;
	unsigned char buf[4096];

	for (unsigned i = 0; i < 50; i++) {
		size_t off = (size_t)(rand_r(&r->seed) % (8 * MIB - sizeof(buf))), got = 0;
		struct err err = { 0 };

		if (store_get_range(r->st, "h/par", off, sizeof(buf), buf, &got, &err) ||
		    got != sizeof(buf) || memcmp(buf, r->b + off, sizeof(buf)))
			r->failures++;
	}
	return NULL;
}

static void test_fake_parallel_reads(void **state)
{
	struct store_opts o = { 0 };
	struct err err = { 0 };
	unsigned char *b = pattern(8 * MIB, 11);
	struct reader rd[6];
	pthread_t t[6];
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET, FAKE_SECRET, &o, &err, &ret);
	assert_int_equal(put_pattern(st, "h/par", b, 8 * MIB, 8 * MIB, &err), 0);
	for (unsigned i = 0; i < 6; i++) {
		rd[i] = (struct reader){ .st = st, .b = b, .seed = i + 1 };
		assert_int_equal(pthread_create(&t[i], NULL, read_many, &rd[i]), 0);
	}
	for (unsigned i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].failures, 0);
	}
	free(b);
	store_free(st);
}

/* s3.request fault point: transient by default, retried */
static void test_fault_points(void **state)
{
	struct store_opts o = { 0 };
	struct err err = { 0 };
	struct store *st;
	int ret;

	(void)state;
	st = fake_open("s3://" FAKE_BUCKET, FAKE_SECRET, &o, &err, &ret);
	/*
	 * SNAPSHIP_FAULT (read once per process, set by main) is
	 * "s3.request@2,s3.request.fatal@1" and this is the first test to
	 * send requests: the first fails for good, the second is answered
	 * 503 SlowDown by the fault point and retried.
	 */
	assert_int_equal(store_put_buf(st, "h/fault", "abc", 3, &err), -EACCES);
	assert_non_null(strstr(err.msg, "injected fault (s3.request.fatal)"));
	err_clear(&err);
	assert_int_equal(F.requests, 0);
	assert_int_equal(store_put_buf(st, "h/fault", "abc", 3, &err), 0);
	assert_int_equal(F.requests, 1);
	check_object(st, "h/fault", (const unsigned char *)"abc", 3);
	store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_path),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_endpoint),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_part_size),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_xml_list),
		cmocka_unit_test(test_xml_list_bad),
		cmocka_unit_test(test_xml_error),
		cmocka_unit_test(test_xml_complete),
		cmocka_unit_test(test_xml_initiate_uploads_delete),
		cmocka_unit_test(test_xml_escape),
		cmocka_unit_test(test_xml_versions_lock),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_transport_errors),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_config_s3),
	};
	const struct CMUnitTest server_tests[] = {
		cmocka_unit_test(test_fault_points),      /* first: see there */
		cmocka_unit_test(test_fake_roundtrip),
		cmocka_unit_test(test_fake_list_delete),
		cmocka_unit_test(test_fake_retries),
		cmocka_unit_test(test_fake_permanent),
		cmocka_unit_test(test_fake_lost_complete),
		cmocka_unit_test(test_fake_config_errors),
		cmocka_unit_test(test_fake_parallel_reads),
	};
	int failed;

	setenv("SNAPSHIP_FAULT", "s3.request@2,s3.request.fatal@1", 1);
	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("s3", tests, NULL, NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("SNAPSHIP_S3_ENDPOINT");
	failed += cmocka_run_group_tests_name("s3 against a scripted server",
					      server_tests, fake_start, fake_stop);
	return failed ? 1 : 0;
}
