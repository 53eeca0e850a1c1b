// SPDX-License-Identifier: MIT
/*
 * The extent fingerprint (extents.h): the file's EXTENT_DATA items, read
 * page by page with BTRFS_IOC_TREE_SEARCH_V2 on its own descriptor (tree 0:
 * the subvolume of fd), hashed block by block in file order.  Items do not
 * overlap and come sorted by file offset, so one XXH3 state (the block
 * being hashed) is enough.
 */
#include "stream/extents.h"

#include <endian.h>
#include <errno.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/err.h"
#include "common/fault.h"

#define SEARCH_BUF (64u << 10)

/* The item fields, decoded (little-endian on disk, maybe unaligned). */
struct item {
	uint64_t start, len;      /* file range */
	uint8_t type, compression;
	uint64_t bytenr, disk_bytes, ext_off, gen;
	const unsigned char *inl; /* inline data */
	size_t inl_len;
};

struct fp {
	uint64_t size;
	uint32_t bsize, nblocks;
	uint64_t *out;
	XXH3_state_t h;
	uint64_t cur;             /* the block in h; nblocks: none yet */
	uint64_t next_done;       /* blocks before it are in out */
};

static uint64_t le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/* Finish the blocks before b (the one in h, holes as empty). */
static void fp_close_to(struct fp *f, uint64_t b)
{
	uint64_t empty = XXH3_64bits_withSeed(NULL, 0, EXTENTS_SEED);

	if (b > f->nblocks)
		b = f->nblocks;
	while (f->next_done < b) {
		f->out[f->next_done] = f->next_done == f->cur ? XXH3_64bits_digest(&f->h) : empty;
		f->next_done++;
	}
}

/* Add item it's part in each block it overlaps. */
static void fp_item(struct fp *f, const struct item *it)
{
	uint64_t end = it->start + it->len;

	if (end > f->size)
		end = f->size;
	for (uint64_t off = it->start; off < end;) {
		uint64_t b = off / f->bsize, bend = (b + 1) * f->bsize;
		uint64_t cend = end < bend ? end : bend;
		unsigned char rec[42];

		if (b >= f->nblocks)
			return;
		if (b != f->cur) {
			fp_close_to(f, b);
			XXH3_64bits_reset_withSeed(&f->h, EXTENTS_SEED);
			f->cur = b;
		}
		put64(rec, off);
		put64(rec + 8, cend - off);
		rec[16] = it->type;
		rec[17] = it->compression;
		put64(rec + 18, it->bytenr);
		put64(rec + 26, it->disk_bytes);
		put64(rec + 34, it->inl ? 0 : it->ext_off + (off - it->start));
		XXH3_64bits_update(&f->h, rec, sizeof(rec));
		put64(rec, it->gen);
		XXH3_64bits_update(&f->h, rec, 8);
		if (it->inl)
			XXH3_64bits_update(&f->h, it->inl, it->inl_len);
		off = cend;
	}
}

/* Decode one EXTENT_DATA item of len bytes at offset key_off; -1: bad. */
static int item_decode(const unsigned char *p, uint32_t len, uint64_t key_off,
		       struct item *it)
{
	const size_t head = offsetof(struct btrfs_file_extent_item, disk_bytenr);

	if (len < head)
		return -1;
	memset(it, 0, sizeof(*it));
	it->start = key_off;
	it->gen = le64(p + offsetof(struct btrfs_file_extent_item, generation));
	it->compression = p[offsetof(struct btrfs_file_extent_item, compression)];
	it->type = p[offsetof(struct btrfs_file_extent_item, type)];
	if (it->type == BTRFS_FILE_EXTENT_INLINE) {
		it->len = le64(p + offsetof(struct btrfs_file_extent_item, ram_bytes));
		it->inl = p + head;
		it->inl_len = len - head;
		return 0;
	}
	if (len < sizeof(struct btrfs_file_extent_item))
		return -1;
	it->bytenr = le64(p + offsetof(struct btrfs_file_extent_item, disk_bytenr));
	it->disk_bytes = le64(p + offsetof(struct btrfs_file_extent_item, disk_num_bytes));
	it->ext_off = le64(p + offsetof(struct btrfs_file_extent_item, offset));
	it->len = le64(p + offsetof(struct btrfs_file_extent_item, num_bytes));
	return 0;
}

