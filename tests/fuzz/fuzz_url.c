/*
 * libFuzzer target: lc_url_check() on arbitrary bytes.
 *
 * Every input is checked three times (max_bytes 2048, size - 1 and
 * SIZE_MAX) and each verdict is compared with ref_check(), an independent
 * validator written from the Unicode standard's table of well-formed UTF-8
 * byte sequences (Table 3-7) rather than by decoding code points. On a
 * scan error both must also agree on the kind (control character or bad
 * UTF-8) and on the byte offset reported in the message.
 */
#include "lc/common.h"
#include "lc/parse.h"
#include "fuzz_util.h"

#include <stdint.h>

enum ref_verdict { REF_OK, REF_EMPTY, REF_TOOLONG, REF_CONTROL, REF_UTF8 };

/* Range of the second byte for each lead byte of a multi-byte sequence. */
static int
second_range(unsigned char lead, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (lead >= 0xc2 && lead <= 0xdf)
		return 1;
	if (lead == 0xe0)
		*lo = 0xa0;
	else if (lead == 0xed)
		*hi = 0x9f;
	if (lead >= 0xe0 && lead <= 0xef)
		return 2;
	if (lead == 0xf0)
		*lo = 0x90;
	else if (lead == 0xf4)
		*hi = 0x8f;
	if (lead >= 0xf0 && lead <= 0xf4)
		return 3;
	return -1; /* 80..C1 and F5..FF never start a sequence */
}

static enum ref_verdict
ref_check(const unsigned char *s, size_t len, size_t max, size_t *at)
{
	size_t i = 0;

	*at = 0;
	if (len == 0)
		return REF_EMPTY;
	if (len > max)
		return REF_TOOLONG;
	while (i < len) {
		unsigned char b = s[i], lo, hi;
		int extra;

		*at = i;
		if (b < 0x80) {
			if (b < 0x20 || b == 0x7f)
				return REF_CONTROL;
			i++;
			continue;
		}
		extra = second_range(b, &lo, &hi);
		if (extra < 0 || len - i <= (size_t)extra)
			return REF_UTF8;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return REF_UTF8;
		for (int k = 2; k <= extra; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return REF_UTF8;
		/* U+0080..U+009F (C1 controls) are C2 80..C2 9F. */
		if (b == 0xc2 && s[i + 1] <= 0x9f)
			return REF_CONTROL;
		i += (size_t)extra + 1;
	}
	return REF_OK;
}

/* The "at byte N" offset of a scan error message, or SIZE_MAX. */
static size_t
msg_offset(const char *msg)
{
	const char *p = strstr(msg, "at byte ");

	return p ? (size_t)strtoull(p + 8, NULL, 10) : SIZE_MAX;
}

static void
one(const char *url, size_t len, size_t max)
{
	struct lc_api_error err = {0};
	size_t at;
	enum ref_verdict want =
	    ref_check((const unsigned char *)url, len, max, &at);
	int rc = lc_url_check(url, len, max, &err);

	if ((rc == 0) != (want == REF_OK)) {
		fprintf(stderr,
			"lc_url_check disagrees with the reference: len %zu "
			"max %zu rc %d (%s) reference %d at %zu\n",
			len, max, rc, rc ? err.message : "accepted", want, at);
		abort();
	}
	if (rc == 0)
		return;
	FUZZ_CHECK(rc == LC_EINVAL);
	FUZZ_CHECK(err.status == 400);
	FUZZ_CHECK(err.code && !strcmp(err.code, "bad_url"));
	FUZZ_CHECK(err.message[0]);
	if (want == REF_CONTROL || want == REF_UTF8) {
		const char *kind = want == REF_CONTROL ? "control character"
						       : "not valid UTF-8";

		if (!strstr(err.message, kind) ||
		    msg_offset(err.message) != at) {
			fprintf(stderr,
				"lc_url_check error differs from the "
				"reference: '%s', expected %s at byte %zu\n",
				err.message, kind, at);
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_dup(data, size);

	one(url, size, 2048);
	one(url, size, size ? size - 1 : 0);
	one(url, size, SIZE_MAX);
	free(url);
	return 0;
}
