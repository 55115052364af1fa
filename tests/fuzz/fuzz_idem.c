/*
 * libFuzzer target: idempotency keys from the bytes a client sends to the
 * batcher's records and back (the path where a 128-character WebSocket
 * "id" once overflowed the record's key by two bytes).
 *
 * The input is split at 0xff bytes into candidate client keys. Each is
 * made into a stored key for HTTP or WebSocket (lc_idem_make_key must
 * accept exactly the 1..128 printable ASCII ones, and make prefix + key),
 * and its raw bytes are also offered as a stored key (run, lookup and load
 * must refuse anything longer than LC_IDEM_KEY_MAX). Then every key is
 * taken for persisting, as the batcher does before a flush: each record
 * holds its key whole and NUL-terminated beside an intact answer, and
 * loading the records into a fresh table (a restart) finds every one.
 */
#include "lc/idem.h"
#include "fuzz_util.h"

#include <stdint.h>

#define MAX_KEYS 64

static bool
answer(void *arg, struct lc_idem_answer *ans, uint64_t *after_seq)
{
	(void)arg;
	*after_seq = 0;
	ans->status = 200;
	memcpy(ans->body, "{\"count\":1}", 11);
	ans->len = 11;
	return true;
}

static bool
printable(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return n > 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lc_idem_record rec[MAX_KEYS];
	struct lc_idem *t = lc_idem_create(MAX_KEYS, 60000);
	struct lc_idem *t2 = lc_idem_create(MAX_KEYS, 60000);
	struct lc_idem_answer ans;
	uint64_t upto = 0;
	size_t start = 0, nk = 0, got;

	FUZZ_CHECK(t && t2);
	for (size_t i = 0; i <= size && nk < MAX_KEYS / 2; i++) {
		char key[LC_IDEM_KEY_MAX + 1];
		const unsigned char *c = data + start;
		size_t n = i - start, klen;
		char *exact;

		if (i < size && data[i] != 0xff)
			continue;
		start = i + 1;
		exact = fuzz_dup(c, n);
		klen = lc_idem_make_key(key, nk % 2 ? 'w' : 'h', exact, n);
		FUZZ_CHECK(!klen ==
			   !(n <= LC_IDEM_CLIENT_KEY_MAX && printable(c, n)));
		if (klen) {
			FUZZ_CHECK(klen == n + LC_IDEM_PREFIX_LEN);
			FUZZ_CHECK(key[1] == ':' && key[klen] == '\0');
			FUZZ_CHECK(!memcmp(key + 2, c, n));
			lc_idem_run(t, key, klen, 1000, answer, NULL, &ans);
			nk++;
		}
		/* The raw bytes as a stored key: never kept when too long. */
		lc_idem_run(t, exact, n, 1000, answer, NULL, &ans);
		if (n > LC_IDEM_KEY_MAX || !printable(c, n))
			FUZZ_CHECK(!lc_idem_lookup(t, exact, n, 1000, &ans));
		FUZZ_CHECK(lc_idem_load(t2, exact, n, 200, "{}", 2, 1000) == 0);
		free(exact);
	}
	lc_idem_destroy(t2);
	t2 = lc_idem_create(MAX_KEYS, 60000);
	got = lc_idem_take_persistable(t, 0, rec, MAX_KEYS, &upto);
	for (size_t k = 0; k < got; k++) {
		size_t kl = strnlen(rec[k].key, sizeof(rec[k].key));

		FUZZ_CHECK(kl >= 1 && kl <= LC_IDEM_KEY_MAX);
		FUZZ_CHECK(rec[k].status == 200 && rec[k].len == 11);
		FUZZ_CHECK(!memcmp(rec[k].body, "{\"count\":1}", 11));
		FUZZ_CHECK(lc_idem_load(t2, rec[k].key, kl, rec[k].status,
					rec[k].body, rec[k].len,
					rec[k].created_ms) == 0);
		FUZZ_CHECK(lc_idem_lookup(t2, rec[k].key, kl, 1000, &ans));
		FUZZ_CHECK(ans.status == 200 && ans.len == 11);
	}
	lc_idem_persisted(t, upto);
	FUZZ_CHECK(lc_idem_unpersisted(t) == 0);
	lc_idem_destroy(t);
	lc_idem_destroy(t2);
	return 0;
}