/* Is there no fingerprint to be had for fd (not btrfs, NOCOW)? */
static int fp_supported(int fd, struct err *err)
{
	int flags = 0;

	if (ioctl(fd, FS_IOC_GETFLAGS, &flags)) {
		if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL ||
		    errno == ENOSYS)
			return -EOPNOTSUPP;
		return err_set(err, -errno, "cannot read the inode flags: %s", strerror(errno));
	}
	return flags & FS_NOCOW_FL ? -EOPNOTSUPP : 0;
}

/* One page of items into f; *more_ret: ask again from key->min_offset. */
static int fp_page(int fd, struct btrfs_ioctl_search_args_v2 *sa, struct fp *f,
		   bool *more_ret, struct err *err)
{
	const unsigned char *p = (const unsigned char *)sa->buf;
	uint64_t last = 0;
	uint32_t n;
	int fcode;

	*more_ret = false;
	sa->key.nr_items = UINT32_MAX;
	sa->buf_size = SEARCH_BUF - sizeof(*sa);
	if (fault_hit("extents.search", &fcode)) {
		errno = -fcode;
		return err_set(err, fcode, "cannot list the file's extents (btrfs tree search): %s",
			       strerror(errno));
	}
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH_V2, sa)) {
		if (errno == ENOTTY || errno == EPERM || errno == EOPNOTSUPP)
			return -EOPNOTSUPP;
		return err_set(err, -errno, "cannot list the file's extents (btrfs tree search): %s",
			       strerror(errno));
	}
	n = sa->key.nr_items;
	for (uint32_t i = 0; i < n; i++) {
		struct btrfs_ioctl_search_header sh;
		struct item it;

		if ((size_t)(p - (const unsigned char *)sa->buf) + sizeof(sh) > sa->buf_size)
			return err_set(err, -EIO, "the btrfs tree search returned a short buffer");
		memcpy(&sh, p, sizeof(sh));
		p += sizeof(sh);
		if (sh.type == BTRFS_EXTENT_DATA_KEY) {
			if (item_decode(p, sh.len, sh.offset, &it))
				return err_set(err, -EIO, "a file extent item of %u bytes at %llu is malformed",
					       sh.len, (unsigned long long)sh.offset);
			fp_item(f, &it);
		}
		last = sh.offset;
		p += sh.len;
	}
	if (n && last < UINT64_MAX && last + 1 < f->size) {
		sa->key.min_offset = last + 1;
		*more_ret = true;
	}
	return 0;
}

int extents_fingerprint(int fd, uint64_t size, uint32_t bsize, uint32_t nblocks,
			uint64_t *out, struct err *err)
{
	struct btrfs_ioctl_search_args_v2 *sa;
	struct fp f = { .size = size, .bsize = bsize, .nblocks = nblocks, .out = out };
	struct stat st;
	bool more = true;
	int ret;

	if (!bsize || !out || (size + bsize - 1) / bsize != nblocks)
		return err_set(err, -EINVAL, "extents_fingerprint: bad arguments");
	ret = fp_supported(fd, err);
	if (ret)
		return ret;
	if (fstat(fd, &st))
		return err_set(err, -errno, "cannot stat the file: %s", strerror(errno));
	sa = aligned_alloc(8, SEARCH_BUF);
	if (!sa)
		return err_set(err, -ENOMEM, "out of memory");
	memset(&sa->key, 0, sizeof(sa->key));
	sa->key.tree_id = 0;
	sa->key.min_objectid = sa->key.max_objectid = st.st_ino;
	sa->key.min_type = sa->key.max_type = BTRFS_EXTENT_DATA_KEY;
	sa->key.min_offset = 0;
	sa->key.max_offset = size ? size - 1 : 0;
	sa->key.max_transid = UINT64_MAX;
	f.cur = nblocks;
	while (more && !ret)
		ret = fp_page(fd, sa, &f, &more, err);
	free(sa);
	if (ret)
		return ret;
	fp_close_to(&f, nblocks);
	return 0;
}
