/*
 * Unit tests: SQLite store and batcher on temporary databases: schema,
 * refusal of foreign files, flush, reload, throttle, failed flushes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/counter.h"
#include "lc/hash.h"
#include "lc/slots.h"
#include "lc/store.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char dbpath[128];

static int
setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/lc_test_store_XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/lc.db", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static int64_t
query_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
exec_sql(const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static struct lc_entry *
get(struct lc_counter *c, const char *url)
{
	return lc_counter_find_or_insert(c, url, strlen(url),
					 lc_hash(url, strlen(url)));
}

/* Applies a like to the table and tells the batcher, as a tick would. */
static void
tick(struct lc_batcher *bt, struct lc_entry *e, int64_t l, int64_t u,
     int64_t now_ms)
{
	struct lc_change_batch *b = malloc(sizeof(*b) + sizeof(b->items[0]));

	lc_entry_add(e, l, u, now_ms);
	b->minute_s = now_ms / 60000 * 60;
	b->n = 1;
	b->items[0] = (struct lc_change){e, l, u};
	lc_batcher_push(bt, b);
}

static void
test_schema_and_refusals(void **state)
{
	char err[512], other[160];
	struct lc_store *st, *second;
	FILE *f;

	(void)state;
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_non_null(st);
	/* A second writer on the same file is refused while we hold it. */
	second = lc_store_open(dbpath, false, err, sizeof(err));
	assert_null(second);
	assert_non_null(strstr(err, "in use"));
	lc_store_close(st);
	assert_int_equal(query_int("PRAGMA user_version"),
			 LC_STORE_SCHEMA_VERSION);
	assert_int_equal(query_int("PRAGMA application_id"), LC_STORE_APP_ID);
	assert_int_equal(query_int("SELECT count(*) FROM sqlite_master WHERE "
				   "name IN ('urls','counters','likes_minute',"
				   "'counts_v','history_v')"),
			 5);
	/* Reopening is idempotent. */
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_non_null(st);
	lc_store_close(st);

	/* A text file is refused and left byte-for-byte alone. */
	snprintf(other, sizeof(other), "%s/notes.txt", dir);
	f = fopen(other, "w");
	fputs("my precious notes, not a database\n", f);
	fclose(f);
	assert_null(lc_store_open(other, false, err, sizeof(err)));
	assert_non_null(strstr(err, "not an SQLite database"));
	{
		char buf[128] = {0};

		f = fopen(other, "r");
		assert_non_null(fgets(buf, sizeof(buf), f));
		fclose(f);
		assert_string_equal(buf, "my precious notes, not a database\n");
	}
	/* Someone else's SQLite database is refused too. */
	snprintf(other, sizeof(other), "%s/other.db", dir);
	{
		sqlite3 *db;

		sqlite3_open(other, &db);
		sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)",
			     NULL, NULL, NULL);
		sqlite3_close(db);
	}
	assert_null(lc_store_open(other, false, err, sizeof(err)));
	assert_non_null(strstr(err, "not a livecount"));
}

