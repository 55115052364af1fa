/*
 * Validation of everything a client sends: URLs, n, JSON bodies, WS ops.
 *
 * Validate at the boundary: once a like leaves this file its url is valid
 * UTF-8 without control characters and its n is a non-zero integer within
 * bounds, so the counting core never re-checks. JSON is parsed by jansson
 * (JSON_REJECT_DUPLICATES, no NUL in strings); the only hand-written
 * scanner here is lc_json_depth(), a guard run before jansson so that a
 * deeply nested body is refused cheaply. Like bodies are first offered to
 * simdjson (parse_simdjson.cc), which takes the usual ones without building
 * a tree and leaves every other body, and every error, to jansson.
 */
#include "lc/parse.h"
#include "lc/common.h"
#include "lc/idem.h"
#include "lc/parse_simdjson.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * A note on the batch arena: a 10k-item batch makes jansson allocate and
 * free about 60k small blocks (an object, its hash table, two strings and
 * an integer per item); malloc and free were the largest cost of batched
 * ingest. While json_loadb builds a like body's tree, this thread's
 * jansson allocations come from a bump arena (one reserved region per
 * thread); frees of blocks inside the region are no-ops, and lc_likes_free
 * rewinds it once the tree is released. Only json_loadb's allocations go
 * there: strings jansson makes later (json_dumps results, which callers
 * free() themselves) always come from malloc.
 */
#define ARENA_BYTES ((size_t)64 << 20) /* reserved, touched on demand */

static __thread char *arena_base, *arena_cur, *arena_end;
static __thread bool arena_on;

static void *
arena_malloc(size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (arena_on && (size_t)(arena_end - arena_cur) >= n) {
		void *p = arena_cur;

		arena_cur += n;
		return p;
	}
	return malloc(n);
}

static void
arena_free(void *p)
{
	if ((char *)p >= arena_base && (char *)p < arena_end)
		return;
	free(p);
}

void
lc_parse_init(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
	lc_likes_simd_init();
}

static void
arena_begin(void)
{
	if (!arena_base) {
		void *m =
		    mmap(NULL, ARENA_BYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (m == MAP_FAILED)
			return; /* plain malloc then */
		arena_base = arena_cur = m;
		arena_end = arena_base + ARENA_BYTES;
	}
	arena_cur = arena_base;
	arena_on = true;
}

static void
arena_end_use(void)
{
	arena_on = false;
	arena_cur = arena_base;
}

int
lc_api_error_set(struct lc_api_error *err, int status, const char *code,
		 const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return LC_EINVAL;
}

/* True when none of the 8 bytes of w is a control, DEL or non-ASCII. */
static inline bool
printable8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = ones * 0x80;
	uint64_t del = w ^ (ones * 0x7f);

	return !((w & high) | ((w - ones * 0x20) & ~w & high) |
		 ((del - ones) & ~del & high));
}

int
lc_url_check(const char *url, size_t len, size_t max_bytes,
	     struct lc_api_error *err)
{
	const unsigned char *p = (const unsigned char *)url, *end = p + len;

	if (!url || !len)
		return lc_api_error_set(err, 400, "bad_url",
					"url is missing or empty");
	if (len > max_bytes)
		return lc_api_error_set(err, 400, "bad_url",
					"url is %zu bytes, more than %zu", len,
					max_bytes);
	while (p < end) {
		uint32_t cp;
		int extra;
		uint64_t w;

		/* Eight printable ASCII bytes at a time: most URLs are. */
		if (end - p >= 8 && (memcpy(&w, p, 8), printable8(w))) {
			p += 8;
			continue;
		}
		if (*p < 0x80) {
			if (*p < 0x20 || *p == 0x7f)
				goto control;
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			extra = 1;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			extra = 2;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			extra = 3;
		} else
			goto utf8;
		if (end - p <= extra)
			goto utf8;
		for (int i = 1; i <= extra; i++) {
			if ((p[i] & 0xc0) != 0x80)
				goto utf8;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* Overlong forms, surrogates and beyond Unicode. */
		if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
		    (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			goto utf8;
		if (cp >= 0x80 && cp <= 0x9f)
			goto control;
		p += extra + 1;
	}
	return 0;
control:
	return lc_api_error_set(err, 400, "bad_url",
				"url contains a control character at byte %zu",
				(size_t)(p - (const unsigned char *)url));
utf8:
	return lc_api_error_set(err, 400, "bad_url",
				"url is not valid UTF-8 at byte %zu",
				(size_t)(p - (const unsigned char *)url));
}

int
lc_n_parse(const char *s, size_t len, int64_t *n, struct lc_api_error *err)
{
	int64_t v = 0;

	/* Leading zeros are fine ("007"); at most 7 digits remain. */
	while (len > 1 && *s == '0')
		s++, len--;
	if (!len || len > 7)
		goto bad;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > LC_N_MAX)
		goto bad;
	*n = v;
	return 0;
bad:
	return lc_api_error_set(err, 400, "bad_n",
				"n must be an integer from 1 to %d", LC_N_MAX);
}

int
lc_json_depth(const char *s, size_t len)
{
	int depth = 0, max = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
		} else if (c == ']' || c == '}')
			depth--;
	}
	return max;
}

