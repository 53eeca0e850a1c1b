// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: a backup's index (index.jsonl.zst) as a store hands it
 * over, through index_load().
 *
 * An input that starts with the zstd frame magic (28 b5 2f fd) is given
 * to index_load() as it is: that fuzzes the zstd layer and the line
 * splitting across decompressed blocks.  Any other input is taken as the
 * decompressed JSON lines and compressed here first (zstd level 1), so
 * most executions reach the JSON-lines parser with what the fuzzer wrote.
 *
 * Beyond "no crash": every entry of a loaded index is found again by
 * index_find() under its own path.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "agent/index.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };

static void check(const struct index *idx)
{
	for (size_t i = 0; i < idx->n; i++) {
		size_t j = index_find(idx, idx->e[i].path);

		if (j == (size_t)-1 || j >= idx->n || strcmp(idx->e[j].path, idx->e[i].path)) {
			fprintf(stderr, "fuzz_index: entry %zu (%s) is not found by index_find\n",
				i, idx->e[i].path);
			abort();
		}
	}
	if (index_find(idx, "\x01not a path of this index") != (size_t)-1 &&
	    idx->n == 0) {
		fprintf(stderr, "fuzz_index: an empty index finds a path\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index *idx = NULL;
	struct err err = { 0 };
	void *z = NULL;
	size_t zlen = size;
	const void *in = data;

	if (size < sizeof(zstd_magic) || memcmp(data, zstd_magic, sizeof(zstd_magic))) {
		size_t cap = ZSTD_compressBound(size);

		z = malloc(cap ? cap : 1);
		if (!z)
			return 0;
		zlen = ZSTD_compress(z, cap, data, size, 1);
		if (ZSTD_isError(zlen)) {
			free(z);
			return 0;
		}
		in = z;
	}
	if (!index_load(in, zlen, &idx, &err)) {
		check(idx);
		index_free(idx);
	}
	free(z);
	return 0;
}
