// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: a backup's manifest.json as a store hands it over
 * (manifest_from_json(), which catalog_load() and catalog_list() call on
 * every manifest of a store).
 *
 * Beyond "no crash, no leak, no undefined behaviour": a manifest that
 * parses must survive manifest_to_json() and parse again to the same ids,
 * names, keys and checksums (what repair and geo copies rely on), and a
 * version 2 manifest to the same parent, chain and references.
 * FUZZ_MANIFEST_NO_ROUND_TRIP=1 skips that check (to fuzz on past a known
 * round-trip failure in a long campaign).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/catalog.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int same_refs(const struct manifest *a, const struct manifest *b)
{
	for (size_t i = 0; i < a->nrefs; i++)
		if (strcmp(a->refs[i].id, b->refs[i].id) || strcmp(a->refs[i].key, b->refs[i].key) ||
		    a->refs[i].size != b->refs[i].size ||
		    strcmp(a->refs[i].sha256, b->refs[i].sha256) ||
		    strcmp(a->refs[i].etag, b->refs[i].etag))
			return 0;
	return 1;
}

static void round_trip(const struct manifest *m)
{
	struct manifest m2;
	struct err err = { 0 };
	char *json = NULL;

	if (manifest_to_json(m, &json, &err))
		return;      /* a value jansson cannot write: refused, fine */
	if (manifest_from_json(json, strlen(json), &m2, &err)) {
		fprintf(stderr, "fuzz_manifest: a manifest that parsed does not parse again after manifest_to_json: %s\n%s\n",
			err.msg, json);
		abort();
	}
	if (strcmp(m->backup_id, m2.backup_id) || !same_str(m->host, m2.host) ||
	    !same_str(m->partition, m2.partition) ||
	    !same_str(m->data_key, m2.data_key) ||
	    !same_str(m->index_key, m2.index_key) ||
	    strcmp(m->data_sha256, m2.data_sha256) ||
	    strcmp(m->index_sha256, m2.index_sha256) ||
	    m->data_size != m2.data_size || m->index_size != m2.index_size ||
	    m->format_version != m2.format_version || strcmp(m->parent, m2.parent) ||
	    strcmp(m->full_id, m2.full_id) || m->chain != m2.chain ||
	    strcmp(m->source_uuid, m2.source_uuid) || m->nrefs != m2.nrefs ||
	    !same_refs(m, &m2)) {
		fprintf(stderr, "fuzz_manifest: the manifest changed in a round trip through manifest_to_json:\n%s\n",
			json);
		abort();
	}
	manifest_clear(&m2);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	struct err err = { 0 };

	static int no_round_trip = -1;

	if (no_round_trip < 0) {
		const char *e = getenv("FUZZ_MANIFEST_NO_ROUND_TRIP");

		no_round_trip = e && *e == '1';
	}
	if (manifest_from_json((const char *)data, size, &m, &err))
		return 0;
	if (!no_round_trip)
		round_trip(&m);
	manifest_clear(&m);
	return 0;
}
