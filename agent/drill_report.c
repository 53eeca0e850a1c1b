// SPDX-License-Identifier: MIT
/*
 * The drill's outputs (agent/drill_report.h).  The JUnit XML is written
 * here by hand — expat only parses — through drill_xml_escape(), which
 * every string from a result passes.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/drill.h"
#include "agent/drill_report.h"
#include "common/afile.h"
#include "common/err.h"
#include "common/util.h"

/* ------------------------------------------------------------------ XML */

/* The length of the UTF-8 sequence at s (1..4) and its code point, or 0
 * when it is not one (overlong, a surrogate, past U+10FFFF, cut short). */
static size_t utf8_char(const unsigned char *s, uint32_t *cp_ret)
{
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 :
		   (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
	uint32_t cp;

	if (!n)
		return 0;
	cp = n == 1 ? s[0] : (uint32_t)(s[0] & (0x7f >> n));
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_ret = cp;
	return n;
}

/* May code point cp appear in an XML 1.0 document? */
static bool xml_char_ok(uint32_t cp)
{
	if (cp < 0x20)
		return cp == '\t' || cp == '\n' || cp == '\r';
	return cp != 0xfffe && cp != 0xffff;
}

char *drill_xml_escape(const char *s, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;

	while (*p) {
		char one[8];
		const char *out = one;
		uint32_t cp = 0;
		size_t n = utf8_char(p, &cp), w;

		if (!n || !xml_char_ok(cp)) {
			out = "?";
			n = n ? n : 1;
		} else if (cp == '&' || cp == '<' || cp == '>' || cp == '"' || cp == '\'') {
			out = cp == '&' ? "&amp;" : cp == '<' ? "&lt;" : cp == '>' ? "&gt;" :
			      cp == '"' ? "&quot;" : "&apos;";
		} else {
			memcpy(one, p, n);
			one[n] = '\0';
		}
		w = strlen(out);
		if (o + w >= len)
			break;
		memcpy(buf + o, out, w);
		o += w;
		p += n;
	}
	buf[o] = '\0';
	return buf;
}

/* A growing text: appended to with printf formats (XML escaped by the
 * caller). */
struct text {
	char *s;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3)))
static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap + (size_t)n + 1) * 2;
		char *s = realloc(t->s, cap);

		if (!s) {
			t->oom = true;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
}

#define XE(s) drill_xml_escape((s), (char[4096]){ 0 }, 4096)

static void junit_prop(struct text *t, const char *name, const char *value)
{
	add(t, "      <property name=\"%s\" value=\"%s\"/>\n", name, XE(value));
}

/* One <testcase> for result r. */
static void junit_case(struct text *t, const char *host, const struct drill_result *r)
{
	char num[64];

	add(t, "    <testcase classname=\"snapship.drill.%s\" name=\"%s\" time=\"%.3f\">\n",
	    XE(host), XE(r->partition), r->rto_s > 0 ? r->rto_s : 0.0);
	add(t, "      <properties>\n");
	junit_prop(t, "region", r->region);
	junit_prop(t, "region_is_primary", r->region_is_primary ? "true" : "false");
	junit_prop(t, "backup_id", r->backup_id);
	junit_prop(t, "why_backup", r->why_backup);
#define NUM(name, fmt, v) (snprintf(num, sizeof(num), fmt, v), junit_prop(t, name, num))
	NUM("rpo_seconds", "%.3f", r->rpo_s);
	NUM("rto_seconds", "%.3f", r->rto_s);
	NUM("rpo_max_seconds", "%lld", (long long)r->rpo_max);
	NUM("rto_max_seconds", "%lld", (long long)r->rto_max);
	NUM("bytes", "%llu", (unsigned long long)r->bytes);
	NUM("bytes_read", "%llu", (unsigned long long)r->bytes_read);
	NUM("mb_per_s", "%.3f", r->mb_per_s);
	NUM("sampled", "%llu", (unsigned long long)r->sampled);
#undef NUM
	add(t, "      </properties>\n");
	if (r->failure != DRILL_OK) {
		add(t, "      <failure type=\"%s\" message=\"%s\">", drill_failure_name(r->failure),
		    XE(r->message));
		add(t, "partition %s, region %s, backup %s%s%s\n%s</failure>\n",
		    XE(r->partition), XE(r->region), r->backup_id[0] ? XE(r->backup_id) : "(none)",
		    r->object[0] ? ", object " : "", XE(r->object), XE(r->message));
	}
	add(t, "    </testcase>\n");
}

