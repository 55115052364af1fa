/* Unit tests: URL and n validation, like/batch JSON, WebSocket ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/common.h"
#include "lc/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lc_limits lim = {
    .max_url_bytes = 2048, .max_batch_items = 10000, .max_json_depth = 8};

static int
url_ok(const char *s, size_t len)
{
	struct lc_api_error err;

	return lc_url_check(s, len, 2048, &err) == 0;
}

#define URL_OK(lit) url_ok(lit, sizeof(lit) - 1)

static void
test_url_validation(void **state)
{
	char big[2050];
	struct lc_api_error err;

	(void)state;
	assert_true(URL_OK("https://example.com/a?b=c#d"));
	assert_true(URL_OK("x"));
	assert_true(URL_OK("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x91\x8d"));
	assert_true(URL_OK("</script>\"\\'"));
	assert_false(url_ok("", 0));
	assert_false(URL_OK("a\nb"));
	assert_false(URL_OK("a\rb"));
	assert_false(URL_OK("a\tb"));
	assert_false(URL_OK("a\x7f"));
	assert_false(url_ok("a\0b", 3));
	assert_false(URL_OK("\xc2\x85"));	  /* C1 control NEL */
	assert_false(URL_OK("\xff"));		  /* never valid */
	assert_false(URL_OK("\xc3"));		  /* truncated */
	assert_false(URL_OK("\xc0\xaf"));	  /* overlong '/' */
	assert_false(URL_OK("\xe0\x80\xaf"));	  /* overlong */
	assert_false(URL_OK("\xed\xa0\x80"));	  /* surrogate */
	assert_false(URL_OK("\xf4\x90\x80\x80")); /* > U+10FFFF */
	assert_false(URL_OK("\x80"));		  /* lone continuation */
	memset(big, 'a', sizeof(big));
	assert_true(url_ok(big, 2048));
	assert_false(url_ok(big, 2049));
	assert_int_not_equal(lc_url_check(big, 2049, 2048, &err), 0);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.code, "bad_url");
}

