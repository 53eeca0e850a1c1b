// SPDX-License-Identifier: MIT
#include "agent/runrec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "agent/backup.h"
#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static int runrec_path(const char *state_dir, const char *host, const char *partition,
		       char **path_ret, struct err *err)
{
	*path_ret = NULL;
	if (!state_dir || !util_name_ok(host) || !util_name_ok(partition))
		return err_set(err, -EINVAL,
			       "run record: \"%s/%s\" are not names snapship writes; not using them in a path",
			       UTIL_ESC(host), UTIL_ESC(partition));
	if (asprintf(path_ret, "%s/runs/%s/%s.json", state_dir, host, partition) < 0) {
		*path_ret = NULL;
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

void runrec_clear(struct runrec *r)
{
	free(r->last_error);
	memset(r, 0, sizeof(*r));
}

static int runrec_parse(json_t *root, struct runrec *r)
{
	json_int_t att = 0, suc = 0, rc = 0, logical = 0, stored = 0, fails = 0, in_row = -1;
	double dur = 0, held = 0, slowed = 0;
	json_t *e = NULL;

	/* failures_in_row: not in the records of earlier versions */
	if (json_unpack(root, "{s:I, s:I, s:I, s?o, s:F, s:F, s:I, s:I, s:I, s:F, s?I}",
			"last_attempt", &att, "last_success", &suc, "last_rc", &rc,
			"last_error", &e, "duration_s", &dur, "snapshot_held_s", &held,
			"logical_bytes", &logical, "stored_bytes", &stored,
			"failures_total", &fails, "slowed_s", &slowed,
			"failures_in_row", &in_row) ||
	    att < 0 || suc < 0 || logical < 0 || stored < 0 || fails < 0 ||
	    in_row < -1 || in_row > UINT32_MAX ||
	    rc < INT32_MIN || rc > INT32_MAX || (e && !json_is_null(e) && !json_is_string(e)))
		return -EBADMSG;
	r->last_attempt = att;
	r->last_success = suc;
	r->last_rc = (int)rc;
	r->duration_s = dur;
	r->snapshot_held_s = held;
	r->logical_bytes = (uint64_t)logical;
	r->stored_bytes = (uint64_t)stored;
	r->failures_total = (uint64_t)fails;
	r->failures_in_row = in_row >= 0 ? (unsigned)in_row : rc != 0;
	r->slowed_s = slowed;
	if (json_is_string(e)) {
		r->last_error = strdup(json_string_value(e));
		if (!r->last_error)
			return -ENOMEM;
	}
	return 0;
}

int runrec_load(const char *state_dir, const char *host, const char *partition,
		struct runrec *r_ret, struct err *err)
{
	json_error_t je;
	json_t *root;
	char *path;
	int ret;

	memset(r_ret, 0, sizeof(*r_ret));
	ret = runrec_path(state_dir, host, partition, &path, err);
	if (ret)
		return ret;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		ret = access(path, F_OK) && errno == ENOENT ? 0 :
		      err_set(err, -EBADMSG, "run record %s: %s; it is rewritten at the next backup",
			      path, je.text);
		free(path);
		return ret;
	}
	ret = runrec_parse(root, r_ret);
	json_decref(root);
	if (ret) {
		runrec_clear(r_ret);
		err_set(err, ret, "run record %s: %s; it is rewritten at the next backup",
			path, ret == -ENOMEM ? "out of memory" : "not a run record");
	}
	free(path);
	return ret;
}

int runrec_save(const char *state_dir, const char *host, const char *partition,
		const struct runrec *r, struct err *err)
{
	json_t *root;
	char *path, *s = NULL;
	int ret;

	ret = runrec_path(state_dir, host, partition, &path, err);
	if (ret)
		return ret;
	root = json_pack("{s:I, s:I, s:i, s:s?, s:f, s:f, s:I, s:I, s:I, s:f, s:I}",
			 "last_attempt", (json_int_t)r->last_attempt,
			 "last_success", (json_int_t)r->last_success, "last_rc", r->last_rc,
			 "last_error", r->last_error, "duration_s", r->duration_s,
			 "snapshot_held_s", r->snapshot_held_s,
			 "logical_bytes", (json_int_t)r->logical_bytes,
			 "stored_bytes", (json_int_t)r->stored_bytes,
			 "failures_total", (json_int_t)r->failures_total,
			 "slowed_s", r->slowed_s,
			 "failures_in_row", (json_int_t)r->failures_in_row);
	if (root)
		s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s)
		ret = err_set(err, -ENOMEM, "run record of %s: out of memory", partition);
	else
		ret = afile_write(path, s, strlen(s), 0600, 1, err);
	json_decref(root);
	free(s);
	free(path);
	return ret;
}

int runrec_note(const char *state_dir, const char *host, const char *partition,
		int rc, const char *error, const struct backup_result *res, double duration_s,
		struct err *err)
{
	struct err le = { 0 };
	struct runrec r;
	int ret;

	if (runrec_load(state_dir, host, partition, &r, &le))
		log_warn("%s", le.msg);   /* replaced below */
	r.last_attempt = util_now_unix_ns() / 1000000000LL;
	r.last_rc = rc;
	free(r.last_error);
	r.last_error = NULL;
	if (rc) {
		r.failures_total++;
		if (r.failures_in_row < UINT32_MAX)
			r.failures_in_row++;
		r.last_error = strdup(error ? UTIL_ESC_CTL(error) : err_str(rc));
		r.duration_s = duration_s >= 0 ? duration_s : 0;
	} else {
		r.last_success = r.last_attempt;
		r.failures_in_row = 0;
		r.duration_s = duration_s >= 0 || !res ? duration_s : res->seconds;
		if (res) {
			const struct manifest *m = &res->m;

			r.logical_bytes = m->logical_bytes;
			r.stored_bytes = m->stored_bytes;
			r.snapshot_held_s = m->finished_ns > m->snap_time_ns && m->snap_time_ns ?
				(double)(m->finished_ns - m->snap_time_ns) / 1e9 : 0;
		}
	}
	/* the low-impact mode's hold-back of this attempt (0 on failure) */
	r.slowed_s = !rc && res ? res->slowed_s : 0;
	if (r.duration_s < 0)
		r.duration_s = 0;
	ret = runrec_save(state_dir, host, partition, &r, err);
	runrec_clear(&r);
	return ret;
}
