// SPDX-License-Identifier: MIT
/*
 * Parallel zstd framing with the seekable-format seek table, and the
 * parallel reader of the same.  See frame.h.
 */
#include "stream/frame.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>
#include <zstd.h>

#include "common/err.h"
#include "common/fault.h"
#include "stream/seal.h"

#define MAX_WORKERS 64

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- writer */

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct fslot {
	unsigned char *in;
	size_t in_len;
	unsigned char *out;
	size_t out_len;
	uint64_t seq;
	enum slot_state state;
};

struct framer {
	struct framer_opts opts;
	framer_out_fn out;
	void *ctx;
	size_t out_cap;

	pthread_mutex_t mu;
	pthread_cond_t cv_work;   /* workers: a frame was queued */
	pthread_cond_t cv_done;   /* the writer: a frame was compressed */
	pthread_cond_t cv_free;   /* the producer: a slot was written out */
	struct fslot *slots;
	unsigned nslots;
	uint64_t fill_seq;      /* frame the producer fills next */
	uint64_t work_seq;      /* frame the next free worker takes */
	uint64_t out_seq;       /* frame the writer emits next */
	bool finishing, stopping;
	bool filling;           /* producer-only: slot fill_seq is being filled */
	int error;
	struct err err;

	pthread_t threads[MAX_WORKERS + 1];
	unsigned nthreads;

	unsigned char *table;   /* seek table entries, 12 bytes each */
	size_t table_len, table_cap;
	struct framer_stats stats;
};

static void framer_fail(struct framer *f, const struct err *e, int code)
{
	/* called with f->mu held */
	if (!f->error) {
		f->error = code < 0 ? code : -EIO;
		if (e && e->code)
			f->err = *e;
		else
			err_set(&f->err, f->error, "compression stream failed: %s",
				err_str(f->error));
	}
	pthread_cond_broadcast(&f->cv_work);
	pthread_cond_broadcast(&f->cv_done);
	pthread_cond_broadcast(&f->cv_free);
}

static void framer_wake_all(struct framer *f)
{
	pthread_cond_broadcast(&f->cv_work);
	pthread_cond_broadcast(&f->cv_done);
	pthread_cond_broadcast(&f->cv_free);
}

/* The calling thread's CPU priority (Linux: per thread); best effort. */
static void set_cpu_priority(int prio)
{
	struct sched_param sp = { 0 };

	if (prio == FRAMER_CPU_IDLE && sched_setscheduler(0, SCHED_IDLE, &sp) == 0)
		return;
	if (prio != FRAMER_CPU_NORMAL)   /* idle refused: at least nice 19 */
		(void)setpriority(PRIO_PROCESS, (id_t)gettid(),
				  prio == FRAMER_CPU_IDLE ? 19 : 10);
}

static void *framer_worker(void *arg)
{
	struct framer *f = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();

	set_cpu_priority(f->opts.cpu_priority);
	if (cctx) {
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, f->opts.level);
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	}
	pthread_mutex_lock(&f->mu);
	if (!cctx)
		framer_fail(f, NULL, -ENOMEM);
	for (;;) {
		struct fslot *s = &f->slots[f->work_seq % f->nslots];
		size_t r;

		while (!f->stopping && !f->error &&
		       !(s->state == SLOT_QUEUED && s->seq == f->work_seq)) {
			pthread_cond_wait(&f->cv_work, &f->mu);
			s = &f->slots[f->work_seq % f->nslots];
		}
		if (f->stopping || f->error)
			break;
		s->state = SLOT_BUSY;
		f->work_seq++;
		/* the next queued frame may be waiting for a worker too */
		pthread_cond_signal(&f->cv_work);
		pthread_mutex_unlock(&f->mu);

		r = ZSTD_compress2(cctx, s->out, f->out_cap, s->in, s->in_len);

		pthread_mutex_lock(&f->mu);
		if (ZSTD_isError(r)) {
			struct err e = { 0 };

			err_set(&e, -EIO, "zstd compression failed: %s",
				ZSTD_getErrorName(r));
			framer_fail(f, &e, -EIO);
			break;
		}
		s->out_len = r;
		s->state = SLOT_DONE;
		if (s->seq == f->out_seq)
			pthread_cond_signal(&f->cv_done);
	}
	pthread_mutex_unlock(&f->mu);
	ZSTD_freeCCtx(cctx);
	return NULL;
}

