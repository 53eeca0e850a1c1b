// SPDX-License-Identifier: MIT
#include "agent/geo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/retention.h"
#include "agent/signals.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "uploader/store.h"

#define COPY_CHUNK (8u << 20)   /* repair copies stream through this */

/* ---- regions ---- */

int geo_region_store_open(const struct cfg_region *r, uint64_t part_size,
			  unsigned max_attempts, struct store **store_ret,
			  struct err *err)
{
	struct store_opts o = { .cancelled = signals_cancelled,
				.reads_cancelled = signals_reads_cancelled };
	char *endpoint = NULL;
	int ret;

	o.name = r->name;       /* a hint names [region NAME] */
	if (!r->store || strcmp(r->store, "s3"))
		return store_open_opts(config_region_location(r), &o, store_ret, err);
	o.region = r->sigv4_region ? r->sigv4_region : "us-east-1";
	o.endpoint = r->endpoint;
	if (!o.endpoint) {
		/* the config says where; the environment does not */
		if (asprintf(&endpoint, "https://s3.%s.amazonaws.com", o.region) < 0)
			return err_set(err, -ENOMEM, "out of memory");
		o.endpoint = endpoint;
	}
	o.addressing = r->virtual_hosted ? STORE_ADDR_VIRTUAL : STORE_ADDR_PATH;
	o.access_key_id = r->access_key_id;
	o.secret_access_key_file = r->secret_access_key_file;
	o.prune_access_key_id = r->prune_access_key_id;
	o.prune_secret_access_key_file = r->prune_secret_access_key_file;
	o.object_lock = r->object_lock;
	o.ca_file = r->ca_file;
	o.insecure_tls = r->insecure_tls;
	o.allow_http = r->allow_http;
	o.part_size = part_size ? part_size : r->part_size;
	o.parts_in_flight = r->parts_in_flight;
	o.max_attempts = max_attempts;
	ret = store_open_opts(config_region_location(r), &o, store_ret, err);
	free(endpoint);
	return ret;
}

static int stop_at_first(void *ctx, const char *key, const struct store_obj_info *info)
{
	(void)ctx;
	(void)key;
	(void)info;
	return 1;
}

int geo_region_probe(const struct cfg_region *r, struct store **store_ret,
		     struct err *err)
{
	int ret;

	*store_ret = NULL;
	ret = geo_region_store_open(r, 0, 0, store_ret, err);
	if (!ret && r->store && !strcmp(r->store, "s3"))
		ret = store_list(*store_ret, r->prefix ? r->prefix : "", stop_at_first, NULL, err);
	if (ret && *store_ret) {
		store_free(*store_ret);
		*store_ret = NULL;
	}
	return ret;
}

static int region_fill(struct region *g, const char *name, const char *prefix,
		       struct err *err)
{
	g->name = strdup(name);
	g->prefix = strdup(prefix ? prefix : "");
	if (!g->name || !g->prefix)
		return err_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* The one region "default" of a --from/--to STORE (typed as from_flag). */
static int regions_open_from(const char *from, const char *from_flag,
			     const char *only, struct regions *rs, struct err *err)
{
	struct store_opts o = { .given_as = from_flag, .cancelled = signals_cancelled,
				.reads_cancelled = signals_reads_cancelled };
	int ret;

	if (only && strcmp(only, "default"))
		return err_set(err, -EINVAL,
			       "--region %s: with --from/--to STORE there is one region, \"default\"",
			       only);
	rs->n = 1;
	rs->v[0].primary = true;
	ret = region_fill(&rs->v[0], "default", "", err);
	if (!ret)
		ret = store_open_opts(from, &o, &rs->v[0].store, err);
	if (ret)
		geo_regions_free(rs);
	return ret;
}

/* The configured region named only (--region), or an error naming them all. */
static const struct cfg_region *region_named(const struct config *cfg,
					     const char *only, struct err *err)
{
	char names[512] = "";

	for (size_t i = 0; i < cfg->nregions; i++)
		if (!strcmp(cfg->regions[i].name, only))
			return &cfg->regions[i];
	for (size_t i = 0; i < cfg->nregions; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names),
			 "%s%s", i ? ", " : "", cfg->regions[i].name);
	err_set(err, -EINVAL, "--region %s: no such region in %s (configured: %s)",
		only, cfg->file, names);
	return NULL;
}

