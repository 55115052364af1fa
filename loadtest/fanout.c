/*
 * `fanout` mode: N WebSocket or SSE subscribers spread over M URLs, then
 * likes at a fixed rate round-robin over the URLs, measuring how long each
 * like takes to become visible to each subscriber.
 *
 * A note on latency matching: the count C in a like's answer identifies that
 * like, so process 0 (the only liker) stores (C, intended send time) in a
 * per-URL ring in the shared region. An update can overtake the answer (the
 * server may publish a tick before it writes the HTTP response), so when a
 * like is sent its entry is first filled provisionally under the count it
 * will most likely get (the URL's base count + the number of likes sent to
 * it so far); the answer then overwrites it with the exact count. A subscriber
 * whose count for a URL moves from P to X has seen likes P+1..X become visible
 * now. When X-P is large (a hot URL, one update per tick) it records a
 * stratified sample of at most --lat-samples of those counts, each weighted by
 * the counts it stands for, so the cost per update is bounded while totals and
 * the maximum (the oldest like, P+1, is always sampled) stay exact.
 *
 * Process 0 also publishes the final counts (read from /v1/counts after the
 * likes stop) so that every process can check that each of its subscribers
 * converged to them.
 */
#include "lc_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { S_WAIT, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_READY, S_DEAD };
enum {
	PH_CONNECT,
	PH_WAIT_START,
	PH_LIKES,
	PH_DRAIN,
	PH_SETTLE,
	PH_WAIT_FINAL,
	PH_CONVERGE,
	PH_DONE
};

#define TAG_LIKER 1u
#define TAG_SUB 2u
#define MAX_RX (1u << 20)

typedef struct {
	int fd;
	uint8_t state;
	uint8_t
	    chunk_state; /* SSE chunked decoding: 0 size line, 1 data, 2 CRLF */
	bool chunked;
	bool ws_frag; /* a fragmented WebSocket message is being assembled */
	bool have_count;
	uint32_t url;
	uint32_t rlen, rcap;
	uint32_t dlen; /* decoded SSE bytes / assembled WS fragments at rx[0] */
	uint32_t chunk_rem;
	char *rx;
	int64_t last_count;
	int64_t last_seq;
	uint32_t pre_frames; /* frames before the like phase */
	uint64_t t_start;    /* ns, connect() */
	uint64_t deadline;   /* ns, connect + handshake + snapshot */
	char key[24];
} sub_t;

typedef struct {
	const cfg_t *cfg;
	const urltab_t *urls;
	stats_t *st;
	shm_t *shm;
	int proc;
	int ep;
	sub_t *s;
	int n;
	uint32_t first; /* global index of s[0] */
	int started, pending;
	uint64_t rng;
	uint64_t now;
	uint64_t phase_start, phase_end;
	rpool_t rp;
	bool liker;
	int64_t
	    *before; /* counts before the likes, or NULL when known to be 0 */
	int64_t *sent_per_url;
	int64_t *acked_max; /* nchan: highest count acknowledged per URL */
	cfg_t lcfg;	    /* the likers' view: --like-target's address */
} fo_t;

typedef struct {
	fo_t *f;
	sub_t *s;
} cb_ctx_t;

static int
share(int total, int parts, int i)
{
	return total / parts + (i < total % parts ? 1 : 0);
}

