/*
 * The fast path of lc_likes_parse(): like bodies through simdjson's DOM
 * parser (Debian's libsimdjson-dev 3.0), with no jansson tree per body.
 *
 * Each thread keeps one simdjson parser, one padded copy of the body and
 * one items array, reused from body to body; the urls handed out point into
 * the parser's string buffer (NUL-terminated), so a result lives until
 * lc_likes_free() and the next parse on that thread, as lc_likes_parse()
 * promises. No C++ exception crosses into C: simdjson is used through its
 * error codes and this file is built with -fno-exceptions.
 *
 * A note on "exactly the same answers": this path accepts or declines, it
 * never refuses. It accepts only the shapes parse_simdjson.h lists, in which
 * every byte has been validated by simdjson (UTF-8, strings, escapes,
 * numbers, structure, nothing after the value) and every rule jansson's
 * path adds is checked here too: no duplicate key (the only keys allowed
 * are "url" and "n", once each), n an int64 token in range (simdjson types
 * a token with '.', 'e' or 'E' as a double, as jansson makes it a real),
 * the item limit and the depth; lc_likes_parse() then puts every url
 * through lc_url_check() (which also refuses the NUL a "\u0000" escape and
 * the bytes a lone "\uDC00" would give, both jansson errors). Everything else
 * goes to jansson's path, whose answer (error code, message, "(item i)") is
 * today's by construction. tests/fuzz/fuzz_likes_diff.c checks the equivalence.
 *
 * simdjson parses a 10k-item batch (700 kB) in ~840 us of CPU here where
 * jansson took ~10 ms to build its tree; yajl's callbacks took ~2 ms
 * (loadtest/RESULTS.md, "S2: the batch parser").
 */
#define SIMDJSON_EXCEPTIONS 0
#include <simdjson.h>

#include "lc/parse_simdjson.h"

#include <stdlib.h>
#include <string.h>

namespace
{

/* Bodies up to this size keep the parser's memory for the next body. */
constexpr size_t KEEP_BYTES = (size_t)4 << 20;

struct state {
	simdjson::dom::parser *parser = nullptr;
	char *buf = nullptr; /* the body, then SIMDJSON_PADDING bytes */
	size_t buf_cap = 0;  /* bytes of buf, padding included */
	struct lc_like *items = nullptr;
	size_t items_cap = 0;

	void release()
	{
		delete parser;
		parser = nullptr;
		free(buf);
		buf = nullptr;
		buf_cap = 0;
		free(items);
		items = nullptr;
		items_cap = 0;
	}
	~state()
	{
		release();
	}
};

thread_local state st;

bool
reserve_buf(size_t len)
{
	size_t need = len + simdjson::SIMDJSON_PADDING;

	if (need <= st.buf_cap)
		return true;
	char *b = (char *)realloc(st.buf, need);
	if (!b)
		return false;
	st.buf = b;
	st.buf_cap = need;
	return true;
}

bool
reserve_items(size_t n)
{
	if (n <= st.items_cap)
		return true;
	struct lc_like *p = (struct lc_like *)realloc(st.items, n * sizeof(*p));
	if (!p)
		return false;
	st.items = p;
	st.items_cap = n;
	return true;
}

/* One {"url":U,"n":K} object into out; false declines the body. */
bool
take_like(simdjson::dom::element e, struct lc_like *out)
{
	simdjson::dom::object obj;
	bool have_url = false, have_n = false;

	if (e.get_object().get(obj))
		return false;
	out->n = 1;
	for (simdjson::dom::key_value_pair kv : obj) {
		std::string_view k = kv.key; /* compared inline, not memcmp */

		if (k.size() == 3 && k[0] == 'u' && k[1] == 'r' &&
		    k[2] == 'l' && !have_url) {
			std::string_view s;

			if (kv.value.get_string().get(s))
				return false;
			out->url = s.data();
			out->url_len = s.size();
			have_url = true;
		} else if (k.size() == 1 && k[0] == 'n' && !have_n) {
			int64_t v;

			if (!kv.value.is_int64() || kv.value.get_int64().get(v))
				return false;
			if (v == 0 || v > LC_N_MAX || v < -LC_N_MAX)
				return false;
			out->n = v;
			have_n = true;
		} else
			return false; /* another key, or a duplicate */
	}
	return have_url;
}

} // namespace

extern "C" void
lc_likes_simd_init(void)
{
	(void)simdjson::get_active_implementation()->name();
}

extern "C" bool
lc_likes_parse_simd(const char *body, size_t len, const struct lc_limits *lim,
		    struct lc_likes *out)
{
	simdjson::dom::element root;
	size_t i = 0;

	/* jansson takes JSON whitespace only before the value (no BOM). */
	while (i < len && (body[i] == ' ' || body[i] == '\t' ||
			   body[i] == '\n' || body[i] == '\r'))
		i++;
	if (i == len || (body[i] != '[' && body[i] != '{'))
		return false;
	if (!st.parser) {
		st.parser = new (std::nothrow) simdjson::dom::parser();
		if (!st.parser)
			return false;
	}
	if (!reserve_buf(len))
		return false;
	memcpy(st.buf, body, len);
	if (st.parser->parse((const uint8_t *)st.buf, len, false).get(root))
		return false;

	if (root.is_object()) {
		struct lc_like one;

		if (lim->max_json_depth < 1 || !take_like(root, &one))
			return false;
		memset(out, 0, sizeof(*out));
		out->one = one;
		out->items = &out->one;
		out->n = 1;
		out->fast = true;
		return true;
	}
	simdjson::dom::array arr;
	if (root.get_array().get(arr))
		return false;
	/* size() saturates at 0xFFFFFF, which no limit reaches. */
	size_t n = arr.size();
	if (n > lim->max_batch_items || n >= 0xFFFFFF ||
	    lim->max_json_depth < (n ? 2 : 1) || !reserve_items(n ? n : 1))
		return false;
	size_t k = 0;
	for (simdjson::dom::element e : arr) {
		if (k == n || !take_like(e, &st.items[k]))
			return false;
		k++;
	}
	if (k != n)
		return false;
	memset(out, 0, sizeof(*out));
	out->batch = true;
	out->n = n;
	out->items = n ? st.items : nullptr;
	out->fast = true;
	return true;
}

extern "C" void
lc_likes_simd_release(void)
{
	if (st.buf_cap > KEEP_BYTES + simdjson::SIMDJSON_PADDING ||
	    (st.parser && st.parser->capacity() > KEEP_BYTES))
		st.release();
}
