/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_FILE_PRIV_H
#define SNAPSHIP_UPLOADER_FILE_PRIV_H

/*
 * Inside the file store (uploader/file.c: open, put, get, head;
 * uploader/file_walk.c: list, delete, cleaning).  Not for other folders.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "uploader/store.h"
#include "uploader/store_driver.h"

struct err;

#define FILE_TMP_TAG ".tmp-"
#define FILE_TMP_HEX 16                         /* 8 random bytes */
/* ".<base>.tmp-<hex>" must fit in NAME_MAX. */
#define FILE_BASE_MAX (NAME_MAX - 1 - (sizeof(FILE_TMP_TAG) - 1) - FILE_TMP_HEX)
#define FILE_RETRIES 8
#define FILE_DIR_MODE 0750
#define FILE_OBJ_MODE 0640
#define FILE_DEPTH_MAX 64       /* directory levels of a key */
#define FILE_WARN_MAX 32        /* anomalies reported one by one */
#define FILE_STR_(x) #x
#define FILE_STR(x) FILE_STR_(x)

/* How file_open_dir resolves: links are never followed in any mode. */
enum file_resolve {
	FILE_READ = 0,
	FILE_NO_XDEV = 1,       /* deleting, cleaning: never across a mount */
};

#define FILE_IS_LINK "is a symbolic link; links inside a store are never followed (remove it, or find out who put it there)"
#define FILE_UNDER_LINK "is, or lies under, a symbolic link; links inside a store are never followed (remove it, or find out who put it there)"
#define FILE_NOT_OBJECT "is neither a file nor a directory; not used (remove it, or find out who put it there)"

struct file_store {
	int root_fd;
	dev_t root_dev;
	char *root;             /* absolute path, for messages */
	pthread_mutex_t lock;   /* protects the anomaly report below */
	unsigned anomalies;     /* distinct entries reported */
	char *warned[FILE_WARN_MAX];
};

int file_abort_incomplete(void *priv, const char *prefix,
			  unsigned *count_ret, struct err *err);
void file_anomaly(struct file_store *fs, const char *key,
		  const char *what);
int file_delete(void *priv, const char *const *keys, size_t n,
		struct err *err);
const char *file_hint(int code);
void file_info(const struct stat *st, struct store_obj_info *info);
int file_io_err(const struct file_store *fs, int code, const char *what,
		const char *key, struct err *err);
bool file_is_tmp_name(const char *name);
int file_list(void *priv, const char *prefix, store_list_fn fn,
	      void *ctx, struct err *err);
int file_open_dir(const struct file_store *fs, int dir_fd,
		  const char *path, enum file_resolve how, int *fd_ret);
int file_open_parent(const struct file_store *fs, const char *key,
		     enum file_resolve how, int *dir_fd_ret,
		     const char **base_ret);
void file_prune_dirs(const struct file_store *fs, const char *key);
int file_refused(const struct file_store *fs, int code,
		 const char *what, const char *key, struct err *err);
int file_remove_empty_dirs(void *priv, const char *prefix,
			   store_dir_fn dir_ok, void *ctx,
			   unsigned *count_ret, struct err *err);


#endif
