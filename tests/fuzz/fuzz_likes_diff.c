/*
 * libFuzzer target: lc_likes_parse() (simdjson first, jansson for the rest)
 * against lc_likes_parse_tree() (jansson only, the answers of before).
 *
 * Every input is parsed by both under three sets of limits (the small ones
 * of fuzz_likes.c; depth 1 with 2 items and 3-byte URLs; depth 0 with no
 * item) and the two answers must be identical: the return code, status,
 * error code and message (which names the first bad item), or the items
 * with their URL bytes and n. A result of simdjson's path must also hand
 * out NUL-terminated URLs that lc_url_check() accepts.
 */
#include "lc/common.h"
#include "lc/parse.h"
#include "fuzz_util.h"

#include <stdint.h>

static const struct lc_limits limits[] = {
    {.max_url_bytes = 2048, .max_batch_items = 100, .max_json_depth = 8},
    {.max_url_bytes = 3, .max_batch_items = 2, .max_json_depth = 1},
    {.max_url_bytes = 2048, .max_batch_items = 0, .max_json_depth = 0},
};

/* Everything a caller can see of a parse, in a malloc'ed string. */
static char *
describe(int rc, const struct lc_likes *l, const struct lc_api_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	FUZZ_CHECK(f != NULL);
	if (rc) {
		fprintf(f, "rc %d %d %s %s", rc, err->status, err->code,
			err->message);
	} else {
		fprintf(f, "ok batch=%d n=%zu items=%d", l->batch, l->n,
			l->items != NULL);
		for (size_t i = 0; i < l->n; i++) {
			fprintf(f, " [%zu:", l->items[i].url_len);
			fwrite(l->items[i].url, 1, l->items[i].url_len, f);
			fprintf(f, " %lld]", (long long)l->items[i].n);
		}
	}
	fclose(f);
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_dup(data, size);

	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
		const struct lc_limits *lim = &limits[k];
		struct lc_likes l;
		struct lc_api_error err = {0};
		char *fast, *tree;
		int rc = lc_likes_parse(body, size, lim, &l, &err);

		if (rc == 0 && l.fast) {
			struct lc_api_error e2;

			FUZZ_CHECK(l.root == NULL);
			for (size_t i = 0; i < l.n; i++) {
				FUZZ_CHECK(strlen(l.items[i].url) ==
					   l.items[i].url_len);
				FUZZ_CHECK(lc_url_check(l.items[i].url,
							l.items[i].url_len,
							lim->max_url_bytes,
							&e2) == 0);
			}
		}
		fast = describe(rc, &l, &err);
		lc_likes_free(&l);

		memset(&err, 0, sizeof(err));
		rc = lc_likes_parse_tree(body, size, lim, &l, &err);
		FUZZ_CHECK(!l.fast);
		tree = describe(rc, &l, &err);
		lc_likes_free(&l);

		if (strcmp(fast, tree)) {
			fprintf(stderr,
				"limits %zu:\n lc_likes_parse:      %s\n "
				"lc_likes_parse_tree: %s\n",
				k, fast, tree);
			FUZZ_CHECK(!"the two parsers disagree");
		}
		free(fast);
		free(tree);
	}
	free(body);
	return 0;
}
