/*
 * SQLite persistence: the schema, its migrations, loading at start, the
 * flush transaction and history reads.
 *
 * Threads: a store is one connection used by one thread (see store.h).
 *
 * A note on safety of the file: before SQLite touches a path we check that
 * it is empty or starts with the SQLite header, and after opening we check
 * PRAGMA application_id, so a stray file given as --db is refused and left
 * byte-for-byte untouched. A second server on the same file is refused by
 * an flock() on the database file, which is independent of the POSIX
 * locks SQLite itself uses, and leaves the sqlite3 shell free to read.
 */
#define _GNU_SOURCE
#include "lc/store.h"
#include "lc/common.h"
#include "lc/hash.h"

#include "lc/slots.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

struct lc_store {
	sqlite3 *db;
	int lock_fd; /* flock()ed database file, -1 for readers */
	sqlite3_stmt *put_url, *put_counter, *put_minute, *history;
	sqlite3_stmt *put_slot;		    /* node_slots upsert */
	sqlite3_stmt *put_key, *prune_keys; /* idempotency_keys */
	pthread_mutex_t *slots_lock;	    /* the table's, in cluster mode */
	sqlite3_stmt *new_url;		    /* insert with an id chosen here */
	sqlite3_stmt *new_urls, *put_minutes; /* ROWS rows each */
	int64_t next_id; /* ids above every urls.id (writer only) */
	char *path;	 /* as given to the opener */
	int busy_ms;	 /* the busy timeout set */
	/* The writer's files as opened: st_dev, st_ino of path, -wal, -shm. */
	struct file_id {
		dev_t dev;
		ino_t ino;
	} ids[3];
	uint32_t self; /* cluster mode: this node's id */
	uint32_t inst; /* the database's instance id (writer only) */
};

static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE urls (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  url TEXT NOT NULL UNIQUE\n"
    ");\n"
    "CREATE TABLE counters (\n"
    "  url_id INTEGER PRIMARY KEY REFERENCES urls(id),\n"
    "  likes INTEGER NOT NULL,\n"
    "  unlikes INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL -- Unix milliseconds\n"
    ");\n"
    "CREATE TABLE likes_minute (\n"
    "  url_id INTEGER NOT NULL REFERENCES urls(id),\n"
    "  minute INTEGER NOT NULL, -- Unix seconds, start of the minute\n"
    "  likes INTEGER NOT NULL,\n"
    "  unlikes INTEGER NOT NULL,\n"
    "  PRIMARY KEY (url_id, minute)\n"
    ") WITHOUT ROWID;\n"
    "CREATE VIEW counts_v AS\n"
    "  SELECT u.url, c.likes - c.unlikes AS count, c.likes, c.unlikes,\n"
    "         strftime('%Y-%m-%d %H:%M:%f', c.updated_at / 1000.0,\n"
    "                  'unixepoch') AS updated_at\n"
    "  FROM counters c JOIN urls u ON u.id = c.url_id;\n"
    "CREATE VIEW history_v AS\n"
    "  SELECT u.url, datetime(m.minute, 'unixepoch') AS minute,\n"
    "         m.likes, m.unlikes, m.likes - m.unlikes AS net\n"
    "  FROM likes_minute m JOIN urls u ON u.id = m.url_id;\n",
    /* 2: cluster mode: every node's own totals per URL. */
    "CREATE TABLE node_slots (\n"
    "  url_id INTEGER NOT NULL REFERENCES urls(id),\n"
    "  node INTEGER NOT NULL, -- node_id that accepted these likes\n"
    "  likes INTEGER NOT NULL,\n"
    "  unlikes INTEGER NOT NULL,\n"
    "  PRIMARY KEY (url_id, node)\n"
    ") WITHOUT ROWID;\n"
    "CREATE VIEW node_slots_v AS\n"
    "  SELECT u.url, s.node, s.likes - s.unlikes AS count, s.likes,\n"
    "         s.unlikes\n"
    "  FROM node_slots s JOIN urls u ON u.id = s.url_id;\n",
    /* 3: idempotency keys of recent likes and their first answers. */
    "CREATE TABLE idempotency_keys (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  status INTEGER NOT NULL,\n"
    "  body TEXT NOT NULL,\n"
    "  created_at INTEGER NOT NULL -- Unix milliseconds\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);\n",
    /* 4: the counts in the urls row, one row per new URL instead of two
     * (1M new URLs flush in about a quarter less time); `counters` stays
     * as a view, with INSTEAD OF triggers for scripts that write to it.
     */
    "ALTER TABLE urls ADD COLUMN likes INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE urls ADD COLUMN unlikes INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE urls ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;\n"
    "UPDATE urls SET likes = c.likes, unlikes = c.unlikes,\n"
    "  updated_at = c.updated_at FROM counters AS c WHERE c.url_id = urls.id;\n"
    "DROP VIEW counts_v;\n"
    "DROP TABLE counters;\n"
    "CREATE VIEW counters AS\n"
    "  SELECT id AS url_id, likes, unlikes, updated_at FROM urls;\n"
    "CREATE TRIGGER counters_insert INSTEAD OF INSERT ON counters BEGIN\n"
    "  UPDATE urls SET likes = NEW.likes, unlikes = NEW.unlikes,\n"
    "    updated_at = NEW.updated_at WHERE id = NEW.url_id;\n"
    "END;\n"
    "CREATE TRIGGER counters_update INSTEAD OF UPDATE ON counters BEGIN\n"
    "  UPDATE urls SET likes = NEW.likes, unlikes = NEW.unlikes,\n"
    "    updated_at = NEW.updated_at WHERE id = OLD.url_id;\n"
    "END;\n"
    "CREATE TRIGGER counters_delete INSTEAD OF DELETE ON counters BEGIN\n"
    "  DELETE FROM urls WHERE id = OLD.url_id;\n"
    "END;\n"
    "CREATE VIEW counts_v AS\n"
    "  SELECT url, likes - unlikes AS count, likes, unlikes,\n"
    "         strftime('%Y-%m-%d %H:%M:%f', updated_at / 1000.0,\n"
    "                  'unixepoch') AS updated_at\n"
    "  FROM urls;\n",
    /* 5: live stats: views per URL and per minute, the minute's peak
     * audience (watching_max), views per node. */
    "ALTER TABLE urls ADD COLUMN views INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE likes_minute ADD COLUMN views INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE likes_minute ADD COLUMN watching_max INTEGER NOT NULL "
    "DEFAULT 0;\n"
    "ALTER TABLE node_slots ADD COLUMN views INTEGER NOT NULL DEFAULT 0;\n"
    "DROP VIEW IF EXISTS counts_v;\n"
    "CREATE VIEW counts_v AS\n"
    "  SELECT url, likes - unlikes AS count, likes, unlikes, views,\n"
    "         strftime('%Y-%m-%d %H:%M:%f', updated_at / 1000.0,\n"
    "                  'unixepoch') AS updated_at\n"
    "  FROM urls;\n"
    "DROP VIEW IF EXISTS history_v;\n"
    "CREATE VIEW history_v AS\n"
    "  SELECT u.url, datetime(m.minute, 'unixepoch') AS minute,\n"
    "         m.likes, m.unlikes, m.likes - m.unlikes AS net, m.views,\n"
    "         m.watching_max\n"
    "  FROM likes_minute m JOIN urls u ON u.id = m.url_id;\n"
    "DROP VIEW IF EXISTS node_slots_v;\n"
    "CREATE VIEW node_slots_v AS\n"
    "  SELECT u.url, s.node, s.likes - s.unlikes AS count, s.likes,\n"
    "         s.unlikes, s.views\n"
    "  FROM node_slots s JOIN urls u ON u.id = s.url_id;\n",
    /* 6: the database's instance id names its cluster slot (slots.h):
     * node_slots gains the instance of each slot ('' = from before
     * instances), and `meta` holds this database's own. */
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "DROP VIEW node_slots_v;\n"
    "ALTER TABLE node_slots RENAME TO node_slots_old;\n"
    "CREATE TABLE node_slots (\n"
    "  url_id INTEGER NOT NULL REFERENCES urls(id),\n"
    "  node INTEGER NOT NULL, -- node_id that accepted these likes\n"
    "  instance TEXT NOT NULL DEFAULT '', -- of the database that keeps "
    "them\n"
    "  likes INTEGER NOT NULL,\n"
    "  unlikes INTEGER NOT NULL,\n"
    "  views INTEGER NOT NULL DEFAULT 0,\n"
    "  PRIMARY KEY (url_id, node, instance)\n"
    ") WITHOUT ROWID;\n"
    "INSERT INTO node_slots(url_id, node, likes, unlikes, views)\n"
    "  SELECT url_id, node, likes, unlikes, views FROM node_slots_old;\n"
    "DROP TABLE node_slots_old;\n"
    "CREATE VIEW node_slots_v AS\n"
    "  SELECT u.url, s.node, s.likes - s.unlikes AS count, s.likes,\n"
    "         s.unlikes, s.views, s.instance\n"
    "  FROM node_slots s JOIN urls u ON u.id = s.url_id;\n",
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

static int
exec(struct lc_store *st, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "database: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return LC_EIO;
	}
	return 0;
}