static void
test_flush_reload_history(void **state)
{
	struct lc_counter c, c2;
	struct lc_batcher *bt;
	struct lc_store *st, *ro;
	int64_t now = lc_now_ms() / 60000 * 60000 + 1000; /* mid-minute */
	char err[512];
	json_t *points;

	(void)state;
	lc_counter_init(&c, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, get(&c, "https://a/1"), 5, 1, now - 60000); /* last minute */
	tick(bt, get(&c, "https://a/1"), 3, 0, now);
	tick(bt, get(&c, "https://a/2"), 0, 2, now);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(query_int("SELECT count FROM counts_v WHERE url = "
				   "'https://a/1'"),
			 7);
	assert_int_equal(query_int("SELECT count(*) FROM likes_minute"), 3);
	/* A second flush with nothing new writes nothing new. */
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	/* More in the same minute: the minute row holds the absolute total. */
	tick(bt, get(&c, "https://a/1"), 4, 0, now + 1);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	{
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "SELECT likes FROM likes_minute WHERE minute = %lld",
			 (long long)(now / 60000 * 60));
		assert_int_equal(query_int(sql), 7);
	}
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);

	/* History through a read-only connection. */
	ro = lc_store_open(dbpath, true, err, sizeof(err));
	assert_non_null(ro);
	points = json_array();
	assert_int_equal(lc_store_history(ro, "https://a/1", 11,
					  now / 1000 - 3600, now / 1000 + 60,
					  100, points),
			 0);
	assert_int_equal(json_array_size(points), 2);
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(points, 1), "likes")),
			 7);
	json_decref(points);
	lc_store_close(ro);

	/* Reload: counts and the current minute's totals come back. */
	lc_counter_init(&c2, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_int_equal(lc_store_load(st, &c2, now + 2), 2);
	struct lc_counts r = lc_entry_read(get(&c2, "https://a/1"));

	assert_int_equal(r.likes, 12);
	assert_int_equal(r.unlikes, 1);
	struct lc_entry *e = get(&c2, "https://a/1");

	assert_non_null(e->minutes);
	assert_int_equal(e->minutes->likes, 7);
	assert_true(e->db_id > 0);
	/* Continuing in that minute after a restart adds to its total. */
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, e, 1, 0, now + 3);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	{
		char sql[160];

		snprintf(sql, sizeof(sql),
			 "SELECT likes FROM likes_minute WHERE minute = %lld",
			 (long long)(now / 60000 * 60));
		assert_int_equal(query_int(sql), 8);
	}
	lc_counter_cleanup(&c2);
	lc_counter_cleanup(&c);
}

/* A URL row left without counters (by hand) is found, not duplicated. */
static void
test_existing_url_row_is_reused(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	char err[512];

	(void)state;
	st = lc_store_open(dbpath, false, err, sizeof(err));
	lc_store_close(st);
	exec_sql("INSERT INTO urls(id, url) VALUES (7, 'orphan')");
	lc_counter_init(&c, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, get(&c, "newcomer"), 1, 0, lc_now_ms());
	tick(bt, get(&c, "orphan"), 2, 0, lc_now_ms());
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(
	    query_int("SELECT url_id FROM counters WHERE likes = 2"), 7);
	assert_int_equal(query_int("SELECT id FROM urls WHERE url = "
				   "'newcomer'"),
			 8);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 2);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

/*
 * New URLs go ROWS (64) to a statement: 300 of them (four full statements
 * and a tail of 44) with their minute rows, one of them already in the
 * table by hand inside a full statement (that statement falls back to one
 * row at a time and reuses the row), then all of them again (updates,
 * minute rows upserted).
 */
static void
test_many_new_urls_rows_per_statement(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	char err[512], url[32];
	int64_t now = lc_now_ms();

	(void)state;
	st = lc_store_open(dbpath, false, err, sizeof(err));
	lc_store_close(st);
	exec_sql("INSERT INTO urls(id, url) VALUES (1000, 'm/150')");
	lc_counter_init(&c, 512);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	for (int i = 0; i < 300; i++) {
		snprintf(url, sizeof(url), "m/%03d", i);
		tick(bt, get(&c, url), i + 1, i % 3, now);
	}
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 300);
	assert_int_equal(query_int("SELECT count(DISTINCT id) FROM urls"), 300);
	assert_int_equal(query_int("SELECT id FROM urls WHERE url = 'm/150'"),
			 1000);
	assert_int_equal(query_int("SELECT sum(likes) FROM urls"),
			 300 * 301 / 2);
	assert_int_equal(query_int("SELECT count(*) FROM likes_minute"), 300);
	assert_int_equal(query_int("SELECT count(*) FROM history_v h JOIN "
				   "counts_v c USING (url) WHERE h.likes = "
				   "c.likes AND h.unlikes = c.unlikes"),
			 300);
	assert_int_equal(query_int("SELECT likes FROM history_v WHERE url = "
				   "'m/150'"),
			 151);
	/* Once more: every row updated, every minute row upserted. */
	for (int i = 0; i < 300; i++) {
		snprintf(url, sizeof(url), "m/%03d", i);
		tick(bt, get(&c, url), 1, 0, now);
	}
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(query_int("SELECT count(*) FROM likes_minute"), 300);
	assert_int_equal(query_int("SELECT sum(likes) FROM likes_minute"),
			 300 * 301 / 2 + 300);
	assert_int_equal(query_int("SELECT sum(likes) FROM urls"),
			 300 * 301 / 2 + 300);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

