// SPDX-License-Identifier: MIT
/*
 * gendata — deterministic test/benchmark dataset generator.
 *
 * Writes a directory tree that looks like a document database's data
 * directory: large JSON-lines segment files plus many small JSON and
 * key=value metadata files. Values come from a seeded PRNG and word lists,
 * so the data compresses like real data (zstd -3: roughly 3-6x), and the
 * same arguments and seed always give byte-identical files.
 *
 *   DIR/segments/seg-NNNNNN.json     --json-bytes split into --json-file-size
 *   DIR/small/dNNN/fNNNNN.json|.meta --small-files, sizes in [min, max]
 *
 * Every file gets its own PRNG stream derived from (seed, kind, index),
 * so a file's content does not depend on the files generated before it.
 * File sizes are exact: each file ends with one padding line that makes
 * it exactly as long as asked for.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

#define OUT_FLUSH_AT (1u << 20)	/* write() in ~1 MiB pieces */
#define LINE_MAX_LEN 16384u	/* generous bound on one generated line */
#define PAD_MIN 16u		/* shortest padding line a format can write */

enum { EXIT_USAGE = 2 };

struct opts {
	const char *dir;
	uint64_t json_bytes;
	uint64_t json_file_size;
	uint64_t small_files;
	uint64_t small_min;
	uint64_t small_max;
	uint64_t seed;
	uint64_t dirs;
};

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t kind, uint64_t index)
{
	uint64_t x = seed ^ (kind << 56) ^ (index * UINT64_C(0xd1342543de82ef95));

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	const uint64_t result = rotl(s[1] * 5, 7) * 9;
	const uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (multiply-shift; the bias is irrelevant here). */
static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * n) >> 32);
}

static inline uint64_t rng_range64(struct rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t span = hi - lo + 1;

	return span == 0 ? rng_next(r) : lo + rng_next(r) % span;
}

/* True with probability pct/100. */
static inline bool rng_pct(struct rng *r, uint32_t pct)
{
	return rng_below(r, 100) < pct;
}

/* Skewed pick in [0, n): small indexes are more likely (min of two draws). */
static inline uint32_t rng_skew(struct rng *r, uint32_t n)
{
	uint32_t a = rng_below(r, n), b = rng_below(r, n);

	return a < b ? a : b;
}

/* ---- word lists ---------------------------------------------------------- */

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static const char *const first_names[] = {
	"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael",
	"Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan",
	"Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen", "Daniel",
	"Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra",
	"Ahmed", "Fatima", "Wei", "Mei", "Hiroshi", "Yuki", "Olga", "Ivan",
	"Lukas", "Anna", "Mateo", "Sofia", "Liam", "Emma", "Noah", "Olivia",
	"Aarav", "Priya", "Kwame", "Amara", "Lars", "Ingrid", "Pierre", "Chloe",
	"Giulia", "Marco", "Seo-yeon", "Min-jun", "Oluwaseun", "Zanele",
	"Diego", "Valentina", "Jakub", "Zofia", "Mehmet", "Elif",
};

static const char *const last_names[] = {
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
	"Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez",
	"Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
	"Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner",
	"Rossi", "Russo", "Ferrari", "Dubois", "Laurent", "Moreau", "Kowalski",
	"Nowak", "Ivanov", "Petrov", "Tanaka", "Suzuki", "Watanabe", "Wang",
	"Li", "Zhang", "Chen", "Kim", "Park", "Nguyen", "Tran", "Singh",
	"Patel", "Okafor", "Mensah", "Yilmaz", "Kaya", "Silva", "Santos",
	"Andersson",
};

static const char *const domains[] = {
	"example.com", "mail.example.org", "corp.example.net", "inbox.test",
	"shop.example", "post.example.de", "web.example.fr", "example.co.uk",
};

static const char *const cities[] = {
	"Berlin", "Paris", "London", "Madrid", "Rome", "Warsaw", "Vienna",
	"Zurich", "Amsterdam", "Stockholm", "Oslo", "Helsinki", "Dublin",
	"Lisbon", "Prague", "Budapest", "New York", "Chicago", "Toronto",
	"Austin", "Seattle", "Denver", "Boston", "Sao Paulo", "Mexico City",
	"Tokyo", "Osaka", "Seoul", "Singapore", "Sydney", "Mumbai", "Lagos",
	"Nairobi", "Cairo", "Istanbul", "Dubai",
};

