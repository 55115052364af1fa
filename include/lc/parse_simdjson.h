/*
 * livecount — the fast path of lc_likes_parse(): like bodies read with
 * simdjson (DOM API, a C++ translation unit behind this C interface)
 * instead of a jansson tree per body.
 *
 * It only ever says "yes, exactly this" or "not mine": it accepts a body
 * only when jansson's path (lc_likes_parse_tree) would accept it with the
 * same items, and hands everything else (every error, every unusual but
 * valid shape) back to that path, which then gives today's answer. Any
 * thread; each thread has its own parser and buffers.
 */
#ifndef LC_PARSE_SIMDJSON_H
#define LC_PARSE_SIMDJSON_H

#include "lc/parse.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Picks simdjson's implementation for this CPU once (it would otherwise be
 * picked by the first parse, possibly on two threads at once). Called by
 * lc_parse_init(); optional.
 */
void lc_likes_simd_init(void);

/**
 * Parses body when it has exactly one of these shapes (JSON whitespace
 * anywhere between tokens):
 *   {"url":U}  {"url":U,"n":K}  [ ]  [ item, item, ... ]
 * with the keys in either order, each at most once, no other key, U a
 * string (the caller still puts it through lc_url_check()), K an integer
 * token (no fraction or exponent) of 1..LC_N_MAX in absolute value, at most
 * lim->max_batch_items items and a nesting depth within
 * lim->max_json_depth. Returns true with out filled as lc_likes_parse()
 * does (out->fast set: items and urls are borrowed from this thread's
 * parser until lc_likes_free), or false with out untouched: the body is
 * then for lc_likes_parse_tree(). Calls nothing of parse.c, so that the
 * two objects do not call each other (scripts/check-layers.sh).
 */
bool lc_likes_parse_simd(const char *body, size_t len,
			 const struct lc_limits *lim, struct lc_likes *out);

/**
 * Called by lc_likes_free() for a result of lc_likes_parse_simd(): gives
 * back the memory of this thread's parser when the last body was large,
 * so that one 8 MB body does not keep ~100 MB per thread.
 */
void lc_likes_simd_release(void);

#ifdef __cplusplus
}
#endif

#endif