/* Parses JSON text with the shared limits; root is a new reference. */
static json_t *
load_json(const char *s, size_t len, const struct lc_limits *lim,
	  struct lc_api_error *err)
{
	json_error_t jerr;
	json_t *root;

	if (lc_json_depth(s, len) > lim->max_json_depth) {
		lc_api_error_set(err, 400, "bad_json",
				 "JSON nested deeper than %d",
				 lim->max_json_depth);
		return NULL;
	}
	root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		lc_api_error_set(err, 400, "bad_json", "malformed JSON: %s",
				 jerr.text);
	return root;
}

/* Validates a url value (borrowed json_t) into out. */
static int
take_url(json_t *v, const struct lc_limits *lim, const char **url, size_t *len,
	 struct lc_api_error *err)
{
	if (!json_is_string(v))
		return lc_api_error_set(err, 400, "bad_url",
					v ? "url must be a string"
					  : "url is missing");
	*url = json_string_value(v);
	*len = json_string_length(v);
	return lc_url_check(*url, *len, lim->max_url_bytes, err);
}

/* Validates one {"url":U,"n":K} object (borrowed) into out. */
static int
take_like(json_t *obj, const struct lc_limits *lim, struct lc_like *out,
	  struct lc_api_error *err)
{
	json_t *n;

	if (!json_is_object(obj))
		return lc_api_error_set(err, 400, "bad_json",
					"a like must be an object {\"url\":..,"
					"\"n\":..}");
	if (take_url(json_object_get(obj, "url"), lim, &out->url, &out->url_len,
		     err))
		return LC_EINVAL;
	n = json_object_get(obj, "n");
	if (!n) {
		out->n = 1;
		return 0;
	}
	if (!json_is_integer(n) || json_integer_value(n) == 0 ||
	    json_integer_value(n) > LC_N_MAX ||
	    json_integer_value(n) < -LC_N_MAX)
		return lc_api_error_set(
		    err, 400, "bad_n",
		    "n must be a non-zero integer from %d to %d", -LC_N_MAX,
		    LC_N_MAX);
	out->n = json_integer_value(n);
	return 0;
}

int
lc_likes_parse(const char *body, size_t len, const struct lc_limits *lim,
	       struct lc_likes *out, struct lc_api_error *err)
{
	memset(out, 0, sizeof(*out));
	if (lc_likes_parse_simd(body, len, lim, out)) {
		size_t i;

		for (i = 0; i < out->n; i++)
			if (lc_url_check(out->items[i].url,
					 out->items[i].url_len,
					 lim->max_url_bytes, err))
				break;
		if (i == out->n)
			return 0;
		lc_likes_free(out); /* jansson's path names the item */
	}
	return lc_likes_parse_tree(body, len, lim, out, err);
}

int
lc_likes_parse_tree(const char *body, size_t len, const struct lc_limits *lim,
		    struct lc_likes *out, struct lc_api_error *err)
{
	json_t *root;