static int table_add(struct framer *f, const struct fslot *s)
{
	unsigned char *p;

	if (f->table_len + 12 > f->table_cap) {
		size_t cap = f->table_cap ? f->table_cap * 2 : 12 * 256;
		unsigned char *t = realloc(f->table, cap);

		if (!t)
			return -ENOMEM;
		f->table = t;
		f->table_cap = cap;
	}
	p = f->table + f->table_len;
	put_le32(p, (uint32_t)s->out_len);
	put_le32(p + 4, (uint32_t)s->in_len);
	if (f->opts.seal) {       /* sealed: no checksums (frame.h) */
		f->table_len += 8;
		return 0;
	}
	/* the frame's own content checksum is XXH64's low 32 bits, as here */
	memcpy(p + 8, s->out + s->out_len - 4, 4);
	f->table_len += 12;
	return 0;
}

static void *framer_writer(void *arg)
{
	struct framer *f = arg;

	pthread_mutex_lock(&f->mu);
	for (;;) {
		struct fslot *s = &f->slots[f->out_seq % f->nslots];
		struct err e = { 0 };
		int ret;

		bool last;

		/* sealed: a frame goes out once it is known whether it is the
		 * last (another was queued after it, or the stream finished) */
		while (!f->stopping && !f->error &&
		       !(s->state == SLOT_DONE && s->seq == f->out_seq &&
			 (!f->opts.seal || f->finishing || f->fill_seq > f->out_seq + 1)) &&
		       !(f->finishing && f->out_seq == f->fill_seq))
			pthread_cond_wait(&f->cv_done, &f->mu);
		if (f->stopping || f->error ||
		    (f->finishing && f->out_seq == f->fill_seq))
			break;
		last = f->finishing && f->out_seq + 1 == f->fill_seq;
		pthread_mutex_unlock(&f->mu);

		ret = 0;
		if (f->opts.seal) {
			ret = seal_piece(f->opts.seal, s->seq, last, s->out, s->out_len,
					 s->out, &e);
			if (!ret)
				s->out_len += SEAL_TAG_LEN;
		}
		if (!ret)
			ret = f->out(f->ctx, s->out, s->out_len, &e);
		if (!ret)
			ret = table_add(f, s);

		pthread_mutex_lock(&f->mu);
		if (ret) {
			framer_fail(f, &e, ret);
			break;
		}
		f->stats.bytes_out += s->out_len;
		f->stats.frames++;
		s->state = SLOT_FREE;
		f->out_seq++;
		pthread_cond_signal(&f->cv_free);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

int framer_new(const struct framer_opts *opts, framer_out_fn out, void *ctx,
	       struct framer **framer_ret, struct err *err)
{
	struct framer *f;
	unsigned workers;
	int ret;

	if (!opts || !out || !framer_ret)
		return err_set(err, -EINVAL, "framer_new: bad arguments");
	if (opts->level < 1 || opts->level > ZSTD_maxCLevel())
		return err_set(err, -EINVAL,
			       "compression level %d is out of range; use 1..%d",
			       opts->level, ZSTD_maxCLevel());
	f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(err, -ENOMEM, "out of memory");
	f->opts = *opts;
	if (!f->opts.frame_size)
		f->opts.frame_size = FRAME_SIZE_DEFAULT;
	if (f->opts.frame_size > (1u << 30)) {
		free(f);
		return err_set(err, -EINVAL, "frame size too large (max 1 GiB)");
	}
	workers = opts->workers ? opts->workers : online_cpus();
	if (workers > MAX_WORKERS)
		workers = MAX_WORKERS;
	f->out = out;
	f->ctx = ctx;
	f->out_cap = ZSTD_compressBound(f->opts.frame_size);
	f->nslots = workers + 2;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv_work, NULL);
	pthread_cond_init(&f->cv_done, NULL);
	pthread_cond_init(&f->cv_free, NULL);
	f->slots = calloc(f->nslots, sizeof(*f->slots));
	if (!f->slots) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (unsigned i = 0; i < f->nslots; i++) {
		/* large mallocs are mmap'd: untouched pages cost no memory */
		f->slots[i].in = malloc(f->opts.frame_size);
		f->slots[i].out = malloc(f->out_cap + SEAL_TAG_LEN);
		if (!f->slots[i].in || !f->slots[i].out) {
			ret = err_set(err, -ENOMEM, "out of memory for frame buffers");
			goto out_free;
		}
	}
	for (unsigned i = 0; i <= workers; i++) {
		ret = -pthread_create(&f->threads[i], NULL,
				      i ? framer_worker : framer_writer, f);
		if (ret) {
			err_set(err, ret, "cannot start compression thread: %s",
				err_str(ret));
			goto out_free;
		}
		f->nthreads++;
	}
	*framer_ret = f;
	return 0;

out_free:
	framer_free(f);
	return ret;
}

/* Hand the frame being filled to the workers.  Called with mu held. */
static void framer_queue(struct framer *f)
{
	struct fslot *s = &f->slots[f->fill_seq % f->nslots];

	s->state = SLOT_QUEUED;
	f->filling = false;
	f->fill_seq++;
	f->stats.bytes_in += s->in_len;
	pthread_cond_signal(&f->cv_work);
	if (f->opts.seal)       /* the previous frame is now known not last */
		pthread_cond_signal(&f->cv_done);
}

int framer_write(struct framer *f, const void *buf, size_t len, struct err *err)
{
	const unsigned char *p = buf;

	while (len) {
		struct fslot *s = &f->slots[f->fill_seq % f->nslots];
		size_t n;

		if (!f->filling) {
			pthread_mutex_lock(&f->mu);
			while (!f->error && s->state != SLOT_FREE)
				pthread_cond_wait(&f->cv_free, &f->mu);
			if (f->error) {
				int ret = f->error;

				*err = f->err;
				pthread_mutex_unlock(&f->mu);
				return ret;
			}
			s->state = SLOT_FILLING;
			s->seq = f->fill_seq;
			s->in_len = 0;
			f->filling = true;
			pthread_mutex_unlock(&f->mu);
		}
		n = f->opts.frame_size - s->in_len;
		if (n > len)
			n = len;
		memcpy(s->in + s->in_len, p, n);
		s->in_len += n;
		p += n;
		len -= n;
		if (s->in_len == f->opts.frame_size) {
			pthread_mutex_lock(&f->mu);
			framer_queue(f);
			pthread_mutex_unlock(&f->mu);
		}
	}
	return 0;
}

int framer_finish(struct framer *f, struct framer_stats *stats_ret,
		  struct err *err)
{
	struct fslot *s = &f->slots[f->fill_seq % f->nslots];
	unsigned char hdr[8], foot[SEEK_FOOTER_SIZE];
	struct err e = { 0 };
	int ret;

	pthread_mutex_lock(&f->mu);
	if (f->filling && s->in_len) {
		framer_queue(f);
	} else if (f->filling) {
		s->state = SLOT_FREE;
		f->filling = false;
	}
	f->finishing = true;
	pthread_cond_broadcast(&f->cv_done);
	pthread_mutex_unlock(&f->mu);

	/* the writer thread exits once everything queued is out */
	pthread_join(f->threads[0], NULL);
	f->threads[0] = 0;
	pthread_mutex_lock(&f->mu);
	ret = f->error;
	if (ret)
		*err = f->err;
	pthread_mutex_unlock(&f->mu);
	if (ret)
		return ret;

	if (fault_hit("framer.finish", &ret))
		return err_set(err, ret, "injected fault at framer.finish");
	put_le32(hdr, SEEK_SKIPPABLE_MAGIC);
	put_le32(hdr + 4, (uint32_t)(f->table_len + SEEK_FOOTER_SIZE));
	put_le32(foot, f->stats.frames);
	foot[4] = f->opts.seal ? 0 : 0x80;   /* Checksum_Flag */
	put_le32(foot + 5, SEEK_MAGIC);
	ret = f->out(f->ctx, hdr, sizeof(hdr), &e);
	if (!ret && f->table_len)
		ret = f->out(f->ctx, f->table, f->table_len, &e);
	if (!ret)
		ret = f->out(f->ctx, foot, sizeof(foot), &e);
	if (ret) {
		*err = e;
		if (!err->code)
			err_set(err, ret, "writing the seek table failed");
		return ret;
	}
	f->stats.bytes_out += sizeof(hdr) + f->table_len + sizeof(foot);
	if (stats_ret)
		*stats_ret = f->stats;
	return 0;
}

void framer_free(struct framer *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stopping = true;
	framer_wake_all(f);
	pthread_mutex_unlock(&f->mu);
	for (unsigned i = 0; i < f->nthreads; i++)
		if (f->threads[i])
			pthread_join(f->threads[i], NULL);
	if (f->slots) {
		for (unsigned i = 0; i < f->nslots; i++) {
			free(f->slots[i].in);
			free(f->slots[i].out);
		}
		free(f->slots);
	}
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv_work);
	pthread_cond_destroy(&f->cv_done);
	pthread_cond_destroy(&f->cv_free);
	free(f->table);
	free(f);
}