static void
test_n_parse(void **state)
{
	struct lc_api_error err;
	int64_t n;

	(void)state;
	assert_int_equal(lc_n_parse("1", 1, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(lc_n_parse("1000000", 7, &n, &err), 0);
	assert_int_equal(n, 1000000);
	assert_int_not_equal(lc_n_parse("1000001", 7, &n, &err), 0);
	assert_int_equal(lc_n_parse("00000007", 8, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_int_not_equal(lc_n_parse("00000000", 8, &n, &err), 0);
	assert_string_equal(err.code, "bad_n");
	assert_int_not_equal(lc_n_parse("0", 1, &n, &err), 0);
	assert_int_not_equal(lc_n_parse("-1", 2, &n, &err), 0);
	assert_int_not_equal(lc_n_parse("1.5", 3, &n, &err), 0);
	assert_int_not_equal(lc_n_parse("", 0, &n, &err), 0);
	assert_int_not_equal(lc_n_parse("12a", 3, &n, &err), 0);
	assert_int_not_equal(lc_n_parse("99999999999999999999", 20, &n, &err),
			     0);
}

/*
 * The like-body tests run twice: through lc_likes_parse (simdjson first,
 * jansson for the rest) and through the reference lc_likes_parse_tree.
 */
typedef int (*likes_parser)(const char *body, size_t len,
			    const struct lc_limits *lim, struct lc_likes *out,
			    struct lc_api_error *err);
static likes_parser parser = lc_likes_parse;

static int
parse(const char *body, struct lc_likes *out, struct lc_api_error *err)
{
	return parser(body, strlen(body), &lim, out, err);
}

static void
expect_error(const char *body, int status, const char *code)
{
	struct lc_likes l;
	struct lc_api_error err;

	if (parse(body, &l, &err) == 0)
		fail_msg("accepted: %s", body);
	assert_int_equal(err.status, status);
	if (strcmp(err.code, code))
		fail_msg("%s: got %s (%s), want %s", body, err.code,
			 err.message, code);
	assert_null(l.root); /* nothing returned on error */
}

static void
test_like_object(void **state)
{
	struct lc_likes l;
	struct lc_api_error err;

	(void)state;
	assert_int_equal(parse("{\"url\":\"a\",\"n\":5}", &l, &err), 0);
	assert_false(l.batch);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].url, "a");
	assert_int_equal(l.items[0].n, 5);
	lc_likes_free(&l);
	assert_int_equal(parse("{\"url\":\"a\"}", &l, &err), 0);
	assert_int_equal(l.items[0].n, 1);
	lc_likes_free(&l);
	assert_int_equal(
	    parse("{\"url\":\"a\",\"n\":-3,\"extra\":1}", &l, &err), 0);
	assert_int_equal(l.items[0].n, -3);
	lc_likes_free(&l);
}

static void
test_like_errors(void **state)
{
	(void)state;
	expect_error("", 400, "bad_json");
	expect_error("{", 400, "bad_json");
	expect_error("{\"url\":\"a\"", 400, "bad_json");
	expect_error("nul", 400, "bad_json");
	expect_error("\"a\"", 400, "bad_json");
	expect_error("42", 400, "bad_json");
	expect_error("{}", 400, "bad_url");
	expect_error("{\"url\":5}", 400, "bad_url");
	expect_error("{\"url\":{\"x\":1}}", 400, "bad_url");
	expect_error("{\"url\":null}", 400, "bad_url");
	expect_error("{\"url\":\"\"}", 400, "bad_url");
	expect_error("{\"url\":\"a\\nb\"}", 400, "bad_url");
	expect_error("{\"url\":\"a\\u0000b\"}", 400, "bad_json");
	expect_error("{\"url\":\"a\\ud800\"}", 400, "bad_json");
	expect_error("{\"url\":\"a\",\"n\":\"3\"}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"n\":1.5}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"n\":0}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"n\":1000001}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"n\":-1000001}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"n\":true}", 400, "bad_n");
	expect_error("{\"url\":\"a\",\"url\":\"b\"}", 400, "bad_json");
	expect_error("[[[[[[[[[[1]]]]]]]]]]", 400, "bad_json");
	expect_error("{\"url\":\"\xff\"}", 400, "bad_json");
}

static void
test_batch(void **state)
{
	struct lc_likes l;
	struct lc_api_error err;
	char *big;
	size_t off = 0;

	(void)state;
	assert_int_equal(parse("[]", &l, &err), 0);
	assert_true(l.batch);
	assert_int_equal(l.n, 0);
	lc_likes_free(&l);
	assert_int_equal(
	    parse("[{\"url\":\"a\",\"n\":2},{\"url\":\"b\",\"n\":-1},"
		  "{\"url\":\"a\"}]",
		  &l, &err),
	    0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[1].url, "b");
	assert_int_equal(l.items[1].n, -1);
	assert_int_equal(l.items[2].n, 1);
	lc_likes_free(&l);

	/* One bad item rejects the whole batch, naming the item. */
	assert_int_not_equal(
	    parse("[{\"url\":\"a\"},{\"url\":\"b\",\"n\":\"x\"}]", &l, &err),
	    0);
	assert_string_equal(err.code, "bad_n");
	assert_non_null(strstr(err.message, "item 1"));
	expect_error("[1]", 400, "bad_json");
	expect_error("[{\"url\":\"a\"},null]", 400, "bad_json");

	/* 10000 items pass, 10001 are 413. */
	big = malloc(10001 * 24 + 16);
	big[off++] = '[';
	for (int i = 0; i < 10001; i++)
		off += (size_t)sprintf(big + off, "%s{\"url\":\"u%d\"}",
				       i ? "," : "", i);
	big[off++] = ']';
	big[off] = '\0';
	assert_int_not_equal(parse(big, &l, &err), 0);
	assert_int_equal(err.status, 413);
	assert_string_equal(err.code, "too_many_items");
	off = (size_t)(strrchr(big, ',') - big);
	big[off++] = ']';
	big[off] = '\0';
	assert_int_equal(parse(big, &l, &err), 0);
	assert_int_equal(l.n, 10000);
	assert_string_equal(l.items[9999].url, "u9999");
	lc_likes_free(&l);
	free(big);
}

static void
tree_too(void (*test)(void **), void **state)
{
	parser = lc_likes_parse_tree;
	test(state);
	parser = lc_likes_parse;
}

static void
test_like_object_tree(void **state)
{
	tree_too(test_like_object, state);
}

static void
test_like_errors_tree(void **state)
{
	tree_too(test_like_errors, state);
}

static void
test_batch_tree(void **state)
{
	tree_too(test_batch, state);
}

/* Everything a caller can see of a parse, as one string. */
static void
describe(int rc, const struct lc_likes *l, const struct lc_api_error *err,
	 char *out, size_t cap)
{
	size_t o = 0;

	if (rc) {
		snprintf(out, cap, "rc %d %d %s %s", rc, err->status, err->code,
			 err->message);
		return;
	}
	o += (size_t)snprintf(out, cap, "ok batch=%d n=%zu", l->batch, l->n);
	for (size_t i = 0; i < l->n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, " [%zu:%s %lld]",
				      l->items[i].url_len, l->items[i].url,
				      (long long)l->items[i].n);
}

/* Parses len bytes with both parsers; fails unless the answers match.
 * Returns whether simdjson's path took the body. */
static bool
agree(const char *body, size_t len, const struct lc_limits *lm)
{
	char a[1024], b[1024];
	struct lc_likes l;
	struct lc_api_error err;
	bool fast;
	int rc = lc_likes_parse(body, len, lm, &l, &err);

	describe(rc, &l, &err, a, sizeof(a));
	fast = l.fast;
	if (rc == 0 && l.batch && l.n == 0)
		assert_null(l.items);
	lc_likes_free(&l);
	rc = lc_likes_parse_tree(body, len, lm, &l, &err);
	describe(rc, &l, &err, b, sizeof(b));
	assert_false(l.fast);
	lc_likes_free(&l);
	if (strcmp(a, b))
		fail_msg(
		    "%.*s:\n  lc_likes_parse      %s\n  lc_likes_parse_tree "
		    "%s",
		    (int)len, body, a, b);
	return fast;
}

#define AGREE(lit) agree(lit, sizeof(lit) - 1, &lim)

static void
test_parsers_agree(void **state)
{
	static const char *const same[] = {
	    /* whitespace, key order, escapes that unescape to the same keys */
	    " \t\r\n[ { \"n\" : 2 , \"url\" : \"a\" } , {\"url\":\"b\"} ] \n",
	    "[{\"\\u0075rl\":\"a\"}]",
	    "[{\"url\":\"\\/a\\u00e9\\ud83d\\ude00\"}]",
	    "[{\"url\":\"caf\xc3\xa9\"}]",
	    "{\"url\":\"a\",\"n\":-1000000}",
	    "[{\"url\":\"a\",\"n\":1000000}]",
	    /* declined by simdjson's path, then jansson's answer */
	    "[{\"url\":\"a\",\"extra\":[1,{\"x\":null}]}]",
	    "[{\"url\":\"a\",\"n\":1,\"n\":2}]",
	    "[{\"url\":\"a\",\"url\":\"a\"}]",
	    "[{\"url\":\"a\",\"\\u0075rl\":\"b\"}]",
	    "[{\"url\":\"a\",\"n\":-0}]",
	    "[{\"url\":\"a\",\"n\":1.0}]",
	    "[{\"url\":\"a\",\"n\":1e0}]",
	    "[{\"url\":\"a\",\"n\":1E2}]",
	    "[{\"url\":\"a\",\"n\":01}]",
	    "[{\"url\":\"a\",\"n\":+1}]",
	    "[{\"url\":\"a\",\"n\":9223372036854775807}]",
	    "[{\"url\":\"a\",\"n\":9223372036854775808}]",
	    "[{\"url\":\"a\",\"n\":-9223372036854775809}]",
	    "[{\"url\":\"a\",\"n\":99999999999999999999999}]",
	    "[{\"url\":\"a\",\"n\":1e400}]",
	    "[{\"url\":\"a\",\"n\":null}]",
	    "[{\"url\":\"a\",\"n\":[1]}]",
	    "[{\"url\":\"a\\u0000b\"}]",
	    "[{\"url\":\"a\\udc00\"}]",
	    "[{\"url\":\"a\\ud800\"}]",
	    "[{\"url\":\"a\\ud800\\u0041\"}]",
	    "[{\"url\":\"a\\x\"}]",
	    "[{\"url\":\"a\\u12\"}]",
	    "[{\"url\":\"a\tb\"}]",
	    "[{\"url\":\"\xed\xa0\x80\"}]",
	    "[{\"url\":\"\xc0\xaf\"}]",
	    "[{\"url\":\"\xc2\x85\"}]",
	    "[{\"url\":\"\"}]",
	    "[{\"url\":\"a\",}]",
	    "[{\"url\":\"a\"},]",
	    "[{\"url\":\"a\"}{\"url\":\"b\"}]",
	    "[{\"url\":\"a\"}] x",
	    "[{\"url\":\"a\"}]]",
	    "[{\"url\":\"a\"}][]",
	    "[{\"url\":\"a\"}] {}",
	    "[{\"url\":\"a\"}",
	    "[{\"url\" \"a\"}]",
	    "[{url:\"a\"}]",
	    "[{'url':'a'}]",
	    "\xef\xbb\xbf[{\"url\":\"a\"}]",
	    "[{\"url\":\"a\"}]\xef\xbb\xbf",
	    "[{\"url\":\"a\"}]\x0c",
	    "\x0c[{\"url\":\"a\"}]",
	    "[{\"url\":\"a\"}]\x7f",
	    "[[{\"url\":\"a\"}]]",
	    "[{},{\"url\":\"a\"}]",
	    "[{\"url\":\"a\"},{\"url\":\"b\",\"n\":0}]",
	    "[{\"url\":\"a\"},{\"n\":2}]",
	    "[{\"url\":\"a\"},true]",
	    "[null]",
	    "[]",
	    " [ ] ",
	    "[ ,]",
	    "{}",
	    "{\"url\":\"a\"} ",
	    "{\"url\":\"a\"}{}",
	    "\"url\"",
	    "",
	    "   ",
	    "nul",
	    "[1e999]",
	};
	static const struct lc_limits shallow = {
	    .max_url_bytes = 3, .max_batch_items = 2, .max_json_depth = 1};
	static const struct lc_limits flat = {
	    .max_url_bytes = 2048, .max_batch_items = 0, .max_json_depth = 0};
	static const char nul_inside[] = "[{\"url\":\"a\"}\0]";
	static const char nul_after[] = "[{\"url\":\"a\"}]\0";
	char long_url[2100];

	(void)state;
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		agree(same[i], strlen(same[i]), &lim);
		agree(same[i], strlen(same[i]), &shallow);
		agree(same[i], strlen(same[i]), &flat);
	}
	agree(nul_inside, sizeof(nul_inside) - 1, &lim);
	agree(nul_after, sizeof(nul_after) - 1, &lim);
	snprintf(long_url, sizeof(long_url), "{\"url\":\"%02049d\"}", 0);
	assert_false(agree(long_url, strlen(long_url), &lim));
	long_url[2048 + 8] = '\0';
	memcpy(long_url + 2048 + 8 - 2, "\"}", 2);
	assert_true(agree(long_url, strlen(long_url), &lim));

	/* The usual bodies take the fast path; the others do not. */
	assert_true(AGREE("[{\"url\":\"a\",\"n\":2},{\"url\":\"b\"}]"));
	assert_true(AGREE("{\"url\":\"a\",\"n\":-3}"));
	assert_true(AGREE("[]"));
	assert_false(AGREE("[{\"url\":\"a\",\"extra\":1}]"));
	assert_false(AGREE("[{\"url\":\"a\",\"n\":1,\"n\":1}]"));
	assert_false(AGREE("[{\"url\":\"a\",\"n\":0}]"));
}

/* A batch taken by simdjson's path: urls NUL-terminated, items borrowed. */
static void
test_batch_fast(void **state)
{
	struct lc_likes l;
	struct lc_api_error err;

	(void)state;
	assert_int_equal(
	    parse("[{\"url\":\"a\\\"b\",\"n\":7},{\"url\":\"c\"}]", &l, &err),
	    0);
	assert_true(l.fast);
	assert_null(l.root);
	assert_true(l.batch);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].url, "a\"b");
	assert_int_equal(l.items[0].url_len, 3);
	assert_int_equal(l.items[0].n, 7);
	assert_string_equal(l.items[1].url, "c");
	assert_int_equal(l.items[1].n, 1);
	lc_likes_free(&l);
	assert_false(l.fast);
	assert_null(l.items);

	/* A body over 4 MiB gives the parser's memory back when freed; the
	 * next body gets a new parser. */
	{
		static const struct lc_limits wide = {.max_url_bytes = 6 << 20,
						      .max_batch_items = 10,
						      .max_json_depth = 8};
		size_t n = (size_t)5 << 20;
		char *big = malloc(n + 16);

		memcpy(big, "[{\"url\":\"", 9);
		memset(big + 9, 'a', n);
		memcpy(big + 9 + n, "\"}]", 4);
		assert_int_equal(lc_likes_parse(big, n + 12, &wide, &l, &err),
				 0);
		assert_true(l.fast);
		assert_int_equal(l.items[0].url_len, n);
		assert_int_equal(l.items[0].url[n - 1], 'a');
		lc_likes_free(&l);
		free(big);
	}
	assert_int_equal(parse("[{\"url\":\"z\"}]", &l, &err), 0);
	assert_true(l.fast);
	assert_string_equal(l.items[0].url, "z");
	lc_likes_free(&l);
}

