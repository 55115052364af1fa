/*
 * libFuzzer target: the query-string scalars and the JSON depth guard.
 *
 * - lc_n_parse() is compared with a strtoll()-based reference of API.md's
 *   rule "n is a decimal integer 1 <= K <= 1000000" (leading zeros
 *   allowed: this target found "00000001" refused once).
 * - lc_time_parse() (the since/until parser) must not crash and, for a bare
 *   integer, must return its strtoll() value.
 * - lc_json_depth() must never exceed the number of '[' and '{' bytes,
 *   never be below the depth of the tree jansson builds from the input and,
 *   when jansson accepts it with duplicate keys refused, equal that depth.
 */
#include "lc/common.h"
#include "lc/parse.h"
#include "fuzz_util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>

static void
check_n(const unsigned char *data, size_t size)
{
	char *exact = fuzz_dup(data, size), *z = fuzz_strdup(data, size), *end;
	struct lc_api_error err = {0};
	int64_t n = -42;
	int rc = lc_n_parse(exact, size, &n, &err);
	bool want = size > 0;
	long long v = 0;

	for (size_t i = 0; i < size; i++)
		if (!isdigit(data[i]))
			want = false; /* also rules out strtoll's sign and
					 spaces */
	if (want) {
		errno = 0;
		v = strtoll(z, &end, 10);
		want = !errno && *end == '\0' && v >= 1 && v <= LC_N_MAX;
	}
	if ((rc == 0) != want) {
		fprintf(stderr,
			"lc_n_parse disagrees with the reference on '%.*s': "
			"rc %d, reference %s\n",
			(int)(size > 64 ? 64 : size), z, rc,
			want ? "accepts" : "refuses");
		abort();
	}
	if (rc == 0) {
		FUZZ_CHECK(n == v);
	} else {
		FUZZ_CHECK(rc == LC_EINVAL);
		FUZZ_CHECK(n == -42); /* untouched on error */
		FUZZ_CHECK(err.status == 400);
		FUZZ_CHECK(err.code && !strcmp(err.code, "bad_n"));
		FUZZ_CHECK(err.message[0]);
	}
	free(exact);
	free(z);
}

static void
check_time(const unsigned char *data, size_t size)
{
	char *z = fuzz_strdup(data, size);
	int64_t t = -42;
	int rc = lc_time_parse(z, &t);

	FUZZ_CHECK(rc == 0 || rc == LC_EINVAL);
	if (rc == 0 && z[0] && !strchr(z, '-')) {
		bool digits = true;

		for (const char *p = z; *p; p++)
			digits &= isdigit((unsigned char)*p) != 0;
		if (digits)
			FUZZ_CHECK(t == strtoll(z, NULL, 10));
	}
	free(z);
}

static int
tree_depth(const json_t *j)
{
	int max = 0, d;

	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			if ((d = tree_depth(json_array_get(j, i))) > max)
				max = d;
		return 1 + max;
	}
	if (json_is_object(j)) {
		const char *k;
		json_t *v;

		json_object_foreach((json_t *)j, k,
				    v) if ((d = tree_depth(v)) > max) max = d;
		return 1 + max;
	}
	return 0;
}

static void
check_depth(const unsigned char *data, size_t size)
{
	char *exact = fuzz_dup(data, size);
	int d = lc_json_depth(exact, size), opens = 0;
	json_error_t jerr;
	json_t *root;

	for (size_t i = 0; i < size; i++)
		opens += data[i] == '[' || data[i] == '{';
	FUZZ_CHECK(d >= 0 && d <= opens);
	/* A duplicate key's earlier value is dropped from jansson's tree, so
	 * the lexical depth may only exceed the tree's; with duplicates
	 * refused (as lc_likes_parse does) the two must be equal. */
	root = json_loadb(exact, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (root) {
		int want = tree_depth(root);
		json_t *strict = json_loadb(exact, size,
					    JSON_DECODE_ANY | JSON_ALLOW_NUL |
						JSON_REJECT_DUPLICATES,
					    &jerr);

		if (d < want || (strict && d != want)) {
			fprintf(stderr,
				"lc_json_depth %d, jansson tree depth %d%s\n",
				d, want,
				strict ? "" : " (with duplicate keys)");
			abort();
		}
		json_decref(strict);
		json_decref(root);
	}
	free(exact);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_n(data, size);
	check_time(data, size);
	check_depth(data, size);
	return 0;
}
