/*
 * livecount — idempotency keys: a retried like is counted once.
 *
 * A client that lost the answer to a like resends it with the same key
 * (HTTP `Idempotency-Key`, WebSocket like op `"id"`). The table maps a key
 * to the first answer (status + body). lc_idem_run looks the key up and,
 * only when it is new, runs the caller's function (which counts the like
 * and writes the answer) and stores that answer, all under the table's
 * lock, so two copies of one request racing on two workers count once.
 *
 * Bounds: at most max_keys keys (oldest dropped first, counted), each
 * kept ttl_ms (24 h by default). Keys survive a restart: the batcher
 * writes them in the same transaction as, or after, the counts they
 * changed (a key is "persistable" once every tick up to `after_seq` is in
 * the database), and lc_idem_load puts them back at start.
 *
 * Threads: any (one mutex). Does not include libwebsockets.h.
 */
#ifndef LC_IDEM_H
#define LC_IDEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One key-length rule for every transport: a client sends 1..128
 * printable ASCII bytes (LC_IDEM_CLIENT_KEY_MAX); the table stores it
 * behind a two-byte transport prefix ("h:" HTTP, "w:" WebSocket), so a
 * stored key is at most LC_IDEM_KEY_MAX bytes. Keys are made only by
 * lc_idem_make_key; every function taking a stored key refuses a longer
 * one, and every buffer holding one has LC_IDEM_KEY_MAX + 1 bytes.
 */
#define LC_IDEM_CLIENT_KEY_MAX 128
#define LC_IDEM_PREFIX_LEN 2
#define LC_IDEM_KEY_MAX (LC_IDEM_PREFIX_LEN + LC_IDEM_CLIENT_KEY_MAX)
/* {"url":U,"count":C} with every byte of a 2048-byte URL escaped. */
#define LC_IDEM_BODY_MAX 4352

struct lc_idem;

/** The first answer to a keyed request. */
struct lc_idem_answer {
	int status;
	size_t len;
	char body[LC_IDEM_BODY_MAX];
};

struct lc_idem_stats {
	_Atomic uint64_t hits;	    /* retries answered from the table */
	_Atomic uint64_t stored;    /* keys stored */
	_Atomic uint64_t evicted;   /* dropped early: max_keys reached */
	_Atomic uint64_t expired;   /* dropped after ttl_ms */
	_Atomic uint64_t keys;	    /* keys held now */
	_Atomic uint64_t persisted; /* keys written to the database */
};

struct lc_idem *lc_idem_create(size_t max_keys, int64_t ttl_ms);
void lc_idem_destroy(struct lc_idem *t);

/** True for a client's key: 1..128 printable ASCII bytes (0x21..0x7e). */
bool lc_idem_key_valid(const char *key, size_t len);

/**
 * Makes the stored key for a client's key sent over `transport` ('h' or
 * 'w') into out (LC_IDEM_KEY_MAX + 1 bytes, NUL-terminated). Returns its
 * length, or 0 when the client's key is not valid.
 */
size_t lc_idem_make_key(char out[LC_IDEM_KEY_MAX + 1], char transport,
			const char *key, size_t len);

/**
 * With key: if the key is known (and not expired), copies its first answer
 * into *ans and returns true (a retry: do nothing else). Otherwise calls
 * fn(arg, ans) under the table's lock; when fn returns true the answer is
 * stored under the key (a key that is not a valid stored key is never
 * stored: fn runs and its answer is not kept), with `*after_seq` (set by fn:
 * the dispatch tick seq after which the counts it changed are merged) telling
 * the batcher when it may persist it. Returns false (not a retry).
 */
bool lc_idem_run(struct lc_idem *t, const char *key, size_t klen,
		 int64_t now_ms,
		 bool (*fn)(void *arg, struct lc_idem_answer *ans,
			    uint64_t *after_seq),
		 void *arg, struct lc_idem_answer *ans);

/** Copies key's first answer into *ans when known. Any thread. */
bool lc_idem_lookup(struct lc_idem *t, const char *key, size_t klen,
		    int64_t now_ms, struct lc_idem_answer *ans);

/**
 * Puts a key with its answer in the table as already persisted: at start
 * (from the database), or another node's answer (cluster). Any thread.
 * A key that is not a stored key (empty, longer than LC_IDEM_KEY_MAX, not
 * printable ASCII) is skipped: returns 0 and stores nothing.
 */
int lc_idem_load(struct lc_idem *t, const char *key, size_t klen, int status,
		 const char *body, size_t len, int64_t created_ms);

/** A key to write to the database. */
struct lc_idem_record {
	char key[LC_IDEM_KEY_MAX + 1];
	int status;
	int64_t created_ms;
	size_t len;
	char body[LC_IDEM_BODY_MAX];
};

/**
 * Batcher: copies up to max keys not yet written whose after_seq <= seq
 * into out (oldest first) and returns how many; *upto is the last one's
 * id. Once their transaction committed, lc_idem_persisted(upto) marks
 * them written (keys dropped meanwhile are simply gone).
 */
size_t lc_idem_take_persistable(struct lc_idem *t, uint64_t seq,
				struct lc_idem_record *out, size_t max,
				uint64_t *upto);
void lc_idem_persisted(struct lc_idem *t, uint64_t upto);

/** Keys not yet in the database. Any thread, no lock. */
size_t lc_idem_unpersisted(struct lc_idem *t);

const struct lc_idem_stats *lc_idem_stats(struct lc_idem *t);

#endif
