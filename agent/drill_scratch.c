// SPDX-License-Identifier: MIT
/*
 * The drill's files (agent/drill.h): the scratch directory a drill restores
 * into, the removal of its copies (this run's and what a killed drill left)
 * and the drill record.  drill.c runs the drill itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/drill.h"
#include "agent/drill_priv.h"
#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"

/* ------------------------------------------------------------- scratch */

/* The directory p's snapshots go to (cow_freeze's default: the parent of
 * p's path, ".snapship"), into buf. */
static const char *snapshot_dir(const struct cfg_partition *p, char *buf, size_t len)
{
	char tmp[PATH_MAX];
	const char *parent;

	if (p->snapshot_dir) {
		snprintf(buf, len, "%s", p->snapshot_dir);
		return buf;
	}
	snprintf(tmp, sizeof(tmp), "%s", p->path);
	parent = dirname(tmp);
	snprintf(buf, len, "%s%s", parent, strcmp(parent, "/") ? "/.snapship" : ".snapship");
	return buf;
}

/* The nearest existing ancestor of path (path itself if it exists) into buf. */
static const char *existing(const char *path, char *buf, size_t len)
{
	struct stat st;

	snprintf(buf, len, "%s", path);
	while (stat(buf, &st) && strcmp(buf, "/") && strcmp(buf, ".")) {
		const char *up = dirname(buf);   /* buf cut, or a static "." or "/" */

		memmove(buf, up, strlen(up) + 1);
	}
	return buf;
}

const char *drill_scratch_dir(const struct config *cfg, const struct cfg_partition *p,
			      char *buf, size_t len)
{
	char a[PATH_MAX], snaps[PATH_MAX];
	struct err err = { 0 };
	bool same = true;

	snprintf(buf, len, "%s/drill", cfg->state_dir);
	if (!p || !p->path)
		return buf;
	/* a restore into another filesystem than the partition's measures
	 * another disk: keep it next to the snapshots instead */
	if (cow_same_fs(existing(cfg->state_dir, a, sizeof(a)), p->path, &same, &err) ||
	    same)
		return buf;
	snprintf(buf, len, "%s/drill", snapshot_dir(p, snaps, sizeof(snaps)));
	return buf;
}

/* ------------------------------------------------------------- removal */

bool drill_copy_name(const char *name, char *part_ret, size_t len)
{
	size_t n = strlen(name), plen;
	char id[BACKUP_ID_LEN + 1];

	if (n < 6 + 1 + 1 + BACKUP_ID_LEN || strncmp(name, "drill-", 6) ||
	    name[n - BACKUP_ID_LEN - 1] != '-')
		return false;
	plen = n - 6 - BACKUP_ID_LEN - 1;
	if (plen > UTIL_NAME_MAX || plen >= len)
		return false;
	memcpy(id, name + n - BACKUP_ID_LEN, BACKUP_ID_LEN + 1);
	memcpy(part_ret, name + 6, plen);
	part_ret[plen] = '\0';
	return util_name_ok(part_ret) && catalog_id_time(id) >= 0;
}

/*
 * Remove directory name in dirfd with all it holds: never through a link
 * (O_NOFOLLOW, entries unlinked, not followed), never into another
 * filesystem or subvolume (dev: the scratch copy's).
 */