static const char *const countries[] = {
	"DE", "FR", "GB", "ES", "IT", "PL", "AT", "CH", "NL", "SE", "NO",
	"FI", "IE", "PT", "CZ", "HU", "US", "CA", "BR", "MX", "JP", "KR",
	"SG", "AU", "IN", "NG", "KE", "EG", "TR", "AE",
};

static const char *const currencies[] = { "EUR", "USD", "GBP", "CHF", "JPY", "SEK" };

static const char *const order_status[] = {
	"pending", "paid", "packed", "shipped", "delivered", "cancelled",
	"refunded", "on_hold",
};

static const char *const tiers[] = { "basic", "silver", "gold", "platinum" };

static const char *const adjectives[] = {
	"small", "large", "steel", "wooden", "organic", "wireless", "compact",
	"premium", "vintage", "portable", "ceramic", "cotton", "carbon",
	"matte", "glossy", "ergonomic", "solar", "smart", "classic", "rugged",
};

static const char *const nouns[] = {
	"widget", "lamp", "chair", "kettle", "backpack", "headphones", "mug",
	"keyboard", "notebook", "bottle", "jacket", "router", "drill", "tent",
	"blender", "monitor", "cable", "speaker", "sneakers", "watch", "desk",
	"pillow", "charger", "camera",
};

static const char *const tags[] = {
	"priority", "gift", "fragile", "express", "bulk", "b2b", "promo",
	"returning", "first_order", "subscription", "eco", "international",
};

static const char *const event_types[] = {
	"page_view", "add_to_cart", "checkout_started", "login", "logout",
	"search", "review_posted", "password_reset", "coupon_applied",
	"wishlist_add",
};

static const char *const agents[] = {
	"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 13_4)", "okhttp/4.11.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X)", "curl/7.88.1",
};

static const char *const words[] = {
	"the", "customer", "asked", "for", "delivery", "before", "noon", "please",
	"leave", "package", "at", "door", "call", "on", "arrival", "second",
	"floor", "invoice", "required", "with", "company", "name", "and", "vat",
	"number", "item", "was", "damaged", "replacement", "sent", "refund",
	"approved", "by", "support", "ticket", "escalated", "to", "warehouse",
	"address", "changed", "after", "order", "placed", "gift", "wrap",
	"message", "included", "happy", "birthday", "no", "substitutions",
	"back", "ordered", "expected", "next", "week", "partial", "shipment",
	"tracking", "updated", "carrier", "delayed", "weather", "confirmed",
	"phone", "email", "reminder", "payment", "retry", "card", "declined",
	"fraud", "check", "passed", "manual", "review", "loyalty", "points",
	"applied", "discount", "code", "expired", "stock", "reserved", "pickup",
	"store", "closed", "holiday", "hours", "contact", "sales", "team",
	"quote", "bulk", "pricing", "requested", "this", "is", "a", "note",
};

#define PICK(r, a) ((a)[rng_below((r), COUNT(a))])

/* ---- output ---------------------------------------------------------------- */

struct out {
	int fd;
	const char *path;
	char *buf;
	size_t len;
};

static int out_flush(struct out *o)
{
	size_t done = 0;

	while (done < o->len) {
		ssize_t n = write(o->fd, o->buf + done, o->len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "gendata: write %s: %s\n", o->path, strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	o->len = 0;
	return 0;
}

/* ---- appenders: write at *p, advance p; callers guarantee the room ------ */

static inline char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* lit must be a string literal ("" lit "" refuses anything else). */
#define PUT_LIT(p, lit) (memcpy((p), "" lit "", sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static inline char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* Zero-padded to width digits. */
static inline char *put_u64w(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* Fixed point: v / 10^decimals, e.g. cents with decimals = 2. */
static inline char *put_fixed(char *p, int64_t v, int decimals)
{
	uint64_t scale = 1;

	for (int i = 0; i < decimals; i++)
		scale *= 10;
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	p = put_u64(p, (uint64_t)v / scale);
	*p++ = '.';
	return put_u64w(p, (uint64_t)v % scale, decimals);
}

static inline char *put_hex(char *p, struct rng *r, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t bits = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 16 == 0)
			bits = rng_next(r);
		*p++ = hex[bits & 15];
		bits >>= 4;
	}
	return p;
}

static inline char *put_b64(char *p, struct rng *r, size_t n)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint64_t bits = 0;

	for (size_t i = 0; i < n; i++) {
		if (i % 10 == 0)
			bits = rng_next(r);
		*p++ = b64[bits & 63];
		bits >>= 6;
	}
	return p;
}

static char *put_words(char *p, struct rng *r, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			*p++ = ' ';
		p = put_str(p, words[rng_skew(r, COUNT(words))]);
	}
	return p;
}

