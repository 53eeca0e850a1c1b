// SPDX-License-Identifier: MIT
/*
 * Read-ahead with failover across copies (see readahead.h).
 *
 * Two locks: src_lock guards the source choice (the current source and
 * where each frame came from), used by every reader; mu guards the ring of
 * the started range, and cv wakes the reader thread (a slot freed, the
 * range cancelled) and the fetches (a block filled).
 */
#include "stream/readahead.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "stream/frame.h"

struct ra_block {
	uint64_t off, len;            /* compressed bytes */
	uint32_t left;                /* frames not yet copied out */
	size_t src;                   /* the source it was read from */
	bool filled;
	bool direct;                  /* one frame larger than a block: not
				       * read ahead, its fetch reads it */
	int ret;                      /* the read failed (from every source) */
	struct err err;
	unsigned char *buf;
};

struct readahead {
	const struct seek_table *st;
	size_t nsources;
	struct readahead_ops ops;
	void *ctx;

	pthread_mutex_t src_lock;
	size_t src;                   /* the current source */
	unsigned char *frame_src;     /* per frame: 1 + the source it came from */

	/* the started range */
	bool running;
	uint32_t next, last;          /* next frame to read; the range's last */
	uint64_t head, tail;          /* blocks started / retired (ring indices) */
	struct ra_block b[READAHEAD_SLOTS];
	bool stop;
	int failed;                   /* a block could not be read from any source: */
	struct err fail_err;          /* every later frame fails with its error */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
};

/*
 * len bytes at off from the current source, going on to the next source
 * when one fails.  attempt > 0: the bytes did not decode; read them from the
 * attempt-th source after *src_ret (the one they came from).  On success
 * *src_ret is the source read.
 */
static int ra_read(struct readahead *ra, uint64_t off, size_t len, unsigned attempt,
		   void *buf, struct err *err, size_t *src_ret)
{
	size_t src, idx;
	int ret;

	for (;;) {
		struct err e = { 0 };

		pthread_mutex_lock(&ra->src_lock);
		src = attempt ? *src_ret : ra->src;
		pthread_mutex_unlock(&ra->src_lock);
		/* a frame that did not decode: the same bytes from the next source */
		idx = src + attempt;
		if (idx >= ra->nsources)
			return -ENODATA;
		if (attempt && ra->ops.retry)
			ra->ops.retry(ra->ctx, idx - 1, idx, off);
		ret = ra->ops.read(ra->ctx, idx, off, len, buf, &e);
		if (!ret) {
			*src_ret = idx;
			return 0;
		}
		if (attempt || src + 1 >= ra->nsources || ret == -ENOMEM) {
			*err = e;
			return ret;
		}
		/* the source does not answer (or lacks bytes): go on from the
		 * next one, for every later frame too */
		pthread_mutex_lock(&ra->src_lock);
		if (ra->src == src) {
			ra->src = src + 1;
			if (ra->ops.failover)
				ra->ops.failover(ra->ctx, src, &e);
		}
		pthread_mutex_unlock(&ra->src_lock);
	}
}

/* Remember that frame i came from source src (for a retry). */
static void ra_note(struct readahead *ra, uint32_t i, size_t src)
{
	if (i >= ra->st->nframes)
		return;
	pthread_mutex_lock(&ra->src_lock);
	ra->frame_src[i] = (unsigned char)(src + 1);
	pthread_mutex_unlock(&ra->src_lock);
}

/* Frame i read directly (from the current source, or the next). */
static int ra_read_frame(struct readahead *ra, uint32_t i, uint64_t off, size_t len,
			 void *buf, struct err *err)
{
	size_t src = 0;
	int ret = ra_read(ra, off, len, 0, buf, err, &src);

	if (!ret)
		ra_note(ra, i, src);
	return ret;
}

/* Claim the next block of the range: whole frames, up to a block's bytes. */
static struct ra_block *ra_claim(struct readahead *ra)
{
	const struct seek_table *st = ra->st;
	uint32_t f = ra->next, g = f;
	uint64_t len = st->e[f].c_size;
	struct ra_block *b;

