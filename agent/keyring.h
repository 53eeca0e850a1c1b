/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_AGENT_KEYRING_H
#define SNAPSHIP_AGENT_KEYRING_H

/*
 * The encryption keys of a run (doc/protection.md "Client-side
 * encryption"): [agent] key_file (new backups; restores) and
 * old_key_files (restores only), read once per command; and one backup's
 * keys, derived for a new backup or found for an existing one by its
 * manifest's fingerprint.  A chain (an incremental, its parent, their
 * references) is under one master key: keyring_chain says whether a new
 * backup may chain onto a parent, keyring_ref_key gives a reference's
 * data key.  Master keys are cached by key file and salt (one scrypt per
 * salt and command).  Nothing here logs or prints a key's bytes.
 */

#include <stdbool.h>

#include "stream/seal.h"

struct config;
struct err;
struct manifest;

#define KEYRING_OLD_MAX 16

struct keyring_cache;

struct keyring {
	bool encrypt;                 /* [agent] encryption = aes-256-gcm */
	struct seal_secret *cur;      /* key_file; NULL: none */
	struct seal_secret *old[KEYRING_OLD_MAX];
	size_t nold;
	/* the master keys made so far, by key file and salt (a chain of
	 * passphrase backups shares one salt: one scrypt per command);
	 * owned, locked memory, wiped by keyring_free; thread-safe */
	struct keyring_cache *cache;
};

/*
 * Read the key files cfg names (none: an empty keyring, fine for plain
 * backups).  encryption = aes-256-gcm without a key_file is refused.
 * *kr_ret: keyring_free().
 */
int keyring_load(const struct config *cfg, struct keyring **kr_ret,
		 struct err *err);
void keyring_free(struct keyring *kr);

/* One backup's keys (all NULL for a plain backup).  master (owned, locked)
 * opens the data of the backups an incremental references: a chain is
 * made under one master key (planner: keyring_chain). */
struct backup_keys {
	struct seal_key *data, *index, *manifest;
	struct seal_master *master;
	char fp[SEAL_FP_HEX + 1];
	bool has_salt;
	unsigned char salt[SEAL_SALT_LEN];
};

/* The keys of a new backup backup_id from key_file.  A passphrase is
 * stretched with salt (the parent's, keyring_chain) or, NULL, a new
 * random one.  kr must encrypt. */
int keyring_for_new(const struct keyring *kr, const char *backup_id,
		    const unsigned char *salt, struct backup_keys *bk,
		    struct err *err);
/*
 * May a new encrypted backup be an incremental of the encrypted backup p?
 * Only when key_file's master key (stretched with p's salt for a
 * passphrase) is p's: 0 and *m_ret, that master (kr's, valid while kr
 * is; its salt is p's, which the new backup reuses: the same master and
 * fingerprint); 1 and why when not (the key was rotated or changed: a new
 * chain starts with a full); negative: failed.
 */
int keyring_chain(const struct keyring *kr, const struct manifest *p,
		  const struct seal_master **m_ret, char *why, size_t why_len,
		  struct err *err);
/* The data key of backup id, which bk's backup references (the same
 * master key).  *k_ret: seal_key_free(). */
int keyring_ref_key(const struct backup_keys *bk, const char *id,
		    struct seal_key **k_ret, struct err *err);
/*
 * The keys of the backup m (0 and empty keys when it is not encrypted):
 * the key whose fingerprint is m's, from key_file or old_key_files.
 * None: -ENOKEY and one message naming the fingerprint the backup wants
 * and those given.  kr may be NULL (no keys configured).
 */
int keyring_for_backup(const struct keyring *kr, const struct manifest *m,
		       struct backup_keys *bk, struct err *err);
void backup_keys_clear(struct backup_keys *bk);

/*
 * Seal m's sensitive fields (source, source_uuid, hooks) into
 * m->enc_sealed with bk->manifest and record bk's fingerprint and salt;
 * m->encryption becomes SEAL_ALG.  manifest_to_json then writes those
 * fields empty (m keeps them).  Unseal: put them back into m from
 * m->enc_sealed (-EBADMSG when it does not authenticate).
 */
int keyring_seal_manifest(const struct backup_keys *bk, struct manifest *m,
			  struct err *err);
int keyring_unseal_manifest(const struct backup_keys *bk, struct manifest *m,
			    struct err *err);

/* snapship key generate FILE: 32 bytes from getrandom into a new file of
 * mode 0600 (an existing file is never overwritten: -EEXIST). */
int keyring_generate(const char *path, struct err *err);

#endif
