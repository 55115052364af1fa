/*
 * livecount — validation of client input: URLs, n, like bodies, WS ops.
 *
 * Pure functions over byte buffers (jansson for JSON, simdjson for like
 * bodies, no lws), shared by the HTTP, WebSocket and SSE transports and by
 * the fuzz targets. Any thread.
 * Every rejection fills a struct lc_api_error with the HTTP status, the machine
 * code and a human message of API.md's error shape.
 */
#ifndef LC_PARSE_H
#define LC_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* for src/parse_simdjson.cc */
#endif

#define LC_N_MAX 1000000 /* |n| of one like request or item */

struct lc_api_error {
	int status;	  /* HTTP status: 400, 413, 415 ... */
	const char *code; /* machine code: "bad_url", "bad_n" ... */
	char message[160];
};

/**
 * Makes jansson allocate a parsed like body from a per-thread arena
 * while it lives (see parse.c). Optional; call once before threads start.
 */
void lc_parse_init(void);

/** Fills err and returns LC_EINVAL; for one-line error returns. */
int lc_api_error_set(struct lc_api_error *err, int status, const char *code,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Checks a liked URL: 1..max_bytes bytes of valid UTF-8 (no overlong
 * forms, surrogates or code points above U+10FFFF) with no control
 * characters (C0, DEL, C1). Returns 0 or LC_EINVAL with err filled.
 */
int lc_url_check(const char *url, size_t len, size_t max_bytes,
		 struct lc_api_error *err);

/**
 * Parses the query form's n: a decimal integer 1..LC_N_MAX.
 * Returns 0 or LC_EINVAL with err filled.
 */
int lc_n_parse(const char *s, size_t len, int64_t *n, struct lc_api_error *err);

/** Maximum nesting depth of a JSON text (strings are skipped). */
int lc_json_depth(const char *s, size_t len);

/**
 * One like or unlike (or, later, one view: a url and a count): url is
 * NUL-terminated and borrowed from the parse result that holds it.
 */
struct lc_like {
	const char *url;
	size_t url_len;
	int64_t n; /* > 0 like, < 0 unlike, never 0 */
};

struct lc_likes {
	json_t *root; /* jansson's path: owns the strings; else NULL */
	bool batch;   /* body was an array */
	bool fast;    /* simdjson's path: items and urls are this thread's */
	size_t n;     /* items */
	struct lc_like *items;
	struct lc_like one; /* storage when !batch */
};

struct lc_limits {
	size_t max_url_bytes;
	size_t max_batch_items;
	int max_json_depth;
};

/**
 * Parses a POST /v1/likes JSON body: {"url":U,"n":K} (n defaults to 1) or
 * [{"url":U,"n":K}, ...]. All or nothing: on error nothing is returned.
 * Returns 0 or LC_EINVAL / LC_ETOOBIG with err filled. On success the
 * result must be released with lc_likes_free on the same thread before
 * the next lc_likes_parse on that thread.
 *
 * The usual bodies are read by simdjson with no tree (parse_simdjson.h);
 * every other body, and every error, by lc_likes_parse_tree, so that the
 * answers are the same as that function's for every input.
 */
int lc_likes_parse(const char *body, size_t len, const struct lc_limits *lim,
		   struct lc_likes *out, struct lc_api_error *err);

/**
 * The reference parser: jansson builds the body's tree, then every item is
 * checked in order (the first bad one is named, "(item i)"). Same contract
 * as lc_likes_parse, which falls back to it; the tests and the
 * differential fuzz target compare the two.
 */
int lc_likes_parse_tree(const char *body, size_t len,
			const struct lc_limits *lim, struct lc_likes *out,
			struct lc_api_error *err);

void lc_likes_free(struct lc_likes *l);

enum lc_ws_op_kind {
	LC_OP_SUBSCRIBE,
	LC_OP_UNSUBSCRIBE,
	LC_OP_LIKE,
	LC_OP_VIEW
};

/** A parsed client WebSocket frame. */
struct lc_ws_op {
	enum lc_ws_op_kind kind;
	json_t *root; /* owns the strings; release with lc_ws_op_free */
	json_t *urls; /* borrowed array of validated strings (subscribe) */
	struct lc_like like; /* LC_OP_LIKE, LC_OP_VIEW (n >= 1) */
	const char *id;	     /* LC_OP_LIKE/VIEW: idempotency id, or NULL */
	size_t id_len;
};

/**
 * Parses and validates one client frame of API.md's WebSocket section.
 * max_urls bounds the urls array. Returns 0 or LC_EINVAL with err filled.
 */
int lc_ws_op_parse(const char *msg, size_t len, const struct lc_limits *lim,
		   size_t max_urls, struct lc_ws_op *op,
		   struct lc_api_error *err);

void lc_ws_op_free(struct lc_ws_op *op);

/**
 * Views only grow: 0 when every item's n is 1..LC_N_MAX, else a 400
 * bad_n naming the first bad item of a batch. lc_likes_parse already
 * checked the rest (url, n an integer within +-LC_N_MAX).
 */
int lc_views_check(const struct lc_like *items, size_t n, bool batch,
		   struct lc_api_error *err);

/**
 * Checks the percent-encoding of a raw HTTP request line ("GET /x?url=%zz
 * HTTP/1.1", len bytes, no line end), which libwebsockets would refuse with
 * an HTML 403 (or a dropped connection, for %00): 0 when every '%' of the
 * target starts two hex digits encoding a printable byte or one >= 0x80;
 * for a malformed escape or %00..%1f / %7f: 2 when it is inside a url=
 * parameter, 1 when elsewhere.
 */
int lc_request_target_check(const char *line, size_t len);

/*
 * Counts the items of a JSON batch as its bytes arrive, so that a batch
 * over max_batch_items is refused before the rest is read and parsed: the
 * commas at depth 1 of a body that starts with '[', outside strings, plus
 * one. Zero-initialise, then feed every chunk in order.
 */
struct lc_batch_scan {
	uint64_t fed;	/* bytes seen */
	uint32_t items; /* items so far (1 once '[' opened the body) */
	uint16_t depth; /* nesting, saturating */
	bool in_string; /* inside a JSON string */
	bool escape;	/* after a backslash in a string */
	bool array;	/* the body started with '[' */
};

/** Feeds len more bytes; false once the count exceeds max. */
bool lc_batch_scan_feed(struct lc_batch_scan *s, const char *in, size_t len,
			size_t max);

#ifdef __cplusplus
}
#endif

#endif