/* Fill g from the configured region c and open its store (secondary: not
 * the first one opened). */
static int region_open(struct regions *rs, struct region *g,
		       const struct cfg_region *c, bool secondary, struct err *err)
{
	struct err oe = { 0 };
	int ret;

	g->primary = c->primary;
	g->replication = c->primary ? REPL_NONE : c->replication;
	g->object_lock = c->object_lock;
	g->lock_margin = c->lock_margin;
	g->deadline = c->replication_deadline;
	ret = region_fill(g, c->name, c->prefix, err);
	if (ret)
		return ret;
	/* every copy is uploaded (agent) or repaired with the primary's part
	 * size: same bytes, same parts, so the same ETag in every region */
	ret = geo_region_store_open(c, secondary ? store_part_size(rs->v[0].store) : 0,
				    rs->fast_failover ? REGION_READ_ATTEMPTS : 0,
				    &g->store, &oe);
	/* a secondary that is not there (an unmounted NFS directory) is down,
	 * not a reason to stop: the rest goes on and says so; config errors
	 * stay errors */
	if (ret && secondary && ret != -EINVAL && ret != -ENOMEM) {
		g->down = true;
		snprintf(g->down_why, sizeof(g->down_why), "%s",
			 err_strip_region(g->name, oe.msg));
		log_warn("region %s: %s", g->name, g->down_why);
		return 0;
	}
	if (ret)
		*err = oe;
	return ret;
}

int geo_regions_open(const struct config *cfg, const char *from,
		     const char *from_flag, const char *only, bool reads,
		     struct regions *rs_ret, struct err *err)
{
	struct regions *rs = rs_ret;
	const struct cfg_region *primary;

	memset(rs, 0, sizeof(*rs));
	if (from)
		return regions_open_from(from, from_flag, only, rs, err);
	if (!cfg || !cfg->nregions)
		return err_set(err, -EINVAL, "%s: no [region] configured; add one with store = file and path = DIR, or store = s3 and bucket = NAME",
			       cfg && cfg->file ? cfg->file : "the config");
	if (cfg->nregions > REGIONS_MAX)
		return err_set(err, -EINVAL, "%s: %zu regions configured; snapship handles up to %d",
			       cfg->file, cfg->nregions, REGIONS_MAX);
	primary = only ? region_named(cfg, only, err) : config_primary(cfg);
	if (!primary && only)
		return err->code;
	if (!primary)   /* config_load refuses such a config */
		return err_set(err, -EINVAL, "%s: no primary region; set primary = yes in one [region]",
			       cfg->file);
	rs->forced = only != NULL;
	rs->fast_failover = reads && !only && cfg->nregions > 1;
	for (size_t i = 0; i <= cfg->nregions; i++) {
		/* the primary first, then the others in config order */
		const struct cfg_region *c = i == 0 ? primary : &cfg->regions[i - 1];
		int ret;

		if (i > 0 && (c == primary || rs->forced))
			continue;
		rs->v[rs->n].cfg = cfg;
		ret = region_open(rs, &rs->v[rs->n++], c, i > 0, err);
		if (ret) {
			geo_regions_free(rs);
			return ret;
		}
	}
	return 0;
}

void geo_regions_free(struct regions *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		store_free(rs->v[i].store);
		free(rs->v[i].name);
		free(rs->v[i].prefix);
	}
	memset(rs, 0, sizeof(*rs));
}

char *geo_region_key(const struct region *r, const struct manifest *m,
		     const char *name)
{
	return catalog_key(r->prefix, m->host, m->partition, m->backup_id, name);
}

/* ---- checks ---- */

static const char *const obj_names[3] = {
	"data.tar.zst", "index.jsonl.zst", "manifest.json",
};