static void
test_json_depth(void **state)
{
	(void)state;
	assert_int_equal(lc_json_depth("{}", 2), 1);
	assert_int_equal(lc_json_depth("[{\"a\":[1]}]", 11), 3);
	assert_int_equal(lc_json_depth("\"[[[[\"", 6), 0);
	assert_int_equal(lc_json_depth("[\"\\\"[[\"]", 9), 1);
}

static int
op(const char *msg, struct lc_ws_op *o, struct lc_api_error *err)
{
	return lc_ws_op_parse(msg, strlen(msg), &lim, 100, o, err);
}

static void
test_ws_ops(void **state)
{
	struct lc_ws_op o;
	struct lc_api_error err;

	(void)state;
	assert_int_equal(
	    op("{\"op\":\"subscribe\",\"urls\":[\"a\",\"b\"]}", &o, &err), 0);
	assert_int_equal(o.kind, LC_OP_SUBSCRIBE);
	assert_int_equal(json_array_size(o.urls), 2);
	lc_ws_op_free(&o);
	assert_int_equal(op("{\"op\":\"unsubscribe\",\"urls\":[]}", &o, &err),
			 0);
	assert_int_equal(o.kind, LC_OP_UNSUBSCRIBE);
	lc_ws_op_free(&o);
	assert_int_equal(
	    op("{\"op\":\"like\",\"url\":\"a\",\"n\":-2}", &o, &err), 0);
	assert_int_equal(o.kind, LC_OP_LIKE);
	assert_int_equal(o.like.n, -2);
	lc_ws_op_free(&o);

	assert_int_not_equal(op("{\"op\":\"dance\"}", &o, &err), 0);
	assert_string_equal(err.code, "bad_op");
	assert_int_not_equal(op("[]", &o, &err), 0);
	assert_string_equal(err.code, "bad_op");
	assert_int_not_equal(op("{\"op\":1}", &o, &err), 0);
	assert_int_not_equal(op("{\"op\":\"subscribe\"}", &o, &err), 0);
	assert_string_equal(err.code, "bad_url");
	assert_int_not_equal(
	    op("{\"op\":\"subscribe\",\"urls\":[\"a\",3]}", &o, &err), 0);
	assert_string_equal(err.code, "bad_url");
	assert_int_not_equal(
	    op("{\"op\":\"like\",\"url\":\"a\",\"n\":0}", &o, &err), 0);
	assert_string_equal(err.code, "bad_n");
	assert_int_not_equal(op("not json", &o, &err), 0);
	assert_string_equal(err.code, "bad_json");
	assert_null(o.root);
}

