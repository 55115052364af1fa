/*
 * The history reader thread (see history.h): a FIFO of queries guarded by
 * a mutex, one thread, one read-only SQLite connection.
 *
 * Threads: lc_history_submit from a worker; the rest on the reader thread
 * or main (create, stop, destroy).
 *
 * LC_TEST_HISTORY_DELAY_MS (tests only) makes the reader sleep that long
 * before each query, standing in for a locked or slow database.
 */
#define _GNU_SOURCE
#include "lc/history.h"
#include "lc/common.h"
#include "lc/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 1024 /* queries waiting; more are answered 503 at once */

struct query {
	struct query *next;
	struct lc_deferred *d;
	int64_t since_s, until_s;
	size_t max_points, len;
	char url[]; /* len bytes, NUL-terminated */
};

struct lc_history {
	char *db_path;
	const _Atomic uint64_t *generation;
	uint64_t opened_generation; /* reader thread */
	struct lc_store *store;	    /* reader thread */
	int delay_ms;		    /* LC_TEST_HISTORY_DELAY_MS */
	pthread_t thread;
	pthread_mutex_t lock; /* guards the queue and stopping */
	pthread_cond_t cond;
	struct query *head, **tail;
	size_t n;
	bool stopping;
};

static char *
error_body(const char *code, const char *msg, size_t *len)
{
	char *s = NULL;
	json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);

	if (o)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	*len = s ? strlen(s) : 0;
	return s;
}

/* The reader's connection, opened (again) when needed. */
static struct lc_store *
store_of(struct lc_history *h)
{
	uint64_t gen = h->generation ? atomic_load(h->generation) : 0;
	char err[256];

	if (h->store && gen != h->opened_generation) {
		lc_store_close(h->store);
		h->store = NULL;
	}
	if (!h->store) {
		h->store = lc_store_open_reader(h->db_path, err, sizeof(err));
		if (!h->store)
			lc_warn("history: %s", err);
		h->opened_generation = gen;
	}
	return h->store;
}

static void
answer(struct lc_history *h, struct query *q)
{
	struct lc_store *st = store_of(h);
	json_t *points = json_array(), *root = NULL;
	char *body = NULL;
	size_t len = 0;

	if (st && points &&
	    !lc_store_history(st, q->url, q->len, q->since_s, q->until_s,
			      q->max_points, points)) {
		root = json_pack("{s:s%, s:i, s:O}", "url", q->url, q->len,
				 "step", 60, "points", points);
		if (root)
			body = json_dumps(root, JSON_COMPACT);
	}
	json_decref(points);
	json_decref(root);
	if (body) {
		lc_defer_answer(q->d, 200, body, strlen(body));
		return;
	}
	body = error_body("unavailable", "database cannot be read", &len);
	lc_defer_answer(q->d, 503, body, len);
}

static void *
run(void *arg)
{
	struct lc_history *h = arg;

	for (;;) {
		struct query *q;

		pthread_mutex_lock(&h->lock);
		while (!h->head && !h->stopping)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->stopping) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		q = h->head;
		h->head = q->next;
		if (!h->head)
			h->tail = &h->head;
		h->n--;
		pthread_mutex_unlock(&h->lock);
		if (h->delay_ms)
			nanosleep(
			    &(struct timespec){h->delay_ms / 1000,
					       (long)(h->delay_ms % 1000) *
						   1000000},
			    NULL);
		answer(h, q);
		free(q);
	}
	return NULL;
}

struct lc_history *
lc_history_create(const char *db_path, const _Atomic uint64_t *generation)
{
	struct lc_history *h = calloc(1, sizeof(*h));
	const char *delay = getenv("LC_TEST_HISTORY_DELAY_MS");

	if (!h || !(h->db_path = strdup(db_path))) {
		free(h);
		return NULL;
	}
	h->generation = generation;
	h->delay_ms = delay ? atoi(delay) : 0;
	h->tail = &h->head;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	if (pthread_create(&h->thread, NULL, run, h)) {
		pthread_mutex_destroy(&h->lock);
		pthread_cond_destroy(&h->cond);
		free(h->db_path);
		free(h);
		return NULL;
	}
	return h;
}

int
lc_history_submit(struct lc_history *h, struct lc_deferred *d, const char *url,
		  size_t len, int64_t since_s, int64_t until_s,
		  size_t max_points)
{
	struct query *q;

	if (!h)
		return LC_EFULL;
	q = malloc(sizeof(*q) + len + 1);
	if (!q)
		return LC_EFULL;
	*q = (struct query){.d = d,
			    .since_s = since_s,
			    .until_s = until_s,
			    .max_points = max_points,
			    .len = len};
	memcpy(q->url, url, len);
	q->url[len] = '\0';
	pthread_mutex_lock(&h->lock);
	if (h->stopping || h->n >= QUEUE_MAX) {
		pthread_mutex_unlock(&h->lock);
		free(q);
		return LC_EFULL;
	}
	*h->tail = q;
	h->tail = &q->next;
	h->n++;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

void
lc_history_stop(struct lc_history *h)
{
	struct query *q, *next;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	if (h->stopping) {
		pthread_mutex_unlock(&h->lock);
		return;
	}
	h->stopping = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	for (q = h->head; q; q = next) {
		size_t len;
		char *body =
		    error_body("unavailable", "server is shutting down", &len);

		next = q->next;
		lc_defer_answer(q->d, 503, body, len);
		free(q);
	}
	h->head = NULL;
	h->tail = &h->head;
	h->n = 0;
	lc_store_close(h->store);
	h->store = NULL;
}

void
lc_history_destroy(struct lc_history *h)
{
	if (!h)
		return;
	lc_history_stop(h);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	free(h->db_path);
	free(h);
}