static void add_detail(struct geo_check *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add_detail(struct geo_check *out, const char *fmt, ...)
{
	size_t used = strlen(out->detail);
	va_list ap;

	if (used && used + 2 < sizeof(out->detail)) {
		strcpy(out->detail + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(out->detail + used, sizeof(out->detail) - used, fmt, ap);
	va_end(ap);
}

int geo_check_copy(struct region *r, const struct manifest *m, int mask,
		   struct geo_check *check_ret)
{
	struct geo_check *out = check_ret;
	const uint64_t size[3] = { m->data_size, m->index_size, m->self_size };
	const char *const sha[3] = { m->data_sha256, m->index_sha256, m->self_sha256 };
	const char *const etag[3] = { m->data_etag, m->index_etag, "" };

	memset(out, 0, sizeof(*out));
	if (!r->store) {
		out->copy = COPY_UNREACHABLE;
		add_detail(out, "%s", r->down_why);
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		struct store_obj_info info;
		struct err e = { 0 };
		char *key;
		int ret;

		if (!(mask & (1 << i)))
			continue;
		key = geo_region_key(r, m, obj_names[i]);
		if (!key) {
			out->copy = COPY_UNREACHABLE;
			add_detail(out, "out of memory");
			return -ENOMEM;
		}
		ret = store_head(r->store, key, &info, &e);
		free(key);
		if (ret == -ENOENT) {
			out->bad_mask |= 1 << i;
			if (out->copy < COPY_MISSING)
				out->copy = COPY_MISSING;
			add_detail(out, "%s missing", obj_names[i]);
			continue;
		}
		if (ret == -EINVAL) {
			/* a key the store refuses is this backup's problem,
			 * not the region's: the other backups are still checked */
			out->bad_mask |= 1 << i;
			out->copy = COPY_BAD;
			add_detail(out, "%s", err_strip_region(r->name, e.msg));
			continue;
		}
		if (ret) {
			out->copy = COPY_UNREACHABLE;
			add_detail(out, "%s", err_strip_region(r->name, e.msg));
			return 0;
		}
		if (i == 2 && !size[i])
			continue;     /* manifest bytes unknown: present is enough */
		if (info.size != size[i]) {
			out->bad_mask |= 1 << i;
			out->copy = COPY_BAD;
			add_detail(out, "%s has %llu bytes, the manifest says %llu (truncated or replaced)",
				   obj_names[i], (unsigned long long)info.size,
				   (unsigned long long)size[i]);
		} else if (info.sha256[0] && strcmp(info.sha256, sha[i])) {
			out->bad_mask |= 1 << i;
			out->copy = COPY_BAD;
			add_detail(out, "%s has SHA-256 %.12s..., the manifest says %.12s...",
				   obj_names[i], info.sha256, sha[i]);
		} else if (info.etag[0] && etag[i][0] && strcmp(info.etag, etag[i])) {
			out->bad_mask |= 1 << i;
			out->copy = COPY_BAD;
			add_detail(out, "%s has ETag %s, the manifest says %s (other bytes)",
				   obj_names[i], info.etag, etag[i]);
		}
	}
	return 0;
}

void geo_ref_manifest(const struct manifest *m, size_t k, struct manifest *ref_ret)
{
	const struct manifest_ref *r = &m->refs[k];

	memset(ref_ret, 0, sizeof(*ref_ret));
	ref_ret->format_version = m->format_version;
	ref_ret->host = m->host;
	ref_ret->partition = m->partition;
	snprintf(ref_ret->backup_id, sizeof(ref_ret->backup_id), "%s", r->id);
	ref_ret->data_key = r->key;
	ref_ret->data_size = r->size;
	snprintf(ref_ret->data_sha256, sizeof(ref_ret->data_sha256), "%s", r->sha256);
	snprintf(ref_ret->data_etag, sizeof(ref_ret->data_etag), "%s", r->etag);
}

void geo_check_refs(struct region *r, const struct manifest *m, struct geo_check *check_ret)
{
	struct geo_check *out = check_ret;

	for (size_t k = 0; k < m->nrefs && out->copy != COPY_UNREACHABLE; k++) {
		struct manifest rm;
		struct geo_check rc;

		geo_ref_manifest(m, k, &rm);
		geo_check_copy(r, &rm, OBJ_DATA, &rc);
		if (rc.copy == COPY_OK)
			continue;
		if (rc.copy == COPY_UNREACHABLE) {
			out->copy = COPY_UNREACHABLE;
			add_detail(out, "%s", rc.detail);
			return;
		}
		out->bad_mask |= OBJ_REFS;
		if (out->copy < rc.copy)
			out->copy = rc.copy;
		add_detail(out, "reference %s: %s", rm.backup_id, rc.detail);
	}
}

const char *geo_copy_name(int copy)
{
	switch (copy) {
	case COPY_OK: return "ok";
	case COPY_MISSING: return "missing";
	case COPY_BAD: return "corrupt";
	default: return "unreachable";
	}
}

/* ---- state ---- */

/*
 * <state_dir>/geo/<host>/<partition>/<id>.json.  The names come from
 * manifests, which manifest_from_json has checked; they are checked again
 * here, so that no name from a store ever makes a path outside geo/.
 */
static int state_path(const char *state_dir, const char *host,
		      const char *partition, const char *id, char **path_ret,
		      struct err *err)
{
	*path_ret = NULL;
	if (!util_name_ok(host) || !util_name_ok(partition) || catalog_id_time(id) < 0)
		return err_set(err, -EINVAL,
			       "replication state: \"%s/%s/%s\" are not names snapship writes; not using them in a path",
			       UTIL_ESC(host), UTIL_ESC(partition), UTIL_ESC(id));
	if (asprintf(path_ret, "%s/geo/%s/%s/%s.json", state_dir, host, partition, id) < 0) {
		*path_ret = NULL;
		return err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

const char *geo_rstate_name(int state)
{
	switch (state) {
	case RS_VERIFIED: return "verified";
	case RS_AT_RISK: return "at-risk";
	default: return "replicating";
	}
}

static int rstate_parse(const char *s)
{
	if (!strcmp(s, "verified"))
		return RS_VERIFIED;
	if (!strcmp(s, "at-risk"))
		return RS_AT_RISK;
	return RS_PENDING;
}

struct geo_region_state *geo_state_region(struct geo_state *gs,
					  const char *name)
{
	struct geo_region_state *r;

	for (size_t i = 0; i < gs->n; i++)
		if (!strcmp(gs->r[i].name, name))
			return &gs->r[i];
	if (gs->n == REGIONS_MAX)
		return NULL;
	r = &gs->r[gs->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->lag_s = -1;
	return r;
}

int geo_state_load(const char *state_dir, const char *host,
		   const char *partition, const char *id, struct geo_state *gs_ret,
		   struct err *err)
{
	struct geo_state *gs = gs_ret;
	char *path;
	json_error_t je;
	json_t *root, *regs, *v;
	const char *name;
	json_int_t committed = 0;
	const char *bid = NULL;
	int ret;

	memset(gs, 0, sizeof(*gs));
	ret = state_path(state_dir, host, partition, id, &path, err);
	if (ret)
		return ret;
	root = json_load_file(path, 0, &je);
	if (!root) {
		ret = access(path, F_OK) ? -ENOENT : -EBADMSG;
		err_set(err, ret, "%s: %s", path, ret == -ENOENT ? "no replication state" : je.text);
		free(path);
		return ret;
	}
	free(path);
	if (json_unpack(root, "{s:s, s:I, s:o}", "backup_id", &bid,
			"committed_ns", &committed, "regions", &regs) ||
	    !json_is_object(regs) || strlen(bid) != BACKUP_ID_LEN) {
		json_decref(root);
		return err_set(err, -EBADMSG, "replication state of %s is malformed", id);
	}
	strcpy(gs->backup_id, bid);
	gs->committed_ns = committed;
	json_object_foreach(regs, name, v) {
		struct geo_region_state *r = geo_state_region(gs, name);
		const char *st = "replicating", *repl = "server", *detail = "";
		json_int_t dl = 0, ver = 0;
		double lag = -1;

		if (!r)
			break;
		json_unpack(v, "{s?s, s?s, s?I, s?I, s?F, s?s}", "state", &st,
			    "replication", &repl, "deadline_ns", &dl,
			    "verified_ns", &ver, "lag_s", &lag, "detail", &detail);
		r->state = rstate_parse(st);
		r->replication = !strcmp(repl, "agent") ? REPL_AGENT : REPL_SERVER;
		r->deadline_ns = dl;
		r->verified_ns = ver;
		r->lag_s = lag;
		snprintf(r->detail, sizeof(r->detail), "%s", detail);
	}
	json_decref(root);
	return 0;
}

/* Replace bytes that are not valid UTF-8 (a cut sequence, a raw file name
 * byte in a message) with '?', so the JSON can hold the text. */
static void utf8_trim(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 :
			   (*p >> 3) == 30 ? 4 : 0;
		size_t k;

		for (k = 1; n && k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				n = 0;
		if (!n) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

int geo_state_save(const char *state_dir, const char *host,
		   const char *partition, const struct geo_state *gs,
		   struct err *err)
{
	char *path, *dir = NULL, *tmp = NULL, *s = NULL;
	json_t *root = NULL, *regs;
	int ret, fd = -1;
	size_t len;

	ret = state_path(state_dir, host, partition, gs->backup_id, &path, err);
	if (ret)
		return ret;
	regs = json_object();
	for (size_t i = 0; regs && i < gs->n; i++) {
		const struct geo_region_state *r = &gs->r[i];
		char detail[sizeof(r->detail)];
		json_t *e;

		/* a message cut short may end inside a UTF-8 sequence */
		snprintf(detail, sizeof(detail), "%s", r->detail);
		utf8_trim(detail);
		e = json_pack("{s:s, s:s, s:I, s:I, s:f, s:s}",
			      "state", geo_rstate_name(r->state),
			      "replication", r->replication == REPL_AGENT ? "agent" : "server",
			      "deadline_ns", (json_int_t)r->deadline_ns,
			      "verified_ns", (json_int_t)r->verified_ns,
			      "lag_s", r->lag_s, "detail", detail);
		if (!e || json_object_set_new(regs, r->name, e)) {
			json_decref(regs);
			free(path);
			return err_set(err, -EINVAL, "replication state of %s: region %s cannot be stored",
				       gs->backup_id, r->name);
		}
	}
	root = json_pack("{s:s, s:I, s:o}", "backup_id", gs->backup_id,
			 "committed_ns", (json_int_t)gs->committed_ns, "regions", regs);
	s = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	dir = strdup(path);
	if (!s || !dir || asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	*strrchr(dir, '/') = '\0';
	ret = util_mkdir_p(dir, 0700);
	if (ret) {
		err_set(err, ret, "cannot create %s: %s", dir, err_str(ret));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	len = strlen(s);
	if (fd < 0 || write(fd, s, len) != (ssize_t)len || fsync(fd)) {
		ret = err_set(err, -errno ? -errno : -EIO, "cannot write %s: %s", tmp,
			      strerror(errno));
		goto out;
	}
	if (rename(tmp, path)) {
		ret = err_set(err, -errno, "cannot rename %s: %s", tmp, strerror(errno));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (ret && tmp)
		unlink(tmp);
	json_decref(root);
	free(s);
	free(dir);
	free(tmp);
	free(path);
	return ret;
}

void geo_state_remove(const char *state_dir, const char *host,
		      const char *partition, const char *id)
{
	char *path;

	if (!state_path(state_dir, host, partition, id, &path, NULL))
		unlink(path);
	free(path);
}

int geo_state_ids(const char *state_dir, const char *host,
		  const char *partition, char ***ids_ret, size_t *n_ret)
{
	char **ids = NULL, **n;
	size_t cnt = 0, cap = 0;
	struct dirent *pe, *ie;
	DIR *hd, *pd;
	char *path;
	int ret = 0;

	*ids_ret = NULL;
	*n_ret = 0;
	if (!util_name_ok(host) || (partition && !util_name_ok(partition)))
		return -EINVAL;
	if (asprintf(&path, "%s/geo/%s", state_dir, host) < 0)
		return -ENOMEM;
	hd = opendir(path);
	free(path);
	if (!hd)
		return errno == ENOENT ? 0 : -errno;
	while (!ret && (pe = readdir(hd))) {
		if (!util_name_ok(pe->d_name) ||
		    (partition && strcmp(pe->d_name, partition)))
			continue;
		if (asprintf(&path, "%s/geo/%s/%s", state_dir, host, pe->d_name) < 0) {
			ret = -ENOMEM;
			break;
		}
		pd = opendir(path);
		free(path);
		if (!pd)
			continue;
		while (!ret && (ie = readdir(pd))) {
			size_t len = strlen(ie->d_name);
			char id[BACKUP_ID_LEN + 1];

			if (len != BACKUP_ID_LEN + 5 || strcmp(ie->d_name + BACKUP_ID_LEN, ".json"))
				continue;
			memcpy(id, ie->d_name, BACKUP_ID_LEN);
			id[BACKUP_ID_LEN] = '\0';
			if (catalog_id_time(id) < 0)
				continue;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 16;
				n = realloc(ids, cap * sizeof(*n));
				if (!n) {
					ret = -ENOMEM;
					break;
				}
				ids = n;
			}
			if (asprintf(&ids[cnt], "%s/%s", pe->d_name, id) < 0)
				ret = -ENOMEM;
			else
				cnt++;
		}
		closedir(pd);
	}
	closedir(hd);
	if (ret) {
		geo_state_ids_free(ids, cnt);
		return ret;
	}
	*ids_ret = ids;
	*n_ret = cnt;
	return 0;
}

void geo_state_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

const char *geo_summary(const struct geo_state *gs, int64_t now_ns)
{
	bool pending = false;
	size_t secondaries = 0;

	for (size_t i = 0; i < gs->n; i++) {
		const struct geo_region_state *r = &gs->r[i];

		secondaries++;
		if (r->state == RS_AT_RISK)
			return "at risk";
		if (r->state == RS_PENDING) {
			if (r->deadline_ns && now_ns > r->deadline_ns)
				return "at risk";
			pending = true;
		}
	}
	if (!secondaries)
		return "single region";
	return pending ? "replicating" : "geo-protected";
}

/* ---- waiting for server-side replication ---- */

/* Sleep for s seconds, less if a signal arrives (signals_fd). */
static void wait_or_signal(double s)
{
	struct pollfd p = { .fd = signals_fd(), .events = POLLIN };

	/* a negative fd (signals not installed) is ignored: a plain sleep */
	poll(&p, 1, (int)(s * 1000));
}

size_t geo_wait(struct regions *rs, const struct manifest *m, int mask,
		bool once, struct geo_state *gs)
{
	bool done[REGIONS_MAX] = { false };
	double interval = 0.1;
	size_t failed = 0;

	for (;;) {
		size_t pending = 0;

		for (size_t i = 1; i < rs->n; i++) {
			struct region *g = &rs->v[i];
			struct geo_region_state *r = geo_state_region(gs, g->name);
			struct geo_check c;
			int64_t now;

			if (done[i] || !r || r->state != RS_PENDING)
				continue;
			if (!g->store || g->down) {
				/* it could not be opened, or it already missed a
				 * deadline in this run: waiting again for every
				 * partition would only add up the deadlines */
				done[i] = true;
				failed++;
				r->state = RS_AT_RISK;
				snprintf(r->detail, sizeof(r->detail), "%.600s",
					 g->down_why[0] ? g->down_why : "it did not answer");
				continue;
			}
			geo_check_copy(g, m, mask, &c);
			/* geo-protected only with every reference there too */
			if (mask == OBJ_ALL && c.copy == COPY_OK)
				geo_check_refs(g, m, &c);
			now = util_now_unix_ns();
			if (c.copy == COPY_OK) {
				done[i] = true;
				if (mask != OBJ_ALL)
					continue;   /* part of the backup: the caller goes on */
				r->state = RS_VERIFIED;
				r->verified_ns = now;
				r->lag_s = (double)(now - gs->committed_ns) / 1e9;
				r->detail[0] = '\0';
				log_info("region %s: backup %s verified %.2f s after its commit",
					 g->name, m->backup_id, r->lag_s);
				continue;
			}
			snprintf(r->detail, sizeof(r->detail), "%s: %s",
				 geo_copy_name(c.copy), c.detail);
			if (c.copy == COPY_BAD || now >= r->deadline_ns) {
				done[i] = true;
				failed++;
				r->state = RS_AT_RISK;
				if (c.copy != COPY_BAD) {
					g->down = true;
					snprintf(g->down_why, sizeof(g->down_why),
						 "did not show backup %s within its replication deadline in this run",
						 m->backup_id);
				}
				log_warn("region %s: backup %s is not there %s (%s)",
					 g->name, m->backup_id,
					 c.copy == COPY_BAD ? "intact" : "by its replication deadline",
					 r->detail);
				continue;
			}
			pending++;
		}
		/* a stop request (signals.h) ends the wait as once would: what
		 * is not there yet stays pending, for verify to check */
		if (!pending || once || signals_stop())
			return failed;
		wait_or_signal(interval);
		interval = interval * 1.5 > 2.0 ? 2.0 : interval * 1.5;
	}
}

int64_t geo_lock_until(const struct region *g, const struct manifest *m)
{
	const struct cfg_partition *p;
	struct ret_policy pol;

	if (!g->object_lock || !g->cfg || !m->snap_time_ns)
		return 0;
	p = m->partition ? config_partition(g->cfg, m->partition) : NULL;
	ret_policy_of(g->cfg, p, &pol);
	return ret_lock_until(m->snap_time_ns / 1000000000,
			      ret_lock_span(&pol, config_interval(g->cfg, p)),
			      g->lock_margin, (int64_t)time(NULL));
}

/* ---- repair copies ---- */

/* name of m from src to dst, locked (Object Lock) until until (0: not). */
static int copy_object(struct region *src, struct region *dst, const char *name,
		       const struct manifest *m, uint64_t size, const char *sha,
		       int64_t until, unsigned char *buf, struct err *err)
{
	char *skey = geo_region_key(src, m, name), *dkey = geo_region_key(dst, m, name);
	struct store_writer *w = NULL;
	struct store_put_opts po = { 0 };
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];
	uint64_t off = 0;
	int ret;

	if (!skey || !dkey || !h) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	EVP_DigestInit_ex(h, EVP_sha256(), NULL);
	po.retain_until = until;
	ret = store_put_begin_opts(dst->store, dkey, &po, &w, err);
	if (ret)
		goto out;
	for (;;) {
		size_t got = 0;

		/* a stop request: the unfinished copy is aborted, never visible */
		if (signals_stop()) {
			ret = err_set(err, -ECANCELED, "copying %s to region %s: cancelled; nothing of it is left there",
				      name, dst->name);
			goto out;
		}
		ret = store_get_range(src->store, skey, off, COPY_CHUNK, buf, &got, err);
		if (ret) {
			err_wrap(err, "reading %s from region %s", name, src->name);
			goto out;
		}
		if (!got)
			break;
		EVP_DigestUpdate(h, buf, got);
		ret = store_write(w, buf, got, err);
		if (ret)
			goto out;
		off += got;
		if (got < COPY_CHUNK)
			break;
	}
	EVP_DigestFinal_ex(h, md, &mdlen);
	util_hex(md, 32, hex);
	if (off != size || strcmp(hex, sha)) {
		/* never spread a bad copy */
		ret = err_set(err, -EBADMSG,
			      "region %s's %s is not the backup's (%llu bytes, SHA-256 %.12s...; the manifest says %llu, %.12s...); not copying it",
			      src->name, skey, (unsigned long long)off, hex,
			      (unsigned long long)size, sha);
		goto out;
	}
	ret = store_put_commit(w, err);
	w = NULL;
	if (!ret)
		log_info("copied %s (%llu bytes) from region %s to region %s",
			 dkey, (unsigned long long)off, src->name, dst->name);
out:
	store_put_abort(w);
	EVP_MD_CTX_free(h);
	free(skey);
	free(dkey);
	return ret;
}

int geo_copy(struct region *src, struct region *dst, const struct manifest *m,
	     int mask, int64_t lock_floor, struct err *err)
{
	const uint64_t size[3] = { m->data_size, m->index_size, m->self_size };
	const char *const sha[3] = { m->data_sha256, m->index_sha256, m->self_sha256 };
	const int64_t own = geo_lock_until(dst, m);
	const int64_t until = own && lock_floor > own ? lock_floor : own;
	unsigned char *buf = malloc(COPY_CHUNK);
	int ret = 0;

	if (!buf)
		return err_set(err, -ENOMEM, "out of memory");
	/* a referenced object is locked as long as m, which reads it (a ref's
	 * manifest has no snapshot time of its own) */
	for (size_t k = 0; (mask & OBJ_REFS) && k < m->nrefs && !ret; k++) {
		struct manifest rm;
		struct geo_check rc;

		geo_ref_manifest(m, k, &rm);
		geo_check_copy(dst, &rm, OBJ_DATA, &rc);
		if (rc.copy == COPY_MISSING || rc.copy == COPY_BAD)
			ret = copy_object(src, dst, obj_names[0], &rm, rm.data_size,
					  rm.data_sha256, until, buf, err);
	}
	/* data and index first: a manifest never names what is not there */
	for (int i = 0; i < 3 && !ret; i++)
		if (mask & (1 << i))
			ret = copy_object(src, dst, obj_names[i], m, size[i], sha[i],
					  until, buf, err);
	free(buf);
	return ret;
}
