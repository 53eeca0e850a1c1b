// SPDX-License-Identifier: MIT
#include "agent/extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fault.h"
#include "common/log.h"

#define MAX_WRITERS 16

struct chunk {
	struct chunk *next;
	int64_t off;
	size_t len, cap;
	unsigned char data[];
};

struct job {
	struct job *next;
	struct archive_entry *ae;
	char *path;
	struct chunk *head, *tail;
	bool ended;
	bool done;          /* a writer gave up on it while the caller fills it */
};

struct extractor {
	int flags;
	const char *target;
	struct archive *w;             /* the caller's thread: dirs, specials, links */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *qhead, *qtail;     /* jobs not yet taken */
	struct job *cur;               /* the job the caller is filling */
	int64_t cur_size;              /* its size */
	struct chunk *fill;            /* its piece being filled, not yet queued */
	size_t mem, mem_budget;
	bool closing;
	int error;
	struct err err;
	uint64_t files;
	pthread_t threads[MAX_WRITERS];
	unsigned nthreads;
	struct archive_entry **deferred;   /* links, made last */
	size_t ndeferred, deferred_cap;
	struct dirtime *dirs;              /* directory times, set last */
	size_t ndirs, dirs_cap;
	bool stream;                       /* extractor_new_stream: w a pax writer */
	bool finished;                     /* extractor_finish closed w */
	int64_t at;                        /* its current file's bytes written */
};

struct dirtime {
	char *path;
	struct timespec ts[2];             /* atime, mtime */
};

static int write_error(struct err *err, struct archive *w, const char *target,
		       const char *path)
{
	int e = archive_errno(w);

	if (e == ENOSPC || e == EDQUOT)
		return err_set(err, -e,
			       "restore into %s ran out of space while writing %s; the partial restore is kept in %s: free space (or choose another target) and restore again with --force",
			       target, path, target);
	return err_set(err, e ? -e : -EIO,
		       "restore into %s: cannot write %s: %s; the partial restore is kept in %s",
		       target, path, archive_error_string(w), target);
}

static struct archive *disk_new(int flags)
{
	struct archive *w = archive_write_disk_new();

	if (w)
		archive_write_disk_set_options(w, flags);
	return w;
}

static void job_free(struct job *j)
{
	struct chunk *c, *n;

	if (!j)
		return;
	for (c = j->head; c; c = n) {
		n = c->next;
		free(c);
	}
	archive_entry_free(j->ae);
	free(j->path);
	free(j);
}

static void set_error(struct extractor *x, const struct err *e, int code)
{
	/* with x->mu held */
	if (!x->error) {
		x->error = code;
		x->err = *e;
	}
	pthread_cond_broadcast(&x->cv);
}

