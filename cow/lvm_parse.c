// SPDX-License-Identifier: MIT
/*
 * The pure parts of the LVM backend, host-testable without device-mapper:
 * lvs JSON, the sysfs test of a device, snapshot sizes, snapshot names and
 * the mount table.
 */
#include "cow/lvm.h"

#include "common/err.h"
#include "common/util.h"
#include "cow/cow.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* A string member of a row into buf; "" when absent.  false if too long. */
static bool lvs_str(json_t *row, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(row, key));

	if (!s)
		s = "";
	if (strlen(s) >= len)
		return false;
	strcpy(buf, s);
	return true;
}

static uint64_t lvs_u64(json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));

	return s && isdigit((unsigned char)*s) ? strtoull(s, NULL, 10) : 0;
}

static int lvs_row(json_t *row, struct lvm_lv *lv)
{
	char num[32];

	memset(lv, 0, sizeof(*lv));
	if (!json_is_object(row) ||
	    !lvs_str(row, "vg_name", lv->vg, sizeof(lv->vg)) ||
	    !lvs_str(row, "lv_name", lv->name, sizeof(lv->name)) ||
	    !lvs_str(row, "lv_attr", lv->attr, sizeof(lv->attr)) ||
	    !lvs_str(row, "pool_lv", lv->pool, sizeof(lv->pool)) ||
	    !lvs_str(row, "origin", lv->origin, sizeof(lv->origin)) ||
	    !lvs_str(row, "lv_dm_path", lv->dm_path, sizeof(lv->dm_path)) ||
	    !*lv->vg || !*lv->name)
		return -EBADMSG;
	/* "[pool]" for hidden LVs in some versions */
	if (lv->pool[0] == '[' && strlen(lv->pool) > 2) {
		memmove(lv->pool, lv->pool + 1, strlen(lv->pool));
		lv->pool[strlen(lv->pool) - 1] = '\0';
	}
	lv->size = lvs_u64(row, "lv_size");
	lv->vg_free = lvs_u64(row, "vg_free");
	lv->data_percent = -1;
	if (lvs_str(row, "data_percent", num, sizeof(num)) && *num)
		lv->data_percent = strtod(num, NULL);
	lv->major = lv->minor = -1;
	if (lvs_str(row, "lv_kernel_major", num, sizeof(num)) && *num)
		lv->major = (int)strtol(num, NULL, 10);
	if (lvs_str(row, "lv_kernel_minor", num, sizeof(num)) && *num)
		lv->minor = (int)strtol(num, NULL, 10);
	return 0;
}

int lvm_parse_lvs(const char *json, struct lvm_lv **lvs_ret, size_t *n_ret,
		  struct err *err)
{
	json_error_t jerr;
	json_t *root, *rows;
	struct lvm_lv *lvs = NULL;
	size_t n = 0;
	int ret = 0;

	*lvs_ret = NULL;
	*n_ret = 0;
	root = json_loads(json, 0, &jerr);
	if (!root)
		return err_set(err, -EBADMSG, "cannot parse the output of lvs "
			       "(line %d: %s); is lvm2 at least 2.02.158 "
			       "(--reportformat json)?", jerr.line, jerr.text);
	rows = json_object_get(json_array_get(json_object_get(root, "report"), 0),
			       "lv");
	if (!json_is_array(rows)) {
		ret = err_set(err, -EBADMSG, "the output of lvs has no "
			      "report[0].lv array");
		goto out_decref;
	}
	if (json_array_size(rows)) {
		lvs = calloc(json_array_size(rows), sizeof(*lvs));
		if (!lvs) {
			ret = err_set(err, -ENOMEM, "out of memory");
			goto out_decref;
		}
	}
	for (n = 0; n < json_array_size(rows); n++) {
		if (lvs_row(json_array_get(rows, n), &lvs[n])) {
			ret = err_set(err, -EBADMSG, "the output of lvs has a "
				      "malformed row %zu (a name missing or "
				      "over %d bytes)", n, LVM_NAME_MAX);
			free(lvs);
			lvs = NULL;
			n = 0;
			goto out_decref;
		}
	}
	*lvs_ret = lvs;
	*n_ret = n;
out_decref:
	json_decref(root);
	return ret;
}

/* One line of a sysfs file into buf, newline dropped. */
static int sysfs_read(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ret = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		ret = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	if (!ret)
		buf[strcspn(buf, "\n")] = '\0';
	return ret;
}

int lvm_sysfs_is_lvm(const char *sysroot, unsigned maj, unsigned min,
		     bool *is_lvm_ret, char *dm_name, size_t dm_name_len)
{
	char path[PATH_MAX], uuid[256];
	int ret;

	*is_lvm_ret = false;
	snprintf(path, sizeof(path), "%s/sys/dev/block/%u:%u/dm/uuid",
		 sysroot ? sysroot : "", maj, min);
	ret = sysfs_read(path, uuid, sizeof(uuid));
	if (ret == -ENOENT || ret == -ENODATA)
		return 0;   /* not device-mapper, or no uuid: not LVM */
	if (ret)
		return ret;
	if (strncmp(uuid, "LVM-", 4))
		return 0;
	if (dm_name && dm_name_len) {
		snprintf(path, sizeof(path), "%s/sys/dev/block/%u:%u/dm/name",
			 sysroot ? sysroot : "", maj, min);
		if (sysfs_read(path, dm_name, dm_name_len))
			dm_name[0] = '\0';
	}
	*is_lvm_ret = true;
	return 0;
}

