/*
 * Request pool: N keep-alive HTTP/1.1 connections that POST likes, either
 * closed-loop (each connection sends again as soon as it has its answer) or
 * open-loop at a fixed rate. Runs inside its owner's epoll loop (ingest or
 * the fan-out liker); one request per connection at a time, no pipelining.
 *
 * A note on open-loop timing: request k is due at t0 + k/rate. When it is
 * due and no connection is free it waits, and its latency is still measured
 * from when it was due, so a stalled server shows up as latency instead of
 * being hidden by the generator slowing down (coordinated omission).
 * Requests that never got sent before the end are recorded with the time
 * they had waited at the end as a lower bound, and counted as `unsent`.
 */
#include "lc_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum { RC_DOWN, RC_CONNECTING, RC_IDLE, RC_BUSY, RC_CLOSED };

struct rp_conn {
	int fd;
	uint8_t state;
	bool want_out;
	uint32_t rlen, rcap;
	uint32_t tlen, toff, tcap;
	char *rx;
	char *tx;
	uint64_t intended; /* ns, when the request in flight was due */
	uint64_t deadline; /* ns, connect or request timeout */
	uint64_t retry_at; /* ns, when a DOWN connection reconnects */
	uint32_t url;	   /* first URL of the request in flight */
	uint32_t nitems;   /* likes in the request in flight */
	bool view;	   /* the request in flight is a batch of views */
	int64_t count;	   /* nchan: the count the publish carries */
};

#define TIMER_IDX 0xffffffffu

static uint64_t
ev_data(const rpool_t *rp, uint32_t idx)
{
	return ((uint64_t)rp->tag << 32) | idx;
}

int
rp_init(rpool_t *rp, const cfg_t *cfg, const urltab_t *urls, stats_t *st,
	int ep, uint32_t tag, int nconns, int batch, double rate,
	uint32_t src_base)
{
	memset(rp, 0, sizeof(*rp));
	rp->cfg = cfg;
	rp->urls = urls;
	rp->st = st;
	rp->lat = &st->lat;
	rp->ep = ep;
	rp->tag = tag;
	rp->n = nconns;
	rp->batch = batch;
	rp->rate = rate;
	rp->src_base = src_base;
	rp->tfd = -1;
	rp->c = calloc((size_t)nconns, sizeof(*rp->c));
	rp->idle = calloc((size_t)nconns, sizeof(uint32_t));
	rp->acked = calloc(urls->n, sizeof(int64_t));
	rp->ambig = calloc(urls->n, sizeof(int32_t));
	if (cfg->nchan)
		rp->pub_count = calloc(urls->n, sizeof(int64_t));
	if (!rp->c || !rp->idle || !rp->acked || !rp->ambig ||
	    (cfg->nchan && !rp->pub_count))
		return -1;
	size_t maxenc = 0, maxitem = 0;
	for (uint32_t i = 0; i < urls->n; i++) {
		if (urls->enclen[i] > maxenc)
			maxenc = urls->enclen[i];
		if (urls->item && urls->itemlen[i] > maxitem)
			maxitem = urls->itemlen[i];
	}
	size_t tcap =
	    batch ? 512 + (size_t)batch * (maxitem + 1) + 4 : 512 + maxenc;
	if (cfg->nchan)
		tcap += 1024 + 2 * maxenc;
	for (int i = 0; i < nconns; i++) {
		rp_conn_t *c = &rp->c[i];
		c->fd = -1;
		c->rcap = 2048;
		c->rx = malloc(c->rcap);
		c->tcap = (uint32_t)tcap;
		c->tx = malloc(tcap);
		if (!c->rx || !c->tx)
			return -1;
	}
	if (rate > 0) {
		rp->tfd =
		    timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (rp->tfd < 0)
			return -1;
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u64 = ev_data(rp, TIMER_IDX)};
		epoll_ctl(ep, EPOLL_CTL_ADD, rp->tfd, &ev);
	}
	return 0;
}