/* ------------------------------------------------------------ seek table */

int seek_table_size(const unsigned char *footer, size_t len, uint64_t obj_size,
		    size_t *need_ret, uint32_t *nframes_ret, struct err *err)
{
	uint64_t need;
	uint32_t n;
	int sz;

	if (len < SEEK_FOOTER_SIZE || obj_size < SEEK_FOOTER_SIZE)
		return err_set(err, -EBADMSG,
			       "object of %llu bytes is too short to hold a zstd seek table (truncated or not written by snapship)",
			       (unsigned long long)obj_size);
	footer += len - SEEK_FOOTER_SIZE;
	if (get_le32(footer + 5) != SEEK_MAGIC)
		return err_set(err, -EBADMSG,
			       "no zstd seek table at the end of the object (truncated or not written by snapship)");
	if (footer[4] & 0x7c)
		return err_set(err, -EBADMSG, "seek table descriptor has reserved bits set");
	n = get_le32(footer);
	sz = (footer[4] & 0x80) ? 12 : 8;
	need = 8 + (uint64_t)n * (uint64_t)sz + SEEK_FOOTER_SIZE;
	/* every frame takes SEEK_FRAME_MIN bytes besides its table entry */
	if (n > 0x8000000u || need > obj_size ||
	    (obj_size - need) / SEEK_FRAME_MIN < n)
		return err_set(err, -EBADMSG,
			       "seek table claims %u frames, more than an object of %llu bytes can hold (corrupt)",
			       n, (unsigned long long)obj_size);
	*need_ret = (size_t)need;
	if (nframes_ret)
		*nframes_ret = n;
	return 0;
}