char *drill_report_junit(const char *host, const struct drill_result *v, size_t n)
{
	struct text t = { 0 };
	size_t failed = 0;
	double total = 0;
	char stamp[32] = "";
	time_t now = time(NULL);
	struct tm tm;

	for (size_t i = 0; i < n; i++) {
		failed += v[i].failure != DRILL_OK;
		total += v[i].rto_s > 0 ? v[i].rto_s : 0;
	}
	if (gmtime_r(&now, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	add(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	add(&t, "<testsuites name=\"snapship drill\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" time=\"%.3f\">\n",
	    n, failed, total);
	add(&t, "  <testsuite name=\"snapship drill\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"%.3f\" timestamp=\"%s\" hostname=\"%s\">\n",
	    n, failed, total, stamp, XE(host));
	for (size_t i = 0; i < n; i++)
		junit_case(&t, host, &v[i]);
	add(&t, "  </testsuite>\n</testsuites>\n");
	if (t.oom) {
		free(t.s);
		return NULL;
	}
	return t.s;
}

/* ----------------------------------------------------------------- JSON */

static json_t *str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static json_t *result_json(const struct drill_result *r)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "partition", json_string(r->partition));
	json_object_set_new(o, "region", json_string(r->region));
	json_object_set_new(o, "region_is_primary", json_boolean(r->region_is_primary));
	json_object_set_new(o, "backup_id", str_or_null(r->backup_id));
	json_object_set_new(o, "why_backup", str_or_null(r->why_backup));
	json_object_set_new(o, "started", json_integer(r->started));
	json_object_set_new(o, "snapshot_time", r->snap_time ? json_integer(r->snap_time) : json_null());
	json_object_set_new(o, "rpo_seconds", r->rpo_s >= 0 ? json_real(r->rpo_s) : json_null());
	json_object_set_new(o, "rto_seconds", r->rto_s >= 0 ? json_real(r->rto_s) : json_null());
	json_object_set_new(o, "rpo_max_seconds", r->rpo_max ? json_integer(r->rpo_max) : json_null());
	json_object_set_new(o, "rto_max_seconds", r->rto_max ? json_integer(r->rto_max) : json_null());
	json_object_set_new(o, "files", json_integer((json_int_t)r->files));
	json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
	json_object_set_new(o, "bytes_read", json_integer((json_int_t)r->bytes_read));
	json_object_set_new(o, "frames_read", json_integer((json_int_t)r->frames_read));
	json_object_set_new(o, "frames_total", json_integer((json_int_t)r->frames_total));
	json_object_set_new(o, "mb_per_s", json_real(r->mb_per_s));
	json_object_set_new(o, "sampled", json_integer((json_int_t)r->sampled));
	json_object_set_new(o, "scratch", str_or_null(r->scratch));
	json_object_set_new(o, "kept", json_boolean(r->kept));
	json_object_set_new(o, "passed", json_boolean(r->failure == DRILL_OK));
	json_object_set_new(o, "failure", r->failure == DRILL_OK ? json_null() :
			    json_string(drill_failure_name(r->failure)));
	json_object_set_new(o, "object", str_or_null(r->object));
	json_object_set_new(o, "message", json_string(r->message));
	return o;
}

void *drill_report_json(const char *host, const struct drill_result *v, size_t n)
{
	json_t *doc = json_object(), *parts = json_array();
	size_t failed = 0;

	if (!doc || !parts) {
		json_decref(doc);
		json_decref(parts);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		failed += v[i].failure != DRILL_OK;
		json_array_append_new(parts, result_json(&v[i]));
	}
	json_object_set_new(doc, "host", json_string(host));
	json_object_set_new(doc, "region", n ? json_string(v[0].region) : json_null());
	json_object_set_new(doc, "region_is_primary", json_boolean(n && v[0].region_is_primary));
	json_object_set_new(doc, "passed", json_boolean(!failed));
	json_object_set_new(doc, "failed", json_integer((json_int_t)failed));
	json_object_set_new(doc, "partitions", parts);
	return doc;
}

/* ---------------------------------------------------------------- table */

static const char *secs(double s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 120)
		snprintf(buf, len, "%.1fs", s);
	else if (s < 7200)
		snprintf(buf, len, "%.1fm", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%.1fh", s / 3600);
	else
		snprintf(buf, len, "%.1fd", s / 86400);
	return buf;
}

void drill_report_table(FILE *f, const struct drill_result *v, size_t n)
{
	char a[32], b[32], c[32];
	size_t failed = 0;

	fprintf(f, "%-20s %-12s %-24s %8s %8s %9s  %s\n", "PARTITION", "REGION", "BACKUP",
		"RPO", "RTO", "MB/S", "RESULT");
	for (size_t i = 0; i < n; i++) {
		const struct drill_result *r = &v[i];

		failed += r->failure != DRILL_OK;
		/* no restore measured (missing, unreachable): "-", not 0.0 */
		if (r->rto_s < 0)
			snprintf(c, sizeof(c), "-");
		else
			snprintf(c, sizeof(c), "%.1f", r->mb_per_s);
		fprintf(f, "%-20s %-12s %-24s %8s %8s %9s  %s\n", UTIL_ESC(r->partition),
			UTIL_ESC(r->region), r->backup_id[0] ? r->backup_id : "-",
			secs(r->rpo_s, a, sizeof(a)), secs(r->rto_s, b, sizeof(b)), c,
			r->failure == DRILL_OK ? "passed" : drill_failure_name(r->failure));
	}
	for (size_t i = 0; i < n; i++) {
		const struct drill_result *r = &v[i];

		if (r->backup_id[0])
			fprintf(f, "%s: backup %s: %s%s\n", UTIL_ESC(r->partition), r->backup_id,
				UTIL_ESC_CTL(r->why_backup),
				r->sampled ? " (a sample of its files)" : "");
		if (r->kept && r->scratch[0])
			fprintf(f, "%s: the restored copy is kept in %s\n", UTIL_ESC(r->partition),
				UTIL_ESC(r->scratch));
	}
	if (n && v[0].region_is_primary)
		fprintf(f, "note: region %s is the primary (a one-region setup, or --region named it): this drill does not show that another region could restore\n",
			UTIL_ESC(v[0].region));
	if (failed)
		fprintf(f, "\n%zu of %zu partition(s) failed:\n", failed, n);
	for (size_t i = 0; i < n; i++)
		if (v[i].failure != DRILL_OK)
			fprintf(f, "  %s [%s]: %s\n", UTIL_ESC(v[i].partition),
				drill_failure_name(v[i].failure), UTIL_ESC_CTL(v[i].message));
}

int drill_report_write(const char *path, const char *text, struct err *err)
{
	int ret = afile_write(path, text, strlen(text), 0644, 0, err);

	if (ret)
		return err_wrap(err, "drill report");
	return 0;
}