	memset(out, 0, sizeof(*out));
	arena_begin();
	root = load_json(body, len, lim, err);
	arena_on = false; /* the tree is built; nothing else goes there */
	if (!root) {
		arena_end_use();
		return LC_EINVAL;
	}
	out->root = root;
	if (json_is_object(root)) {
		if (take_like(root, lim, &out->one, err))
			goto fail;
		out->items = &out->one;
		out->n = 1;
		return 0;
	}
	if (!json_is_array(root)) {
		lc_api_error_set(
		    err, 400, "bad_json",
		    "body must be a like object or an array of them");
		goto fail;
	}
	out->batch = true;
	out->n = json_array_size(root);
	if (out->n > lim->max_batch_items) {
		lc_api_error_set(err, 413, "too_many_items",
				 "batch has %zu items, more than %zu", out->n,
				 lim->max_batch_items);
		goto fail_big;
	}
	if (!out->n)
		return 0;
	out->items = malloc(out->n * sizeof(*out->items));
	if (!out->items) {
		lc_api_error_set(err, 503, "out_of_memory",
				 "server out of memory");
		goto fail;
	}
	for (size_t i = 0; i < out->n; i++)
		if (take_like(json_array_get(root, i), lim, &out->items[i],
			      err)) {
			size_t l = strlen(err->message);

			snprintf(err->message + l, sizeof(err->message) - l,
				 " (item %zu)", i);
			goto fail;
		}
	return 0;
fail:
	lc_likes_free(out);
	return LC_EINVAL;
fail_big:
	lc_likes_free(out);
	return LC_ETOOBIG;
}

int
lc_views_check(const struct lc_like *items, size_t n, bool batch,
	       struct lc_api_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].n < 1) {
			if (batch)
				return lc_api_error_set(
				    err, 400, "bad_n",
				    "n of a view must be an integer from 1 to "
				    "%d (item %zu)",
				    LC_N_MAX, i);
			return lc_api_error_set(
			    err, 400, "bad_n",
			    "n of a view must be an integer "
			    "from 1 to %d",
			    LC_N_MAX);
		}
	return 0;
}

void
lc_likes_free(struct lc_likes *l)
{
	if (l->fast)
		lc_likes_simd_release(); /* the items are the parser's */
	else if (l->items && l->items != &l->one)
		free(l->items);
	json_decref(l->root);
	memset(l, 0, sizeof(*l));
	arena_end_use();
}

int
lc_ws_op_parse(const char *msg, size_t len, const struct lc_limits *lim,
	       size_t max_urls, struct lc_ws_op *op, struct lc_api_error *err)
{
	const char *name;
	json_t *v;

	memset(op, 0, sizeof(*op));
	op->root = load_json(msg, len, lim, err);
	if (!op->root)
		return LC_EINVAL;
	if (!json_is_object(op->root)) {
		lc_api_error_set(err, 400, "bad_op",
				 "a message must be a JSON object");
		goto fail;
	}
	v = json_object_get(op->root, "op");
	name = json_string_value(v);
	if (!name) {
		lc_api_error_set(err, 400, "bad_op", "\"op\" must be a string");
		goto fail;
	}
	if (!strcmp(name, "like") || !strcmp(name, "view")) {
		json_t *id = json_object_get(op->root, "id");

		op->kind = name[0] == 'l' ? LC_OP_LIKE : LC_OP_VIEW;
		if (take_like(op->root, lim, &op->like, err) ||
		    (op->kind == LC_OP_VIEW &&
		     lc_views_check(&op->like, 1, false, err)))
			goto fail;
		op->id = NULL;
		op->id_len = 0;
		if (id) {
			const char *s = json_string_value(id);
			size_t n = s ? json_string_length(id) : 0;

			/* 1..128 printable ASCII, as Idempotency-Key. */
			if (!s || !lc_idem_key_valid(s, n)) {
				lc_api_error_set(err, 400, "bad_request",
						 "\"id\" must be 1 to 128 "
						 "printable ASCII characters");
				goto fail;
			}
			op->id = s;
			op->id_len = n;
		}
		return 0;
	}
	if (!strcmp(name, "subscribe"))
		op->kind = LC_OP_SUBSCRIBE;
	else if (!strcmp(name, "unsubscribe"))
		op->kind = LC_OP_UNSUBSCRIBE;
	else {
		lc_api_error_set(err, 400, "bad_op",
				 "op must be subscribe, unsubscribe, like or "
				 "view");
		goto fail;
	}
	op->urls = json_object_get(op->root, "urls");
	if (!json_is_array(op->urls)) {
		lc_api_error_set(err, 400, "bad_url",
				 "\"urls\" must be an array");
		goto fail;
	}
	if (json_array_size(op->urls) > max_urls) {
		lc_api_error_set(err, 400, "too_many_subscriptions",
				 "at most %zu urls per connection", max_urls);
		goto fail;
	}
	for (size_t i = 0; i < json_array_size(op->urls); i++) {
		const char *u;
		size_t ul;

		if (take_url(json_array_get(op->urls, i), lim, &u, &ul, err))
			goto fail;
	}
	return 0;
fail:
	lc_ws_op_free(op);
	return LC_EINVAL;
}