static void
sub_kill(fo_t *f, sub_t *s, int err)
{
	if (err >= 0)
		lc_err(f->st, (enum lc_err)err);
	if (s->state >= S_CONNECTING && s->state <= S_OPEN)
		f->pending--;
	if (s->fd >= 0) {
		epoll_ctl(f->ep, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	s->fd = -1;
	s->state = S_DEAD;
	free(s->rx);
	s->rx = NULL;
	s->rlen = s->rcap = s->dlen = 0;
}

static void
sub_start(fo_t *f, uint32_t i)
{
	sub_t *s = &f->s[i];
	s->t_start = f->now;
	s->rcap = 2048;
	s->rx = malloc(s->rcap);
	s->last_seq = -1;
	if (!f->st->t_first_connect)
		f->st->t_first_connect = f->now;
	f->st->connections++;
	f->started++;
	int fd = lc_connect_nb(f->cfg, f->first + i);
	if (fd < 0 || !s->rx) {
		if (fd >= 0)
			close(fd);
		s->state = S_DEAD;
		lc_err(f->st, LC_E_CONNECT);
		if (f->st->err[LC_E_CONNECT] <= 3)
			fprintf(stderr, "livecount-load: connect: %s\n",
				strerror(-fd));
		free(s->rx);
		s->rx = NULL;
		return;
	}
	s->fd = fd;
	s->state = S_CONNECTING;
	s->deadline = f->now + (uint64_t)(f->cfg->connect_timeout_s * 1e9);
	f->pending++;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
				 .data.u64 = ((uint64_t)TAG_SUB << 32) | i};
	epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void
send_handshake(fo_t *f, sub_t *s, uint32_t i)
{
	char req[4096];
	const urltab_t *t = f->urls;
	int n;
	if (f->cfg->nchan) {
		/* nchan: channel <run tag>_<URL index>, no subprotocol. */
		if (f->cfg->transport == LC_T_WS) {
			ws_make_key(s->key, &f->rng);
			n = snprintf(req, sizeof(req),
				     "GET %s%s_%u HTTP/1.1\r\nHost: %s\r\n"
				     "Upgrade: websocket\r\nConnection: "
				     "Upgrade\r\nSec-WebSocket-Key: %.24s\r\n"
				     "Sec-WebSocket-Version: 13\r\n\r\n",
				     f->cfg->nchan_sub, f->cfg->run_tag, s->url,
				     f->cfg->hosthdr, s->key);
		} else {
			n = snprintf(req, sizeof(req),
				     "GET %s%s_%u HTTP/1.1\r\nHost: %s\r\n"
				     "Accept: text/event-stream\r\n"
				     "Cache-Control: no-cache\r\n\r\n",
				     f->cfg->nchan_sub, f->cfg->run_tag, s->url,
				     f->cfg->hosthdr);
		}
	} else if (f->cfg->transport == LC_T_WS) {
		ws_make_key(s->key, &f->rng);
		n = snprintf(
		    req, sizeof(req),
		    "GET /v1/ws?url=%.*s HTTP/1.1\r\nHost: %s\r\nUpgrade: "
		    "websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Key: %.24s\r\n"
		    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
		    "livecount.v1\r\n\r\n",
		    (int)t->enclen[s->url], t->enc[s->url], f->cfg->hosthdr,
		    s->key);
	} else {
		n = snprintf(req, sizeof(req),
			     "GET /v1/events?url=%.*s HTTP/1.1\r\nHost: %s\r\n"
			     "Accept: text/event-stream\r\nCache-Control: "
			     "no-cache\r\n\r\n",
			     (int)t->enclen[s->url], t->enc[s->url],
			     f->cfg->hosthdr);
	}
	/* A fresh socket's send buffer always takes a few hundred bytes at
	 * once. */
	ssize_t w = send(s->fd, req, (size_t)n, MSG_NOSIGNAL);
	if (w != n) {
		sub_kill(f, s, LC_E_CLOSED);
		return;
	}
	s->state = S_HANDSHAKE;
	struct epoll_event ev = {.events = EPOLLIN,
				 .data.u64 = ((uint64_t)TAG_SUB << 32) | i};
	epoll_ctl(f->ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* ---- counts → latency ---- */

static void
lat_record(fo_t *f, uint32_t url, int64_t c, uint64_t w)
{
	shm_t *shm = f->shm;
	ring_ent_t *e = &shm->rings[(size_t)url * (shm->ring_mask + 1) +
				    ((uint64_t)c & shm->ring_mask)];
	int64_t k = __atomic_load_n(&e->count, __ATOMIC_ACQUIRE);
	uint64_t ts = __atomic_load_n(&e->ts, __ATOMIC_ACQUIRE);
	if (k == c && ts && __atomic_load_n(&e->count, __ATOMIC_ACQUIRE) == c)
		hist_record_n(&f->st->lat, f->now > ts ? f->now - ts : 0, w);
	else
		f->st->lat_unmatched += w;
}

static void
ring_store(fo_t *f, uint32_t url, int64_t count, uint64_t ts)
{
	shm_t *shm = f->shm;
	ring_ent_t *e = &shm->rings[(size_t)url * (shm->ring_mask + 1) +
				    ((uint64_t)count & shm->ring_mask)];
	__atomic_store_n(&e->count, INT64_MIN, __ATOMIC_RELEASE);
	__atomic_store_n(&e->ts, ts ? ts : 1, __ATOMIC_RELEASE);
	__atomic_store_n(&e->count, count, __ATOMIC_RELEASE);
}

static void
on_like_answer(void *ctx, uint32_t url, int64_t count, uint64_t intended)
{
	fo_t *f = ctx;
	if (!f->cfg->match_send_order)
		ring_store(f, url, count, intended);
	if (f->acked_max && count > f->acked_max[url])
		f->acked_max[url] = count;
}

static void
on_like_sent(void *ctx, uint32_t url, uint64_t intended)
{
	fo_t *f = ctx;
	int64_t base = f->before ? f->before[url] : 0;
	ring_store(f, url, base + ++f->sent_per_url[url], intended);
}

static void
count_cb(void *vctx, const char *url, size_t ulen, int64_t count, int64_t delta,
	 bool has_delta)
{
	cb_ctx_t *cx = vctx;
	fo_t *f = cx->f;
	sub_t *s = cx->s;
	const urltab_t *t = f->urls;
	if (ulen != t->rawlen[s->url] ||
	    memcmp(url, t->raw[s->url], ulen) != 0) {
		lc_err(f->st, LC_E_UNEXPECTED_URL);
		return;
	}
	if (!has_delta || !s->have_count) {
		s->last_count = count;
		s->have_count = true;
		return;
	}
	int64_t p = s->last_count;
	if (count == p)
		f->st->same_count++; /* only views or watching changed */
	if (count <= p) {
		if (count < p)
			lc_err(f->st, LC_E_SEQ); /* only likes are sent: counts
						    never go down */
		s->last_count = count;
		return;
	}
	if (delta != count - p)
		f->st->coalesced++;
	uint64_t n = (uint64_t)(count - p);
	if (f->shm->rings) {
		uint64_t smax = (uint64_t)f->cfg->lat_samples;
		if (n <= smax) {
			for (int64_t c = p + 1; c <= count; c++)
				lat_record(f, s->url, c, 1);
		} else {
			for (uint64_t i = 0; i < smax; i++) {
				uint64_t lo = i * n / smax,
					 hi = (i + 1) * n / smax;
				lat_record(f, s->url, p + 1 + (int64_t)lo,
					   hi - lo);
			}
		}
	}
	s->last_count = count;
}

static void
handle_msg(fo_t *f, sub_t *s, const char *p, size_t n)
{
	stats_t *st = f->st;
	st->msgs++;
	if (f->phase_start && f->now >= f->phase_start && f->now < f->phase_end)
		st->msgs_phase++;
	if (!f->phase_start || f->now < f->phase_start) {
		st->msgs_pre++;
		if (++s->pre_frames > st->msgs_pre_max)
			st->msgs_pre_max = s->pre_frames;
	}
	cb_ctx_t cx = {f, s};
	lc_msg_t m;
	if (js_parse_msg(p, n, &m, count_cb, &cx) < 0) {
		lc_err(st, LC_E_BAD_JSON);
		if (st->err[LC_E_BAD_JSON] <= 3)
			fprintf(stderr, "livecount-load: bad message: %.*s\n",
				(int)(n > 200 ? 200 : n), p);
		return;
	}
	switch (m.type) {
	case LC_MSG_SNAPSHOT:
		st->snapshots++;
		if (s->state == S_OPEN && s->have_count) {
			s->state = S_READY;
			f->pending--;
			st->ready++;
			st->t_last_ready = f->now;
			hist_record(&st->connect, f->now - s->t_start);
		}
		break;
	case LC_MSG_UPDATE:
		st->updates++;
		if (m.has_seq) {
			if (s->last_seq >= 0 && m.seq <= s->last_seq)
				lc_err(st, LC_E_SEQ);
			s->last_seq = m.seq;
		}
		if (m.has_ts) {
			int64_t d = (int64_t)lc_wall_ms() - m.ts;
			hist_record(&st->delivery,
				    d > 0 ? (uint64_t)d * 1000000ull : 0);
		}
		break;
	case LC_MSG_ERROR:
		lc_err(st, f->cfg->transport == LC_T_WS ? LC_E_WS_PROTOCOL
							: LC_E_SSE_PROTOCOL);
		break;
	default:
		break;
	}
}

/* ---- WebSocket frames ---- */

static void
ws_send_ctrl(fo_t *f, sub_t *s, int op, const void *payload, size_t len)
{
	uint8_t fr[6 + 125];
	size_t n = ws_build_frame(fr, op, payload, len, &f->rng);
	/* A control frame this small only fails to go out on a dead socket. */
	if (send(s->fd, fr, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* Nothing to do: the read side reports the failure. */
	}
}

static void
ws_process(fo_t *f, sub_t *s)
{
	uint32_t pos = s->dlen;
	while (s->state != S_DEAD && s->rlen - pos >= 2) {
		uint8_t b0 = (uint8_t)s->rx[pos], b1 = (uint8_t)s->rx[pos + 1];
		bool fin = b0 & 0x80;
		int op = b0 & 0x0f;
		uint64_t plen = b1 & 0x7f;
		uint32_t hdr = 2;
		if (b1 & 0x80 || (b0 & 0x70)) {
			sub_kill(f, s, LC_E_WS_PROTOCOL); /* masked server frame
							     or RSV bits */
			return;
		}
		if (plen == 126) {
			if (s->rlen - pos < 4)
				break;
			plen = (uint64_t)(uint8_t)s->rx[pos + 2] << 8 |
			       (uint8_t)s->rx[pos + 3];
			hdr = 4;
		} else if (plen == 127) {
			if (s->rlen - pos < 10)
				break;
			plen = 0;
			for (int k = 0; k < 8; k++)
				plen = plen << 8 | (uint8_t)s->rx[pos + 2 + k];
			hdr = 10;
		}
		if (plen > MAX_RX) {
			sub_kill(f, s, LC_E_WS_PROTOCOL);
			return;
		}
		if (s->rlen - pos < hdr + plen) {
			/* Make room for the whole frame. */
			uint64_t need = (uint64_t)s->dlen + hdr + plen;
			if (need > s->rcap) {
				uint32_t nc = s->rcap;
				while (nc < need)
					nc *= 2;
				memmove(s->rx + s->dlen, s->rx + pos,
					s->rlen - pos);
				s->rlen = s->dlen + (s->rlen - pos);
				pos = s->dlen;
				char *nb = realloc(s->rx, nc);
				if (!nb) {
					sub_kill(f, s, LC_E_WS_PROTOCOL);
					return;
				}
				s->rx = nb;
				s->rcap = nc;
			}
			break;
		}
		char *payload = s->rx + pos + hdr;
		uint32_t next = pos + hdr + (uint32_t)plen;
		if (op >= 8) {
			if (op == 9) {
				f->st->pings++;
				ws_send_ctrl(f, s, 0xA, payload, (size_t)plen);
			} else if (op == 8) {
				ws_send_ctrl(f, s, 0x8, payload,
					     plen >= 2 ? 2 : 0);
				sub_kill(f, s, LC_E_CLOSED);
				return;
			}
		} else if (op == 1 || op == 0) {
			if ((op == 1) == s->ws_frag) {
				sub_kill(f, s, LC_E_WS_PROTOCOL);
				return;
			}
			if (fin && op == 1) {
				handle_msg(f, s, payload, (size_t)plen);
			} else {
				memmove(s->rx + s->dlen, payload, (size_t)plen);
				s->dlen += (uint32_t)plen;
				s->ws_frag = !fin;
				if (fin) {
					handle_msg(f, s, s->rx, s->dlen);
					s->dlen = 0;
				}
			}
		} else {
			sub_kill(f, s, LC_E_WS_PROTOCOL);
			return;
		}
		pos = next;
	}
	if (s->state == S_DEAD)
		return;
	if (pos > s->dlen) {
		memmove(s->rx + s->dlen, s->rx + pos, s->rlen - pos);
		s->rlen = s->dlen + (s->rlen - pos);
	}
}

/* ---- Server-Sent Events ---- */

static int
sse_dechunk(sub_t *s)
{
	uint32_t r = s->dlen, w = s->dlen;
	while (r < s->rlen) {
		if (s->chunk_state == 0) {
			char *nl = memchr(s->rx + r, '\n', s->rlen - r);
			if (!nl) {
				if (s->rlen - r > 64)
					return -1;
				break;
			}
			uint64_t sz = 0;
			int digits = 0;
			for (char *p = s->rx + r;
			     p < nl && *p != ';' && *p != '\r'; p++) {
				int d =
				    (*p >= '0' && *p <= '9')   ? *p - '0'
				    : (*p >= 'a' && *p <= 'f') ? *p - 'a' + 10
				    : (*p >= 'A' && *p <= 'F') ? *p - 'A' + 10
							       : -1;
				if (d < 0 || ++digits > 8)
					return -1;
				sz = sz * 16 + (uint64_t)d;
			}
			if (!digits)
				return -1;
			r = (uint32_t)(nl - s->rx) + 1;
			if (sz == 0)
				return -1; /* the server ended the stream */
			s->chunk_rem = (uint32_t)sz;
			s->chunk_state = 1;
		} else if (s->chunk_state == 1) {
			uint32_t k = s->rlen - r < s->chunk_rem ? s->rlen - r
								: s->chunk_rem;
			memmove(s->rx + w, s->rx + r, k);
			w += k;
			r += k;
			s->chunk_rem -= k;
			if (!s->chunk_rem)
				s->chunk_state = 2;
		} else {
			if (s->rlen - r < 2)
				break;
			if (s->rx[r] != '\r' || s->rx[r + 1] != '\n')
				return -1;
			r += 2;
			s->chunk_state = 0;
		}
	}
	memmove(s->rx + w, s->rx + r, s->rlen - r);
	s->rlen = w + (s->rlen - r);
	s->dlen = w;
	return 0;
}

static void
sse_process(fo_t *f, sub_t *s)
{
	if (s->chunked) {
		if (sse_dechunk(s) < 0) {
			sub_kill(f, s, LC_E_SSE_PROTOCOL);
			return;
		}
	} else {
		s->dlen = s->rlen;
	}
	uint32_t pos = 0, block = 0;
	const char *data = NULL;
	size_t data_len = 0;
	int ndata = 0;
	bool comment = false;
	while (pos < s->dlen && s->state != S_DEAD) {
		char *nl = memchr(s->rx + pos, '\n', s->dlen - pos);
		if (!nl)
			break;
		const char *line = s->rx + pos;
		size_t ll = (size_t)(nl - line);
		if (ll && line[ll - 1] == '\r')
			ll--;
		pos = (uint32_t)(nl - s->rx) + 1;
		if (ll == 0) {
			if (ndata == 1)
				handle_msg(f, s, data, data_len);
			else if (ndata > 1)
				lc_err(f->st,
				       LC_E_SSE_PROTOCOL); /* the contract: one
							      data line */
			else if (comment) {
				f->st->msgs++;
				f->st->pings++;
			}
			block = pos;
			data = NULL;
			ndata = 0;
			comment = false;
			continue;
		}
		if (line[0] == ':') {
			comment = true;
		} else if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
			data = line + 5;
			data_len = ll - 5;
			if (data_len && *data == ' ') {
				data++;
				data_len--;
			}
			ndata++;
		}
		/* "event:", "id:" and "retry:" need no action: the JSON shape
		 * tells a snapshot from an update and seq is in the data. */
	}
	if (s->state == S_DEAD)
		return;
	if (block) {
		memmove(s->rx, s->rx + block, s->rlen - block);
		s->rlen -= block;
		s->dlen -= block;
	}
	if (s->dlen >= s->rcap - 1 || s->rlen == s->rcap) {
		if (s->rcap >= MAX_RX) {
			sub_kill(f, s, LC_E_SSE_PROTOCOL);
			return;
		}
		char *nb = realloc(s->rx, s->rcap * 2);
		if (!nb) {
			sub_kill(f, s, LC_E_SSE_PROTOCOL);
			return;
		}
		s->rx = nb;
		s->rcap *= 2;
	}
}

/* ---- events ---- */

static void
on_handshake(fo_t *f, sub_t *s)
{
	http_head_t h;
	long hl = http_parse_head(s->rx, s->rlen, &h);
	int bad = f->cfg->transport == LC_T_WS ? LC_E_WS_HANDSHAKE
					       : LC_E_SSE_PROTOCOL;
	if (hl == 0)
		return;
	if (hl < 0) {
		sub_kill(f, s, bad);
		return;
	}
	bool ok;
	if (f->cfg->transport == LC_T_WS) {
		char acc[28];
		ws_expected_accept(s->key, acc);
		ok = h.status == 101 && h.ws_accept_len == 28 &&
		     memcmp(h.ws_accept, acc, 28) == 0 &&
		     (f->cfg->nchan ||
		      (h.ws_proto_len == 12 &&
		       memcmp(h.ws_proto, "livecount.v1", 12) == 0));
	} else {
		ok = h.status == 200 && h.ctype_len >= 17 &&
		     strncmp(h.ctype, "text/event-stream", 17) == 0;
		s->chunked = h.chunked;
	}
	if (!ok) {
		if (f->st->err[bad] < 3)
			fprintf(stderr,
				"livecount-load: handshake refused: %.*s\n",
				(int)(hl > 300 ? 300 : hl), s->rx);
		sub_kill(f, s, bad);
		return;
	}
	memmove(s->rx, s->rx + hl, s->rlen - (uint32_t)hl);
	s->rlen -= (uint32_t)hl;
	s->dlen = 0;
	s->state = S_OPEN;
	if (f->cfg->nchan) {
		/* nchan sends no snapshot: a fresh channel's count is 0 and
		 * the subscriber is ready once the handshake is answered. */
		s->state = S_READY;
		s->have_count = true;
		s->last_count = 0;
		f->pending--;
		f->st->ready++;
		f->st->t_last_ready = f->now;
		hist_record(&f->st->connect, f->now - s->t_start);
	}
}

static void
sub_event(fo_t *f, uint32_t i, uint32_t events)
{
	sub_t *s = &f->s[i];
	if (s->fd < 0)
		return;
	if (s->state == S_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ||
		    err) {
			if (f->st->err[LC_E_CONNECT] < 3)
				fprintf(stderr, "livecount-load: connect: %s\n",
					strerror(err));
			sub_kill(f, s, LC_E_CONNECT);
			return;
		}
		if (events & EPOLLOUT)
			send_handshake(f, s, i);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (s->rlen == s->rcap) {
		if (s->rcap >= MAX_RX) {
			sub_kill(f, s, LC_E_BAD_RESPONSE);
			return;
		}
		char *nb = realloc(s->rx, s->rcap * 2);
		if (!nb) {
			sub_kill(f, s, LC_E_BAD_RESPONSE);
			return;
		}
		s->rx = nb;
		s->rcap *= 2;
	}
	ssize_t r = recv(s->fd, s->rx + s->rlen, s->rcap - s->rlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		sub_kill(f, s,
			 s->state == S_HANDSHAKE ? (f->cfg->transport == LC_T_WS
							? LC_E_WS_HANDSHAKE
							: LC_E_SSE_PROTOCOL)
						 : LC_E_CLOSED);
		return;
	}
	s->rlen += (uint32_t)r;
	if (s->state == S_HANDSHAKE) {
		on_handshake(f, s);
		if (s->state != S_OPEN)
			return;
	}
	if (f->cfg->transport == LC_T_WS)
		ws_process(f, s);
	else
		sse_process(f, s);
}

static void
loop_once(fo_t *f, int timeout_ms)
{
	struct epoll_event evs[1024];
	int n = epoll_wait(f->ep, evs, 1024, timeout_ms);
	f->now = lc_now_ns();
	for (int k = 0; k < n; k++) {
		uint32_t tag = (uint32_t)(evs[k].data.u64 >> 32);
		uint32_t idx = (uint32_t)evs[k].data.u64;
		if (tag == TAG_SUB) {
			sub_event(f, idx, evs[k].events);
		} else if (tag == TAG_LIKER) {
			if (idx == 0xffffffffu)
				rp_timer_event(&f->rp);
			else
				rp_event(&f->rp, idx, evs[k].events);
		}
		if ((k & 63) == 63)
			f->now = lc_now_ns();
	}
	f->now = lc_now_ns();
	if (f->liker)
		rp_poll(&f->rp, f->now);
}

static void
sweep_pending(fo_t *f)
{
	for (int i = 0; i < f->n; i++) {
		sub_t *s = &f->s[i];
		if (s->state >= S_CONNECTING && s->state <= S_OPEN &&
		    f->now > s->deadline)
			sub_kill(f, s, LC_E_CONNECT_TIMEOUT);
	}
}

static bool
all_converged(const fo_t *f)
{
	for (int i = 0; i < f->n; i++) {
		const sub_t *s = &f->s[i];
		if (s->state == S_READY &&
		    s->last_count != f->shm->final_counts[s->url])
			return false;
	}
	return true;
}

/* Process 0 after the likes: read the final counts and check them. */
static void
publish_final(fo_t *f)
{
	const urltab_t *t = f->urls;
	int64_t *after = f->shm->final_counts;
	if (f->cfg->nchan) {
		/* No counter to read back: the final count of a channel is the
		 * highest count whose publish nchan acknowledged. */
		for (uint32_t u = 0; u < t->n; u++) {
			after[u] = f->acked_max[u];
			f->st->urls_checked++;
			f->st->urls_ok++;
			f->st->counted += after[u];
			f->st->expected += after[u];
		}
	} else if (lc_fetch_counts(f->cfg, t, after) < 0) {
		lc_err(f->st, LC_E_VERIFY);
	} else {
		int bad = rp_verify(&f->rp, f->before, after, false);
		if (bad) {
			uint64_t until = lc_now_ns() + 1000000000ull;
			while (lc_now_ns() < until)
				loop_once(f, 10);
			if (lc_fetch_counts(f->cfg, t, after) < 0)
				lc_err(f->st, LC_E_VERIFY);
		}
		int bad2 = rp_verify(&f->rp, f->before, after, true);
		f->st->stale_reads += (uint64_t)(bad > bad2 ? bad - bad2 : 0);
	}
	__atomic_store_n(&f->shm->final_ready, lc_now_ns(), __ATOMIC_RELEASE);
}

int
run_fanout(const cfg_t *cfg, int proc, shm_t *shm, const urltab_t *urls,
	   stats_t *st)
{
	fo_t f;
	memset(&f, 0, sizeof(f));
	f.cfg = cfg;
	f.urls = urls;
	f.st = st;
	f.shm = shm;
	f.proc = proc;
	f.n = share(cfg->subscribers, cfg->procs, proc);
	for (int p = 0; p < proc; p++)
		f.first += (uint32_t)share(cfg->subscribers, cfg->procs, p);
	f.rng = (lc_now_ns() ^ ((uint64_t)getpid() << 32)) | 1;
	f.s = calloc((size_t)(f.n ? f.n : 1), sizeof(sub_t));
	f.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!f.s || f.ep < 0)
		return -1;
	for (int i = 0; i < f.n; i++) {
		f.s[i].fd = -1;
		f.s[i].url = (f.first + (uint32_t)i) % urls->n;
	}
	st->subscribers = (uint64_t)f.n;
	f.liker = proc == 0;
	double scpu_c0 = 0;
	uint64_t t_c0 = lc_now_ns();
	if (f.liker && cfg->server_pid) {
		long rss;
		if (lc_server_sample(cfg, &scpu_c0, &rss) == 0)
			st->server_rss_start_kb = rss;
	}
	if (f.liker) {
		/* The likers may talk to another node (--like-target); the
		 * count check reads the subscribers' node (--target), so it
		 * checks that the cluster totals reached it. */
		f.lcfg = *cfg;
		if (cfg->like_target_given) {
			f.lcfg.dst = cfg->like_dst;
			memcpy(f.lcfg.hosthdr, cfg->like_hosthdr,
			       sizeof(f.lcfg.hosthdr));
		}
		if (cfg->nchan) {
			f.acked_max = calloc(urls->n, sizeof(int64_t));
			if (!f.acked_max)
				return -1;
		}
		if (rp_init(&f.rp, &f.lcfg, urls, st, f.ep, TAG_LIKER,
			    cfg->like_conns, 0, cfg->like_rate,
			    (uint32_t)cfg->subscribers + 1) < 0)
			return -1;
		f.rp.lat = &st->rtt;
		f.rp.on_count = on_like_answer;
		f.rp.ctx = &f;
		f.sent_per_url = calloc(urls->n, sizeof(int64_t));
		if (!f.sent_per_url)
			return -1;
		rp_connect_all(&f.rp);
		if (cfg->verify && cfg->prefix_given) {
			f.before = calloc(urls->n, sizeof(int64_t));
			if (lc_fetch_counts(cfg, urls, f.before) < 0) {
				lc_err(st, LC_E_VERIFY);
				free(f.before);
				f.before = NULL;
			}
		}
		/* Provisional entries need each URL's base count: 0 for this
		 * run's own fresh URLs, read above for a given prefix. */
		if (!cfg->prefix_given || f.before)
			f.rp.on_send = on_like_sent;
	}

	double ramp = cfg->ramp_per_s > 0 ? cfg->ramp_per_s / cfg->procs : 0;
	int max_pending = cfg->max_pending / cfg->procs;
	if (max_pending < 1)
		max_pending = 1;
	const uint64_t tick_ns = (uint64_t)cfg->tick_ms * 1000000ull;
	const uint64_t s_ns = 1000000000ull;
	f.now = lc_now_ns();
	uint64_t t_conn0 = f.now;
	uint64_t conn_budget = (uint64_t)((ramp > 0 ? f.n / ramp : 0) * 1e9) +
			       (uint64_t)(cfg->connect_timeout_s * 1e9) +
			       30 * s_ns;
	uint64_t phase_deadline = t_conn0 + conn_budget;
	uint64_t next_pg = f.now + s_ns, next_sweep = f.now, settle_until = 0,
		 liker_wait_until = 0;
	double cpu0 = lc_cpu_s(), scpu0 = 0;
	int phase = PH_CONNECT;

	while (phase != PH_DONE) {
		if (lc_stop || __atomic_load_n(&shm->abort, __ATOMIC_RELAXED)) {
			if (lc_stop)
				__atomic_store_n(&shm->abort, 1,
						 __ATOMIC_RELAXED);
			break;
		}
		if (phase == PH_CONNECT) {
			while (f.started < f.n && f.pending < max_pending &&
			       (ramp <= 0 ||
				f.started < (int)((double)(f.now - t_conn0) /
						  1e9 * ramp) +
						1))
				sub_start(&f, (uint32_t)f.started);
		}
		int timeout = 10;
		if (phase == PH_CONNECT && ramp > 0 && f.started < f.n)
			timeout = 1;
		loop_once(&f, timeout);
		uint64_t now = f.now;
		if (now >= next_sweep && phase == PH_CONNECT) {
			sweep_pending(&f);
			next_sweep = now + 50000000ull;
		}
		if (now >= next_pg) {
			lc_progress(cfg, shm, proc, st, now,
				    phase == PH_CONNECT ? t_conn0
							: f.phase_start,
				    phase == PH_CONNECT ? "connect" : "fanout");
			next_pg = now + s_ns;
		}
		switch (phase) {
		case PH_CONNECT:
			if (f.started == f.n && f.pending == 0) {
				__atomic_add_fetch(&shm->procs_ready, 1,
						   __ATOMIC_RELEASE);
				phase = PH_WAIT_START;
				phase_deadline = now + conn_budget + 30 * s_ns;
			} else if (now > phase_deadline) {
				sweep_pending(&f);
				f.started = f.n;
			}
			break;
		case PH_WAIT_START:
			if (f.liker) {
				bool all = __atomic_load_n(&shm->procs_ready,
							   __ATOMIC_ACQUIRE) >=
					   (uint64_t)cfg->procs;
				if (all && !liker_wait_until)
					liker_wait_until =
					    now +
					    (uint64_t)(cfg->connect_timeout_s *
						       1e9);
				int up = rp_connected(&f.rp);
				if (all && f.n > 0 && st->ready == 0) {
					fprintf(stderr,
						"livecount-load: no subscriber "
						"connected, giving up\n");
					__atomic_store_n(&shm->abort, 1,
							 __ATOMIC_RELAXED);
				} else if (all && (up == f.rp.n ||
						   (up > 0 &&
						    now > liker_wait_until))) {
					if (!cfg->quiet)
						fprintf(
						    stderr,
						    "livecount-load: %llu "
						    "subscribers ready, liking "
						    "at %.0f/s for %.1fs\n",
						    (unsigned long long)
							st->ready,
						    cfg->like_rate,
						    cfg->duration_s);
					f.phase_start = now;
					f.phase_end =
					    now +
					    (uint64_t)(cfg->duration_s * 1e9);
					long rss;
					if (cfg->server_pid &&
					    lc_server_sample(cfg, &scpu0,
							     &rss) == 0) {
						st->server_rss_ready_kb = rss;
						st->server_cpu_connect_s =
						    scpu0 - scpu_c0;
						st->server_connect_wall_s =
						    (double)(now - t_c0) / 1e9;
					}
					__atomic_store_n(&shm->likes_end,
							 f.phase_end,
							 __ATOMIC_RELAXED);
					__atomic_store_n(&shm->likes_start,
							 f.phase_start,
							 __ATOMIC_RELEASE);
					rp_start(&f.rp, f.phase_start,
						 f.phase_end);
					phase = PH_LIKES;
				} else if (all && now > liker_wait_until) {
					fprintf(stderr,
						"livecount-load: no like "
						"connection, giving up\n");
					__atomic_store_n(&shm->abort, 1,
							 __ATOMIC_RELAXED);
				} else if (now > phase_deadline) {
					lc_err(st, LC_E_PHASE_TIMEOUT);
					__atomic_store_n(&shm->abort, 1,
							 __ATOMIC_RELAXED);
				}
			} else {
				uint64_t ls = __atomic_load_n(&shm->likes_start,
							      __ATOMIC_ACQUIRE);
				if (ls) {
					f.phase_start = ls;
					f.phase_end = __atomic_load_n(
					    &shm->likes_end, __ATOMIC_RELAXED);
					phase = PH_LIKES;
				} else if (now > phase_deadline) {
					lc_err(st, LC_E_PHASE_TIMEOUT);
					phase = PH_DONE;
				}
			}
			break;
		case PH_LIKES:
			if (now >= f.phase_end) {
				st->phase_s =
				    (double)(now - f.phase_start) / 1e9;
				double scpu1;
				long rss;
				if (f.liker && cfg->server_pid &&
				    lc_server_sample(cfg, &scpu1, &rss) == 0) {
					st->server_rss_end_kb = rss;
					st->server_cpu_s = scpu1 - scpu0;
					st->server_cpu_wall_s = st->phase_s;
				}
				if (f.liker) {
					rp_stop(&f.rp, now);
					phase = PH_DRAIN;
					phase_deadline =
					    now +
					    (uint64_t)(cfg->timeout_s * 1e9);
				} else {
					phase = PH_WAIT_FINAL;
					phase_deadline =
					    now +
					    (uint64_t)(cfg->timeout_s * 1e9) +
					    60 * s_ns;
				}
			}
			break;
		case PH_DRAIN:
			if (f.rp.busy == 0 || now > phase_deadline) {
				rp_abandon(&f.rp);
				/* Let the last likes reach a tick and its
				 * updates go out. */
				settle_until = now + 3 * tick_ns;
				phase = PH_SETTLE;
			}
			break;
		case PH_SETTLE:
			if (now >= settle_until) {
				if (cfg->verify) {
					publish_final(&f);
				} else {
					/* Without verification the highest
					 * count answered stands in for the
					 * final count. */
					__atomic_store_n(&shm->final_ready, now,
							 __ATOMIC_RELEASE);
				}
				phase = PH_WAIT_FINAL;
			}
			break;
		case PH_WAIT_FINAL: {
			uint64_t fr = __atomic_load_n(&shm->final_ready,
						      __ATOMIC_ACQUIRE);
			if (fr) {
				uint64_t wait = 20 * tick_ns > 2 * s_ns
						    ? 20 * tick_ns
						    : 2 * s_ns;
				phase_deadline = fr + wait;
				phase = PH_CONVERGE;
			} else if (now > phase_deadline) {
				lc_err(st, LC_E_PHASE_TIMEOUT);
				phase = PH_DONE;
			}
			break;
		}
		case PH_CONVERGE:
			if (now > phase_deadline || all_converged(&f))
				phase = PH_DONE;
			break;
		default:
			break;
		}
	}
	st->cpu_s = lc_cpu_s() - cpu0;
	st->cpu_wall_s = (double)(lc_now_ns() - t_conn0) / 1e9;
	if (!st->phase_s && f.phase_start)
		st->phase_s = (double)(lc_now_ns() - f.phase_start) / 1e9;
	lc_progress(cfg, shm, proc, st, lc_now_ns(), f.phase_start, "fanout");

	bool have_final =
	    __atomic_load_n(&shm->final_ready, __ATOMIC_ACQUIRE) && cfg->verify;
	for (int i = 0; i < f.n; i++) {
		sub_t *s = &f.s[i];
		if (s->state == S_READY) {
			if (have_final &&
			    s->last_count == shm->final_counts[s->url]) {
				st->converged++;
			} else if (have_final) {
				lc_err(st, LC_E_NOT_CONVERGED);
				if (st->err[LC_E_NOT_CONVERGED] <= 3 &&
				    !cfg->quiet)
					fprintf(stderr,
						"livecount-load: subscriber %u "
						"of %s saw %lld, "
						"final %lld\n",
						f.first + (uint32_t)i,
						urls->raw[s->url],
						(long long)s->last_count,
						(long long)
						    shm->final_counts[s->url]);
			}
			if (cfg->transport == LC_T_WS) {
				static const uint8_t bye[2] = {0x03,
							       0xe8}; /* 1000 */
				ws_send_ctrl(&f, s, 0x8, bye, 2);
			}
		}
		if (s->fd >= 0)
			sub_kill(&f, s, -1);
	}
	if (f.liker)
		rp_close(&f.rp);
	close(f.ep);
	free(f.s);
	free(f.before);
	free(f.sent_per_url);
	free(f.acked_max);
	return 0;
}