static int
cmp_strp(const void *a, const void *b)
{
	return strcmp((*(struct lc_entry *const *)a)->url,
		      (*(struct lc_entry *const *)b)->url);
}

/*
 * lc_store_order puts new URLs in strcmp order (its string sort reads
 * 8-byte keys after a shared prefix): URLs that share long prefixes, that
 * are prefixes of others, that end inside a key or exactly at its end,
 * with bytes >= 0x80, in sets of every size up to 3000.
 */
static void
test_order_of_new_urls(void **state)
{
	static const char *const parts[] = {"https://example.com/post/",
					    "a",
					    "ab",
					    "abcdefgh",
					    "abcdefghi",
					    "\xc3\xa9",
					    "\xff",
					    "/",
					    "0",
					    "00000000",
					    "z",
					    "é"};
	struct lc_counter c;
	struct lc_entry **got = malloc(3000 * sizeof(*got));
	struct lc_entry **want = malloc(3000 * sizeof(*want));
	char url[256];

	(void)state;
	srand(11);
	for (int round = 0; round < 40; round++) {
		size_t n = round < 10 ? (size_t)round : (size_t)(rand() % 3000);
		size_t k = 0;

		lc_counter_init(&c, 4096);
		while (k < n) {
			size_t len = 0;
			int pieces = 1 + rand() % 6;
			struct lc_entry *e;

			for (int p = 0; p < pieces; p++) {
				const char *s = parts[rand() % 12];

				if (len + strlen(s) >= sizeof(url))
					break;
				memcpy(url + len, s, strlen(s));
				len += strlen(s);
			}
			if (!len)
				continue;
			url[len] = '\0';
			if (lc_counter_find(&c, url, len, lc_hash(url, len)))
				continue; /* URLs are unique */
			e = get(&c, url);
			got[k] = want[k] = e;
			k++;
		}
		lc_store_order(got, n);
		if (n > 1)
			qsort(want, n, sizeof(*want), cmp_strp);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(got[i]->url, want[i]->url);
		lc_counter_cleanup(&c);
	}
	free(got);
	free(want);
}

static void
test_throttle_leaves_rows_dirty(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	char err[512], url[32];
	int64_t now = lc_now_ms();

	(void)state;
	lc_counter_init(&c, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	for (int i = 0; i < 10; i++) {
		snprintf(url, sizeof(url), "t/%d", i);
		tick(bt, get(&c, url), 1, 0, now);
	}
	assert_int_equal(lc_batcher_flush_now(bt, 3), 0);
	assert_int_equal(query_int("SELECT count(*) FROM counters"), 3);
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->dirty), 7);
	assert_int_equal(lc_batcher_flush_now(bt, 3), 0);
	assert_int_equal(query_int("SELECT count(*) FROM counters"), 6);
	/* Oldest first: t/0..t/5 are written, t/6.. still wait. */
	assert_int_equal(query_int("SELECT count(*) FROM urls WHERE url IN "
				   "('t/0','t/5')"),
			 2);
	assert_int_equal(query_int("SELECT count(*) FROM urls WHERE url = "
				   "'t/9'"),
			 0);
	/* Stopping flushes the rest, unthrottled. */
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	assert_int_equal(query_int("SELECT count(*) FROM counters"), 10);
	lc_counter_cleanup(&c);
}

static void
test_failed_flush_keeps_rows(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	char err[512];
	int64_t now = lc_now_ms();

	(void)state;
	lc_counter_init(&c, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, get(&c, "f/1"), 2, 0, now);
	/* Break the database under the batcher: its flush must fail... */
	exec_sql("DROP TABLE likes_minute");
	assert_int_not_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->flush_errors), 1);
	assert_false(atomic_load(&lc_batcher_stats(bt)->healthy));
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->dirty), 1);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 0);
	/* ...more likes keep coming while it is broken... */
	tick(bt, get(&c, "f/1"), 1, 0, now);
	/* ...and once it is repaired, the retry writes everything once. */
	exec_sql(
	    "CREATE TABLE likes_minute (url_id INTEGER NOT NULL, minute "
	    "INTEGER NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT "
	    "NULL, views INTEGER NOT NULL DEFAULT 0, watching_max INTEGER NOT "
	    "NULL DEFAULT 0, PRIMARY KEY (url_id, minute)) WITHOUT ROWID");
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_true(atomic_load(&lc_batcher_stats(bt)->healthy));
	assert_int_equal(query_int("SELECT likes FROM counters"), 3);
	assert_int_equal(query_int("SELECT likes FROM likes_minute"), 3);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 1);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