int seek_table_parse(const unsigned char *tail, size_t len, uint64_t obj_size,
		     uint32_t frame_size, struct seek_table **st_ret,
		     struct err *err)
{
	struct seek_table *st;
	const unsigned char *p;
	size_t need, c_max;
	uint64_t c = 0, d = 0;
	int esz, ret;

	if (!frame_size || frame_size > (1u << 30))
		return err_set(err, -EBADMSG,
			       "frame size %u is out of range (1 to 1 GiB): corrupt manifest",
			       frame_size);
	ret = seek_table_size(tail, len, obj_size, &need, NULL, err);
	if (ret)
		return ret;
	if (len < need)
		return err_set(err, -EBADMSG, "seek table truncated (object too short)");
	p = tail + len - need;
	if (get_le32(p) != SEEK_SKIPPABLE_MAGIC || get_le32(p + 4) != need - 8)
		return err_set(err, -EBADMSG, "seek table frame header is corrupt");
	c_max = ZSTD_compressBound(frame_size);
	st = calloc(1, sizeof(*st));
	if (!st)
		return err_set(err, -ENOMEM, "out of memory");
	st->nframes = get_le32(tail + len - SEEK_FOOTER_SIZE);
	st->has_checksums = !!(tail[len - 5] & 0x80);
	esz = st->has_checksums ? 12 : 8;
	if (!st->has_checksums)     /* sealed frames (no checksums) carry a tag */
		c_max += SEAL_TAG_LEN;
	st->e = calloc(st->nframes ? st->nframes : 1, sizeof(*st->e));
	if (!st->e) {
		free(st);
		return err_set(err, -ENOMEM, "out of memory");
	}
	p += 8;
	for (uint32_t i = 0; i < st->nframes; i++, p += esz) {
		struct seek_entry *e = &st->e[i];

		e->c_off = c;
		e->d_off = d;
		e->c_size = get_le32(p);
		e->d_size = get_le32(p + 4);
		e->checksum = st->has_checksums ? get_le32(p + 8) : 0;
		if (!e->d_size || e->d_size > frame_size ||
		    e->c_size < SEEK_FRAME_MIN || e->c_size > c_max) {
			ret = err_set(err, -EBADMSG,
				      "seek table entry %u is corrupt: %u bytes compressed to %u (frames hold 1 to %u bytes, compressed %u to %zu)",
				      i, e->d_size, e->c_size, frame_size,
				      SEEK_FRAME_MIN, c_max);
			seek_table_free(st);
			return ret;
		}
		c += e->c_size;
		d += e->d_size;
	}
	st->c_total = c;
	st->d_total = d;
	if (c + need != obj_size) {
		seek_table_free(st);
		return err_set(err, -EBADMSG,
			       "seek table does not match the object size (%llu + %zu != %llu): object truncated or corrupt",
			       (unsigned long long)c, need, (unsigned long long)obj_size);
	}
	*st_ret = st;
	return 0;
}