/* Days since 1970-01-01 to civil date (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int64_t *y_ret, unsigned *m_ret, unsigned *d_ret)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const uint64_t doe = (uint64_t)(z - era * 146097);
	const uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const uint64_t mp = (5 * doy + 2) / 153;
	const uint64_t d = doy - (153 * mp + 2) / 5 + 1;
	const uint64_t m = mp < 10 ? mp + 3 : mp - 9;

	*y_ret = (int64_t)yoe + era * 400 + (m <= 2);
	*m_ret = (unsigned)m;
	*d_ret = (unsigned)d;
}

/* "2023-07-14T09:21:33.123Z" from milliseconds since the epoch (>= 0). */
static char *put_iso(char *p, int64_t ms)
{
	int64_t secs = ms / 1000, days = secs / 86400, y;
	uint64_t sod = (uint64_t)(secs % 86400);
	unsigned m, d;

	civil_from_days(days, &y, &m, &d);
	*p++ = '"';
	p = put_u64w(p, (uint64_t)y, 4);
	*p++ = '-';
	p = put_u64w(p, m, 2);
	*p++ = '-';
	p = put_u64w(p, d, 2);
	*p++ = 'T';
	p = put_u64w(p, sod / 3600, 2);
	*p++ = ':';
	p = put_u64w(p, sod / 60 % 60, 2);
	*p++ = ':';
	p = put_u64w(p, sod % 60, 2);
	*p++ = '.';
	p = put_u64w(p, (uint64_t)(ms % 1000), 3);
	return PUT_LIT(p, "Z\"");
}

static char *put_lower(char *p, const char *s)
{
	for (; *s; s++)
		*p++ = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
	return p;
}

/* ---- documents ------------------------------------------------------------- */

/* State carried from one line of a file to the next. */
struct doc_state {
	uint64_t seq;		/* document sequence number */
	int64_t now_ms;		/* advancing clock, milliseconds */
	uint32_t coll;		/* collection/shard number of the file */
};

/* Start of all generated clocks: 2023-01-01T00:00:00Z. */
#define EPOCH_MS INT64_C(1672531200000)

static char *put_customer(char *p, struct rng *r)
{
	const char *first = PICK(r, first_names), *last = PICK(r, last_names);

	p = PUT_LIT(p, "{\"id\":\"cus_");
	p = put_u64w(p, rng_below(r, 2000000), 7);
	p = PUT_LIT(p, "\",\"name\":\"");
	p = put_str(p, first);
	*p++ = ' ';
	p = put_str(p, last);
	p = PUT_LIT(p, "\",\"email\":\"");
	p = put_lower(p, first);
	*p++ = '.';
	p = put_lower(p, last);
	if (rng_pct(r, 40))
		p = put_u64(p, rng_below(r, 100));
	*p++ = '@';
	p = put_str(p, PICK(r, domains));
	p = PUT_LIT(p, "\",\"tier\":\"");
	p = put_str(p, tiers[rng_skew(r, COUNT(tiers))]);
	p = PUT_LIT(p, "\",\"address\":{\"city\":\"");
	p = put_str(p, PICK(r, cities));
	p = PUT_LIT(p, "\",\"country\":\"");
	p = put_str(p, PICK(r, countries));
	p = PUT_LIT(p, "\",\"postcode\":\"");
	p = put_u64w(p, rng_below(r, 100000), 5);
	p = PUT_LIT(p, "\",\"street\":\"");
	p = put_u64(p, 1 + rng_below(r, 250));
	*p++ = ' ';
	p = put_str(p, PICK(r, last_names));
	p = put_str(p, rng_pct(r, 50) ? " Street\"}}" : " Road\"}}");
	return p;
}

