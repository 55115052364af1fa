/*
 * libFuzzer target: lc_ws_op_parse(), one client WebSocket message.
 *
 * On success the op must be one of the three kinds; a like must carry a
 * valid URL and 0 < |n| <= LC_N_MAX, a (un)subscribe an array of at most
 * max_urls strings that lc_url_check() accepts. On failure the error must
 * be a 400 with a code and message, and the op must be left empty.
 */
#include "lc/common.h"
#include "lc/parse.h"
#include "fuzz_util.h"

#include <stdint.h>

#define MAX_URLS 100

static const struct lc_limits lim = {
    .max_url_bytes = 2048,
    .max_batch_items = 100,
    .max_json_depth = 8,
};

static void
check_url(const char *url, size_t len)
{
	struct lc_api_error err = {0};

	FUZZ_CHECK(url != NULL);
	FUZZ_CHECK(strlen(url) == len);
	FUZZ_CHECK(lc_url_check(url, len, lim.max_url_bytes, &err) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *msg = fuzz_dup(data, size);
	struct lc_ws_op op;
	struct lc_api_error err = {0};
	int rc = lc_ws_op_parse(msg, size, &lim, MAX_URLS, &op, &err);

	if (rc == 0) {
		FUZZ_CHECK(op.root != NULL && json_is_object(op.root));
		switch (op.kind) {
		case LC_OP_LIKE:
			check_url(op.like.url, op.like.url_len);
			FUZZ_CHECK(op.like.n != 0);
			FUZZ_CHECK(op.like.n <= LC_N_MAX &&
				   op.like.n >= -LC_N_MAX);
			break;
		case LC_OP_VIEW: /* views only grow */
			check_url(op.like.url, op.like.url_len);
			FUZZ_CHECK(op.like.n >= 1 && op.like.n <= LC_N_MAX);
			break;
		case LC_OP_SUBSCRIBE:
		case LC_OP_UNSUBSCRIBE:
			FUZZ_CHECK(json_is_array(op.urls));
			FUZZ_CHECK(json_array_size(op.urls) <= MAX_URLS);
			for (size_t i = 0; i < json_array_size(op.urls); i++) {
				json_t *u = json_array_get(op.urls, i);

				FUZZ_CHECK(json_is_string(u));
				check_url(json_string_value(u),
					  json_string_length(u));
			}
			break;
		default:
			FUZZ_CHECK(!"unknown op kind");
		}
	} else {
		FUZZ_CHECK(rc == LC_EINVAL);
		FUZZ_CHECK(err.status == 400);
		FUZZ_CHECK(err.code && err.code[0]);
		FUZZ_CHECK(err.message[0]);
		FUZZ_CHECK(op.root == NULL && op.urls == NULL);
	}
	lc_ws_op_free(&op);
	free(msg);
	return 0;
}
