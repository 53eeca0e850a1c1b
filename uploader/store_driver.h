/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_STORE_DRIVER_H
#define SNAPSHIP_UPLOADER_STORE_DRIVER_H

/*
 * The interface a store backend implements (file.c, s3*.c) and store.c
 * calls; for drivers only.  Callers use the wrappers of store.h, which
 * check arguments and keys and run the fault hooks before an op.
 */

#include "uploader/store.h"

struct store_ops {
	const char *scheme;            /* "file" */
	unsigned features;
	int (*open)(const char *location, void **priv_ret, struct err *err);
	/* Optional; preferred over open when set.  opts is never NULL. */
	int (*open_opts)(const char *location, const struct store_opts *opts,
			 void **priv_ret, struct err *err);
	void (*free)(void *priv);
	int (*put_begin)(void *priv, const char *key, void **wpriv_ret,
			 struct err *err);
	int (*write)(void *wpriv, const void *buf, size_t len, struct err *err);
	/* frees wpriv; info_ret (may be NULL) receives the object's head */
	int (*put_commit)(void *wpriv, struct store_obj_info *info_ret,
			  struct err *err);
	void (*put_abort)(void *wpriv);                    /* frees wpriv */
	int (*get_range)(void *priv, const char *key, uint64_t off, size_t len,
			 void *buf, size_t *got_ret, struct err *err);
	int (*head)(void *priv, const char *key, struct store_obj_info *info_ret,
		    struct err *err);
	int (*list)(void *priv, const char *prefix, store_list_fn fn, void *ctx,
		    struct err *err);
	int (*delete)(void *priv, const char *const *keys, size_t n,
		      struct err *err);
	int (*abort_incomplete)(void *priv, const char *prefix,
				unsigned *count_ret, struct err *err);
	/* Optional (stores without directories have none). */
	int (*remove_empty_dirs)(void *priv, const char *prefix,
				 store_dir_fn dir_ok, void *ctx,
				 unsigned *count_ret, struct err *err);
	/* Optional: put_begin with options (preferred when set). */
	int (*put_begin_opts)(void *priv, const char *key,
			      const struct store_put_opts *po, void **wpriv_ret,
			      struct err *err);
	/* Optional (-EOPNOTSUPP without): Object Lock. */
	int (*lock_config)(void *priv, struct store_lock_info *info_ret,
			   struct err *err);
	int (*retain)(void *priv, const char *key, int64_t until,
		      struct err *err);
	int (*list_hidden)(void *priv, const char *prefix, store_hidden_fn fn,
			   void *ctx, struct err *err);
	/* Optional: the first part size of multipart puts (0: none). */
	uint64_t (*part_size)(void *priv);
};

extern const struct store_ops store_file_ops;
extern const struct store_ops store_s3_ops;

#endif