static int
pragma_int(struct lc_store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return LC_EIO;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : LC_EIO;
}

/* Refuses non-empty files that do not start with the SQLite header. */
static int
check_header(const char *path, char *err, size_t errlen)
{
	static const char magic[16] = "SQLite format 3";
	char buf[16];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : LC_EIO;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(buf) || memcmp(buf, magic, sizeof(buf))) {
		snprintf(err, errlen,
			 "database: %s is not an SQLite database; refusing to "
			 "touch it",
			 path);
		return LC_ENOTDB;
	}
	return 0;
}

static int
migrate(struct lc_store *st, const char *path, char *err, size_t errlen)
{
	int64_t app_id = 0, version = 0, tables = 0;

	if (pragma_int(st, "PRAGMA application_id", &app_id) ||
	    pragma_int(st, "PRAGMA user_version", &version) ||
	    pragma_int(st, "SELECT count(*) FROM sqlite_master", &tables)) {
		snprintf(err, errlen, "database: %s: %s", path,
			 sqlite3_errmsg(st->db));
		return LC_ENOTDB;
	}
	if (app_id != LC_STORE_APP_ID && (tables || version)) {
		snprintf(err, errlen,
			 "database: %s is an SQLite database but not a "
			 "livecount one; refusing to touch it",
			 path);
		return LC_ENOTDB;
	}
	if (version > (int64_t)NMIGRATIONS) {
		snprintf(err, errlen,
			 "database: %s has schema version %lld, newer than "
			 "this livecount (%zu)",
			 path, (long long)version, NMIGRATIONS);
		return LC_ENOTDB;
	}
	for (int64_t v = version; v < (int64_t)NMIGRATIONS; v++) {
		char sql[128];

		if (exec(st, "BEGIN IMMEDIATE", err, errlen))
			return LC_EIO;
		snprintf(sql, sizeof(sql),
			 "PRAGMA application_id = %d; PRAGMA user_version = "
			 "%lld;",
			 LC_STORE_APP_ID, (long long)v + 1);
		if (exec(st, migrations[v], err, errlen) ||
		    exec(st, sql, err, errlen) ||
		    exec(st, "COMMIT", err, errlen)) {
			exec(st, "ROLLBACK", err + strlen(err), 0);
			return LC_EIO;
		}
		lc_info("database: migrated %s to schema version %lld", path,
			(long long)v + 1);
	}
	return 0;
}

static int
prepare(struct lc_store *st, sqlite3_stmt **s, const char *sql, char *err,
	size_t errlen)
{
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, s,
			       NULL) != SQLITE_OK) {
		snprintf(err, errlen, "database: %s", sqlite3_errmsg(st->db));
		return LC_EIO;
	}
	return 0;
}

static struct lc_store *
store_new(const char *path, char *err, size_t errlen)
{
	struct lc_store *st = calloc(1, sizeof(*st));

	if (st && !(st->path = strdup(path))) {
		free(st);
		st = NULL;
	}
	if (!st)
		snprintf(err, errlen, "database: out of memory");
	else
		st->lock_fd = -1;
	return st;
}