static int rm_tree_at(int dirfd, const char *name, dev_t dev, const char *top,
		      struct err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	struct stat st;
	DIR *d;
	int ret = 0;

	if (fd < 0)
		return err_set(err, -errno, "cannot open %s/%s to remove it: %s", top,
			       UTIL_ESC(name), strerror(errno));
	if (fstat(fd, &st) || st.st_dev != dev) {
		close(fd);
		return err_set(err, -EXDEV, "%s/%s is another filesystem or subvolume: not removing it; remove it by hand",
			       top, UTIL_ESC(name));
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_set(err, -errno, "cannot read %s: %s", top, strerror(errno));
	}
	while (!ret && (de = readdir(d))) {
		struct stat es;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fd, de->d_name, &es, AT_SYMLINK_NOFOLLOW))
			ret = err_set(err, -errno, "%s: %s", top, strerror(errno));
		else if (S_ISDIR(es.st_mode))
			ret = rm_tree_at(fd, de->d_name, dev, top, err);
		else if (unlinkat(fd, de->d_name, 0))
			ret = err_set(err, -errno, "cannot remove %s/.../%s: %s", top,
				      UTIL_ESC(de->d_name), strerror(errno));
	}
	closedir(d);
	if (!ret && unlinkat(dirfd, name, AT_REMOVEDIR))
		ret = err_set(err, -errno, "cannot remove %s: %s", top, strerror(errno));
	return ret;
}

int drill_remove_copy(const char *path, struct err *err)
{
	char dir[PATH_MAX], base[PATH_MAX];
	struct stat st;
	int dfd, ret;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, -EINVAL, "%s is not a directory (a link?): not removing it; remove it by hand",
			       path);
	/* a subvolume (restore made one on btrfs): deleted whole */
	ret = cow_delete_volume(path, err);
	if (ret != -EINVAL && ret != -EOPNOTSUPP)
		return ret;
	err_clear(err);
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir) ||
	    snprintf(base, sizeof(base), "%s", path) >= (int)sizeof(base))
		return err_set(err, -ENAMETOOLONG, "%s: path too long", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(err, -errno, "cannot open %s: %s", dir, strerror(errno));
	ret = rm_tree_at(dfd, basename(base), st.st_dev, path, err);
	close(dfd);
	return ret;
}

int drill_remove_leftovers(const char *scratch, unsigned *removed_ret,
			   struct err *err)
{
	char part[UTIL_NAME_MAX + 1], path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	*removed_ret = 0;
	d = opendir(scratch);
	if (!d)
		return errno == ENOENT ? 0 :
		       err_set(err, -errno, "cannot read the drill scratch directory %s: %s",
			       scratch, strerror(errno));
	while ((de = readdir(d))) {
		struct stat st;

		/* only what a drill names so, only directories, never a link */
		if (!drill_copy_name(de->d_name, part, sizeof(part)) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISDIR(st.st_mode))
			continue;
		snprintf(path, sizeof(path), "%s/%s", scratch, de->d_name);
		ret = drill_remove_copy(path, err);
		if (ret)
			break;
		log_info("removed %s, left by a drill that did not finish", path);
		++*removed_ret;
	}
	closedir(d);
	return ret;
}

/* ------------------------------------------------------------ the lock */

int drill_lock(const char *state_dir, bool (*cancelled)(void *ctx), void *ctx,
	       struct err *err)
{
	char path[PATH_MAX];
	bool said = false;
	int fd, ret;

	if (snprintf(path, sizeof(path), "%s/drill.lock", state_dir) >= (int)sizeof(path))
		return err_set(err, -ENAMETOOLONG, "%s: path too long", state_dir);
	ret = util_mkdir_p(state_dir, 0755);
	fd = ret ? -1 : open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(err, ret ? ret : -errno, "cannot open the drill lock %s: %s",
			       path, strerror(ret ? -ret : errno));
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			ret = err_set(err, -errno, "cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return ret;
		}
		if (cancelled && cancelled(ctx)) {
			close(fd);
			return err_set(err, -ECANCELED, "stopped while waiting for another drill (%s)",
				       path);
		}
		if (!said)
			log_info("waiting for another drill to finish (%s)", path);
		said = true;
		usleep(200000);
	}
	return fd;
}

/* ---------------------------------------------------------- the record */