static char *doc_order(char *p, struct rng *r, struct doc_state *st)
{
	uint32_t nitems = 1 + rng_skew(r, 8), ntags = rng_below(r, 4);
	int64_t total = 0;

	p = PUT_LIT(p, ",\"type\":\"order\",\"order_no\":\"SO-");
	p = put_u64w(p, st->coll, 3);
	*p++ = '-';
	p = put_u64w(p, st->seq, 9);
	p = PUT_LIT(p, "\",\"status\":\"");
	p = put_str(p, order_status[rng_skew(r, COUNT(order_status))]);
	p = PUT_LIT(p, "\",\"customer\":");
	p = put_customer(p, r);
	p = PUT_LIT(p, ",\"currency\":\"");
	p = put_str(p, currencies[rng_skew(r, COUNT(currencies))]);
	p = PUT_LIT(p, "\",\"items\":[");
	for (uint32_t i = 0; i < nitems; i++) {
		int64_t price = 99 + (int64_t)rng_below(r, 25000);
		uint32_t qty = 1 + rng_skew(r, 12);

		total += price * qty;
		if (i)
			*p++ = ',';
		p = PUT_LIT(p, "{\"sku\":\"SKU-");
		p = put_u64w(p, rng_below(r, 100000), 6);
		p = PUT_LIT(p, "\",\"name\":\"");
		p = put_str(p, PICK(r, adjectives));
		*p++ = ' ';
		p = put_str(p, PICK(r, nouns));
		p = PUT_LIT(p, "\",\"qty\":");
		p = put_u64(p, qty);
		p = PUT_LIT(p, ",\"unit_price\":");
		p = put_fixed(p, price, 2);
		if (rng_pct(r, 20)) {
			p = PUT_LIT(p, ",\"discount_pct\":");
			p = put_u64(p, 5 * (1 + rng_below(r, 6)));
		}
		*p++ = '}';
	}
	p = PUT_LIT(p, "],\"total\":");
	p = put_fixed(p, total, 2);
	p = PUT_LIT(p, ",\"tags\":[");
	for (uint32_t i = 0; i < ntags; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		p = put_str(p, PICK(r, tags));
		*p++ = '"';
	}
	p = PUT_LIT(p, "],\"payment\":{\"method\":\"");
	p = put_str(p, rng_pct(r, 70) ? "card" : rng_pct(r, 50) ? "paypal" : "invoice");
	p = PUT_LIT(p, "\",\"txn\":\"txn_");
	p = put_b64(p, r, 16);
	p = PUT_LIT(p, "\",\"captured\":");
	p = put_str(p, rng_pct(r, 85) ? "true" : "false");
	*p++ = '}';
	if (rng_pct(r, 35)) {
		p = PUT_LIT(p, ",\"notes\":\"");
		p = put_words(p, r, 3 + rng_below(r, 30));
		*p++ = '"';
	}
	if (rng_pct(r, 60)) {
		p = PUT_LIT(p, ",\"shipped_at\":");
		p = put_iso(p, st->now_ms + (int64_t)rng_below(r, 3 * 86400) * 1000);
		p = PUT_LIT(p, ",\"tracking\":\"1Z");
		p = put_hex(p, r, 14);
		*p++ = '"';
	}
	return p;
}

static char *doc_event(char *p, struct rng *r, struct doc_state *st)
{
	p = PUT_LIT(p, ",\"type\":\"event\",\"shard\":");
	p = put_u64(p, st->coll);
	p = PUT_LIT(p, ",\"event\":\"");
	p = put_str(p, event_types[rng_skew(r, COUNT(event_types))]);
	p = PUT_LIT(p, "\",\"user_id\":\"cus_");
	p = put_u64w(p, rng_below(r, 2000000), 7);
	p = PUT_LIT(p, "\",\"session\":\"");
	p = put_b64(p, r, 22);
	p = PUT_LIT(p, "\",\"ip\":\"10.");
	p = put_u64(p, rng_below(r, 256));
	*p++ = '.';
	p = put_u64(p, rng_below(r, 256));
	*p++ = '.';
	p = put_u64(p, 1 + rng_below(r, 254));
	p = PUT_LIT(p, "\",\"user_agent\":\"");
	p = put_str(p, agents[rng_skew(r, COUNT(agents))]);
	p = PUT_LIT(p, "\",\"geo\":{\"city\":\"");
	p = put_str(p, PICK(r, cities));
	p = PUT_LIT(p, "\",\"lat\":");
	p = put_fixed(p, (int64_t)rng_below(r, 1800000) - 900000, 4);
	p = PUT_LIT(p, ",\"lon\":");
	p = put_fixed(p, (int64_t)rng_below(r, 3600000) - 1800000, 4);
	p = PUT_LIT(p, "},\"duration_ms\":");
	p = put_u64(p, rng_below(r, 5000));
	if (rng_pct(r, 40)) {
		p = PUT_LIT(p, ",\"query\":\"");
		p = put_str(p, PICK(r, adjectives));
		*p++ = ' ';
		p = put_str(p, PICK(r, nouns));
		*p++ = '"';
	}
	p = PUT_LIT(p, ",\"ab\":[");
	for (uint32_t i = 0, n = rng_below(r, 4); i < n; i++) {
		if (i)
			*p++ = ',';
		p = PUT_LIT(p, "{\"exp\":\"exp-");
		p = put_u64(p, rng_below(r, 40));
		p = PUT_LIT(p, "\",\"arm\":");
		p = put_u64(p, rng_below(r, 3));
		*p++ = '}';
	}
	*p++ = ']';
	return p;
}