static void
conn_close(rpool_t *rp, rp_conn_t *c, uint64_t retry_at)
{
	if (c->fd >= 0) {
		epoll_ctl(rp->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	if (c->state == RC_BUSY)
		rp->busy--;
	if (c->state == RC_IDLE) {
		/* Off the idle list, or a reconnect would list it twice (and
		 * overrun the list: seen when the server closed idle liker
		 * connections during a long connect phase). */
		uint32_t idx = (uint32_t)(c - rp->c);
		for (int k = 0; k < rp->nidle; k++)
			if (rp->idle[k] == idx) {
				rp->idle[k] = rp->idle[--rp->nidle];
				break;
			}
	}
	c->state = RC_DOWN;
	c->want_out = false;
	c->rlen = 0;
	c->retry_at = retry_at;
}

static void
conn_open(rpool_t *rp, uint32_t i, uint64_t now)
{
	rp_conn_t *c = &rp->c[i];
	int fd = lc_connect_nb(rp->cfg, rp->src_base + i);
	if (fd < 0) {
		lc_err(rp->st, LC_E_CONNECT);
		c->state = RC_DOWN;
		c->retry_at = now + 200000000ull;
		return;
	}
	c->fd = fd;
	c->state = RC_CONNECTING;
	c->want_out = true;
	c->rlen = 0;
	c->deadline = now + (uint64_t)(rp->cfg->connect_timeout_s * 1e9);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
				 .data.u64 = ev_data(rp, i)};
	epoll_ctl(rp->ep, EPOLL_CTL_ADD, fd, &ev);
}

void
rp_connect_all(rpool_t *rp)
{
	uint64_t now = lc_now_ns();
	for (int i = 0; i < rp->n; i++)
		conn_open(rp, (uint32_t)i, now);
}

int
rp_connected(const rpool_t *rp)
{
	int n = 0;
	for (int i = 0; i < rp->n; i++)
		n += rp->c[i].state == RC_IDLE || rp->c[i].state == RC_BUSY;
	return n;
}

static void
set_out(rpool_t *rp, rp_conn_t *c, uint32_t idx, bool want)
{
	if (c->want_out == want)
		return;
	c->want_out = want;
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u),
				 .data.u64 = ev_data(rp, idx)};
	epoll_ctl(rp->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Spread the request's likes over the URLs it named. */
static void
account(rpool_t *rp, const rp_conn_t *c, uint32_t url, uint32_t n, bool acked)
{
	uint32_t m = rp->urls->n;
	if (c->view) {
		/* Views are not part of the like count check. */
		if (acked)
			rp->st->views_acked += n;
		return;
	}
	if (!acked) {
		rp->st->ambiguous += n;
		for (uint32_t j = 0; j < n && j < m; j++)
			rp->ambig[(url + j) % m] +=
			    (int32_t)((n - j + m - 1) / m);
		return;
	}
	rp->st->likes_acked += n;
	rp->acked_all += n / m;
	uint32_t rem = n % m;
	for (uint32_t j = 0; j < rem; j++)
		rp->acked[(url + j) % m]++;
}

static void
fail_busy(rpool_t *rp, rp_conn_t *c, enum lc_err e, uint64_t now)
{
	lc_err(rp->st, e);
	if (c->state == RC_BUSY)
		account(rp, c, c->url, c->nitems, false);
	conn_close(rp, c, now + 50000000ull);
}

static int
flush_tx(rpool_t *rp, rp_conn_t *c, uint32_t idx, uint64_t now)
{
	while (c->toff < c->tlen) {
		ssize_t w = send(c->fd, c->tx + c->toff, c->tlen - c->toff,
				 MSG_NOSIGNAL);
		if (w > 0) {
			c->toff += (uint32_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			set_out(rp, c, idx, true);
			return 0;
		}
		fail_busy(rp, c, LC_E_CLOSED, now);
		return -1;
	}
	set_out(rp, c, idx, false);
	return 0;
}

static void
send_req(rpool_t *rp, uint32_t idx, uint64_t intended, uint64_t now)
{
	rp_conn_t *c = &rp->c[idx];
	const urltab_t *t = rp->urls;
	uint32_t u = rp->next_url;
	if (!rp->batch && rp->cfg->nchan) {
		/* Peer baseline: one nchan publish per like, carrying the
		 * count this tester assigns, in livecount's update shape so
		 * that the subscribers' matching is the same. (The test URLs
		 * need no JSON escaping.) */
		rp->next_url = (u + 1) % t->n;
		c->count = ++rp->pub_count[u];
		char body[1024];
		int bl =
		    snprintf(body, sizeof(body),
			     "{\"type\":\"update\",\"counts\":{\"%.*s\":{"
			     "\"count\":%lld,\"delta\":1}}}",
			     (int)t->rawlen[u], t->raw[u], (long long)c->count);
		int hl = snprintf(c->tx, c->tcap,
				  "POST %s%s_%u HTTP/1.1\r\nHost: %s\r\n"
				  "Content-Type: application/json\r\n"
				  "Content-Length: %d\r\n\r\n%s",
				  rp->cfg->nchan_pub, rp->cfg->run_tag, u,
				  rp->cfg->hosthdr, bl, body);
		c->toff = 0;
		c->tlen = (uint32_t)hl;
		c->nitems = 1;
	} else if (!rp->batch) {
		rp->next_url = (u + 1) % t->n;
		int hl =
		    snprintf(c->tx, c->tcap,
			     "POST /v1/likes?url=%.*s HTTP/1.1\r\nHost: %s\r\n"
			     "Content-Length: 0\r\n\r\n",
			     (int)t->enclen[u], t->enc[u], rp->cfg->hosthdr);
		c->toff = 0;
		c->tlen = (uint32_t)hl;
		c->nitems = 1;
	} else {
		/* --views-per-like V: of every V + 1 batches, the last V are
		 * views on the URLs the like batch before them named. */
		int vpl = rp->cfg->views_per_like;
		c->view = vpl > 0 && rp->nsent % (uint64_t)(vpl + 1) != 0;
		if (c->view)
			u = rp->view_from;
		/* Body first at a fixed offset, then the head right-aligned
		 * before it. */
		const uint32_t body_at = 256;
		char *b = c->tx + body_at;
		size_t o = 0;
		b[o++] = '[';
		uint32_t k = u;
		for (int j = 0; j < rp->batch; j++) {
			if (j)
				b[o++] = ',';
			memcpy(b + o, t->item[k], t->itemlen[k]);
			o += t->itemlen[k];
			if (++k == t->n)
				k = 0;
		}
		b[o++] = ']';
		if (!c->view) {
			rp->next_url = k;
			rp->view_from = u;
		}
		char head[256];
		int hl = snprintf(
		    head, sizeof(head),
		    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\n\r\n",
		    c->view ? "/v1/views" : "/v1/likes", rp->cfg->hosthdr, o);
		memcpy(c->tx + body_at - hl, head, (size_t)hl);
		c->toff = body_at - (uint32_t)hl;
		c->tlen = body_at + (uint32_t)o;
		c->nitems = (uint32_t)rp->batch;
	}
	c->url = u;
	c->intended = intended;
	if (!rp->batch && rp->on_send)
		rp->on_send(rp->ctx, u, intended);
	c->deadline = now + (uint64_t)(rp->cfg->timeout_s * 1e9);
	c->state = RC_BUSY;
	rp->busy++;
	rp->nsent++;
	rp->st->requests_sent++;
	flush_tx(rp, c, idx, now);
}

static uint64_t
due_at(const rpool_t *rp, uint64_t k)
{
	return rp->t0 + (uint64_t)((double)k * 1e9 / rp->rate);
}

static void
arm_timer(rpool_t *rp, uint64_t at)
{
	if (rp->tfd < 0 || rp->timer_at == at)
		return;
	rp->timer_at = at;
	struct itimerspec its = {0};
	if (at) {
		its.it_value.tv_sec = (time_t)(at / 1000000000ull);
		its.it_value.tv_nsec = (long)(at % 1000000000ull);
	}
	timerfd_settime(rp->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static bool
can_send(const rpool_t *rp)
{
	return rp->sending &&
	       (!rp->max_requests || rp->nsent < rp->max_requests);
}

static void
kick(rpool_t *rp, uint64_t now)
{
	if (!can_send(rp))
		return;
	if (rp->rate <= 0) {
		while (rp->nidle > 0 && can_send(rp)) {
			uint32_t i = rp->idle[--rp->nidle];
			if (rp->c[i].state == RC_IDLE)
				send_req(rp, i, now, now);
		}
		return;
	}
	while (rp->nidle > 0 && can_send(rp)) {
		uint64_t due = due_at(rp, rp->k_next);
		if (due >= rp->t_end)
			break;
		if (due > now) {
			arm_timer(rp, due);
			return;
		}
		uint32_t i = rp->idle[--rp->nidle];
		if (rp->c[i].state != RC_IDLE)
			continue;
		rp->k_next++;
		send_req(rp, i, due, now);
	}
}

static void
make_idle(rpool_t *rp, uint32_t idx, uint64_t now)
{
	rp->c[idx].state = RC_IDLE;
	if (can_send(rp) && rp->rate <= 0) {
		send_req(rp, idx, now, now);
		return;
	}
	rp->idle[rp->nidle++] = idx;
	kick(rp, now);
}

void
rp_start(rpool_t *rp, uint64_t t0, uint64_t t_end)
{
	rp->t0 = t0;
	rp->t_end = t_end;
	rp->k_next = 0;
	rp->sending = true;
	kick(rp, lc_now_ns());
}

void
rp_stop(rpool_t *rp, uint64_t now)
{
	if (!rp->sending)
		return;
	rp->sending = false;
	arm_timer(rp, 0);
	if (rp->rate > 0) {
		/* Due but never sent: count them and record how long they had
		 * waited. */
		for (uint64_t k = rp->k_next;; k++) {
			uint64_t due = due_at(rp, k);
			if (due >= rp->t_end || k - rp->k_next > 100000000ull)
				break;
			rp->st->unsent++;
			hist_record(rp->lat, now > due ? now - due : 0);
		}
	}
}

static void
handle_response(rpool_t *rp, uint32_t idx, const http_head_t *h,
		const char *body, size_t blen, uint64_t now)
{
	rp_conn_t *c = &rp->c[idx];
	stats_t *st = rp->st;
	if (rp->cfg->nchan && h->status >= 200 && h->status < 300) {
		/* nchan answers 201 (delivered) or 202 (queued). */
		st->requests_ok++;
		hist_record(rp->lat, now > c->intended ? now - c->intended : 0);
		if (rp->on_count)
			rp->on_count(rp->ctx, c->url, c->count, c->intended);
		account(rp, c, c->url, 1, true);
	} else if (h->status == 200) {
		int64_t v = 0;
		st->requests_ok++;
		hist_record(rp->lat, now > c->intended ? now - c->intended : 0);
		if (!rp->batch) {
			if (js_get_int(body, blen, "count", &v) < 0)
				lc_err(st, LC_E_BAD_JSON);
			else if (rp->on_count)
				rp->on_count(rp->ctx, c->url, v, c->intended);
			account(rp, c, c->url, 1, true);
		} else if (js_get_int(body, blen, "accepted", &v) < 0) {
			lc_err(st, LC_E_BAD_JSON);
			account(rp, c, c->url, c->nitems, false);
		} else if (v != (int64_t)c->nitems) {
			lc_err(st, LC_E_ACCEPTED_MISMATCH);
			account(rp, c, c->url, c->nitems, false);
		} else {
			account(rp, c, c->url, c->nitems, true);
		}
	} else if (h->status == 429) {
		lc_err(st, LC_E_HTTP_429);
	} else if (h->status == 503) {
		lc_err(st, LC_E_HTTP_503);
	} else if (h->status >= 500) {
		lc_err(st, LC_E_HTTP_5XX);
	} else {
		lc_err(st, LC_E_HTTP_4XX);
		if (!rp->cfg->quiet && st->err[LC_E_HTTP_4XX] <= 3)
			fprintf(stderr, "livecount-load: HTTP %d: %.*s\n",
				h->status, (int)(blen > 300 ? 300 : blen),
				body);
	}
}

static void
on_readable(rpool_t *rp, uint32_t idx, uint64_t now)
{
	rp_conn_t *c = &rp->c[idx];
	for (;;) {
		if (c->rlen == c->rcap) {
			if (c->rcap >= (1u << 24)) {
				fail_busy(rp, c, LC_E_BAD_RESPONSE, now);
				return;
			}
			char *nb = realloc(c->rx, c->rcap * 2);
			if (!nb) {
				fail_busy(rp, c, LC_E_BAD_RESPONSE, now);
				return;
			}
			c->rx = nb;
			c->rcap *= 2;
		}
		ssize_t r = recv(c->fd, c->rx + c->rlen, c->rcap - c->rlen, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			if (c->state == RC_BUSY) {
				fail_busy(rp, c, LC_E_CLOSED, now);
			} else {
				/* Idle keep-alive connection closed by the
				 * server: reconnect. */
				conn_close(rp, c, now);
			}
			return;
		}
		c->rlen += (uint32_t)r;
		if (c->state != RC_BUSY) {
			/* A 408 on an idle keep-alive connection is the server
			 * closing it (http_timeout_ms): reconnect, no error. */
			static const char r408[] = "HTTP/1.1 408 ";
			if (c->rlen < sizeof(r408) - 1 ||
			    memcmp(c->rx, r408, sizeof(r408) - 1) != 0)
				lc_err(rp->st, LC_E_BAD_RESPONSE);
			else
				rp->st->idle_408++;
			conn_close(rp, c, now);
			return;
		}
		http_head_t h;
		const char *body;
		size_t blen;
		long done =
		    http_parse_response(c->rx, c->rlen, &h, &body, &blen);
		if (done < 0) {
			fail_busy(rp, c, LC_E_BAD_RESPONSE, now);
			return;
		}
		if (done == 0)
			continue;
		handle_response(rp, idx, &h, body, blen, now);
		rp->busy--;
		c->state = RC_IDLE;
		if ((size_t)done != c->rlen) {
			lc_err(rp->st, LC_E_BAD_RESPONSE);
			conn_close(rp, c, now);
			return;
		}
		c->rlen = 0;
		if (h.conn_close) {
			conn_close(rp, c, now);
			return;
		}
		make_idle(rp, idx, now);
		return;
	}
}

void
rp_event(rpool_t *rp, uint32_t idx, uint32_t events)
{
	if (idx >= (uint32_t)rp->n)
		return;
	rp_conn_t *c = &rp->c[idx];
	uint64_t now = lc_now_ns();
	if (c->fd < 0)
		return;
	if (c->state == RC_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
		    err) {
			lc_err(rp->st, LC_E_CONNECT);
			conn_close(rp, c, now + 200000000ull);
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		set_out(rp, c, idx, false);
		make_idle(rp, idx, now);
		return;
	}
	if ((events & EPOLLOUT) && c->state == RC_BUSY && c->toff < c->tlen)
		if (flush_tx(rp, c, idx, now) < 0)
			return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(rp, idx, now);
}

void
rp_timer_event(rpool_t *rp)
{
	uint64_t x;
	if (read(rp->tfd, &x, sizeof(x)) < 0) {
		/* EAGAIN: spurious wake-up, nothing to do. */
	}
	rp->timer_at = 0;
	kick(rp, lc_now_ns());
}

void
rp_poll(rpool_t *rp, uint64_t now)
{
	for (int i = 0; i < rp->n; i++) {
		rp_conn_t *c = &rp->c[i];
		if (c->state == RC_CONNECTING && now > c->deadline) {
			lc_err(rp->st, LC_E_CONNECT_TIMEOUT);
			conn_close(rp, c, now + 200000000ull);
		} else if (c->state == RC_BUSY && now > c->deadline) {
			fail_busy(rp, c, LC_E_TIMEOUT, now);
		} else if (c->state == RC_DOWN && now >= c->retry_at) {
			conn_open(rp, (uint32_t)i, now);
		}
	}
	if (rp->sending && rp->t_end && now >= rp->t_end)
		rp_stop(rp, now);
	kick(rp, now);
}

void
rp_abandon(rpool_t *rp)
{
	uint64_t now = lc_now_ns();
	for (int i = 0; i < rp->n; i++)
		if (rp->c[i].state == RC_BUSY)
			fail_busy(rp, &rp->c[i], LC_E_TIMEOUT, now);
}

void
rp_close(rpool_t *rp)
{
	for (int i = 0; i < rp->n; i++) {
		conn_close(rp, &rp->c[i], 0);
		rp->c[i].state = RC_CLOSED;
		free(rp->c[i].rx);
		free(rp->c[i].tx);
	}
	if (rp->tfd >= 0) {
		epoll_ctl(rp->ep, EPOLL_CTL_DEL, rp->tfd, NULL);
		close(rp->tfd);
		rp->tfd = -1;
	}
	free(rp->c);
	free(rp->idle);
	free(rp->acked);
	free(rp->ambig);
	free(rp->pub_count);
	rp->pub_count = NULL;
	rp->c = NULL;
	rp->idle = NULL;
	rp->acked = NULL;
	rp->ambig = NULL;
	rp->n = 0;
}

int
rp_verify(rpool_t *rp, const int64_t *before, const int64_t *after, bool record)
{
	int bad = 0;
	stats_t *st = rp->st;
	for (uint32_t u = 0; u < rp->urls->n; u++) {
		int64_t diff = after[u] - (before ? before[u] : 0);
		int64_t exp = rp->acked[u] + rp->acked_all;
		bool ok = diff >= exp && diff <= exp + rp->ambig[u];
		if (!ok) {
			bad++;
			if (record && !rp->cfg->quiet && bad <= 5)
				fprintf(stderr,
					"livecount-load: count mismatch for "
					"%s: counted %lld, "
					"acknowledged %lld (+%d unknown)\n",
					rp->urls->raw[u], (long long)diff,
					(long long)exp, rp->ambig[u]);
		}
		if (record) {
			st->urls_checked++;
			st->counted += diff;
			st->expected += exp;
			if (ok)
				st->urls_ok++;
			else
				lc_err(st, LC_E_COUNT_MISMATCH);
		}
	}
	return bad;
}
