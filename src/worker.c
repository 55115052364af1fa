/*
 * A worker's shared services (see worker.h): its scratch buffer, its
 * connection records and limits, its like-rate buckets, its mailbox and
 * the timers that drive delivery (sweep, sliced flush).
 *
 * Threads: the worker thread, except lc_worker_init / lc_worker_cleanup
 * (main, before the thread starts and after it ended) and the wake-up
 * (any thread: lws_cancel_service is the one lws call that is safe from
 * another thread).
 */
#define _GNU_SOURCE
#include "lc/worker.h"
#include "lc/batcher.h"
#include "lc/bridge.h"
#include "lc/common.h"
#include "lc/history.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SWEEP_US (1000 * LWS_US_PER_MS)

static void
flush_slice_cb(lws_sorted_usec_list_t *sul)
{
	struct lc_worker *w =
	    lws_container_of(sul, struct lc_worker, flush_sul);

	lc_delivery_flush_pending(&w->delivery);
}

/* The rest of a sliced flush runs on the next loop iteration. */
static void
schedule_flush(struct lc_delivery *d)
{
	struct lc_worker *w = lws_container_of(d, struct lc_worker, delivery);

	if (w->ctx)
		lws_sul_schedule(w->ctx, 0, &w->flush_sul, flush_slice_cb, 1);
}

/*
 * The peer's progress, from the kernel: bytes it acknowledged (TCP_INFO)
 * and bytes still queued for it (SIOCOUTQ). Two syscalls per session per
 * sweep (once a second).
 */
static bool
peer_progress(struct lc_session *s, uint64_t *acked, uint32_t *queued)
{
	int fd = lws_get_socket_fd((struct lws *)s->conn);
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int outq = 0;

	if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) +
		      sizeof(ti.tcpi_bytes_acked) ||
	    ioctl(fd, SIOCOUTQ, &outq))
		return false;
	*acked = ti.tcpi_bytes_acked;
	*queued = outq > 0 ? (uint32_t)outq : 0;
	return true;
}

int
lc_worker_init(struct lc_worker *w, struct lc_server *srv, int id)
{
	w->srv = srv;
	w->id = id;
	w->listen_fd = -1;
	if (lc_source_init(&w->source) ||
	    lc_delivery_init(&w->delivery, srv->cfg, srv->counter,
			     &srv->dispatch->seq, LWS_PRE))
		return LC_ENOMEM;
	w->delivery.schedule_flush = schedule_flush;
	w->delivery.source = &w->source;
	w->delivery.peer_progress = peer_progress;
	pthread_mutex_init(&w->calls_lock, NULL);
	lc_defer_init(&w->defer);
	w->history = lc_history_create(
	    srv->cfg->db, srv->batcher
			      ? &lc_batcher_stats(srv->batcher)->db_generation
			      : NULL);
	if (!w->history)
		return LC_ENOMEM;
	return 0;
}

void
lc_worker_cleanup(struct lc_worker *w)
{
	lc_delivery_cleanup(&w->delivery);
	lc_source_cleanup(&w->source);
	lc_history_destroy(w->history);
	w->history = NULL;
	lc_defer_cleanup(&w->defer);
	pthread_mutex_destroy(&w->calls_lock);
}

bool
lc_worker_call(struct lc_worker *w, struct lc_worker_call *c)
{
	bool ok;

	c->next = NULL;
	pthread_mutex_lock(&w->calls_lock);
	ok = !w->calls_closed && w->ctx;
	if (ok) {
		if (w->calls_tail)
			w->calls_tail->next = c;
		else
			w->calls = c;
		w->calls_tail = c;
		/* Under the lock: the context is not destroyed meanwhile. */
		lws_cancel_service(w->ctx);
	}
	pthread_mutex_unlock(&w->calls_lock);
	return ok;
}

/*
 * The worker stops: no call is taken any more, and those waiting run now
 * (each sees its client gone or answers it before the context goes).
 */