static char *doc_profile(char *p, struct rng *r, struct doc_state *st)
{
	(void)st;
	p = PUT_LIT(p, ",\"type\":\"customer\",\"profile\":");
	p = put_customer(p, r);
	p = PUT_LIT(p, ",\"orders_count\":");
	p = put_u64(p, rng_skew(r, 200));
	p = PUT_LIT(p, ",\"lifetime_value\":");
	p = put_fixed(p, (int64_t)rng_below(r, 5000000), 2);
	p = PUT_LIT(p, ",\"marketing_opt_in\":");
	p = put_str(p, rng_pct(r, 45) ? "true" : "false");
	p = PUT_LIT(p, ",\"api_key_hash\":\"");
	p = put_hex(p, r, 32);
	p = PUT_LIT(p, "\",\"preferences\":{\"language\":\"");
	p = put_str(p, rng_pct(r, 60) ? "en" : rng_pct(r, 50) ? "de" : "fr");
	p = PUT_LIT(p, "\",\"newsletter\":");
	p = put_str(p, rng_pct(r, 30) ? "\"weekly\"" : "null");
	p = PUT_LIT(p, ",\"favourite_categories\":[");
	for (uint32_t i = 0, n = rng_below(r, 5); i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		p = put_str(p, PICK(r, nouns));
		*p++ = '"';
	}
	p = PUT_LIT(p, "]}");
	if (rng_pct(r, 25)) {
		p = PUT_LIT(p, ",\"bio\":\"");
		p = put_words(p, r, 5 + rng_below(r, 40));
		*p++ = '"';
	}
	return p;
}

/* One JSON document and its newline. Worst case is well under 4 KiB. */
static size_t line_json(char *buf, struct rng *r, struct doc_state *st)
{
	uint32_t kind = rng_below(r, 100);
	char *p = buf;

	st->seq++;
	st->now_ms += 1 + rng_below(r, 2000);
	p = PUT_LIT(p, "{\"_id\":\"");
	p = put_hex(p, r, 24);
	p = PUT_LIT(p, "\",\"seq\":");
	p = put_u64(p, st->seq);
	p = PUT_LIT(p, ",\"created_at\":");
	p = put_iso(p, st->now_ms);
	p = PUT_LIT(p, ",\"updated_at\":");
	p = put_iso(p, st->now_ms + (int64_t)rng_skew(r, 86400) * 1000);
	p = PUT_LIT(p, ",\"rev\":");
	p = put_u64(p, 1 + rng_skew(r, 20));
	if (kind < 55)
		p = doc_order(p, r, st);
	else if (kind < 85)
		p = doc_event(p, r, st);
	else
		p = doc_profile(p, r, st);
	p = PUT_LIT(p, "}\n");
	return (size_t)(p - buf);
}

/* Padding for JSON files: {"pad":"words ..."}\n, exactly n >= PAD_MIN bytes. */
static void pad_json(char *buf, size_t n, struct rng *r)
{
	char *p = PUT_LIT(buf, "{\"pad\":\"");
	char *end = buf + n - 3;	/* room for "}\n */

	while (p < end) {
		const char *w = words[rng_below(r, COUNT(words))];
		size_t len = strlen(w);

		if (len > (size_t)(end - p))
			len = (size_t)(end - p);
		memcpy(p, w, len);
		p += len;
		if (p < end)
			*p++ = ' ';
	}
	memcpy(end, "\"}\n", 3);
}

enum meta_kind { MK_USER, MK_NUM, MK_TIME, MK_HASH, MK_LIST, MK_TEXT };

static const struct {
	const char *key;
	enum meta_kind kind;
} meta_keys[] = {
	{ "owner", MK_USER }, { "created_by", MK_USER }, { "schema_version", MK_NUM },
	{ "collection", MK_TEXT }, { "shard", MK_NUM }, { "replica_set", MK_LIST },
	{ "last_compaction", MK_TIME }, { "checksum", MK_HASH }, { "last_vacuum", MK_TIME },
	{ "ttl_days", MK_NUM }, { "index_fields", MK_TEXT }, { "region", MK_LIST },
	{ "tenant", MK_USER }, { "labels", MK_LIST }, { "description", MK_TEXT },
	{ "etag", MK_HASH },
};