static int
open_db(struct lc_store *st, int flags, char *err, size_t errlen)
{
	if (sqlite3_open_v2(st->path, &st->db, flags | SQLITE_OPEN_NOMUTEX,
			    NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "database: cannot open %s: %s", st->path,
		 st->db ? sqlite3_errmsg(st->db) : "out of memory");
	return LC_EIO;
}

struct lc_store *
lc_store_open_reader(const char *path, char *err, size_t errlen)
{
	struct lc_store *st = store_new(path, err, errlen);

	if (!st)
		return NULL;
	if (open_db(st, SQLITE_OPEN_READONLY, err, errlen))
		goto fail;
	sqlite3_busy_timeout(st->db, 1000);
	if (prepare(st, &st->history,
		    "SELECT m.minute, m.likes, m.unlikes, m.views, "
		    "m.watching_max FROM "
		    "likes_minute m JOIN urls u ON u.id = m.url_id "
		    "WHERE u.url = ?1 AND m.minute >= ?2 AND "
		    "m.minute < ?3 ORDER BY m.minute LIMIT ?4",
		    err, errlen))
		goto fail;
	return st;
fail:
	lc_store_close(st);
	return NULL;
}

/* The header check and the flock() of the file note at the top. */
static int
lock_file(struct lc_store *st, char *err, size_t errlen)
{
	int rc = check_header(st->path, err, errlen);

	if (rc)
		return rc;
	st->lock_fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (st->lock_fd < 0) {
		snprintf(err, errlen, "database: cannot open %s: %s", st->path,
			 strerror(errno));
		return LC_EIO;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB)) {
		snprintf(err, errlen,
			 "database: %s is in use by another livecount process",
			 st->path);
		return LC_EBUSY;
	}
	return 0;
}

static int
quick_check(struct lc_store *st, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int ok = 0;

	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL) ==
		SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW &&
	    !strcmp((const char *)sqlite3_column_text(s, 0), "ok"))
		ok = 1;
	sqlite3_finalize(s);
	if (ok)
		return 0;
	snprintf(err, errlen,
		 "database: %s fails PRAGMA quick_check; restore it from a "
		 "backup",
		 st->path);
	return LC_ENOTDB;
}

/*
 * A note on rows per statement: a big flush inserts a row per new URL and
 * a minute row per changed URL, and SQLite's cost per statement run (step,
 * reset, the VDBE's start and halt) was most of it: in a bare SQLite
 * measurement of this schema, 1M new URLs took 2.44 s of CPU one row per
 * statement, 1.68 s with 8 and 1.46 s with 32. So the new URLs' rows and
 * the minute rows go ROWS to a statement, the rest one at a time. (16 KiB
 * pages gained 7 % one row at a time, nothing on top of this: not used.)
 */
#define ROWS 64

/* Prepares head + ROWS "(?, ?, ?, ?, ?, ?)" + tail. */
static int
prepare_rows(struct lc_store *st, sqlite3_stmt **s, const char *head,
	     const char *tail, char *err, size_t errlen)
{
	static const char row[] = ", (?, ?, ?, ?, ?, ?)";
	size_t hl = strlen(head), tl = strlen(tail), n = 0;
	char *sql = malloc(hl + ROWS * (sizeof(row) - 1) + tl + 1);
	int rc;

	if (!sql) {
		snprintf(err, errlen, "database: out of memory");
		return LC_ENOMEM;
	}
	memcpy(sql, head, hl);
	n = hl;
	for (int i = 0; i < ROWS; i++) {
		memcpy(sql + n, i ? row : row + 2, sizeof(row) - (i ? 1 : 3));
		n += sizeof(row) - (i ? 1 : 3);
	}
	memcpy(sql + n, tail, tl + 1);
	rc = prepare(st, s, sql, err, errlen);
	free(sql);
	return rc;
}

/*
 * The flush statements. A URL's counts are columns of its urls row: a
 * new counter column is one more column here, in the row's binding
 * (bind_counts) and in migration and load.
 */