static int rec_path(const char *state_dir, const char *host, const char *partition,
		    char *buf, size_t len, struct err *err)
{
	if (!util_name_ok(host) || !util_name_ok(partition))
		return err_set(err, -EINVAL, "drill record: \"%s\"/\"%s\" is not a host/partition name",
			       UTIL_ESC(host), UTIL_ESC(partition));
	if (snprintf(buf, len, "%s/drills/%s/%s.json", state_dir, host, partition) >= (int)len)
		return err_set(err, -ENAMETOOLONG, "drill record path too long");
	return 0;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(dst, len, "%s", s ? UTIL_ESC_CTL(s) : "");
}

static double get_real(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : -1;
}

int drillrec_load(const char *state_dir, const char *host, const char *partition,
		  struct drillrec *r_ret, struct err *err)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *o;
	int ret;

	memset(r_ret, 0, sizeof(*r_ret));
	r_ret->rpo_s = r_ret->rto_s = -1;
	ret = rec_path(state_dir, host, partition, path, sizeof(path), err);
	if (ret)
		return ret;
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!o && access(path, F_OK) && errno == ENOENT)
		return 0;
	if (!json_is_object(o) || !json_is_integer(json_object_get(o, "last_drill")) ||
	    !json_is_boolean(json_object_get(o, "passed"))) {
		json_decref(o);
		return err_set(err, -EBADMSG, "drill record %s is not one (%s); the next drill rewrites it",
			       path, o ? "fields missing" : je.text);
	}
	r_ret->last_drill = json_integer_value(json_object_get(o, "last_drill"));
	r_ret->last_pass = json_integer_value(json_object_get(o, "last_pass"));
	r_ret->passed = json_is_true(json_object_get(o, "passed"));
	copy_str(r_ret->failure, sizeof(r_ret->failure), o, "failure");
	copy_str(r_ret->region, sizeof(r_ret->region), o, "region");
	copy_str(r_ret->backup_id, sizeof(r_ret->backup_id), o, "backup_id");
	copy_str(r_ret->message, sizeof(r_ret->message), o, "message");
	r_ret->rpo_s = get_real(o, "rpo_seconds");
	r_ret->rto_s = get_real(o, "rto_seconds");
	r_ret->bytes = (uint64_t)json_integer_value(json_object_get(o, "bytes"));
	json_decref(o);
	return 0;
}

int drillrec_save(const char *state_dir, const char *host, const char *partition,
		  const struct drillrec *r, struct err *err)
{
	char path[PATH_MAX], *text;
	json_t *o;
	int ret;

	ret = rec_path(state_dir, host, partition, path, sizeof(path), err);
	if (ret)
		return ret;
	o = json_pack("{sIsIsbsssssssfsfsIss}", "last_drill", (json_int_t)r->last_drill,
		      "last_pass", (json_int_t)r->last_pass, "passed", r->passed,
		      "failure", r->failure, "region", r->region, "backup_id", r->backup_id,
		      "rpo_seconds", r->rpo_s, "rto_seconds", r->rto_s,
		      "bytes", (json_int_t)r->bytes, "message", r->message);
	text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!text)
		return err_set(err, -ENOMEM, "drill record %s: out of memory", path);
	ret = afile_write(path, text, strlen(text), 0644, 1, err);
	free(text);
	return ret;
}

void drillrec_from_result(const struct drill_result *res, struct drillrec *r_ret)
{
	memset(r_ret, 0, sizeof(*r_ret));
	r_ret->last_drill = res->started;
	r_ret->passed = res->failure == DRILL_OK;
	r_ret->last_pass = r_ret->passed ? res->started : 0;
	snprintf(r_ret->failure, sizeof(r_ret->failure), "%s",
		 r_ret->passed ? "" : drill_failure_name(res->failure));
	snprintf(r_ret->region, sizeof(r_ret->region), "%s", res->region);
	snprintf(r_ret->backup_id, sizeof(r_ret->backup_id), "%s", res->backup_id);
	r_ret->rpo_s = res->rpo_s;
	r_ret->rto_s = res->rto_s;
	r_ret->bytes = res->bytes;
	snprintf(r_ret->message, sizeof(r_ret->message), "%s", res->message);
}
