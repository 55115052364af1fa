/*
 * libFuzzer target: the two scans the HTTP transport runs on raw bytes
 * before any parser does (parse.c).
 *
 * - lc_request_target_check() is compared with a reference decoder of the
 *   request target (every '%' must start two hex digits, not encoding a
 *   control byte: %00..%1f, %7f); a "bad url"
 *   answer needs a url= parameter in the target.
 * - lc_batch_scan_feed() must count, for every input jansson reads as a
 *   JSON array starting at byte 0, exactly its number of elements (an
 *   empty array counts 1); fed in two pieces at any split it must agree
 *   with one feed; and it must refuse exactly when the count exceeds max.
 *   Its whole state after every feed, with a max taken from the input, must
 *   equal that of ref_scan_feed(), the byte-at-a-time scanner it replaced.
 */
#define _GNU_SOURCE
#include "lc/parse.h"
#include "fuzz_util.h"

#include <ctype.h>
#include <jansson.h>
#include <stdint.h>

static void
check_target(const unsigned char *data, size_t size)
{
	char *line = fuzz_dup(data, size);
	int got = lc_request_target_check(line, size);
	const char *sp = memchr(line, ' ', size), *t, *end;
	bool bad = false;

	FUZZ_CHECK(got >= 0 && got <= 2);
	if (sp) {
		t = sp + 1;
		end = memchr(t, ' ', size - (size_t)(t - line));
		if (!end)
			end = line + size;
		for (const char *q = t; q < end && !bad; q++) {
			if (*q != '%')
				continue;
			if (end - q < 3 || !isxdigit((unsigned char)q[1]) ||
			    !isxdigit((unsigned char)q[2])) {
				bad = true;
			} else {
				char hex[3] = {q[1], q[2], 0};
				long v = strtol(hex, NULL, 16);

				bad = v < 0x20 || v == 0x7f;
				q += 2;
			}
		}
		if (got == 2)
			FUZZ_CHECK(memmem(t, (size_t)(end - t), "url=", 4));
	}
	FUZZ_CHECK((got != 0) == bad);
	free(line);
}

/* lc_batch_scan_feed() as it was before it skipped strings with memchr. */
static bool
ref_scan_feed(struct lc_batch_scan *s, const char *in, size_t len, size_t max)
{
	for (size_t i = 0; i < len; i++) {
		char ch = in[i];

		if (!s->fed++ && ch == '[') {
			s->array = true;
			s->items = 1;
		}
		if (s->in_string) {
			if (s->escape)
				s->escape = false;
			else if (ch == '\\')
				s->escape = true;
			else if (ch == '"')
				s->in_string = false;
			continue;
		}
		if (ch == '"')
			s->in_string = true;
		else if ((ch == '[' || ch == '{') && s->depth < UINT16_MAX)
			s->depth++;
		else if ((ch == ']' || ch == '}') && s->depth)
			s->depth--;
		else if (ch == ',' && s->depth == 1 && s->array &&
			 ++s->items > max)
			return false;
	}
	return true;
}

static bool
same_scan(const struct lc_batch_scan *a, const struct lc_batch_scan *b)
{
	return a->fed == b->fed && a->items == b->items &&
	       a->depth == b->depth && a->in_string == b->in_string &&
	       a->escape == b->escape && a->array == b->array;
}

/* Feeds body in up to three pieces to both scanners, comparing states. */
static void
check_against_ref(const unsigned char *data, size_t size, const char *body)
{
	struct lc_batch_scan got = {0}, want = {0};
	size_t max = size > 1 ? data[1] % 8 : SIZE_MAX;
	size_t cut[4] = {0, size > 2 ? data[2] % (size + 1) : 0, 0, size};

	cut[2] = size > 3 ? data[3] % (size + 1) : size;
	if (cut[2] < cut[1])
		cut[2] = cut[1];
	for (int k = 0; k < 3; k++) {
		bool g = lc_batch_scan_feed(&got, body + cut[k],
					    cut[k + 1] - cut[k], max);
		bool w = ref_scan_feed(&want, body + cut[k],
				       cut[k + 1] - cut[k], max);

		FUZZ_CHECK(g == w);
		FUZZ_CHECK(same_scan(&got, &want));
		if (!g)
			break;
	}
}

static void
check_batch(const unsigned char *data, size_t size)
{
	char *body = fuzz_dup(data, size);
	struct lc_batch_scan one = {0}, two = {0};
	size_t split = size ? data[0] % (size + 1) : 0;
	json_error_t jerr;
	json_t *root;

	FUZZ_CHECK(lc_batch_scan_feed(&one, body, size, SIZE_MAX));
	FUZZ_CHECK(lc_batch_scan_feed(&two, body, split, SIZE_MAX));
	FUZZ_CHECK(
	    lc_batch_scan_feed(&two, body + split, size - split, SIZE_MAX));
	FUZZ_CHECK(one.items == two.items && one.depth == two.depth &&
		   one.in_string == two.in_string);
	check_against_ref(data, size, body);
	root = json_loadb(body, size, JSON_DECODE_ANY, &jerr);
	if (root && size && data[0] == '[' && json_is_array(root)) {
		size_t n = json_array_size(root);
		struct lc_batch_scan s = {0};

		FUZZ_CHECK(one.items == (n ? n : 1));
		if (one.items > 1)
			FUZZ_CHECK(
			    !lc_batch_scan_feed(&s, body, size, one.items - 1));
	}
	json_decref(root);
	free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_target(data, size);
	check_batch(data, size);
	return 0;
}