void
lc_ws_op_free(struct lc_ws_op *op)
{
	json_decref(op->root);
	memset(op, 0, sizeof(*op));
}

static int
hexval(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

int
lc_request_target_check(const char *line, size_t len)
{
	const char *p = memchr(line, ' ', len), *end, *seg;

	if (!p)
		return 0;
	p++;
	end = memchr(p, ' ', len - (size_t)(p - line));
	if (!end)
		end = line + len;
	seg = p;
	for (const char *q = p; q < end; q++) {
		if (*q == '?' || *q == '&' || *q == ';')
			seg = q + 1;
		if (*q != '%')
			continue;
		if (end - q >= 3 && isxdigit((unsigned char)q[1]) &&
		    isxdigit((unsigned char)q[2])) {
			int v = hexval(q[1]) * 16 + hexval(q[2]);

			/* %00..%1f, %7f: lws drops the connection or cuts
			 * the line at them; no URL or value needs them. */
			if (v >= 0x20 && v != 0x7f) {
				q += 2;
				continue;
			}
		}
		return end - seg >= 4 && !strncmp(seg, "url=", 4) ? 2 : 1;
	}
	return 0;
}

/* The bytes of w equal to c: the high bit of the first one is set. */
#define BYTES_EQ(w, c)                                                         \
	((((w) ^ ONES * (c)) - ONES) & ~((w) ^ ONES * (c)) & ONES * 0x80)
#define ONES 0x0101010101010101ull

/*
 * A note on the batch scan: it sees every byte of every body, so it keeps
 * its state in locals (a char store could alias the struct and make the
 * compiler reload it for each byte) and crosses strings 8 bytes at a time up
 * to the closing quote or the next backslash; most of a batch's bytes are
 * inside its urls. Linear in the chunk whatever it holds.
 */
bool
lc_batch_scan_feed(struct lc_batch_scan *s, const char *in, size_t len,
		   size_t max)
{
	const char *p = in, *end = in + len;
	bool in_string = s->in_string, escape = s->escape, ok = true;
	uint16_t depth = s->depth;
	uint32_t items = s->items;

	if (len && !s->fed && *p == '[') {
		s->array = true;
		items = 1;
	}
	while (p < end) {
		char ch;

		if (in_string) {
			if (escape) {
				escape = false;
				p++;
				continue;
			}
			for (uint64_t w, m; end - p >= 8; p += 8) {
				memcpy(&w, p, 8);
				m = BYTES_EQ(w, '"') | BYTES_EQ(w, '\\');
				if (m) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
					/* the lowest bit set is the first match
					 */
					p += __builtin_ctzll(m) >> 3;
#endif
					break;
				}
			}
			while (p < end && *p != '"' && *p != '\\')
				p++;
			if (p == end)
				break;
			if (*p++ == '\\')
				escape = true;
			else
				in_string = false;
			continue;
		}
		ch = *p++;
		if (ch == '"')
			in_string = true;
		else if ((ch == '[' || ch == '{') && depth < UINT16_MAX)
			depth++;
		else if ((ch == ']' || ch == '}') && depth)
			depth--;
		else if (ch == ',' && depth == 1 && s->array && ++items > max) {
			ok = false;
			break;
		}
	}
	s->fed += (uint64_t)(p - in);
	s->in_string = in_string;
	s->escape = escape;
	s->depth = depth;
	s->items = items;
	return ok;
}
