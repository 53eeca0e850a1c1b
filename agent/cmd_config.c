// SPDX-License-Identifier: MIT
/*
 * snapship config check and snapship key generate (agent/cmd_config.h):
 * the commands that check what the agent will use — the config, its
 * regions (connection, Object Lock), the encryption key files — and make a
 * new key.
 */
#include "agent/cmd_config.h"

#include <stdio.h>
#include <string.h>

#include "agent/cli.h"
#include "agent/config.h"
#include "agent/geo.h"
#include "agent/keyring.h"
#include "agent/report.h"
#include "common/err.h"
#include "cow/cow.h"
#include "stream/seal.h"
#include "uploader/store.h"

/* config check of an S3 region's Object Lock: object_lock needs a bucket
 * with Object Lock; a locked bucket without object_lock keeps every
 * deleted version (a warning).  Read errors matter with object_lock only. */
static void config_check_lock(struct report_config *rc, const struct cfg_region *reg,
			      struct store *s)
{
	static const char *const mode[] = { "off", "governance", "compliance" };
	struct store_lock_info li;
	struct err err = { 0 };
	char msg[1200];

	if (!s || !reg->store || strcmp(reg->store, "s3"))
		return;
	if (store_lock_config(s, &li, &err)) {
		if (!reg->object_lock)
			return;
		snprintf(msg, sizeof(msg),
			 "[region %s] object_lock = %s: cannot read the Object Lock configuration of bucket %s (%s); the backup credentials need s3:GetBucketObjectLockConfiguration",
			 reg->name, mode[reg->object_lock], reg->bucket,
			 err_strip_region(reg->name, err.msg));
		report_config_note(rc, true, msg);
	} else if (reg->object_lock && !li.enabled) {
		snprintf(msg, sizeof(msg),
			 "[region %s] object_lock = %s, but bucket %s does not have Object Lock enabled: nothing could be locked; create a bucket with Object Lock enabled (CreateBucket with x-amz-bucket-object-lock-enabled: true) and set bucket = to it, or remove object_lock",
			 reg->name, mode[reg->object_lock], reg->bucket);
		report_config_note(rc, true, msg);
	} else if (!reg->object_lock && li.enabled) {
		snprintf(msg, sizeof(msg),
			 "bucket %s of [region %s] has Object Lock (so versioning) but the region has no object_lock: backups are not locked, and a deleted backup's old versions stay and use space; set object_lock = governance or compliance",
			 reg->bucket, reg->name);
		report_config_note(rc, false, msg);
	}
}

/* config check: argv as given (the command parses its own) */
/* The key files of encryption (read as a backup reads them: a file group
 * or others may read is refused) — never their bytes. */
static void config_check_keys(struct report_config *rc, const struct config *cfg)
{
	struct keyring *kr = NULL;
	struct err err = { 0 };

	if (!cfg->encrypt && !cfg->key_file && !cfg->old_key_files)
		return;
	if (keyring_load(cfg, &kr, &err))
		report_config_note(rc, true, err.msg);
	keyring_free(kr);
}

int cmd_config(struct cli *c, int argc, char **argv)
{
	struct report r;
	struct report_config rc = { .r = &r };
	int ret;

	if (argc != 2 || strcmp(argv[1], "check"))
		return cli_usage_error("usage: snapship [--config FILE] config check");
	if (!c->have_config)
		return cli_usage_error("no config file: pass --config FILE");
	report_init(&r, c->o.json);
	report_config(&rc, &c->cfg);
	for (size_t i = 0; i < c->cfg.nparts; i++) {
		const struct cfg_partition *p = &c->cfg.parts[i];
		struct err err = { 0 };

		report_config_partition(&rc, p->name, p->path,
					cow_check_source(p->path, &err) ? &err : NULL);
	}
	for (size_t i = 0; i < c->cfg.nregions; i++) {
		const struct cfg_region *reg = &c->cfg.regions[i];
		struct store *s;
		struct err err = { 0 };

		ret = geo_region_probe(reg, &s, &err);
		report_config_region(&rc, reg, s, ret ? &err : NULL);
		if (!ret)
			config_check_lock(&rc, reg, s);
		store_free(s);
	}
	config_review(&c->cfg, report_config_note, &rc);
	config_check_keys(&rc, &c->cfg);
	/* any error fails the check; warnings do not */
	ret = report_config_end(&rc, &c->cfg);
	report_end(&r);
	return ret;
}

/* key generate FILE: a new raw key (32 random bytes, mode 0600), its
 * fingerprint said (never the key). */
int cmd_key(struct cli *c, int argc, char **argv)
{
	struct seal_secret *s = NULL;
	struct seal_master *m = NULL;
	struct err err = { 0 };

	(void)c;
	if (argc != 3 || strcmp(argv[1], "generate") || argv[2][0] == '-')
		return cli_usage_error("usage: snapship key generate FILE");
	if (keyring_generate(argv[2], &err) ||
	    seal_secret_read(argv[2], "key", &s, &err) || seal_master_new(s, NULL, &m, &err)) {
		seal_secret_free(s);
		return cli_fail(&err);
	}
	printf("%s: a new key, fingerprint %s; keep a copy off this host: without it the backups made with it cannot be restored\n",
	       argv[2], m->fp);
	seal_master_free(m);
	seal_secret_free(s);
	return 0;
}