static int64_t
minute_likes(int64_t minute_s)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
		 "SELECT likes FROM likes_minute WHERE minute = %lld",
		 (long long)minute_s);
	return query_int(sql);
}

/*
 * The wall clock steps back a minute: the minute that comes round again
 * adds to its row (found in memory, or read back from the database after
 * its node was dropped), never overwrites it with a smaller total.
 */
static void
test_minute_revisited_after_clock_step(void **state)
{
	struct lc_counter c;
	struct lc_store *st;
	struct lc_batcher *bt;
	struct lc_entry *e;
	char err[256];
	const int64_t t = 1795000000000LL / 60000 * 60000; /* a minute start */

	(void)state;
	lc_counter_init(&c, 16);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	e = get(&c, "step");
	tick(bt, e, 5, 0, t);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	tick(bt, e, 2, 0, t + 60000); /* next minute: the first is dropped */
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	tick(bt, e, 3, 1, t + 5000);  /* stepped back into the first minute */
	tick(bt, e, 1, 0, t + 61000); /* and forward again */
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(minute_likes(t / 1000), 8);
	assert_int_equal(minute_likes(t / 1000 + 60), 3);
	tick(bt, e, 1, 0, t + 6000); /* again, its node still in memory */
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(minute_likes(t / 1000), 9);
	assert_int_equal(query_int("SELECT likes FROM counters"), 12);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

/*
 * A database of schema 3 (counts in their own table) is upgraded in place:
 * the counts move into the urls rows, `counters` and counts_v read the
 * same, the load finds every count, and a flush writes on.
 */
static void
test_schema_3_upgraded_in_place(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	struct lc_entry *e;
	char err[512];
	int64_t now = lc_now_ms();

	(void)state;
	exec_sql(
	    "CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT NOT NULL "
	    "UNIQUE);"
	    "CREATE TABLE counters (url_id INTEGER PRIMARY KEY REFERENCES "
	    "urls(id), likes INTEGER NOT NULL, unlikes INTEGER NOT NULL, "
	    "updated_at INTEGER NOT NULL);"
	    "CREATE TABLE likes_minute (url_id INTEGER NOT NULL, minute "
	    "INTEGER NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT "
	    "NULL, PRIMARY KEY (url_id, minute)) WITHOUT ROWID;"
	    "CREATE VIEW counts_v AS SELECT u.url, c.likes - c.unlikes AS "
	    "count, c.likes, c.unlikes, c.updated_at FROM counters c JOIN urls "
	    "u ON u.id = c.url_id;"
	    "CREATE VIEW history_v AS SELECT u.url, m.minute, m.likes FROM "
	    "likes_minute m JOIN urls u ON u.id = m.url_id;"
	    "CREATE TABLE node_slots (url_id INTEGER NOT NULL, node INTEGER "
	    "NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT NULL, "
	    "PRIMARY KEY (url_id, node)) WITHOUT ROWID;"
	    "CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, status "
	    "INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT "
	    "NULL) WITHOUT ROWID;"
	    "INSERT INTO urls VALUES (1, 'old/a'), (2, 'old/b');"
	    "INSERT INTO counters VALUES (1, 5, 1, 1000), (2, 7, 0, 2000);"
	    "INSERT INTO likes_minute VALUES (1, 60, 5, 1);"
	    "INSERT INTO node_slots VALUES (1, 2, 5, 1);"
	    "PRAGMA application_id = 1279480908; PRAGMA user_version = 3;");
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(query_int("PRAGMA user_version"),
			 LC_STORE_SCHEMA_VERSION);
	assert_int_equal(query_int("SELECT likes FROM urls WHERE id = 2"), 7);
	assert_int_equal(query_int("SELECT sum(count) FROM counts_v"), 11);
	/* node 2's slot, from before instances: instance '' */
	assert_int_equal(query_int("SELECT count(*) FROM node_slots_v WHERE "
				   "node = 2 AND instance = '' AND count = 4"),
			 1);
	assert_int_equal(
	    query_int("SELECT updated_at FROM counters WHERE url_id = 1"),
	    1000);
	lc_counter_init(&c, 16);
	assert_int_equal(lc_store_load(st, &c, now), 2);
	e = get(&c, "old/a");
	assert_int_equal(lc_entry_count(e), 4);
	assert_int_equal(e->db_id, 1);
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, e, 2, 0, now);
	tick(bt, get(&c, "new/c"), 1, 0, now);
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(query_int("SELECT likes FROM counts_v WHERE url = "
				   "'old/a'"),
			 7);
	assert_int_equal(query_int("SELECT id FROM urls WHERE url = 'new/c'"),
			 3);
	/* Scripts that insert into counters (a seed) still can. */
	exec_sql("INSERT INTO counters VALUES (2, 9, 1, 3000)");
	assert_int_equal(query_int("SELECT count FROM counts_v WHERE url = "
				   "'old/b'"),
			 8);
	exec_sql("UPDATE counters SET likes = 10 WHERE url_id = 2");
	assert_int_equal(query_int("SELECT likes FROM urls WHERE id = 2"), 10);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

static void
query_text(const char *sql, char *out, size_t cap)
{
	sqlite3 *db;
	sqlite3_stmt *s;

	out[0] = '\0';
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(out, cap, "%s", sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

/*
 * The database's instance id names its cluster slot (issue 20): made with
 * the database, kept across reopening and a lost file (the process's slot
 * goes on), new for another database; node_slots keeps every slot's
 * instance ('' for slots from before instances) and loads them back.
 */
static void
test_instance_id_names_the_slot(void **state)
{
	char err[512], text[32], want[16], other[160];
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct lc_counter c;
	struct lc_store *st;
	struct lc_entry *e;
	uint32_t inst;

	(void)state;
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_non_null(st);
	inst = lc_store_instance(st);
	assert_true(inst != 0);
	snprintf(want, sizeof(want), "%08" PRIx32, inst);
	query_text("SELECT value FROM meta WHERE key = 'instance'", text,
		   sizeof(text));
	assert_string_equal(text, want);
	lc_store_close(st);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(lc_store_instance(st), inst);

	/* Three slots of one URL: ours, node 1's from before instances,
	 * node 2's. */
	lc_store_set_cluster(st, &lock, 1);
	lc_counter_init(&c, 16);
	e = lc_counter_find_or_insert(&c, "s", 1, lc_hash("s", 1));
	struct lc_slot_id own = {1, inst};
	lc_slots_load(e, own, own, (struct lc_reading){5, 1, 0});
	lc_slots_load(e, own, (struct lc_slot_id){1, 0},
		      (struct lc_reading){2, 0, 0});
	lc_slots_load(e, own, (struct lc_slot_id){2, 0xabc},
		      (struct lc_reading){3, 0, 4});
	assert_int_equal(lc_slots_settle(e, own), 0);
	assert_int_equal(lc_entry_count(e), 9);
	assert_int_equal(lc_store_flush(st, &e, 1, NULL, 0, 0), 0);
	lc_counter_cleanup(&c);
	assert_int_equal(query_int("SELECT count(*) FROM node_slots"), 3);
	query_text("SELECT group_concat(node || '/' || instance || '/' || "
		   "likes, ' ') FROM (SELECT * FROM node_slots_v ORDER BY "
		   "node, instance)",
		   text, sizeof(text));
	snprintf(other, sizeof(other), "1//2 1/%s/5 2/00000abc/3", want);
	assert_string_equal(text, other);

	/* Loaded back: the same three slots, ours by its instance. */
	lc_counter_init(&c, 16);
	assert_int_equal(lc_store_load(st, &c, lc_now_ms()), 1);
	e = lc_counter_find(&c, "s", 1, lc_hash("s", 1));
	assert_non_null(e);
	assert_int_equal(lc_entry_count(e), 9);
	assert_int_equal(lc_slots_find(e, own)->likes, 5);
	assert_int_equal(e->slots->base_likes, 5);
	assert_int_equal(lc_slots_find(e, (struct lc_slot_id){1, 0})->likes, 2);
	assert_int_equal(lc_slots_find(e, (struct lc_slot_id){2, 0xabc})->views,
			 4);
	lc_counter_cleanup(&c);

	/* The file deleted under us: the new one carries our instance. */
	unlink(dbpath);
	assert_int_equal(lc_store_reopen(st, err, sizeof(err)), 0);
	assert_int_equal(lc_store_instance(st), inst);
	query_text("SELECT value FROM meta WHERE key = 'instance'", text,
		   sizeof(text));
	assert_string_equal(text, want);
	lc_store_close(st);

	/* Another database, another instance. */
	snprintf(other, sizeof(other), "%s/other.db", dir);
	st = lc_store_open(other, false, err, sizeof(err));
	assert_non_null(st);
	assert_true(lc_store_instance(st) != 0 &&
		    lc_store_instance(st) != inst);
	lc_store_close(st);
}

/*
 * After a failure the backlog goes in small transactions (64 URLs, then
 * 128, ...): when one of them fails, the ones before stay written and
 * exactly the rest stays queued, and the next flush writes it.
 */
static void
test_chunks_after_a_failure(void **state)
{
	struct lc_counter c;
	struct lc_batcher *bt;
	struct lc_store *st;
	char err[512], url[32];
	int64_t now = lc_now_ms();

	(void)state;
	lc_counter_init(&c, 256);
	st = lc_store_open(dbpath, false, err, sizeof(err));
	bt = lc_batcher_create(st, 1000, 1000000);
	tick(bt, get(&c, "c/first"), 1, 0, now);
	exec_sql("DROP TABLE likes_minute");
	assert_int_not_equal(lc_batcher_flush_now(bt, 1000), 0);
	exec_sql(
	    "CREATE TABLE likes_minute (url_id INTEGER NOT NULL, minute "
	    "INTEGER NOT NULL, likes INTEGER NOT NULL, unlikes INTEGER NOT "
	    "NULL, views INTEGER NOT NULL DEFAULT 0, watching_max INTEGER NOT "
	    "NULL DEFAULT 0, PRIMARY KEY (url_id, minute)) WITHOUT ROWID");
	for (int i = 0; i < 200; i++) {
		snprintf(url, sizeof(url), "c/%03d", i);
		tick(bt, get(&c, url), 1, 0, now);
	}
	/* New URLs go in text order: c/000.. (64), then c/064.. (128) with
	 * c/150 in it, refused. */
	exec_sql("CREATE TRIGGER no_room BEFORE INSERT ON urls WHEN NEW.url "
		 ">= 'c/150' AND NEW.url < 'c/999' BEGIN SELECT RAISE(ABORT, "
		 "'no room'); END");
	assert_int_not_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 64);
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->dirty), 201 - 64);
	exec_sql("DROP TRIGGER no_room");
	assert_int_equal(lc_batcher_flush_now(bt, 1000), 0);
	assert_int_equal(atomic_load(&lc_batcher_stats(bt)->dirty), 0);
	assert_int_equal(query_int("SELECT count(*) FROM urls"), 201);
	assert_int_equal(query_int("SELECT sum(likes) FROM counts_v"), 201);
	assert_int_equal(query_int("SELECT count(*) FROM likes_minute"), 201);
	assert_int_equal(lc_batcher_stop(bt, 5000, NULL, NULL), 0);
	lc_counter_cleanup(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_schema_and_refusals, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_flush_reload_history, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_existing_url_row_is_reused,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_throttle_leaves_rows_dirty,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_flush_keeps_rows, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_minute_revisited_after_clock_step, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_3_upgraded_in_place,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_many_new_urls_rows_per_statement, setup, teardown),
	    cmocka_unit_test(test_order_of_new_urls),
	    cmocka_unit_test_setup_teardown(test_instance_id_names_the_slot,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunks_after_a_failure, setup,
					    teardown),
	};

	lc_hash_seed_init();
	lc_log_set_level(LC_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