int lvm_snapshot_bytes(const char *spec, uint64_t origin_size,
		       uint64_t *bytes_ret)
{
	uint64_t v;
	size_t len;
	char *end;

	if (!spec)
		spec = LVM_DEFAULT_SNAPSHOT_SIZE;
	len = strlen(spec);
	if (len > 1 && spec[len - 1] == '%') {
		if (!isdigit((unsigned char)spec[0]))
			return -EINVAL;
		errno = 0;
		v = strtoull(spec, &end, 10);
		if (errno || end != spec + len - 1 || v < 1 || v > 100)
			return -EINVAL;
		if (origin_size == 0)
			return -EINVAL;
		v = origin_size / 100 * v + origin_size % 100 * v / 100;
	} else if (util_parse_size(spec, &v) || v == 0) {
		return -EINVAL;
	}
	if (v > UINT64_MAX - 511)
		return -ERANGE;
	*bytes_ret = (v + 511) / 512 * 512;
	return 0;
}

bool cow_lvm_size_ok(const char *spec)
{
	uint64_t bytes;

	return spec && lvm_snapshot_bytes(spec, 100 * 512, &bytes) == 0;
}

bool lvm_snap_name_ok(const char *name)
{
	size_t plen = strlen(COW_PREFIX), len = strlen(name);
	const char *rest = name + plen, *dash;

	if (len > LVM_NAME_MAX || strncmp(name, COW_PREFIX, plen))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("+_.-", name[i]))
			return false;
	/* <partition>-<id>: both parts present */
	dash = strchr(rest, '-');
	return dash && dash > rest && dash[1] != '\0' && rest[0] != '.' &&
	       rest[0] != '-';
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void mi_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* Is mnt a prefix of path at a component boundary? */
static bool mi_under(const char *path, const char *mnt)
{
	size_t len = strlen(mnt);

	if (!strcmp(mnt, "/"))
		return true;
	return !strncmp(path, mnt, len) && (path[len] == '/' || !path[len]);
}

/* One mountinfo line: fields we use, 0 if it parsed. */
static int mi_line(char *line, unsigned *maj, unsigned *min, char **root,
		   char **mnt, char **fstype)
{
	char *sep = strstr(line, " - ");
	char *save = NULL, *tok;
	int i = 0;

	if (!sep)
		return -EINVAL;
	*sep = '\0';
	*fstype = strtok_r(sep + 3, " ", &save);
	save = NULL;
	for (tok = strtok_r(line, " ", &save); tok && i < 5;
	     tok = strtok_r(NULL, " ", &save), i++) {
		if (i == 2 && sscanf(tok, "%u:%u", maj, min) != 2)
			return -EINVAL;
		if (i == 3)
			*root = tok;
		if (i == 4)
			*mnt = tok;
	}
	if (i < 5 || !*fstype)
		return -EINVAL;
	mi_unescape(*root);
	mi_unescape(*mnt);
	return 0;
}

int lvm_mount_of(const char *source, char *fstype, size_t len, char *mnt,
		 char *rel, struct err *err)
{
	char real[PATH_MAX], line[3 * PATH_MAX], best_root[PATH_MAX] = "";
	const char *tail, *fsroot;
	unsigned maj, min;
	size_t best = 0;
	struct stat st;
	FILE *f;

	if (!realpath(source, real) || stat(real, &st))
		return err_set(err, -errno, "partition \"%s\": %s", source,
			       err_str(-errno));
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return err_set(err, -errno, "cannot read /proc/self/mountinfo: "
			       "%s", err_str(-errno));
	while (fgets(line, sizeof(line), f)) {
		char *root = NULL, *m = NULL, *type = NULL;

		line[strcspn(line, "\n")] = '\0';
		if (mi_line(line, &maj, &min, &root, &m, &type) ||
		    makedev(maj, min) != st.st_dev || !mi_under(real, m) ||
		    strlen(m) < best || strlen(type) >= len ||
		    strlen(root) >= sizeof(best_root))
			continue;
		best = strlen(m);
		snprintf(mnt, PATH_MAX, "%s", m);
		strcpy(best_root, root);
		strcpy(fstype, type);
	}
	fclose(f);
	if (!best)
		return err_set(err, -ENOENT, "partition \"%s\": its filesystem "
			       "(device %u:%u) is not in /proc/self/mountinfo",
			       source, major(st.st_dev), minor(st.st_dev));
	/* the path inside the filesystem: its mount's root, then the rest */
	tail = real + best;
	if (*tail == '/')
		tail++;
	fsroot = strcmp(best_root, "/") ? best_root + 1 : "";
	snprintf(rel, PATH_MAX, "%s%s%s", fsroot, *fsroot && *tail ? "/" : "",
		 tail);
	return 0;
}