/* One key = value line of a metadata file. */
static size_t line_meta(char *buf, struct rng *r, struct doc_state *st)
{
	char *p = buf;
	uint32_t k = rng_below(r, COUNT(meta_keys));

	st->seq++;
	st->now_ms += rng_below(r, 3600000);
	p = put_str(p, meta_keys[k].key);
	p = PUT_LIT(p, " = ");
	switch (meta_keys[k].kind) {
	case MK_USER:
		p = put_lower(p, PICK(r, first_names));
		*p++ = '.';
		p = put_lower(p, PICK(r, last_names));
		break;
	case MK_NUM:
		p = put_u64(p, rng_skew(r, 1000));
		break;
	case MK_TIME:
		p = put_iso(p, st->now_ms);
		break;
	case MK_HASH:
		p = put_hex(p, r, 16 + 16 * rng_below(r, 3));
		break;
	case MK_LIST:
		p = put_str(p, PICK(r, countries));
		*p++ = ',';
		p = put_str(p, PICK(r, tags));
		break;
	case MK_TEXT:
		p = put_words(p, r, 1 + rng_below(r, 8));
		break;
	}
	*p++ = '\n';
	return (size_t)(p - buf);
}

/* Padding for metadata files: "# words ...\n", exactly n >= PAD_MIN bytes. */
static void pad_meta(char *buf, size_t n, struct rng *r)
{
	char *p = PUT_LIT(buf, "# ");
	char *end = buf + n - 1;

	while (p < end) {
		const char *w = words[rng_below(r, COUNT(words))];
		size_t len = strlen(w);

		if (len > (size_t)(end - p))
			len = (size_t)(end - p);
		memcpy(p, w, len);
		p += len;
		if (p < end)
			*p++ = ' ';
	}
	*end = '\n';
}

struct format {
	size_t (*line)(char *buf, struct rng *r, struct doc_state *st);
	void (*pad)(char *buf, size_t n, struct rng *r);
};

static const struct format fmt_json = { .line = line_json, .pad = pad_json };
static const struct format fmt_meta = { .line = line_meta, .pad = pad_meta };

/*
 * Write one file of exactly size bytes: whole lines while they fit with
 * room for a padding line, then one padding line to the exact size.
 */
static int write_file(const char *path, uint64_t size, const struct format *fmt,
		      struct rng *r, struct doc_state *st, char *buf)
{
	struct out o = { .path = path, .buf = buf, .len = 0 };
	uint64_t left = size;
	int ret = 0;

	o.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o.fd < 0) {
		fprintf(stderr, "gendata: cannot create %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (left > 0) {
		if (o.len >= OUT_FLUSH_AT && out_flush(&o) < 0)
			goto out_close;
		size_t n = fmt->line(o.buf + o.len, r, st);

		assert(n <= LINE_MAX_LEN);
		if (n == left || n + PAD_MIN <= left) {
			o.len += n;
			left -= n;
			continue;
		}
		/* The line does not fit: end the file with padding instead. */
		if (left >= PAD_MIN) {
			fmt->pad(o.buf + o.len, (size_t)left, r);
		} else {	/* only for files smaller than PAD_MIN */
			memset(o.buf + o.len, ' ', (size_t)left - 1);
			o.buf[o.len + left - 1] = '\n';
		}
		o.len += (size_t)left;
		left = 0;
	}
	if (out_flush(&o) < 0)
		goto out_close;
	if (close(o.fd) < 0) {
		fprintf(stderr, "gendata: close %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;

out_close:
	ret = -1;
	close(o.fd);
	return ret;
}

/* ---- directories ------------------------------------------------------------ */

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);
	struct stat sb;

	if (len == 0 || len >= sizeof(tmp)) {
		fprintf(stderr, "gendata: bad directory name '%s'\n", path);
		return -1;
	}
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "gendata: cannot create directory %s: %s\n",
				tmp, strerror(errno));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (stat(path, &sb) < 0) {
		fprintf(stderr, "gendata: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "gendata: %s: not a directory\n", path);
		return -1;
	}
	if (access(path, W_OK | X_OK) < 0) {
		fprintf(stderr, "gendata: %s: directory is not writable: %s\n",
			path, strerror(errno));
		return -1;
	}
	return 0;
}

static int path_join(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int path_join(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "gendata: path too long\n");
		return -1;
	}
	return 0;
}

/* ---- the dataset --------------------------------------------------------------- */

enum { KIND_SEGMENT = 1, KIND_SMALL = 2 };

struct totals {
	uint64_t files;
	uint64_t bytes;
	uint64_t dirs;
};

