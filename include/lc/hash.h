/*
 * livecount — the string hash used by every table (counter, shards, subs).
 *
 * A multiply-xorshift hash reading 8 bytes at a time, keyed by a per-process
 * random seed (lc_hash_seed_init) so that clients cannot precompute colliding
 * URLs for a given server. Not cryptographic; fast on 2 KB URLs.
 */
#ifndef LC_HASH_H
#define LC_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern uint64_t lc_hash_seed;

/** Picks a random seed. Call once at start, before any table is used. */
void lc_hash_seed_init(void);

static inline uint64_t
lc_hash_mix(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	h ^= h >> 32;
	return h;
}

static inline uint64_t
lc_hash(const char *s, size_t len)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t h = lc_hash_seed ^ (len * k);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ (w * k)) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 31;
		s += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, s, len);
	h = (h ^ (w * k)) * 0xbf58476d1ce4e5b9ULL;
	return lc_hash_mix(h);
}

#endif