static int
prepare_writer(struct lc_store *st, char *err, size_t errlen)
{
	const struct {
		sqlite3_stmt **s;
		const char *sql;
	} all[] = {
	    {&st->new_url, "INSERT INTO urls(id, url, likes, unlikes, "
			   "updated_at, views) VALUES (?1, ?2, ?3, ?4, ?5, "
			   "?6)"},
	    /* A new URL whose text is there already (by hand, a restore). */
	    {&st->put_url,
	     "INSERT INTO urls(url, likes, unlikes, updated_at, "
	     "views) VALUES (?2, ?3, ?4, ?5, ?6) ON CONFLICT(url) "
	     "DO UPDATE SET likes = excluded.likes, unlikes = "
	     "excluded.unlikes, updated_at = excluded.updated_at, "
	     "views = excluded.views RETURNING id"},
	    {&st->put_counter, "UPDATE urls SET likes = ?3, unlikes = ?4, "
			       "updated_at = ?5, views = ?6 WHERE id = ?1"},
	    {&st->put_minute,
	     "INSERT INTO likes_minute(url_id, minute, likes, unlikes, views, "
	     "watching_max) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON "
	     "CONFLICT(url_id, minute) DO UPDATE SET likes = excluded.likes, "
	     "unlikes = excluded.unlikes, views = excluded.views, "
	     "watching_max = max(watching_max, excluded.watching_max)"},
	    {&st->put_key, "INSERT OR IGNORE INTO idempotency_keys(key, "
			   "status, body, created_at) VALUES (?1, ?2, ?3, ?4)"},
	    {&st->prune_keys,
	     "DELETE FROM idempotency_keys WHERE created_at < ?1"},
	    {&st->put_slot,
	     "INSERT INTO node_slots(url_id, node, likes, unlikes, views, "
	     "instance) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(url_id, "
	     "node, instance) DO UPDATE SET likes = excluded.likes, unlikes = "
	     "excluded.unlikes, views = excluded.views"},
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (prepare(st, all[i].s, all[i].sql, err, errlen))
			return LC_EIO;
	return prepare_rows(st, &st->new_urls,
			    "INSERT INTO urls(id, url, likes, unlikes, "
			    "updated_at, views) VALUES ",
			    "", err, errlen) ||
		       prepare_rows(
			   st, &st->put_minutes,
			   "INSERT INTO likes_minute(url_id, minute, likes, "
			   "unlikes, views, watching_max) VALUES ",
			   " ON CONFLICT(url_id, minute) DO UPDATE SET likes = "
			   "excluded.likes, unlikes = excluded.unlikes, views "
			   "= "
			   "excluded.views, watching_max = max(watching_max, "
			   "excluded.watching_max)",
			   err, errlen)
		   ? LC_EIO
		   : 0;
}

static const char *const suffix[3] = {"", "-wal", "-shm"};

/* The identity of path + suffix[i] now; {0, 0} if it does not exist. */
static struct file_id
file_id_of(const struct lc_store *st, int i)
{
	char p[4096];
	struct stat sb;

	snprintf(p, sizeof(p), "%s%s", st->path, suffix[i]);
	if (stat(p, &sb))
		return (struct file_id){0, 0};
	return (struct file_id){sb.st_dev, sb.st_ino};
}

static bool
same_file(struct file_id a, struct file_id b)
{
	return a.dev == b.dev && a.ino == b.ino;
}

/* After open: the WAL and shm files exist while the connection is open. */
static void
record_files(struct lc_store *st)
{
	struct stat sb;

	if (!fstat(st->lock_fd, &sb))
		st->ids[0] = (struct file_id){sb.st_dev, sb.st_ino};
	for (int i = 1; i < 3; i++)
		st->ids[i] = file_id_of(st, i);
}

/* The text of an instance id: 8 hex digits, "" for 0 (before instances). */
static void
inst_text(uint32_t inst, char out[9])
{
	if (inst)
		snprintf(out, 9, "%08" PRIx32, inst);
	else
		out[0] = '\0';
}

static bool
inst_parse(const char *t, size_t len, uint32_t *inst)
{
	uint32_t v = 0;

	if (len != 8 && len != 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		int d = t[i] >= '0' && t[i] <= '9'   ? t[i] - '0'
			: t[i] >= 'a' && t[i] <= 'f' ? t[i] - 'a' + 10
						     : -1;

		if (d < 0)
			return false;
		v = v << 4 | (uint32_t)d;
	}
	if (len && !v)
		return false;
	*inst = v;
	return true;
}

/*
 * The database's instance id (slots.h): read from meta, or made (random,
 * not 0) when the database has none yet; `want` != 0 writes that one
 * instead (lc_store_reopen: the process's slot outlives its file).
 */
static int
instance(struct lc_store *st, uint32_t want, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	char text[9];
	uint32_t inst = 0;
	int rc;

	if (sqlite3_prepare_v2(st->db,
			       "SELECT value FROM meta WHERE key = 'instance'",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW &&
	    !inst_parse((const char *)sqlite3_column_text(s, 0),
			(size_t)sqlite3_column_bytes(s, 0), &inst))
		inst = 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	if (inst && (!want || want == inst)) {
		st->inst = inst;
		return 0;
	}
	inst = want;
	while (!inst)
		if (getrandom(&inst, sizeof(inst), 0) != sizeof(inst))
			goto fail;
	inst_text(inst, text);
	if (sqlite3_prepare_v2(st->db,
			       "INSERT OR REPLACE INTO meta(key, value) "
			       "VALUES ('instance', ?1)",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		goto fail;
	st->inst = inst;
	return 0;
fail:
	snprintf(err, errlen, "database: %s: instance id: %s", st->path,
		 sqlite3_errmsg(st->db));
	return LC_EIO;
}

uint32_t
lc_store_instance(const struct lc_store *st)
{
	return st->inst;
}

struct lc_store *
lc_store_open_writer(const char *path, char *err, size_t errlen)
{
	struct lc_store *st = store_new(path, err, errlen);

	if (!st)
		return NULL;
	if (lock_file(st, err, errlen) ||
	    open_db(st, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err,
		    errlen))
		goto fail;
	lc_store_set_busy_timeout(st, 5000);
	/*
	 * WAL with synchronous=NORMAL: a committed flush survives a crash of
	 * this process; a power loss may take the last flushes back (README
	 * states the promise). journal_mode fails first on a file SQLite
	 * cannot read.
	 */
	if (exec(st,
		 "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
		 "PRAGMA journal_size_limit = 67108864; "
		 "PRAGMA cache_size = -65536;",
		 err, errlen)) {
		snprintf(err, errlen,
			 "database: %s is not a usable SQLite database (%s); "
			 "refusing to touch it",
			 path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if (migrate(st, path, err, errlen) || quick_check(st, err, errlen) ||
	    instance(st, 0, err, errlen))
		goto fail;
	if (pragma_int(st, "SELECT coalesce(max(id), 0) + 1 FROM urls",
		       &st->next_id)) {
		snprintf(err, errlen, "database: %s", sqlite3_errmsg(st->db));
		goto fail;
	}
	if (prepare_writer(st, err, errlen))
		goto fail;
	record_files(st);
	return st;
fail:
	lc_store_close(st);
	return NULL;
}

struct lc_store *
lc_store_open(const char *path, bool readonly, char *err, size_t errlen)
{
	return readonly ? lc_store_open_reader(path, err, errlen)
			: lc_store_open_writer(path, err, errlen);
}

/* Finalizes every statement (before closing the connection). */
static void
finalize_all(struct lc_store *st)
{
	sqlite3_stmt **all[] = {&st->put_url,	  &st->new_url,
				&st->put_counter, &st->put_minute,
				&st->new_urls,	  &st->put_minutes,
				&st->put_slot,	  &st->put_key,
				&st->prune_keys,  &st->history};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		sqlite3_finalize(*all[i]);
		*all[i] = NULL;
	}
}

void
lc_store_close(struct lc_store *st)
{
	if (!st)
		return;
	finalize_all(st);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		lc_err("database: close: %s", sqlite3_errmsg(st->db));
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* after SQLite: see the POSIX lock note */
	free(st->path);
	free(st);
}

const char *
lc_store_errmsg(struct lc_store *st)
{
	return st->db ? sqlite3_errmsg(st->db) : "the database is not open";
}

struct settle {
	struct lc_slot_id self;
	int rc;
};

static void
settle_cb(struct lc_entry *e, void *arg)
{
	struct settle *a = arg;

	if (!a->rc)
		a->rc = lc_slots_settle(e, a->self);
}

void
lc_store_set_cluster(struct lc_store *st, pthread_mutex_t *slots_lock,
		     uint32_t self)
{
	st->slots_lock = slots_lock;
	st->self = self;
}

long
lc_store_load(struct lc_store *st, struct lc_counter *c, int64_t now_ms)
{
	int64_t minute = now_ms / 60000 * 60;
	sqlite3_stmt *s = NULL;
	long n = 0;
	int rc;

	if (sqlite3_prepare_v2(
		st->db,
		"SELECT url, likes, unlikes, updated_at, id, views FROM urls",
		-1, &s, NULL) != SQLITE_OK)
		return LC_EIO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *url = (const char *)sqlite3_column_text(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		struct lc_entry *e =
		    lc_counter_find_or_insert(c, url, len, lc_hash(url, len));

		if (!e) {
			sqlite3_finalize(s);
			return LC_ENOMEM;
		}
		lc_entry_add(e, sqlite3_column_int64(s, 1),
			     sqlite3_column_int64(s, 2),
			     sqlite3_column_int64(s, 3));
		lc_entry_add_views(e, sqlite3_column_int64(s, 5));
		e->db_id = sqlite3_column_int64(s, 4);
		n++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return LC_EIO;

	/* Cluster mode: every node's slots, then counts = their sums. */
	if (st->slots_lock) {
		if (sqlite3_prepare_v2(st->db,
				       "SELECT u.url, s.node, s.likes, "
				       "s.unlikes, s.views, s.instance FROM "
				       "node_slots s JOIN urls u ON u.id = "
				       "s.url_id",
				       -1, &s, NULL) != SQLITE_OK)
			return LC_EIO;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			const char *url =
			    (const char *)sqlite3_column_text(s, 0);
			size_t len = (size_t)sqlite3_column_bytes(s, 0);
			int64_t node = sqlite3_column_int64(s, 1);
			struct lc_entry *e =
			    lc_counter_find(c, url, len, lc_hash(url, len));
			uint32_t inst;

			if (!e || node < 1 || node > LC_MAX_NODE_ID ||
			    !inst_parse((const char *)sqlite3_column_text(s, 5),
					(size_t)sqlite3_column_bytes(s, 5),
					&inst))
				continue;
			if (lc_slots_load(
				e, (struct lc_slot_id){st->self, st->inst},
				(struct lc_slot_id){(uint32_t)node, inst},
				(struct lc_reading){
				    sqlite3_column_int64(s, 2),
				    sqlite3_column_int64(s, 3),
				    sqlite3_column_int64(s, 4)})) {
				sqlite3_finalize(s);
				return LC_ENOMEM;
			}
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE)
			return LC_EIO;
		struct settle a = {{st->self, st->inst}, 0};

		lc_counter_foreach(c, settle_cb, &a);
		if (a.rc)
			return LC_ENOMEM;
	}

	/* The current minute continues where the last run left it. */
	if (sqlite3_prepare_v2(st->db,
			       "SELECT u.url, m.likes, m.unlikes, m.views, "
			       "m.watching_max FROM "
			       "likes_minute m JOIN urls u ON u.id = m.url_id "
			       "WHERE m.minute = ?1",
			       -1, &s, NULL) != SQLITE_OK)
		return LC_EIO;
	sqlite3_bind_int64(s, 1, minute);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *url = (const char *)sqlite3_column_text(s, 0);
		size_t len = (size_t)sqlite3_column_bytes(s, 0);
		struct lc_entry *e =
		    lc_counter_find(c, url, len, lc_hash(url, len));
		struct lc_minute *m;

		if (!e || !(m = calloc(1, sizeof(*m))))
			continue;
		m->minute = minute;
		m->likes = m->written_likes = sqlite3_column_int64(s, 1);
		m->unlikes = m->written_unlikes = sqlite3_column_int64(s, 2);
		m->views = m->written_views = sqlite3_column_int64(s, 3);
		m->watching_max = sqlite3_column_int64(s, 4);
		m->next = e->minutes;
		e->minutes = m;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : LC_EIO;
}

static int
cmp_url(const void *a, const void *b)
{
	const struct lc_entry *x = *(struct lc_entry *const *)a;
	const struct lc_entry *y = *(struct lc_entry *const *)b;

	return strcmp(x->url, y->url);
}

static int
cmp_db_id(const void *a, const void *b)
{
	const struct lc_entry *x = *(struct lc_entry *const *)a;
	const struct lc_entry *y = *(struct lc_entry *const *)b;

	return (x->db_id > y->db_id) - (x->db_id < y->db_id);
}

/* A URL's counts into ?3.. of s (?1 its id, ?2 its text), from ?at+1. */
static void
bind_counts_at(sqlite3_stmt *s, int at, const struct lc_counts *c)
{
	sqlite3_bind_int64(s, at + 3, c->likes);
	sqlite3_bind_int64(s, at + 4, c->unlikes);
	sqlite3_bind_int64(s, at + 5, c->updated_ms);
	sqlite3_bind_int64(s, at + 6, c->views);
}

static void
bind_counts(sqlite3_stmt *s, const struct lc_counts *c)
{
	bind_counts_at(s, 0, c);
}

/*
 * A URL new to the database, with its counts. It gets the next id without
 * an upsert or RETURNING (half of a new URL's cost); only if its text is
 * somehow there already do we ask for the existing id.
 */
static int
insert_url(struct lc_store *st, struct lc_entry *e, const struct lc_counts *c)
{
	int rc;

	sqlite3_bind_int64(st->new_url, 1, st->next_id);
	sqlite3_bind_text(st->new_url, 2, e->url, (int)e->url_len,
			  SQLITE_STATIC);
	bind_counts(st->new_url, c);
	rc = sqlite3_step(st->new_url);
	sqlite3_reset(st->new_url);
	if (rc == SQLITE_DONE) {
		e->db_id = st->next_id++;
		return SQLITE_OK;
	}
	if (rc != SQLITE_CONSTRAINT)
		return rc;
	sqlite3_bind_text(st->put_url, 2, e->url, (int)e->url_len,
			  SQLITE_STATIC);
	bind_counts(st->put_url, c);
	rc = sqlite3_step(st->put_url);
	if (rc == SQLITE_ROW)
		e->db_id = sqlite3_column_int64(st->put_url, 0);
	sqlite3_reset(st->put_url);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/*
 * A note on prefetching: the entries of a big flush are scattered over
 * the heap and each is first touched by the flush loop, so a profile of
 * 1M new URLs showed 9 % of the flush's time waiting on e->url_len and 9 %
 * on its minute record, one cache miss each. The loops ask for the entry
 * PREFETCH places ahead and for its minute record halfway there.
 */
#define PREFETCH 8

static inline void
prefetch_entry(const struct lc_entry *e)
{
	__builtin_prefetch(e);
	__builtin_prefetch((const char *)e + 64);
	__builtin_prefetch(e->url);
}

/* What one flush transaction is writing (lc_store_flush). */
struct flush {
	struct lc_entry **order; /* every entry, in the order written */
	size_t n, nfresh;	 /* order[n - nfresh ..] get their id now */
	struct lc_slot buf[16];	 /* a URL's node slots, usually enough */
	/* Minute rows waiting for a statement of ROWS (put_minute_row). */
	struct minute_row {
		int64_t id, minute, likes, unlikes, views, watching_max;
	} mrows[ROWS];
	size_t nm;
};

/* Known entries (by id) first, then the new ones (by text). */
static bool
in_order(const struct lc_entry *a, const struct lc_entry *b)
{
	if (a->db_id && b->db_id)
		return a->db_id <= b->db_id;
	if (a->db_id || b->db_id)
		return a->db_id != 0;
	return strcmp(a->url, b->url) <= 0;
}

/*
 * A note on sorting new URLs: qsort with strcmp read two URLs scattered
 * over the heap per comparison, about 20 comparisons per URL for 1M new
 * URLs: a quarter of that flush's CPU. sort_urls reads each URL about
 * twice per level instead: it sorts 8-byte big-endian keys taken after the
 * prefix the URLs of a run share, and sorts each run of equal keys again
 * one level deeper (a string sort 8 bytes per digit). URLs hold no NUL,
 * so a URL that ends inside a key (zero-padded) sorts before its
 * extensions, as strcmp has it, and two URLs never tie to their end.
 */
struct url_key {
	uint64_t k;
	struct lc_entry *e;
};

static int
cmp_key(const void *a, const void *b)
{
	uint64_t x = ((const struct url_key *)a)->k;
	uint64_t y = ((const struct url_key *)b)->k;

	return x < y ? -1 : x > y;
}

static uint64_t
key_at(const struct lc_entry *e, size_t off)
{
	uint64_t k = 0;

	for (size_t i = 0; i < 8; i++)
		k = k << 8 |
		    (off + i < e->url_len ? (unsigned char)e->url[off + i] : 0);
	return k;
}

/* Sorts a[0..n) by URL; every URL of a[] starts with the same off bytes. */
static void
sort_urls(struct url_key *a, size_t n, size_t off)
{
	size_t lcp = SIZE_MAX;

	/* What the run shares beyond off (keys there would all tie). */
	for (size_t i = 1; i < n && lcp; i++) {
		const struct lc_entry *x = a[0].e, *y = a[i].e;
		size_t m = x->url_len < y->url_len ? x->url_len : y->url_len;
		size_t j = off;

		if (lcp != SIZE_MAX && m > off + lcp)
			m = off + lcp;
		while (j < m && x->url[j] == y->url[j])
			j++;
		lcp = j - off;
	}
	off += lcp == SIZE_MAX ? 0 : lcp;
	for (size_t i = 0; i < n; i++)
		a[i].k = key_at(a[i].e, off);
	qsort(a, n, sizeof(*a), cmp_key);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].k == a[i].k; j++)
			;
		if (j - i > 1)
			sort_urls(a + i, j - i, off + 8);
	}
}

/* entries[0..n) by URL: sort_urls, or qsort when memory is short. */
static void
sort_by_url(struct lc_entry **entries, size_t n)
{
	struct url_key *a = malloc(n * sizeof(*a));

	if (!a) {
		qsort(entries, n, sizeof(*entries), cmp_url);
		return;
	}
	for (size_t i = 0; i < n; i++)
		a[i].e = entries[i];
	sort_urls(a, n, 0);
	for (size_t i = 0; i < n; i++)
		entries[i] = a[i].e;
	free(a);
}

void
lc_store_order(struct lc_entry **entries, size_t n)
{
	size_t nold = 0, i;
	struct lc_entry **fresh;

	for (i = 1; i < n && in_order(entries[i - 1], entries[i]); i++)
		;
	if (i >= n)
		return; /* ordered already (a chunk of an ordered flush) */
	fresh = malloc(n * sizeof(*fresh));
	if (!fresh)
		return; /* written out of order: slower, still right */
	for (i = 0; i < n; i++)
		if (entries[i]->db_id)
			entries[nold++] = entries[i];
		else
			fresh[i - nold] = entries[i];
	memcpy(entries + nold, fresh, (n - nold) * sizeof(*fresh));
	free(fresh);
	/* (qsort of a NULL array is undefined, even empty) */
	if (nold > 1)
		qsort(entries, nold, sizeof(*entries), cmp_db_id);
	if (n - nold > 1)
		sort_by_url(entries + nold, n - nold);
}

/*
 * Step 1: the order. New URLs are inserted sorted by their text, so the
 * urls text index grows at its right edge, and get their ids in that
 * order; f->order is every entry in id order: the known ones sorted by
 * id, then the new ones (their ids come above every known id), so the
 * rows of every table are appended or updated in key order.
 */
static void
order_entries(struct flush *f, struct lc_entry *const *entries)
{
	size_t nold;

	if (!f->n)
		return;
	memcpy(f->order, entries, f->n * sizeof(*f->order));
	lc_store_order(f->order, f->n);
	for (nold = 0; nold < f->n && f->order[nold]->db_id; nold++)
		;
	f->nfresh = f->n - nold;
}

/*
 * Reads e's counts and (in cluster mode) its slots together: the
 * dispatcher changes both under the same lock, so the database always
 * holds counts equal to the slots' sums. *sl is `buf` or a malloc'ed copy.
 */
static int
read_entry(struct lc_store *st, struct lc_entry *e, struct lc_counts *cnt,
	   struct lc_slot *buf, size_t bufn, struct lc_slot **sl,
	   uint32_t *nslots)
{
	*sl = buf;
	*nslots = 0;
	if (!st->slots_lock) {
		*cnt = lc_entry_read(e);
		return 0;
	}
	pthread_mutex_lock(st->slots_lock);
	*cnt = lc_entry_read(e);
	if (e->slots && e->slots->n) {
		*nslots = e->slots->n;
		if (*nslots > bufn)
			*sl = malloc(*nslots * sizeof(**sl));
		if (*sl)
			memcpy(*sl, e->slots->s, *nslots * sizeof(**sl));
	}
	pthread_mutex_unlock(st->slots_lock);
	return *sl ? 0 : LC_ENOMEM;
}

static int
step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : rc;
}

/* One row of a counter-like table: (url_id, node/minute, counts). */
static int
put_row(sqlite3_stmt *s, int64_t id, int64_t k, int64_t likes, int64_t unlikes,
	int64_t views)
{
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, k);
	sqlite3_bind_int64(s, 3, likes);
	sqlite3_bind_int64(s, 4, unlikes);
	sqlite3_bind_int64(s, 5, views);
	return step_done(s);
}

/* A dirty minute row of URL id: written when ROWS are waiting. */
static int
put_minute_row(struct lc_store *st, struct flush *f, int64_t id,
	       const struct lc_minute *m)
{
	f->mrows[f->nm++] = (struct minute_row){
	    id, m->minute, m->likes, m->unlikes, m->views, m->watching_max};
	if (f->nm < ROWS)
		return 0;
	for (size_t j = 0; j < ROWS; j++) {
		const int64_t *v = &f->mrows[j].id;

		for (int k = 0; k < 6; k++)
			sqlite3_bind_int64(st->put_minutes, (int)j * 6 + k + 1,
					   v[k]);
	}
	f->nm = 0;
	return step_done(st->put_minutes);
}

/* The minute rows still waiting, one statement each. */
static int
put_minute_rest(struct lc_store *st, struct flush *f)
{
	int rc = 0;

	for (size_t j = 0; !rc && j < f->nm; j++) {
		const struct minute_row *r = &f->mrows[j];

		sqlite3_bind_int64(st->put_minute, 6, r->watching_max);
		rc = put_row(st->put_minute, r->id, r->minute, r->likes,
			     r->unlikes, r->views);
	}
	f->nm = 0;
	return rc;
}

/* An entry's node slots and dirty minutes, once it has its id. */
static int
write_slots_minutes(struct lc_store *st, struct flush *f, struct lc_entry *e,
		    const struct lc_slot *sl, uint32_t nslots)
{
	int rc = 0;

	for (uint32_t k = 0; !rc && k < nslots; k++) {
		char inst[9];

		if (!sl[k].likes && !sl[k].unlikes && !sl[k].views)
			continue; /* a share of watching only */
		inst_text(sl[k].inst, inst);
		sqlite3_bind_text(st->put_slot, 6, inst, -1, SQLITE_TRANSIENT);
		rc = put_row(st->put_slot, e->db_id, sl[k].node, sl[k].likes,
			     sl[k].unlikes, sl[k].views);
	}
	for (struct lc_minute *m = e->minutes; !rc && m; m = m->next)
		if (m->dirty)
			rc = put_minute_row(st, f, e->db_id, m);
	return rc;
}

/*
 * Step 2, per entry: its counts (a new URL's row inserted with them, a
 * known one's updated), node slots and dirty minutes.
 */
static int
write_entry(struct lc_store *st, struct flush *f, struct lc_entry *e)
{
	struct lc_counts cnt;
	struct lc_slot *sl;
	uint32_t nslots;
	int rc;

	if (read_entry(st, e, &cnt, f->buf, 16, &sl, &nslots))
		return SQLITE_NOMEM;
	if (e->db_id) {
		sqlite3_bind_int64(st->put_counter, 1, e->db_id);
		bind_counts(st->put_counter, &cnt);
		rc = step_done(st->put_counter);
	} else {
		rc = insert_url(st, e, &cnt);
	}
	if (!rc)
		rc = write_slots_minutes(st, f, e, sl, nslots);
	if (sl != f->buf)
		free(sl);
	return rc;
}

/*
 * Step 2 for ROWS new URLs at once (es[0..ROWS), `ahead` more after them):
 * their rows in one statement with the next ids, then their slots and
 * minutes. Returns SQLITE_CONSTRAINT with nothing written when a URL's
 * text is in the table already (by hand, a restore): the caller then
 * writes each with write_entry, which takes the row that is there.
 */
static int
write_new_rows(struct lc_store *st, struct flush *f, struct lc_entry *const *es,
	       size_t ahead)
{
	struct lc_counts cnt[ROWS];
	struct lc_slot buf[ROWS][2], *sl[ROWS];
	uint32_t nsl[ROWS];
	int rc = 0, j, got;

	for (got = 0; got < ROWS; got++) {
		if ((size_t)got + PREFETCH < ROWS + ahead)
			prefetch_entry(es[got + PREFETCH]);
		if (read_entry(st, es[got], &cnt[got], buf[got], 2, &sl[got],
			       &nsl[got])) {
			rc = SQLITE_NOMEM;
			break;
		}
		sqlite3_bind_int64(st->new_urls, got * 6 + 1,
				   st->next_id + got);
		sqlite3_bind_text(st->new_urls, got * 6 + 2, es[got]->url,
				  (int)es[got]->url_len, SQLITE_STATIC);
		bind_counts_at(st->new_urls, got * 6, &cnt[got]);
	}
	if (!rc) {
		rc = sqlite3_step(st->new_urls);
		sqlite3_reset(st->new_urls);
		rc = rc == SQLITE_DONE ? 0 : rc;
	}
	if (!rc) {
		for (j = 0; j < ROWS; j++)
			es[j]->db_id = st->next_id + j;
		st->next_id += ROWS;
	}
	for (j = 0; !rc && j < ROWS; j++) {
		if (es[j]->minutes)
			__builtin_prefetch(es[j]->minutes);
		rc = write_slots_minutes(st, f, es[j], sl[j], nsl[j]);
	}
	for (j = 0; j < got; j++)
		if (sl[j] != buf[j])
			free(sl[j]);
	return rc;
}

/* Step 3: idempotency keys, and the expired ones pruned. */
static int
flush_keys(struct lc_store *st, const struct lc_idem_record *keys, size_t nkeys,
	   int64_t prune_before_ms)
{
	int rc;

	for (size_t i = 0; i < nkeys; i++) {
		sqlite3_bind_text(st->put_key, 1, keys[i].key, -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st->put_key, 2, keys[i].status);
		sqlite3_bind_text(st->put_key, 3, keys[i].body,
				  (int)keys[i].len, SQLITE_STATIC);
		sqlite3_bind_int64(st->put_key, 4, keys[i].created_ms);
		if ((rc = step_done(st->put_key)))
			return rc;
	}
	if (!prune_before_ms)
		return 0;
	sqlite3_bind_int64(st->prune_keys, 1, prune_before_ms);
	return step_done(st->prune_keys);
}

/*
 * After a failed flush: roll back, and forget the ids handed out inside
 * the rolled-back transaction, for they do not exist (the next flush
 * gives new ones, or the upsert returns an id committed earlier).
 */
static int
flush_failed(struct lc_store *st, struct flush *f, int rc)
{
	lc_warn("database: flush failed: %s", sqlite3_errmsg(st->db));
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = f->n - f->nfresh; i < f->n; i++)
		f->order[i]->db_id = 0;
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED
		   ? LC_EBUSY
		   : LC_EIO;
}