	while (g < ra->last && len + st->e[g + 1].c_size <= READAHEAD_BLOCK) {
		g++;
		len += st->e[g].c_size;
	}
	b = &ra->b[ra->head % READAHEAD_SLOTS];
	free(b->buf);
	memset(b, 0, sizeof(*b));
	b->off = st->e[f].c_off;
	b->len = len;
	b->left = g - f + 1;
	ra->head++;
	ra->next = g + 1;
	return b;
}

static void *ra_main(void *arg)
{
	struct readahead *ra = arg;

	pthread_mutex_lock(&ra->mu);
	while (!ra->stop && !ra->failed && ra->next <= ra->last) {
		struct ra_block *b;
		int ret;

		if (ra->head - ra->tail == READAHEAD_SLOTS) {
			pthread_cond_wait(&ra->cv, &ra->mu);
			continue;
		}
		b = ra_claim(ra);
		if (b->len > READAHEAD_BLOCK) {
			/* a frame this large is read by its fetch alone:
			 * read-ahead memory stays SLOTS x BLOCK */
			b->direct = true;
			b->filled = true;
			pthread_cond_broadcast(&ra->cv);
			continue;
		}
		pthread_mutex_unlock(&ra->mu);

		b->buf = malloc(b->len ? b->len : 1);
		if (!b->buf)
			ret = err_set(&b->err, -ENOMEM, "out of memory");
		else  /* the same source choice and failover as for one frame */
			ret = ra_read(ra, b->off, b->len, 0, b->buf, &b->err, &b->src);

		pthread_mutex_lock(&ra->mu);
		b->ret = ret;
		b->filled = true;
		if (ret) {   /* every source was tried: the range fails with it */
			ra->failed = ret;
			ra->fail_err = b->err;
		}
		pthread_cond_broadcast(&ra->cv);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

int readahead_new(const struct seek_table *st, size_t nsources,
		  const struct readahead_ops *ops, void *ctx,
		  struct readahead **ra_ret, struct err *err)
{
	struct readahead *ra;

	if (!st || !ops || !ops->read || !ra_ret)
		return err_set(err, -EINVAL, "read-ahead: no seek table or read callback");
	/* frame_src holds 1 + a source in a byte */
	if (!nsources || nsources >= UCHAR_MAX)
		return err_set(err, -EINVAL, "read-ahead: %zu copies of the data (1 to %d)",
			       nsources, UCHAR_MAX - 1);
	ra = calloc(1, sizeof(*ra));
	if (!ra)
		return err_set(err, -ENOMEM, "out of memory");
	ra->frame_src = calloc(st->nframes ? st->nframes : 1, 1);
	if (!ra->frame_src) {
		free(ra);
		return err_set(err, -ENOMEM, "out of memory");
	}
	ra->st = st;
	ra->nsources = nsources;
	ra->ops = *ops;
	ra->ctx = ctx;
	pthread_mutex_init(&ra->src_lock, NULL);
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->cv, NULL);
	*ra_ret = ra;
	return 0;
}

int readahead_start(struct readahead *ra, uint32_t first, uint32_t last,
		    struct err *err)
{
	int ret;

	if (ra->running)
		return err_set(err, -EBUSY, "read-ahead: a range is already being read");
	if (first > last || last >= ra->st->nframes)
		return 0;      /* no frame to read ahead */
	memset(ra->b, 0, sizeof(ra->b));
	ra->next = first;
	ra->last = last;
	ra->head = ra->tail = 0;
	ra->stop = false;
	ra->failed = 0;
	err_clear(&ra->fail_err);
	ret = -pthread_create(&ra->thread, NULL, ra_main, ra);
	if (ret)
		return err_set(err, ret, "cannot start the read-ahead thread: %s",
			       err_str(ret));
	ra->running = true;
	return 0;
}

/* The block of the ring holding [off, off + len), or NULL. */
static struct ra_block *ra_find(struct readahead *ra, uint64_t off, size_t len)
{
	for (uint64_t k = ra->tail; k < ra->head; k++) {
		struct ra_block *c = &ra->b[k % READAHEAD_SLOTS];

		if (off >= c->off && off + len <= c->off + c->len)
			return c;
	}
	return NULL;
}

/*
 * Wait for the block holding [off, off + len): 0 with it filled in *b_ret;
 * 1 when it is not read ahead (read it directly); or the range's error
 * (cancelled, or the block that failed before it).
 */
static int ra_wait(struct readahead *ra, uint64_t off, size_t len,
		   struct ra_block **b_ret, struct err *err)
{
	int ret = 0;

	pthread_mutex_lock(&ra->mu);
	for (;;) {
		struct ra_block *b;
		uint64_t lo;

		if (ra->stop) {
			ret = err_set(err, -ECANCELED, "the restore stopped");
			break;
		}
		b = ra_find(ra, off, len);
		if (b && b->filled) {
			*b_ret = b;
			break;
		}
		if (!b && ra->failed) {   /* the reader stopped there */
			ret = ra->failed;
			*err = ra->fail_err;
			break;
		}
		/* where the blocks not yet retired start */
		lo = ra->tail < ra->head ? ra->b[ra->tail % READAHEAD_SLOTS].off :
		     ra->next <= ra->last ? ra->st->e[ra->next].c_off : UINT64_MAX;
		if (!b && (off < lo || ra->next > ra->last)) {
			ret = 1;  /* not read ahead (never for the unframer's frames) */
			break;
		}
		/* its block is being read, or comes next: the reader is not
		 * stuck, since every frame of the blocks before is claimed */
		pthread_cond_wait(&ra->cv, &ra->mu);
	}
	pthread_mutex_unlock(&ra->mu);
	return ret;
}

/* One frame of b copied out: retire used blocks in order, freeing slots. */
static void ra_done(struct readahead *ra, struct ra_block *b)
{
	pthread_mutex_lock(&ra->mu);
	b->left--;
	while (ra->tail < ra->head && !ra->b[ra->tail % READAHEAD_SLOTS].left) {
		struct ra_block *t = &ra->b[ra->tail % READAHEAD_SLOTS];

		free(t->buf);
		t->buf = NULL;
		ra->tail++;
	}
	pthread_cond_broadcast(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
}

int readahead_fetch(void *arg, uint64_t off, size_t len, unsigned attempt,
		    void *buf, struct err *err)
{
	struct readahead *ra = arg;
	struct ra_block *b = NULL;
	uint32_t i = seek_table_find_c(ra->st, off);
	size_t src;
	int ret;

	if (attempt) {
		/* from the source after the one this frame came from */
		pthread_mutex_lock(&ra->src_lock);
		src = i < ra->st->nframes && ra->frame_src[i] ? ra->frame_src[i] - 1u : ra->src;
		pthread_mutex_unlock(&ra->src_lock);
		return ra_read(ra, off, len, attempt, buf, err, &src);
	}
	if (!ra->running)
		return ra_read_frame(ra, i, off, len, buf, err);
	ret = ra_wait(ra, off, len, &b, err);
	if (ret < 0)
		return ret;
	if (ret > 0)
		return ra_read_frame(ra, i, off, len, buf, err);
	if (b->direct) {
		ret = ra_read_frame(ra, i, off, len, buf, err);
	} else if (b->ret) {
		*err = b->err;
		ret = b->ret;
	} else {
		memcpy(buf, b->buf + (off - b->off), len);
		ra_note(ra, i, b->src);
	}
	ra_done(ra, b);
	return ret;
}

void readahead_cancel(struct readahead *ra)
{
	if (!ra || !ra->running)
		return;
	pthread_mutex_lock(&ra->mu);
	ra->stop = true;
	pthread_cond_broadcast(&ra->cv);
	pthread_mutex_unlock(&ra->mu);
}

void readahead_stop(struct readahead *ra)
{
	if (!ra || !ra->running)
		return;
	readahead_cancel(ra);
	pthread_join(ra->thread, NULL);
	for (unsigned i = 0; i < READAHEAD_SLOTS; i++) {
		free(ra->b[i].buf);
		ra->b[i].buf = NULL;
	}
	ra->running = false;
}

void readahead_free(struct readahead *ra)
{
	if (!ra)
		return;
	readahead_stop(ra);
	pthread_mutex_destroy(&ra->src_lock);
	pthread_mutex_destroy(&ra->mu);
	pthread_cond_destroy(&ra->cv);
	free(ra->frame_src);
	free(ra);
}