void
lc_worker_calls_close(struct lc_worker *w)
{
	struct lc_worker_call *c, *next;

	pthread_mutex_lock(&w->calls_lock);
	w->calls_closed = true;
	c = w->calls;
	w->calls = w->calls_tail = NULL;
	pthread_mutex_unlock(&w->calls_lock);
	for (; c; c = next) {
		next = c->next;
		c->fn(c);
	}
}

static void
wake(void *ctx)
{
	lws_cancel_service(ctx);
}

static void
sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct lc_worker *w = lws_container_of(sul, struct lc_worker, sweep);

	lc_delivery_sweep(&w->delivery, lc_mono_ms());
	lws_sul_schedule(w->ctx, 0, &w->sweep, sweep_cb, SWEEP_US);
}

void
lc_worker_start_timers(struct lc_worker *w)
{
	w->source.wake = wake;
	w->source.wake_arg = w->ctx;
	lc_defer_start(&w->defer, w->ctx);
	lws_sul_schedule(w->ctx, 0, &w->sweep, sweep_cb, SWEEP_US);
}

void
lc_worker_drain_mailbox(struct lc_worker *w)
{
	struct lc_update_set *sets[16];
	size_t n;

	while ((n = lc_source_take_updates(&w->source, sets, 16))) {
		for (size_t i = 0; i < n; i++) {
			lc_delivery_apply_updates(&w->delivery, sets[i]);
			lc_update_set_unref(sets[i]);
		}
	}
	lc_delivery_requeue_waiting(&w->delivery);
	lc_delivery_flush_pending(&w->delivery);
	lc_defer_drain(&w->defer);
	{
		struct lc_worker_call *c, *next;

		pthread_mutex_lock(&w->calls_lock);
		c = w->calls;
		w->calls = w->calls_tail = NULL;
		pthread_mutex_unlock(&w->calls_lock);
		for (; c; c = next) {
			next = c->next;
			c->fn(c);
		}
	}
}

void
lc_worker_goodbye(struct lc_worker *w)
{
	if (w->said_goodbye)
		return;
	w->said_goodbye = true;
	for (struct lc_session *s = w->delivery.sessions; s; s = s->next)
		if (s->t->goodbye)
			s->t->goodbye(s);
}

char *
lc_worker_buf(struct lc_worker *w, size_t n)
{
	if (n > w->buf_cap) {
		size_t cap = w->buf_cap ? w->buf_cap : 65536;
		char *p;

		while (cap < n)
			cap *= 2;
		p = realloc(w->buf, LWS_PRE + cap);
		if (!p)
			return NULL;
		w->buf = p;
		w->buf_cap = cap;
	}
	return w->buf;
}

int
lc_worker_rate_take(struct lc_worker *w, struct lws *wsi, int64_t cost)
{
	int limit = w->srv->cfg->max_likes_per_sec_per_ip;
	struct lc_conn *c = lc_conn_of(wsi);

	if (!limit || !c)
		return 0;
	return lc_rate_take(&w->rate, limit, c->ip, cost, lc_mono_ms());
}

_Atomic int64_t *
lc_conn_sub_bytes(struct lc_worker *w, struct lws *wsi)
{
	struct lc_conn *c = lc_conn_of(wsi);

	return c ? &w->srv->limits.sub_bytes[c->bucket] : NULL;
}

struct lc_conn *
lc_conn_create(struct lc_worker *w, uint32_t ip)
{
	struct lc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ip = ip;
	c->bucket = lc_conn_limits_bucket(ip);
	if (!lc_conn_limits_admit(&w->srv->limits, c->bucket)) {
		LC_STAT_ADD(w->stats.accept_refused, 1);
		free(c);
		return NULL;
	}
	return c;
}

void
lc_conn_attach(struct lws *wsi, struct lc_conn *c)
{
	lws_set_opaque_user_data(wsi, c);
}

void
lc_conn_destroy(struct lc_worker *w, struct lc_conn *c)
{
	lc_conn_limits_release(&w->srv->limits, c->bucket);
	free(c);
}

void
lc_conn_release(struct lws *wsi)
{
	struct lc_conn *c = lc_conn_of(wsi);

	lc_defer_forget(&lc_worker_of(wsi)->defer, wsi);
	if (!c)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	lc_conn_destroy(lc_worker_of(wsi), c);
}