int
lc_store_flush(struct lc_store *st, struct lc_entry *const *entries, size_t n,
	       const struct lc_idem_record *keys, size_t nkeys,
	       int64_t prune_before_ms)
{
	struct flush f = {.n = n};
	int rc = SQLITE_NOMEM;

	if (!st->db)
		return LC_EIO; /* its file was lost and not recreated yet */
	if (n && !(f.order = malloc(n * sizeof(*f.order))))
		goto fail;
	rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	order_entries(&f, entries);
	for (size_t i = 0; !rc && i < n;) {
		/* New URLs (the last nfresh), ROWS at a time while they last.
		 */
		if (i >= n - f.nfresh && n - i >= ROWS) {
			rc = write_new_rows(st, &f, f.order + i, n - i - ROWS);
			if (!rc) {
				i += ROWS;
				continue;
			}
			if (rc != SQLITE_CONSTRAINT)
				break;
			rc = 0;
			for (size_t end = i + ROWS; !rc && i < end; i++)
				rc = write_entry(st, &f, f.order[i]);
			continue;
		}
		if (i + PREFETCH < n)
			prefetch_entry(f.order[i + PREFETCH]);
		if (i + PREFETCH / 2 < n && f.order[i + PREFETCH / 2]->minutes)
			__builtin_prefetch(f.order[i + PREFETCH / 2]->minutes);
		rc = write_entry(st, &f, f.order[i++]);
	}
	if (!rc)
		rc = put_minute_rest(st, &f);
	if (!rc)
		rc = flush_keys(st, keys, nkeys, prune_before_ms);
	if (!rc)
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (!rc) {
		free(f.order);
		return 0;
	}
fail:
	rc = flush_failed(st, &f, rc);
	free(f.order);
	return rc;
}