static int gen_segments(const struct opts *o, char *buf, struct totals *t)
{
	char path[PATH_MAX];
	uint64_t left = o->json_bytes;

	if (left == 0)
		return 0;
	if (path_join(path, sizeof(path), "%s/segments", o->dir) < 0 || mkdir_p(path) < 0)
		return -1;
	t->dirs++;
	for (uint64_t i = 0; left > 0; i++) {
		uint64_t size = left < o->json_file_size ? left : o->json_file_size;
		struct doc_state st = {
			.seq = i * UINT64_C(1000000),
			.now_ms = EPOCH_MS + (int64_t)(i * UINT64_C(86400000)),
			.coll = (uint32_t)(i % 1000),
		};
		struct rng r;

		rng_seed(&r, o->seed, KIND_SEGMENT, i);
		if (path_join(path, sizeof(path), "%s/segments/seg-%06" PRIu64 ".json",
			      o->dir, i) < 0)
			return -1;
		if (write_file(path, size, &fmt_json, &r, &st, buf) < 0)
			return -1;
		left -= size;
		t->files++;
		t->bytes += size;
	}
	return 0;
}

static int gen_small(const struct opts *o, char *buf, struct totals *t)
{
	char path[PATH_MAX];
	uint64_t ndirs = o->dirs < o->small_files ? o->dirs : o->small_files;

	if (o->small_files == 0)
		return 0;
	for (uint64_t d = 0; d < ndirs; d++) {
		if (path_join(path, sizeof(path), "%s/small/d%03" PRIu64, o->dir, d) < 0 ||
		    mkdir_p(path) < 0)
			return -1;
		t->dirs++;
	}
	for (uint64_t i = 0; i < o->small_files; i++) {
		struct rng r;

		rng_seed(&r, o->seed, KIND_SMALL, i);
		bool meta = rng_below(&r, 4) == 0;
		uint64_t size = rng_range64(&r, o->small_min, o->small_max);
		struct doc_state st = {
			.seq = i,
			.now_ms = EPOCH_MS + (int64_t)(rng_below(&r, 365 * 86400)) * 1000,
			.coll = (uint32_t)(i % ndirs),
		};

		if (path_join(path, sizeof(path), "%s/small/d%03" PRIu64 "/f%05" PRIu64 "%s",
			      o->dir, i % ndirs, i, meta ? ".meta" : ".json") < 0)
			return -1;
		if (write_file(path, size, meta ? &fmt_meta : &fmt_json, &r, &st, buf) < 0)
			return -1;
		t->files++;
		t->bytes += size;
	}
	return 0;
}

