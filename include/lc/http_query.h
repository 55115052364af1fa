/*
 * livecount — reading query parameters of the request URI.
 *
 * Does: copy every value of one parameter name, validating liked URLs
 * (parse.c) and parsing integers and times. Does not: read headers or
 * bodies.
 *
 * Threads: the worker thread, inside the lws callback of the request
 * (lws frees the header table after it: read what you need then).
 */
#ifndef LC_HTTP_QUERY_H
#define LC_HTTP_QUERY_H

#include "lc/config.h"
#include "lc/parse.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

/* One query fragment as copied from lws: max_http_header_data + slack. */
#define LC_QUERY_FRAGMENT_BYTES 8448

/* Bytes lc_http_query needs to hold one validated url value and its NUL. */
#define LC_QUERY_URL_BYTES (LC_URL_MAX_BYTES + 1)

_Static_assert(LC_QUERY_URL_BYTES <= LC_QUERY_FRAGMENT_BYTES,
	       "a url value of the maximum length fits in one fragment");

/* Bytes for up to n url values (each with its NUL), n <= the config cap. */
#define LC_QUERY_URLS_BYTES(n) ((size_t)(n)*LC_QUERY_URL_BYTES + 1)

/**
 * Copies the values of the query parameters named `name` into buf
 * (buflen bytes, NUL-terminated each) and points vals/lens at them (at
 * most max), validating each as a liked URL when name is "url". Returns
 * the number found, or -1 with err filled (too many, too long, bad URL,
 * NUL byte).
 */
int lc_http_query(struct lws *wsi, const char *name, char *buf, size_t buflen,
		  const char **vals, size_t *lens, int max,
		  struct lc_api_error *err);

/** Whether the query has a parameter named `name`. */
bool lc_http_query_has(struct lws *wsi, const char *name);

/**
 * Reads integer parameter `name` within lo..hi into *out (def when
 * absent). Returns 0, or -1 with err filled.
 */
int lc_http_query_int(struct lws *wsi, const char *name, long long lo,
		      long long hi, long long def, long long *out,
		      struct lc_api_error *err);

/**
 * Reads time parameter `name` (ISO-8601 UTC or Unix seconds) into *out
 * as Unix seconds (def when absent). Returns 0, or -1 with err filled.
 */
int lc_http_query_time(struct lws *wsi, const char *name, int64_t def,
		       int64_t *out, struct lc_api_error *err);

#endif