/* One writer thread: takes whole files and writes them. */
static void *writer_main(void *arg)
{
	struct extractor *x = arg;
	struct archive *w = disk_new(x->flags);
	struct err e = { 0 };
	int ret = 0;

	pthread_mutex_lock(&x->mu);
	if (!w)
		set_error(x, &e, err_set(&e, -ENOMEM, "out of memory"));
	while (w && !x->error) {
		struct job *j = x->qhead;
		bool failed = false;

		if (!j) {
			if (x->closing)
				break;
			pthread_cond_wait(&x->cv, &x->mu);
			continue;
		}
		x->qhead = j->next;
		if (!x->qhead)
			x->qtail = NULL;
		pthread_mutex_unlock(&x->mu);

		if (archive_write_header(w, j->ae) < ARCHIVE_WARN) {
			ret = write_error(&e, w, x->target, j->path);
			failed = true;
		}
		pthread_mutex_lock(&x->mu);
		while (!failed) {
			struct chunk *c = j->head;

			if (!c) {
				if (j->ended || x->error)
					break;
				pthread_cond_wait(&x->cv, &x->mu);
				continue;
			}
			j->head = c->next;
			if (!j->head)
				j->tail = NULL;
			pthread_mutex_unlock(&x->mu);
			if (fault_hit("extract.write", &ret))
				failed = err_set(&e, ret, "restore into %s: injected fault writing %s",
						 x->target, j->path) != 0;
			else if (archive_write_data_block(w, c->data, c->len, c->off) != ARCHIVE_OK)
				/* a failed write(2) is only ARCHIVE_WARN */
				failed = (ret = write_error(&e, w, x->target, j->path)) != 0;
			pthread_mutex_lock(&x->mu);
			x->mem -= c->cap;
			pthread_cond_broadcast(&x->cv);
			free(c);
		}
		pthread_mutex_unlock(&x->mu);
		if (!failed && archive_write_finish_entry(w) < ARCHIVE_WARN) {
			ret = write_error(&e, w, x->target, j->path);
			failed = true;
		}
		pthread_mutex_lock(&x->mu);
		/* drop what the caller may still have queued for this job */
		for (struct chunk *c = j->head; c; c = j->head) {
			j->head = c->next;
			x->mem -= c->cap;
			free(c);
		}
		if (failed)
			set_error(x, &e, ret);
		else
			x->files++;
		j->tail = NULL;
		if (x->cur == j)
			j->done = true;     /* the caller still holds it */
		else
			job_free(j);
		pthread_cond_broadcast(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
	if (w)
		archive_write_free(w);
	return NULL;
}

int extractor_new(int flags, unsigned workers, size_t mem_budget,
		  const char *target, struct extractor **x_ret, struct err *err)
{
	struct extractor *x = calloc(1, sizeof(*x));
	int ret;

	if (!x)
		return err_set(err, -ENOMEM, "out of memory");
	x->flags = flags;
	x->target = target;
	x->mem_budget = mem_budget;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->w = disk_new(flags);
	if (!x->w) {
		extractor_free(x);
		return err_set(err, -ENOMEM, "out of memory");
	}
	if (workers > MAX_WRITERS)
		workers = MAX_WRITERS;
	for (unsigned i = 0; i < workers; i++) {
		ret = -pthread_create(&x->threads[i], NULL, writer_main, x);
		if (ret) {
			extractor_free(x);
			return err_set(err, ret, "cannot start a writer thread: %s", err_str(ret));
		}
		x->nthreads++;
	}
	*x_ret = x;
	return 0;
}

static int defer(struct extractor *x, struct archive_entry *ae, struct err *err);

int extractor_new_stream(int fd, struct extractor **x_ret, struct err *err)
{
	struct extractor *x = calloc(1, sizeof(*x));

	if (!x)
		return err_set(err, -ENOMEM, "out of memory");
	x->stream = true;
	x->target = "the exported stream";
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	x->w = archive_write_new();
	/* pax, not restricted: mtime's nanoseconds in every header with them */
	if (!x->w || archive_write_set_format_pax(x->w) != ARCHIVE_OK ||
	    archive_write_set_format_option(x->w, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(x->w, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(x->w, fd) != ARCHIVE_OK) {
		int ret = err_set(err, -EIO, "cannot start the exported stream: %s",
				  x->w ? archive_error_string(x->w) : "out of memory");

		extractor_free(x);
		return ret;
	}
	*x_ret = x;
	return 0;
}

/* Zeros into the stream's current file, up to byte to. */
static int stream_zeros(struct extractor *x, int64_t to, struct err *err)
{
	static const unsigned char zeros[65536];

	while (x->at < to) {
		size_t n = to - x->at > (int64_t)sizeof(zeros) ? sizeof(zeros) :
			   (size_t)(to - x->at);

		if (archive_write_data(x->w, zeros, n) != (la_ssize_t)n)
			return write_error(err, x->w, x->target, "a file");
		x->at += (int64_t)n;
	}
	return 0;
}

/* An entry into the stream now (links: at the end). */
static int stream_begin(struct extractor *x, struct archive_entry *ae,
			const char *path, struct err *err)
{
	struct archive_entry *c;
	int ret;

	/* directories last too: content written into one after tar has set
	 * its times would change them (its files may come later, from
	 * another data object) */
	if (archive_entry_filetype(ae) == AE_IFLNK || archive_entry_hardlink(ae) ||
	    archive_entry_filetype(ae) == AE_IFDIR)
		return defer(x, ae, err);
	c = archive_entry_clone(ae);
	if (!c)
		return err_set(err, -ENOMEM, "out of memory");
	/* a sparse map stays (pax GNU.sparse 1.0): the zeros written for its
	 * holes are dropped by libarchive's writer; no map: holes as zeros */
	archive_entry_set_fflags(c, 0, 0);  /* a version 1 header's; tar does not take them */
	archive_entry_unset_atime(c);
	archive_entry_unset_ctime(c);
	archive_entry_unset_birthtime(c);
	archive_entry_set_pathname(c, path);
	ret = archive_write_header(x->w, c);
	archive_entry_free(c);
	if (ret < ARCHIVE_WARN)
		return write_error(err, x->w, x->target, path);
	x->at = 0;
	x->cur_size = archive_entry_filetype(ae) == AE_IFREG ? archive_entry_size(ae) : 0;
	if (archive_entry_filetype(ae) == AE_IFREG)
		x->files++;
	return 0;
}

static int stream_data(struct extractor *x, const void *buf, size_t len, int64_t off,
		       struct err *err)
{
	int ret = off < x->at ? err_set(err, -EINVAL, "export: data out of order") :
		  stream_zeros(x, off, err);

	if (ret)
		return ret;
	if (len > (uint64_t)(x->cur_size - x->at))
		return err_set(err, -EINVAL, "export: data past the file's size");
	if (len && archive_write_data(x->w, buf, len) != (la_ssize_t)len)
		return write_error(err, x->w, x->target, "a file");
	x->at += (int64_t)len;
	return 0;
}

static int stream_end(struct extractor *x, struct err *err)
{
	int ret = stream_zeros(x, x->cur_size, err);

	if (!ret && archive_write_finish_entry(x->w) < ARCHIVE_WARN)
		ret = write_error(err, x->w, x->target, "an entry");
	x->cur_size = 0;
	return ret;
}

static int check_error(struct extractor *x, struct err *err)
{
	int ret;

	pthread_mutex_lock(&x->mu);
	ret = x->error;
	if (ret)
		*err = x->err;
	pthread_mutex_unlock(&x->mu);
	return ret;
}

static int defer(struct extractor *x, struct archive_entry *ae, struct err *err)
{
	if (x->ndeferred == x->deferred_cap) {
		size_t cap = x->deferred_cap ? x->deferred_cap * 2 : 64;
		struct archive_entry **n = realloc(x->deferred, cap * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		x->deferred = n;
		x->deferred_cap = cap;
	}
	x->deferred[x->ndeferred] = archive_entry_clone(ae);
	if (!x->deferred[x->ndeferred])
		return err_set(err, -ENOMEM, "out of memory");
	/* a hard link with a size would open its target and truncate it */
	if (archive_entry_hardlink(ae))
		archive_entry_set_size(x->deferred[x->ndeferred], 0);
	x->ndeferred++;
	return 0;
}

/*
 * libarchive sets the times of a directory that already existed at once,
 * and writing into it changes them again: remember every directory's times
 * and set them after everything else.
 */
static int remember_dir(struct extractor *x, struct archive_entry *ae,
			const char *path, struct err *err)
{
	struct dirtime *d;

	if (!archive_entry_mtime_is_set(ae))
		return 0;
	if (x->ndirs == x->dirs_cap) {
		size_t cap = x->dirs_cap ? x->dirs_cap * 2 : 256;
		struct dirtime *n = realloc(x->dirs, cap * sizeof(*n));

		if (!n)
			return err_set(err, -ENOMEM, "out of memory");
		x->dirs = n;
		x->dirs_cap = cap;
	}
	d = &x->dirs[x->ndirs];
	d->path = strdup(path);
	if (!d->path)
		return err_set(err, -ENOMEM, "out of memory");
	d->ts[1].tv_sec = archive_entry_mtime(ae);
	d->ts[1].tv_nsec = archive_entry_mtime_nsec(ae);
	if (archive_entry_atime_is_set(ae)) {
		d->ts[0].tv_sec = archive_entry_atime(ae);
		d->ts[0].tv_nsec = archive_entry_atime_nsec(ae);
	} else {
		d->ts[0] = d->ts[1];
	}
	x->ndirs++;
	return 0;
}

/* Open a directory below the working directory without following links. */
static int open_dir_beneath(const char *path)
{
	char buf[4096], *save = NULL;
	int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (strlen(path) >= sizeof(buf))
		return -1;
	strcpy(buf, path);
	for (char *c = strtok_r(buf, "/", &save); c && fd >= 0;
	     c = strtok_r(NULL, "/", &save)) {
		int next;

		if (!strcmp(c, "."))
			continue;
		next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	return fd;
}

static void set_dir_times(struct extractor *x)
{
	for (size_t i = x->ndirs; i-- > 0;) {
		int fd = open_dir_beneath(x->dirs[i].path);

		if (fd < 0 || futimens(fd, x->dirs[i].ts))
			log_warn("restore into %s: cannot set the times of %s",
				 x->target, x->dirs[i].path);
		if (fd >= 0)
			close(fd);
	}
}

int extractor_begin(struct extractor *x, struct archive_entry *ae,
		    const char *path, struct err *err)
{
	mode_t type = archive_entry_filetype(ae);
	struct job *j;
	int ret = check_error(x, err);

	if (ret)
		return ret;
	if (x->stream)
		return stream_begin(x, ae, path, err);
	if (type == AE_IFDIR) {
		ret = remember_dir(x, ae, path, err);
		if (ret)
			return ret;
	}
	if (type == AE_IFLNK || archive_entry_hardlink(ae))
		return defer(x, ae, err);
	if (type != AE_IFREG || archive_entry_size(ae) == 0 || !x->nthreads) {
		ret = archive_write_header(x->w, ae);
		if (ret < ARCHIVE_WARN)
			return write_error(err, x->w, x->target, path);
		if (ret == ARCHIVE_WARN)
			log_warn("%s: %s", path, archive_error_string(x->w));
		if (type == AE_IFREG)
			x->files++;
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return err_set(err, -ENOMEM, "out of memory");
	j->ae = archive_entry_clone(ae);
	j->path = strdup(path);
	if (!j->ae || !j->path) {
		job_free(j);
		return err_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_lock(&x->mu);
	if (x->qtail)
		x->qtail->next = j;
	else
		x->qhead = j;
	x->qtail = j;
	x->cur = j;
	x->cur_size = archive_entry_size(ae);
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return 0;
}

/*
 * The caller's data is gathered into pieces of PIECE_MAX bytes at offsets that
 * are multiples of PIECE_MAX (or of a sparse region's start), so every write
 * but a file's last covers whole pages: a write that ends inside a page makes
 * btrfs read (zero) that page before the next write fills it.  Pieces stay
 * below the mmap threshold (main.c sets it to 1 MiB), so their memory comes
 * from the heap and is reused; mapping and zeroing fresh pages for every piece
 * cost a quarter of the restore's CPU time.
 */
#define PIECE_MAX (256u << 10)

/* Hand the piece being filled to the writer of the current job. */
static int queue_fill(struct extractor *x, struct err *err)
{
	struct chunk *c = x->fill;

	if (!c)
		return 0;
	x->fill = NULL;
	pthread_mutex_lock(&x->mu);
	while (!x->error && x->mem > 0 && x->mem + c->cap > x->mem_budget)
		pthread_cond_wait(&x->cv, &x->mu);
	if (x->error) {
		int ret = x->error;

		*err = x->err;
		pthread_mutex_unlock(&x->mu);
		free(c);
		return ret;
	}
	if (x->cur->tail)
		x->cur->tail->next = c;
	else
		x->cur->head = c;
	x->cur->tail = c;
	x->mem += c->cap;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return 0;
}

int extractor_data(struct extractor *x, const void *buf, size_t len,
		   int64_t off, struct err *err)
{
	const unsigned char *p = buf;
	int ret;

	if (x->stream)
		return stream_data(x, buf, len, off, err);
	if (!x->cur) {   /* written by this thread */
		if (archive_write_data_block(x->w, buf, len, off) != ARCHIVE_OK)
			return write_error(err, x->w, x->target, "a file");
		return 0;
	}
	while (len) {
		struct chunk *c = x->fill;
		size_t n;

		if (c && c->off + (int64_t)c->len != off) {   /* a hole */
			ret = queue_fill(x, err);
			if (ret)
				return ret;
			c = NULL;
		}
		if (!c) {
			/* a small file, or the tail of a large one, needs less
			 * (and data past the entry's size gets what it brings) */
			uint64_t want = off < x->cur_size ? (uint64_t)(x->cur_size - off) : 0;
			size_t cap;

			if (want < len)
				want = len;
			cap = want < PIECE_MAX ? (size_t)want : PIECE_MAX;
			c = malloc(sizeof(*c) + cap);
			if (!c)
				return err_set(err, -ENOMEM, "out of memory");
			c->next = NULL;
			c->off = off;
			c->len = 0;
			c->cap = cap;
			x->fill = c;
		}
		n = c->cap - c->len;
		if (n > len)
			n = len;
		memcpy(c->data + c->len, p, n);
		c->len += n;
		p += n;
		off += (int64_t)n;
		len -= n;
		if (c->len == c->cap) {
			ret = queue_fill(x, err);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int extractor_end(struct extractor *x, struct err *err)
{
	int ret;

	if (x->stream)
		return stream_end(x, err);
	if (!x->cur) {
		if (archive_write_finish_entry(x->w) < ARCHIVE_WARN)
			return write_error(err, x->w, x->target, "an entry");
		return check_error(x, err);
	}
	ret = queue_fill(x, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&x->mu);
	if (x->cur->done)
		job_free(x->cur);
	else
		x->cur->ended = true;
	x->cur = NULL;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	return check_error(x, err);
}

static void join_writers(struct extractor *x)
{
	free(x->fill);
	x->fill = NULL;
	pthread_mutex_lock(&x->mu);
	x->closing = true;
	if (x->cur) {
		if (x->cur->done)
			job_free(x->cur);
		else
			x->cur->ended = true;
		x->cur = NULL;
	}
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	for (unsigned i = 0; i < x->nthreads; i++)
		pthread_join(x->threads[i], NULL);
	x->nthreads = 0;
}

int extractor_finish(struct extractor *x, struct extract_stats *st,
		     struct err *err)
{
	int ret;

	join_writers(x);
	ret = check_error(x, err);
	if (ret)
		return ret;
	/* links, then (a stream's) directories */
	for (size_t k = 0; k < 2 * x->ndeferred; k++) {
		struct archive_entry *ae = x->deferred[k % x->ndeferred];

		if ((archive_entry_filetype(ae) == AE_IFDIR) != (k >= x->ndeferred))
			continue;
		if (archive_write_header(x->w, ae) < ARCHIVE_WARN ||
		    archive_write_finish_entry(x->w) < ARCHIVE_WARN)
			return write_error(err, x->w, x->target, archive_entry_pathname(ae));
	}
	if (archive_write_close(x->w) != ARCHIVE_OK)
		return write_error(err, x->w, x->target, "directory metadata");
	x->finished = true;
	set_dir_times(x);
	if (st)
		st->files = x->files;
	return 0;
}

void extractor_free(struct extractor *x)
{
	struct job *j, *n;

	if (!x)
		return;
	join_writers(x);
	for (j = x->qhead; j; j = n) {
		n = j->next;
		job_free(j);
	}
	for (size_t i = 0; i < x->ndeferred; i++)
		archive_entry_free(x->deferred[i]);
	free(x->deferred);
	for (size_t i = 0; i < x->ndirs; i++)
		free(x->dirs[i].path);
	free(x->dirs);
	/* a stream not finished: a failure.  archive_write_free would close
	 * w — pad the entry cut short to its size and end the stream as a
	 * valid archive, so that `export | tar -x` passed on a broken export.
	 * (Not the disk writer: failed, its free skips the close that frees
	 * its directory fixups — a leak — and nothing is left to mislead.) */
	if (x->w && x->stream && !x->finished)
		archive_write_fail(x->w);
	if (x->w)
		archive_write_free(x->w);
	pthread_mutex_destroy(&x->mu);
	pthread_cond_destroy(&x->cv);
	free(x);
}

#define CAP_XATTR "security.capability"

static bool has_cap_xattr(struct archive_entry *ae)
{
	const char *name;
	const void *value;
	size_t size;
	bool cap = false;

	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK)
		if (!strcmp(name, CAP_XATTR))
			cap = true;
	return cap;
}

/* Rebuild ae's xattrs without security.capability. */
static int drop_cap_xattr(struct archive_entry *ae, struct err *err)
{
	struct kept { char *name; void *value; size_t size; } *keep;
	int count = archive_entry_xattr_reset(ae), ret = 0;
	const char *name;
	const void *value;
	size_t size, n = 0;

	keep = calloc(count > 0 ? (size_t)count : 1, sizeof(*keep));
	if (!keep)
		return err_set(err, -ENOMEM, "out of memory");
	while (n < (size_t)count &&
	       archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK) {
		if (!strcmp(name, CAP_XATTR))
			continue;
		keep[n].name = strdup(name);
		keep[n].value = malloc(size ? size : 1);
		keep[n].size = size;
		if (!keep[n].name || !keep[n].value) {
			free(keep[n].name);
			free(keep[n].value);
			ret = err_set(err, -ENOMEM, "out of memory");
			goto free_keep;
		}
		memcpy(keep[n++].value, value, size);
	}
	archive_entry_xattr_clear(ae);
	for (size_t i = 0; i < n; i++)
		archive_entry_xattr_add_entry(ae, keep[i].name, keep[i].value, keep[i].size);
free_keep:
	for (size_t i = 0; i < n; i++) {
		free(keep[i].name);
		free(keep[i].value);
	}
	free(keep);
	return ret;
}

int extract_strip_privileges(struct archive_entry *ae, unsigned *dropped,
			     struct err *err)
{
	mode_t mode = archive_entry_mode(ae);
	bool counts = archive_entry_filetype(ae) != AE_IFLNK && !archive_entry_hardlink(ae);
	unsigned n = 0;
	int ret;

	*dropped = 0;
	if (mode & S_ISUID)
		n++;
	if (mode & S_ISGID)
		n++;
	if (n)
		archive_entry_set_mode(ae, mode & ~(mode_t)(S_ISUID | S_ISGID));
	if (has_cap_xattr(ae)) {
		ret = drop_cap_xattr(ae, err);
		if (ret)
			return ret;
		n++;
	}
	*dropped = counts ? n : 0;
	return 0;
}

/* Is p safe to create under the target?  No absolute path, no "..". */
bool extract_path_safe(const char *p)
{
	if (!p || !*p || p[0] == '/')
		return false;
	for (const char *s = p; *s;) {
		const char *e = strchrnul(s, '/');

		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = *e ? e + 1 : e;
	}
	return true;
}

/* "./" → ".", "a/b/" → "a/b" (directories carry a slash in tar) */
void extract_norm_path(char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	if (n == 0) {
		p[0] = '.';
		p[1] = '\0';
	}
}