int
lc_store_history(struct lc_store *st, const char *url, size_t len,
		 int64_t since_s, int64_t until_s, size_t max_points,
		 json_t *points)
{
	sqlite3_stmt *s = st->history;
	int rc;

	sqlite3_bind_text(s, 1, url, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, since_s);
	sqlite3_bind_int64(s, 3, until_s);
	sqlite3_bind_int64(s, 4, (int64_t)max_points);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char t[32];

		lc_iso8601_ms(sqlite3_column_int64(s, 0) * 1000, t);
		json_array_append_new(
		    points,
		    json_pack("{s:s, s:I, s:I, s:I, s:I}", "t", t, "likes",
			      (json_int_t)sqlite3_column_int64(s, 1), "unlikes",
			      (json_int_t)sqlite3_column_int64(s, 2), "views",
			      (json_int_t)sqlite3_column_int64(s, 3),
			      "watching_max",
			      (json_int_t)sqlite3_column_int64(s, 4)));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : LC_EIO;
}

long
lc_store_load_keys(struct lc_store *st, struct lc_idem *t, int64_t since_ms)
{
	sqlite3_stmt *s;
	long n = 0;
	int rc;

	if (sqlite3_prepare_v2(st->db,
			       "SELECT key, status, body, created_at FROM "
			       "idempotency_keys WHERE created_at >= ?1 ORDER "
			       "BY created_at",
			       -1, &s, NULL) != SQLITE_OK)
		return LC_EIO;
	sqlite3_bind_int64(s, 1, since_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		const char *b = (const char *)sqlite3_column_text(s, 2);

		if (!k || !b)
			continue;
		if (lc_idem_load(t, k, (size_t)sqlite3_column_bytes(s, 0),
				 sqlite3_column_int(s, 1), b,
				 (size_t)sqlite3_column_bytes(s, 2),
				 sqlite3_column_int64(s, 3))) {
			sqlite3_finalize(s);
			return LC_ENOMEM;
		}
		n++;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? n : LC_EIO;
}

int
lc_store_minute_get(struct lc_store *st, int64_t url_id, int64_t minute,
		    struct lc_minute *m)
{
	sqlite3_stmt *s;
	int rc;

	m->likes = m->unlikes = m->views = m->watching_max = 0;
	if (!st->db ||
	    sqlite3_prepare_v2(st->db,
			       "SELECT likes, unlikes, views, watching_max "
			       "FROM likes_minute WHERE "
			       "url_id = ?1 AND minute = ?2",
			       -1, &s, NULL) != SQLITE_OK)
		return LC_EIO;
	sqlite3_bind_int64(s, 1, url_id);
	sqlite3_bind_int64(s, 2, minute);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		m->likes = sqlite3_column_int64(s, 0);
		m->unlikes = sqlite3_column_int64(s, 1);
		m->views = sqlite3_column_int64(s, 2);
		m->watching_max = sqlite3_column_int64(s, 3);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : LC_EIO;
}

void
lc_store_set_busy_timeout(struct lc_store *st, int ms)
{
	st->busy_ms = ms;
	if (st->db)
		sqlite3_busy_timeout(st->db, ms);
}

void
lc_store_checkpoint(struct lc_store *st)
{
	if (st->db)
		sqlite3_wal_checkpoint_v2(
		    st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

void
lc_store_checkpoint_truncate(struct lc_store *st)
{
	if (!st->db)
		return;
	/* Never wait for a reader or another writer: best effort. */
	sqlite3_busy_timeout(st->db, 0);
	sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
				  NULL, NULL);
	sqlite3_busy_timeout(st->db, st->busy_ms);
}

const char *
lc_store_file_check(struct lc_store *st)
{
	struct file_id now;

	if (!st->db)
		return "not open";
	now = file_id_of(st, 0);
	if (!now.ino)
		return "deleted or moved away";
	if (!same_file(now, st->ids[0]))
		return "replaced by another file";
	return NULL;
}

/*
 * A note on reopening: the old connection is closed first, so SQLite
 * checkpoints into the old file (still open by its inode) and removes its
 * -wal and -shm. If another connection kept them, they are still ours at
 * the path: we remove them ourselves (only if they are the very files we
 * opened), or SQLite would replay the old database's WAL frames over the
 * new file.
 */
int
lc_store_reopen(struct lc_store *st, char *err, size_t errlen)
{
	struct lc_store *fresh;

	if (st->db) {
		finalize_all(st);
		if (sqlite3_close(st->db) != SQLITE_OK)
			lc_err("database: close: %s", sqlite3_errmsg(st->db));
		st->db = NULL;
		for (int i = 1; i < 3; i++) {
			char p[4096];

			snprintf(p, sizeof(p), "%s%s", st->path, suffix[i]);
			if (st->ids[i].ino &&
			    same_file(file_id_of(st, i), st->ids[i]))
				unlink(p);
		}
		close(st->lock_fd);
		st->lock_fd = -1;
	}
	fresh = lc_store_open_writer(st->path, err, errlen);
	if (!fresh)
		return LC_EIO;
	fresh->slots_lock = st->slots_lock;
	fresh->self = st->self;
	/* The process's slot goes on in the new file (slots.h). */
	if (st->inst && fresh->inst != st->inst &&
	    instance(fresh, st->inst, err, errlen)) {
		lc_store_close(fresh);
		return LC_EIO;
	}
	free(st->path);
	*st = *fresh;
	free(fresh);
	return 0;
}