static void
test_time_parse(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(lc_time_parse("2026-11-24T03:35:00Z", &t), 0);
	assert_int_equal(t, 1795491300);
	assert_int_equal(lc_time_parse("2026-11-24T03:35:00.123Z", &t), 0);
	assert_int_equal(t, 1795491300);
	assert_int_equal(lc_time_parse("2026-11-24", &t), 0);
	assert_int_equal(t, 1795478400);
	assert_int_equal(lc_time_parse("1795491300", &t), 0);
	assert_int_equal(t, 1795491300);
	assert_int_not_equal(lc_time_parse("yesterday", &t), 0);
	assert_int_not_equal(lc_time_parse("2026-13-01", &t), 0);
	assert_int_not_equal(lc_time_parse("2026-02-31", &t), 0);
	assert_int_not_equal(lc_time_parse("99999999999999999999", &t), 0);
	assert_int_not_equal(lc_time_parse("", &t), 0);
}

static void
test_request_target_check(void **state)
{
	static const struct {
		const char *line;
		int want;
	} cases[] = {
	    {"GET /v1/counts?url=a%20b HTTP/1.1", 0},
	    {"GET /v1/counts?url=%zz HTTP/1.1", 2},
	    {"GET /v1/counts?url=100% HTTP/1.1", 2},
	    {"GET /v1/counts?url=ok&url=%4 HTTP/1.1", 2},
	    {"POST /v1/likes?url=a&n=%g1 HTTP/1.1", 1},
	    {"GET /x%zz HTTP/1.1", 1},
	    {"GET /x%2F HTTP/1.1", 0},
	    {"POST /v1/likes?url=a%00b HTTP/1.1", 2}, /* lws dropped it */
	    {"GET /v1/counts?url=a%0a HTTP/1.1", 2},
	    {"GET /x?y=%1F HTTP/1.1", 1},
	    {"GET /x%7f HTTP/1.1", 1},
	    {"GET /v1/counts?url=caf%C3%A9%20%7e HTTP/1.1", 0},
	    {"GET /x HTTP/1.1 100%", 0}, /* only the target counts */
	    {"GARBAGE", 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (lc_request_target_check(
			cases[i].line, strlen(cases[i].line)) != cases[i].want)
			fail_msg("%s: want %d", cases[i].line, cases[i].want);
}

static void
test_batch_scan(void **state)
{
	static const char body[] =
	    "[{\"url\":\"a,b\\\",[c]\",\"n\":1},{\"url\":\"{d,e}\"},3]";
	struct lc_batch_scan s = {0}, one = {0};

	(void)state;
	/* byte by byte and in one go agree: 3 items, commas in strings and
	 * objects do not count */
	for (size_t i = 0; i < sizeof(body) - 1; i++)
		assert_true(lc_batch_scan_feed(&s, body + i, 1, 3));
	assert_true(lc_batch_scan_feed(&one, body, sizeof(body) - 1, 3));
	assert_int_equal(s.items, 3);
	assert_int_equal(one.items, 3);
	memset(&s, 0, sizeof(s));
	assert_false(lc_batch_scan_feed(&s, body, sizeof(body) - 1, 2));
	/* a single object is not a batch */
	memset(&s, 0, sizeof(s));
	{
		const char *o = "{\"url\":\"a\",\"n\":1}";

		assert_true(lc_batch_scan_feed(&s, o, strlen(o), 1));
	}
	assert_int_equal(s.items, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_validation),
	    cmocka_unit_test(test_n_parse),
	    cmocka_unit_test(test_like_object),
	    cmocka_unit_test(test_like_errors),
	    cmocka_unit_test(test_batch),
	    cmocka_unit_test(test_like_object_tree),
	    cmocka_unit_test(test_like_errors_tree),
	    cmocka_unit_test(test_batch_tree),
	    cmocka_unit_test(test_parsers_agree),
	    cmocka_unit_test(test_batch_fast),
	    cmocka_unit_test(test_json_depth),
	    cmocka_unit_test(test_ws_ops),
	    cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_request_target_check),
	    cmocka_unit_test(test_batch_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