void seek_table_free(struct seek_table *st)
{
	if (!st)
		return;
	free(st->e);
	free(st);
}

uint32_t seek_table_find(const struct seek_table *st, uint64_t d_off)
{
	uint32_t lo = 0, hi = st->nframes;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (st->e[mid].d_off + st->e[mid].d_size <= d_off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t seek_table_find_c(const struct seek_table *st, uint64_t c_off)
{
	uint32_t lo = 0, hi = st->nframes;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (st->e[mid].c_off < c_off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < st->nframes && st->e[lo].c_off == c_off ? lo : st->nframes;
}

/* ---------------------------------------------------------------- reader */

struct uslot {
	unsigned char *cbuf, *dbuf;
	unsigned char *pbuf;    /* sealed frames: the opened (compressed) bytes */
	size_t ccap, dcap;
	uint32_t frame;
	enum slot_state state;
};

struct unframer {
	const struct seek_table *st;
	uint32_t first, last;
	unframer_fetch_fn fetch;
	void *ctx;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct uslot *slots;
	unsigned nslots;
	uint32_t claim;         /* next frame a worker fetches */
	uint32_t cons;          /* next frame the consumer takes */
	struct uslot *held;
	bool stopping;
	int error;
	struct err err;
	uint32_t err_frame;       /* the frame error is of: the lowest failed */
	pthread_t threads[MAX_WORKERS];
	unsigned nthreads;
};

/* How far from frame k unseal_bad looks for the frame it holds: each try
 * reads the whole frame (GHASH), so a corrupt frame costs at most this
 * many reads of it. */
#define UNSEAL_SEARCH 32u

/*
 * Frame k (sealed bytes in, len) does not open as frame k of this object:
 * say why when a try tells (the last flag the other way: the object was
 * cut at a frame boundary, or frames were appended; another number near
 * k: frames swapped or moved), else altered or not this backup's.
 */
static int unseal_bad(const struct seek_table *st, uint32_t k, const unsigned char *in,
		      size_t len, unsigned char *scratch, struct err *e)
{
	bool last = k + 1 == st->nframes;
	uint64_t at = st->e[k].c_off;
	struct err x = { 0 };

	if (!seal_unpiece(st->seal, k, !last, in, len, scratch, &x))
		return err_set(e, -EBADMSG, last ?
			       "frame %u (at byte %llu) is not the last frame its backup wrote: the object was cut at a frame boundary (truncated)" :
			       "frame %u (at byte %llu) is the last frame its backup wrote, yet more follow (frames appended)",
			       k, (unsigned long long)at);
	for (uint32_t d = 1; d <= UNSEAL_SEARCH; d++) {
		uint32_t j[2] = { k - d, k + d };

		for (int i = 0; i < 2; i++) {
			if ((i == 0 && d > k) || j[i] >= st->nframes + UNSEAL_SEARCH)
				continue;
			if (!seal_unpiece(st->seal, j[i], false, in, len, scratch, &x) ||
			    !seal_unpiece(st->seal, j[i], true, in, len, scratch, &x))
				return err_set(e, -EBADMSG,
					       "frame %u (at byte %llu) holds frame %u of the same backup: frames swapped or moved",
					       k, (unsigned long long)at, j[i]);
		}
	}
	return err_set(e, -EBADMSG,
		       "frame %u (at byte %llu) does not authenticate: altered, or spliced in from another backup or object",
		       k, (unsigned long long)at);
}

/* Open sealed frame s->frame into s->pbuf: 0, or -EBADMSG saying why. */
static int unseal_one(struct unframer *u, struct uslot *s, struct err *e)
{
	const struct seek_entry *se = &u->st->e[s->frame];
	bool last = s->frame + 1 == u->st->nframes;
	int ret;

	ret = seal_unpiece(u->st->seal, s->frame, last, s->cbuf, se->c_size, s->pbuf, e);
	if (ret == -EBADMSG)
		ret = unseal_bad(u->st, s->frame, s->cbuf, se->c_size, s->pbuf, e);
	return ret;
}

int seek_table_open_frame(const struct seek_table *st, uint32_t k, const void *buf,
			  size_t len, void *out, struct err *err)
{
	unsigned char *scratch;
	int ret;

	if (!st->seal)
		return 0;
	if (k >= st->nframes || len != st->e[k].c_size || len < SEAL_TAG_LEN)
		return err_set(err, -EINVAL, "seek_table_open_frame: %zu bytes, not frame %u's", len, k);
	ret = seal_unpiece(st->seal, k, k + 1 == st->nframes, buf, len, out, err);
	if (ret != -EBADMSG)
		return ret;
	/* out may be buf: the diagnosis reads the sealed bytes again */
	scratch = malloc(2 * len);
	if (!scratch)
		return err_set(err, -ENOMEM, "out of memory");
	memcpy(scratch, buf, len);
	ret = unseal_bad(st, k, scratch, len, scratch + len, err);
	free(scratch);
	return ret;
}

int seek_table_open_last(const struct seek_table *st, const void *buf, size_t len,
			 struct err *err)
{
	unsigned char *plain;
	int ret;

	if (!st->seal || !st->nframes)
		return 0;
	plain = malloc(len ? len : 1);
	if (!plain)
		return err_set(err, -ENOMEM, "out of memory");
	ret = seek_table_open_frame(st, st->nframes - 1, buf, len, plain, err);
	free(plain);
	return ret;
}

/* Decompress frame s->frame's zstd bytes z (zlen) into s->dbuf, checking
 * them against the seek table: 0, or -EBADMSG naming what is wrong. */
static int unframe_decode(const struct unframer *u, struct uslot *s, ZSTD_DCtx *dctx,
			  const unsigned char *z, size_t zlen, struct err *e)
{
	const struct seek_entry *se = &u->st->e[s->frame];
	/* the header's content size (when given) is the table's; the output
	 * buffer is exactly d_size: a frame holding more fails */
	unsigned long long fcs = ZSTD_getFrameContentSize(z, zlen);
	size_t r;

	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return err_set(e, -EBADMSG,
			       "frame %u (at byte %llu) is corrupt: not a zstd frame",
			       s->frame, (unsigned long long)se->c_off);
	if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != se->d_size)
		return err_set(e, -EBADMSG,
			       "frame %u (at byte %llu) is corrupt: its header claims %llu bytes, the seek table %u",
			       s->frame, (unsigned long long)se->c_off, fcs, se->d_size);
	r = ZSTD_decompressDCtx(dctx, s->dbuf, se->d_size, z, zlen);
	if (ZSTD_isError(r))
		return err_set(e, -EBADMSG, "frame %u (at byte %llu) is corrupt: %s", s->frame,
			       (unsigned long long)se->c_off, ZSTD_getErrorName(r));
	if (r != se->d_size)
		return err_set(e, -EBADMSG, "frame %u is corrupt: %zu bytes instead of %u",
			       s->frame, r, se->d_size);
	if (u->st->has_checksums && (uint32_t)XXH64(s->dbuf, r, 0) != se->checksum)
		return err_set(e, -EBADMSG, "frame %u is corrupt: checksum mismatch", s->frame);
	return 0;
}

static int unframe_one(struct unframer *u, struct uslot *s, ZSTD_DCtx *dctx,
		       struct err *e)
{
	const struct seek_entry *se = &u->st->e[s->frame];
	const bool sealed = u->st->seal != NULL;
	int ret;

	if (sealed && se->c_size < SEAL_TAG_LEN + SEEK_FRAME_MIN)
		return err_set(e, -EBADMSG,
			       "frame %u (at byte %llu) is %u bytes, too short for a sealed frame (corrupt seek table)",
			       s->frame, (unsigned long long)se->c_off, se->c_size);
	if (se->c_size > s->ccap) {
		free(s->cbuf);
		free(s->pbuf);
		s->cbuf = malloc(se->c_size);
		s->pbuf = sealed ? malloc(se->c_size) : NULL;
		s->ccap = s->cbuf && (s->pbuf || !sealed) ? se->c_size : 0;
	}
	if (se->d_size > s->dcap) {
		free(s->dbuf);
		s->dbuf = malloc(se->d_size ? se->d_size : 1);
		s->dcap = s->dbuf ? se->d_size : 0;
	}
	if (!s->cbuf || !s->dbuf || (sealed && !s->pbuf))
		return err_set(e, -ENOMEM, "out of memory for frame buffers");
	for (unsigned attempt = 0;; attempt++) {
		struct err fe = { 0 };

		ret = u->fetch(u->ctx, se->c_off, se->c_size, attempt, s->cbuf,
			       attempt ? &fe : e);
		if (ret == -ENODATA && attempt)
			return -EBADMSG;         /* no other copy: e stands */
		if (ret)
			return attempt ? (*e = fe, ret) : ret;
		err_clear(e);
		/* sealed: opened (authenticated) into pbuf first */
		ret = sealed ? unseal_one(u, s, e) : 0;
		if (!ret)
			ret = sealed ? unframe_decode(u, s, dctx, s->pbuf, se->c_size - SEAL_TAG_LEN, e) :
				       unframe_decode(u, s, dctx, s->cbuf, se->c_size, e);
		if (!ret)
			return 0;
		if (attempt >= 8)
			return ret;
	}
}

static void *unframer_worker(void *arg)
{
	struct unframer *u = arg;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();

	pthread_mutex_lock(&u->mu);
	if (!dctx && !u->error) {
		u->error = err_set(&u->err, -ENOMEM, "out of memory");
		u->err_frame = u->first;
		pthread_cond_broadcast(&u->cv);
	}
	while (!u->stopping && !u->error) {
		struct uslot *s;
		struct err e = { 0 };
		int ret;

		if (u->claim > u->last)
			break;
		s = &u->slots[(u->claim - u->first) % u->nslots];
		if (s->state != SLOT_FREE) {
			pthread_cond_wait(&u->cv, &u->mu);
			continue;
		}
		s->state = SLOT_BUSY;
		s->frame = u->claim++;
		pthread_mutex_unlock(&u->mu);

		ret = unframe_one(u, s, dctx, &e);

		pthread_mutex_lock(&u->mu);
		if (ret) {
			/* the earliest frame's error: frames are claimed in
			 * order, so each before it is done or fails too */
			if (!u->error || s->frame < u->err_frame) {
				u->error = ret;
				u->err = e;
				u->err_frame = s->frame;
			}
		} else {
			s->state = SLOT_DONE;
		}
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

int unframer_new(const struct seek_table *st, uint32_t first, uint32_t last,
		 unsigned workers, unsigned inflight, unframer_fetch_fn fetch,
		 void *ctx, struct unframer **u_ret, struct err *err)
{
	struct unframer *u;
	int ret;

	if (!st || !fetch || !u_ret)
		return err_set(err, -EINVAL, "unframer_new: bad arguments");
	u = calloc(1, sizeof(*u));
	if (!u)
		return err_set(err, -ENOMEM, "out of memory");
	if (!workers)
		workers = online_cpus();
	if (workers > MAX_WORKERS)
		workers = MAX_WORKERS;
	u->st = st;
	u->first = first;
	u->last = last;
	u->fetch = fetch;
	u->ctx = ctx;
	u->claim = u->cons = first;
	u->nslots = inflight ? inflight : workers + 2;
	if (!inflight && first <= last && last < st->nframes) {
		/* the frames in flight hold at most UNFRAME_MEM (at least one);
		 * a slot's buffers grow to the largest frame it decompressed */
		uint64_t c_max = 0, d_max = 0, cost;

		for (uint32_t i = first; i <= last; i++) {
			if (st->e[i].c_size > c_max)
				c_max = st->e[i].c_size;
			if (st->e[i].d_size > d_max)
				d_max = st->e[i].d_size;
		}
		cost = (st->seal ? 2 : 1) * c_max + d_max;   /* sealed: pbuf too */
		if (cost && (uint64_t)u->nslots * cost > UNFRAME_MEM)
			u->nslots = UNFRAME_MEM / cost ? (unsigned)(UNFRAME_MEM / cost) : 1;
	}
	if (workers > u->nslots)
		workers = u->nslots;     /* more would only wait for a slot */
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	u->slots = calloc(u->nslots, sizeof(*u->slots));
	if (!u->slots) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	if (st->nframes == 0 || first > last || last >= st->nframes) {
		/* nothing to read */
		u->claim = u->cons = 1;
		u->first = 1;
		u->last = 0;
	}
	for (unsigned i = 0; i < workers; i++) {
		ret = -pthread_create(&u->threads[i], NULL, unframer_worker, u);
		if (ret) {
			err_set(err, ret, "cannot start thread: %s", err_str(ret));
			goto out_free;
		}
		u->nthreads++;
	}
	*u_ret = u;
	return 0;

out_free:
	unframer_free(u);
	return ret;
}

int unframer_next(struct unframer *u, const void **buf_ret, size_t *len_ret,
		  const void **cbuf_ret, size_t *clen_ret, struct err *err)
{
	struct uslot *s;

	pthread_mutex_lock(&u->mu);
	if (u->held) {
		u->held->state = SLOT_FREE;
		u->held = NULL;
		pthread_cond_broadcast(&u->cv);
	}
	if (u->cons > u->last || u->last < u->first) {
		pthread_mutex_unlock(&u->mu);
		*buf_ret = NULL;
		*len_ret = 0;
		if (cbuf_ret)
			*cbuf_ret = NULL;
		if (clen_ret)
			*clen_ret = 0;
		return 0;
	}
	s = &u->slots[(u->cons - u->first) % u->nslots];
	/* an error of a later frame waits for this one: the error said is
	 * always the first bad frame's, whichever worker found its own first */
	while (!(u->error && u->err_frame <= u->cons) &&
	       !(s->state == SLOT_DONE && s->frame == u->cons))
		pthread_cond_wait(&u->cv, &u->mu);
	if (u->error && u->err_frame <= u->cons) {
		int ret = u->error;

		*err = u->err;
		pthread_mutex_unlock(&u->mu);
		return ret;
	}
	u->held = s;
	u->cons++;
	pthread_mutex_unlock(&u->mu);
	*buf_ret = s->dbuf;
	*len_ret = u->st->e[s->frame].d_size;
	if (cbuf_ret)
		*cbuf_ret = s->cbuf;
	if (clen_ret)
		*clen_ret = u->st->e[s->frame].c_size;
	return 0;
}

void unframer_free(struct unframer *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->mu);
	u->stopping = true;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	for (unsigned i = 0; i < u->nthreads; i++)
		pthread_join(u->threads[i], NULL);
	if (u->slots) {
		for (unsigned i = 0; i < u->nslots; i++) {
			free(u->slots[i].cbuf);
			free(u->slots[i].pbuf);
			free(u->slots[i].dbuf);
		}
		free(u->slots);
	}
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u);
}
