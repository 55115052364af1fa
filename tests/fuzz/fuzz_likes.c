/*
 * libFuzzer target: lc_likes_parse(), the POST /v1/likes JSON body parser.
 *
 * Small limits (2048-byte URLs, 100 items, depth 8) so that every limit is
 * reachable. On success each item must satisfy what the counting core
 * relies on without re-checking: a URL lc_url_check() accepts, of the
 * length reported, and 0 < |n| <= LC_N_MAX. On failure the error must be
 * one of the documented shapes and the output must be left empty.
 */
#include "lc/common.h"
#include "lc/parse.h"
#include "fuzz_util.h"

#include <stdint.h>

static const struct lc_limits lim = {
    .max_url_bytes = 2048,
    .max_batch_items = 100,
    .max_json_depth = 8,
};

static void
check_like(const struct lc_like *l)
{
	struct lc_api_error err = {0};

	FUZZ_CHECK(l->url != NULL);
	FUZZ_CHECK(strlen(l->url) == l->url_len);
	FUZZ_CHECK(lc_url_check(l->url, l->url_len, lim.max_url_bytes, &err) ==
		   0);
	FUZZ_CHECK(l->n != 0);
	FUZZ_CHECK(l->n <= LC_N_MAX && l->n >= -LC_N_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_dup(data, size);
	struct lc_likes likes;
	struct lc_api_error err = {0};
	int rc = lc_likes_parse(body, size, &lim, &likes, &err);

	if (rc == 0) {
		/* jansson's tree, or simdjson's path (no tree) */
		FUZZ_CHECK((likes.root != NULL) != likes.fast);
		FUZZ_CHECK(likes.n <= lim.max_batch_items);
		if (!likes.batch) {
			FUZZ_CHECK(likes.n == 1);
			FUZZ_CHECK(likes.items == &likes.one);
		}
		FUZZ_CHECK(likes.n == 0 || likes.items != NULL);
		for (size_t i = 0; i < likes.n; i++)
			check_like(&likes.items[i]);
	} else {
		FUZZ_CHECK(rc == LC_EINVAL || rc == LC_ETOOBIG);
		FUZZ_CHECK(err.status == 400 || err.status == 413 ||
			   err.status == 503);
		FUZZ_CHECK((rc == LC_ETOOBIG) == (err.status == 413));
		FUZZ_CHECK(err.code && err.code[0]);
		FUZZ_CHECK(err.message[0]);
		/* All or nothing: nothing is handed out on error. */
		FUZZ_CHECK(likes.root == NULL && likes.items == NULL &&
			   likes.n == 0);
	}
	lc_likes_free(&likes);
	free(body);
	return 0;
}