/* ---- arguments ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: gendata DIR [options]\n"
		"Write a deterministic JSON dataset under DIR (created if missing).\n"
		"\n"
		"  --json-bytes SIZE      total size of JSON segment files   (default 1G)\n"
		"  --json-file-size SIZE  size of each segment file          (default 64M)\n"
		"  --small-files N        number of small files              (default 20000)\n"
		"  --small-min SIZE       smallest small file                (default 1K)\n"
		"  --small-max SIZE       largest small file                 (default 32K)\n"
		"  --dirs N               subdirectories for small files     (default 256)\n"
		"  --seed N               PRNG seed; same args + seed = same bytes (default 1)\n"
		"  -h, --help             this text\n"
		"\n"
		"SIZE is bytes with an optional K, M, G or T suffix (powers of 1024).\n"
		"Output: DIR/segments/seg-NNNNNN.json, DIR/small/dNNN/fNNNNN.{json,meta}\n");
}

static bool parse_u64(const char *s, uint64_t *v_ret)
{
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);

	if (errno || *end != '\0')
		return false;
	*v_ret = v;
	return true;
}

static bool parse_size(const char *s, uint64_t *v_ret)
{
	char *end;
	uint64_t mult = 1;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);

	if (errno)
		return false;
	switch (*end) {
	case 'k': case 'K': mult = KIB; end++; break;
	case 'm': case 'M': mult = MIB; end++; break;
	case 'g': case 'G': mult = GIB; end++; break;
	case 't': case 'T': mult = GIB * 1024; end++; break;
	default: break;
	}
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	else if (mult == 1 && strcmp(end, "B") == 0)
		end++;
	if (*end != '\0' || (v != 0 && mult > UINT64_MAX / v))
		return false;
	*v_ret = v * mult;
	return true;
}

/* Returns 0, or EXIT_USAGE after printing the problem. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct {
		const char *name;
		bool size;
		size_t off;
	} table[] = {
		{ "--json-bytes", true, offsetof(struct opts, json_bytes) },
		{ "--json-file-size", true, offsetof(struct opts, json_file_size) },
		{ "--small-files", false, offsetof(struct opts, small_files) },
		{ "--small-min", true, offsetof(struct opts, small_min) },
		{ "--small-max", true, offsetof(struct opts, small_max) },
		{ "--seed", false, offsetof(struct opts, seed) },
		{ "--dirs", false, offsetof(struct opts, dirs) },
	};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t k;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (o->dir) {
				fprintf(stderr, "gendata: more than one DIR given ('%s', '%s')\n",
					o->dir, a);
				return EXIT_USAGE;
			}
			o->dir = a;
			continue;
		}
		for (k = 0; k < COUNT(table); k++) {
			size_t n = strlen(table[k].name);

			if (strncmp(a, table[k].name, n) == 0 && (a[n] == '\0' || a[n] == '=')) {
				val = a[n] == '=' ? a + n + 1 : NULL;
				break;
			}
		}
		if (k == COUNT(table)) {
			fprintf(stderr, "gendata: unknown option '%s'\n", a);
			return EXIT_USAGE;
		}
		if (!val) {
			if (i + 1 >= argc) {
				fprintf(stderr, "gendata: %s needs a value\n", a);
				return EXIT_USAGE;
			}
			val = argv[++i];
		}
		uint64_t *dst = (uint64_t *)((char *)o + table[k].off);

		if (!(table[k].size ? parse_size(val, dst) : parse_u64(val, dst))) {
			fprintf(stderr, "gendata: %s: bad %s '%s'\n", table[k].name,
				table[k].size ? "size" : "number", val);
			return EXIT_USAGE;
		}
	}
	if (!o->dir) {
		fprintf(stderr, "gendata: no DIR given\n");
		return EXIT_USAGE;
	}
	if (o->json_file_size == 0) {
		fprintf(stderr, "gendata: --json-file-size must be > 0\n");
		return EXIT_USAGE;
	}
	if (o->small_min > o->small_max) {
		fprintf(stderr, "gendata: --small-min (%" PRIu64 ") is larger than --small-max (%" PRIu64 ")\n",
			o->small_min, o->small_max);
		return EXIT_USAGE;
	}
	if (o->dirs == 0 || o->dirs > 1000) {
		fprintf(stderr, "gendata: --dirs must be 1..1000\n");
		return EXIT_USAGE;
	}
	if (o->small_files > 100000) {
		fprintf(stderr, "gendata: --small-files must be at most 100000\n");
		return EXIT_USAGE;
	}
	if (o->json_bytes / o->json_file_size >= 1000000) {
		fprintf(stderr, "gendata: more than 999999 segment files; raise --json-file-size\n");
		return EXIT_USAGE;
	}
	return 0;
}

static void human(char *buf, size_t cap, uint64_t v)
{
	if (v >= GIB)
		snprintf(buf, cap, "%.2f GiB", (double)v / (double)GIB);
	else if (v >= MIB)
		snprintf(buf, cap, "%.1f MiB", (double)v / (double)MIB);
	else
		snprintf(buf, cap, "%.1f KiB", (double)v / (double)KIB);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.json_bytes = GIB,
		.json_file_size = 64 * MIB,
		.small_files = 20000,
		.small_min = KIB,
		.small_max = 32 * KIB,
		.seed = 1,
		.dirs = 256,
	};
	struct totals t = { 0 };
	struct timespec t0, t1;
	char hbuf[32];
	char *buf;
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret) {
		usage(stderr);
		return ret;
	}
	if (mkdir_p(o.dir) < 0)
		return 1;
	/*
	 * Flushed once it holds OUT_FLUSH_AT bytes; then one line (at most
	 * LINE_MAX_LEN) or one padding line (shorter than a line + PAD_MIN).
	 */
	buf = malloc(OUT_FLUSH_AT + LINE_MAX_LEN + PAD_MIN);
	if (!buf) {
		fprintf(stderr, "gendata: out of memory\n");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = gen_segments(&o, buf, &t);
	if (ret == 0)
		ret = gen_small(&o, buf, &t);
	free(buf);
	if (ret < 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	human(hbuf, sizeof(hbuf), t.bytes);
	printf("gendata: %s: %" PRIu64 " files, %" PRIu64 " bytes (%s), seed %" PRIu64
	       ", %.1f s\n", o.dir, t.files, t.bytes, hbuf, o.seed, secs);
	return 0;
}
