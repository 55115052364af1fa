/*
 * Server wiring: the worker threads, one lws_context each on its own libuv
 * loop with the protocols table (http, livecount.v1, lc-listen), and one
 * SO_REUSEPORT listening socket each, from which connections are accepted
 * and adopted into lws.
 *
 * Threads: lc_server_start/stop/free run on the main thread; the listen
 * callback and worker_main on the worker threads. Main talks to a worker
 * only through `stop`, the source mailbox and lws_cancel_service().
 *
 * A note on listening: lws 4.1.6 built with LWS_MAX_SMP 1 cannot share a
 * listen port between contexts (its listen-share option needs several
 * service threads in one context). Instead main binds one SO_REUSEPORT
 * socket per worker before any thread starts (so bind errors and the
 * port-0 choice happen once, up front); each worker adopts its socket into
 * lws as a raw file descriptor and, when it becomes readable, accepts up to
 * ACCEPT_BATCH connections and adopts each into its vhost. The kernel
 * spreads new connections across the workers' sockets.
 */
#define _GNU_SOURCE
#include "lc/server.h"
#include "lc/common.h"
#include "lc/http.h"
#include "lc/parse.h"
#include "lc/metrics.h"
#include "lc/history.h"
#include "lc/store.h"
#include "lc/worker.h"
#include "lc/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BATCH 64

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason,
			   void *user, void *in, size_t len);

/*
 * Every callback runs inside the worker's reader stretch: entries found in
 * the table are not freed under it (counter.c, "A note on reclamation").
 */
static int
guarded(lws_callback_function *fn, struct lws *wsi,
	enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct lc_worker *w = ctx ? lws_context_user(ctx) : NULL;
	int rc;

	lc_reader_enter(w ? &w->qs : NULL);
	rc = fn(wsi, reason, user, in, len);
	lc_reader_exit(w ? &w->qs : NULL);
	return rc;
}

static int
http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
	size_t len)
{
	return guarded(lc_http_callback, wsi, reason, user, in, len);
}

static int
ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
      size_t len)
{
	return guarded(lc_ws_callback, wsi, reason, user, in, len);
}

static int
listen_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
	  void *in, size_t len)
{
	return guarded(listen_callback, wsi, reason, user, in, len);
}

static const struct lws_protocols protocols_template[] = {
    /* [0] also receives plain HTTP and SSE; pss size set at start */
    {"http", http_cb, 0, 0, 0, NULL, 0},
    {"livecount.v1", ws_cb, 0, 256, 0, NULL, 0},
    {"lc-listen", listen_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No per-connection validity timers: the sweep does pings (LWS-NOTES). */
static const lws_retry_bo_t retry_policy = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

static void
tune_socket(int fd, int sndbuf)
{
	int one = 1, idle = 60, intvl = 10, cnt = 3;

	/*
	 * A bounded send buffer: a subscriber that stops reading holds at
	 * most this much kernel memory (Linux doubles the value) instead of
	 * up to tcp_wmem's 4 MB; a stall is then judged by time (delivery.c).
	 */
	if (sndbuf)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Dead peers of idle subscribers are found by the kernel too. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/*
 * A note on request headers: a plain-HTTP socket is handed to lws only
 * once its first request's headers have arrived whole (or 8 KB of them),
 * for two reasons.
 *
 * - Slow clients. lws 4.1.6 gives every connection that has sent a byte
 *   one of max_http_header_pool (1024) header tables until its request is
 *   complete; 3000 clients sending a byte a second held them all, and a
 *   /healthz waited ~9.5 s for one to come free (and the slow ones' own
 *   timeouts began only once they had one: closed at ~21 s, not 10). Here
 *   a waiting socket costs an epoll entry and ~60 bytes; it is closed with
 *   a 408 at http_timeout_ms after it connected, whatever it sends.
 * - Request lines. lws answers a request target with a malformed
 *   percent-escape ("?url=%zz") or a control byte ("?url=%00") with an
 *   HTML 403, or drops the connection, from inside its parser; such a
 *   line gets API.md's JSON 400 here instead.
 *
 * The sockets are peeked (MSG_PEEK: lws still reads every byte) when an
 * edge-triggered epoll of them, itself adopted into lws as a raw file,
 * says one received something; their deadlines are one lws timer for the
 * oldest (deadlines come in accept order). Later requests on a kept-alive
 * connection and TLS connections (encrypted) are lws' alone.
 */
#define PEEK_BYTES 8192

/* TLS 1.2 suites: ECDHE key exchange and AEAD only (forward secrecy). */
#define LC_TLS12_CIPHERS                                                       \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct lc_peek {
	struct lc_worker *w;
	struct lc_conn *c;
	int fd;
	int64_t deadline_ms;
	struct lc_peek *prev, *next; /* the worker's w->peeking list */
};

static void give_to_lws(struct lc_worker *w, struct lc_conn *c, int fd);

/* Answers a request itself (a JSON body) and closes. */
static void
answer_close(struct lc_worker *w, struct lc_conn *c, int fd, const char *status,
	     const char *b, int code)
{
	char out[512], sink[4096];
	int n = snprintf(out, sizeof(out),
			 "HTTP/1.1 %s\r\ncontent-type: "
			 "application/json\r\ncontent-length: %zu\r\n"
			 "access-control-allow-origin: *\r\n"
			 "connection: close\r\n\r\n%s",
			 status, strlen(b), b);

	/* Unread bytes would make close() send a reset over the answer. */
	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	/* A client that cannot take 200 bytes loses the answer, not us. */
	(void)!send(fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	lc_metrics_count_http(&w->stats, LC_ROUTE_OTHER, code);
	shutdown(fd, SHUT_WR);
	close(fd);
	lc_conn_destroy(w, c);
}

/* Answers a malformed request line itself and closes. */
static void
refuse_line(struct lc_worker *w, struct lc_conn *c, int fd, int why)
{
	static const char *const body[] = {
	    "{\"error\":\"bad_request\",\"message\":\"malformed "
	    "percent-encoding or a control byte in the request target\"}\n",
	    "{\"error\":\"bad_url\",\"message\":\"malformed "
	    "percent-encoding or a control byte in the url parameter\"}\n"};

	answer_close(w, c, fd, "400 Bad Request", body[why == 2], 400);
}

static void peek_unlink(struct lc_peek *p);

/*
 * 0: hand to lws (headers whole, or too long for us to judge, or EOF);
 * 1: answered and closed; -1: headers not all here yet. A socket waiting
 * in the worker's epoll (p) leaves it before it is closed: its number may
 * be another worker's new connection a moment later.
 */
static int
peek_headers(struct lc_worker *w, struct lc_conn *c, int fd, struct lc_peek *p)
{
	char buf[PEEK_BYTES];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	const char *nl;
	int why;

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
	if (!n)
		return 0; /* lws sees the EOF */
	nl = memchr(buf, '\n', (size_t)n);
	if (!nl)
		return n == (ssize_t)sizeof(buf) ? 0 : -1;
	why = lc_request_target_check(buf, (size_t)(nl - buf));
	if (why) {
		if (p)
			peek_unlink(p);
		refuse_line(w, c, fd, why);
		return 1;
	}
	if (memmem(buf, (size_t)n, "\r\n\r\n", 4) ||
	    memmem(buf, (size_t)n, "\n\n", 2) || n == (ssize_t)sizeof(buf))
		return 0;
	return -1;
}

static void
peek_unlink(struct lc_peek *p)
{
	struct lc_worker *w = p->w;

	if (p->prev)
		p->prev->next = p->next;
	else
		w->peeking = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		w->peeking_tail = p->prev;
	epoll_ctl(w->peek_ep, EPOLL_CTL_DEL, p->fd, NULL);
}

/* The oldest waiting socket's deadline, on the worker's timer. */
static void peek_deadline(lws_sorted_usec_list_t *sul);

static void
peek_arm(struct lc_worker *w)
{
	int64_t left;

	if (!w->peeking) {
		lws_sul_cancel(&w->peek_sul);
		return;
	}
	left = w->peeking->deadline_ms - lc_mono_ms();
	lws_sul_schedule(w->ctx, 0, &w->peek_sul, peek_deadline,
			 (lws_usec_t)(left > 0 ? left : 0) * LWS_US_PER_MS + 1);
}

static void
peek_deadline(lws_sorted_usec_list_t *sul)
{
	struct lc_worker *w = lws_container_of(sul, struct lc_worker, peek_sul);
	int64_t now = lc_mono_ms();

	while (w->peeking && w->peeking->deadline_ms <= now) {
		struct lc_peek *p = w->peeking;
		char one;

		peek_unlink(p);
		LC_STAT_ADD(w->stats.slow_headers_closed, 1);
		/* Nothing sent at all (a preconnect): closed without a word,
		 * so no request racing the close gets a 408 for an answer. */
		if (recv(p->fd, &one, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
			close(p->fd);
			lc_conn_destroy(w, p->c);
			free(p);
			continue;
		}
		answer_close(w, p->c, p->fd, "408 Request Timeout",
			     "{\"error\":\"timeout\",\"message\":\"request "
			     "headers took too long\"}\n",
			     408);
		free(p);
	}
	peek_arm(w);
}

/* The epoll of waiting sockets said some received bytes. */
static void
peek_ready(struct lc_worker *w)
{
	struct epoll_event ev[64];
	int n = epoll_wait(w->peek_ep, ev, 64, 0);
	bool first_gone = false;

	for (int i = 0; i < n; i++) {
		struct lc_peek *p = ev[i].data.ptr;
		bool first = p == w->peeking;
		int rc = peek_headers(w, p->c, p->fd, p);

		if (rc < 0)
			continue;
		first_gone |= first;
		if (!rc) {
			peek_unlink(p);
			give_to_lws(w, p->c, p->fd);
		}
		free(p);
	}
	if (first_gone)
		peek_arm(w);
}

static void
peeks_drop(struct lc_worker *w)
{
	while (w->peeking) {
		struct lc_peek *p = w->peeking;

		peek_unlink(p);
		close(p->fd);
		lc_conn_destroy(w, p->c);
		free(p);
	}
	lws_sul_cancel(&w->peek_sul);
}

/* Hands an accepted socket to lws, within the connection limits. */
static void
adopt(struct lc_worker *w, int fd, uint32_t ip)
{
	struct lc_conn *c = lc_conn_create(w, ip);
	struct lc_peek *p;
	int rc;

	if (!c) {
		close(fd);
		return;
	}
	tune_socket(fd, w->srv->cfg->sndbuf_bytes);
	/* TLS: the request is encrypted; lws' own handling stands. */
	rc = w->srv->cfg->tls_cert[0] || w->peek_ep < 0
		 ? 0
		 : peek_headers(w, c, fd, NULL);
	if (rc > 0)
		return;
	if (rc < 0 && (p = calloc(1, sizeof(*p)))) {
		struct epoll_event ev = {
		    .events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};

		p->w = w;
		p->c = c;
		p->fd = fd;
		p->deadline_ms = lc_mono_ms() + w->srv->cfg->http_timeout_ms;
		if (epoll_ctl(w->peek_ep, EPOLL_CTL_ADD, fd, &ev)) {
			free(p);
			give_to_lws(w, c, fd);
			return;
		}
		/* Deadlines come in accept order: append. */
		p->prev = w->peeking_tail;
		if (p->prev)
			p->prev->next = p;
		else
			w->peeking = p;
		w->peeking_tail = p;
		/* (Bytes that came since the peek are reported by the add.) */
		if (w->peeking == p)
			peek_arm(w);
		return;
	}
	give_to_lws(w, c, fd);
}

static void
give_to_lws(struct lc_worker *w, struct lc_conn *c, int fd)
{
	struct lws *wsi;

	/*
	 * The record is attached only once lws returns the wsi: a failed
	 * adoption may still be closed (and reported destroyed) later, and
	 * must not find a record we already freed.
	 */
	wsi = lws_adopt_socket_vhost(w->vh, fd);
	if (!wsi) {
		/* lws closed the fd. */
		LC_STAT_ADD(w->stats.accept_refused, 1);
		lc_conn_destroy(w, c);
		return;
	}
	lc_conn_attach(wsi, c);
}

static int
listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
		void *in, size_t len)
{
	struct lc_worker *w;

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		w = lws_context_user(lws_get_context(wsi));
		if (wsi == w->peek_wsi) {
			peek_ready(w);
			return 0;
		}
		for (int i = 0; i < ACCEPT_BATCH; i++) {
			struct sockaddr_in sa;
			socklen_t sl = sizeof(sa);
			int fd = accept4(w->listen_fd, (struct sockaddr *)&sa,
					 &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd < 0) {
				if (errno == EMFILE || errno == ENFILE)
					lc_warn("accept: %s", strerror(errno));
				break;
			}
			LC_STAT_ADD(w->stats.accepts, 1);
			adopt(w, fd,
			      sa.sin_family == AF_INET ? sa.sin_addr.s_addr
						       : 0);
		}
		return 0;

	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Broadcast to every protocol: only this one acts on it. */
		w = lws_context_user(lws_get_context(wsi));
		if (atomic_load(&w->stop)) {
			peeks_drop(w);
			lc_worker_calls_close(w);
			lws_context_destroy(w->ctx);
			return 0;
		}
		lc_worker_drain_mailbox(w);
		if (atomic_load(&w->srv->goodbye))
			lc_worker_goodbye(w);
		return 0;

	case LWS_CALLBACK_RAW_CLOSE_FILE:
		return 0;

	default:
		return 0;
	}
}

static void
signal_noop(void *handle, int signum)
{
	(void)handle;
	(void)signum; /* main handles signals; workers keep them blocked */
}

static void *
worker_main(void *arg)
{
	struct lc_worker *w = arg;
	struct lws_context_creation_info info;
	struct lws_protocols *protocols;
	lws_sock_file_fd_type u;
	int rc = -1;

	protocols = malloc(sizeof(protocols_template));
	if (!protocols)
		goto signal;
	memcpy(protocols, protocols_template, sizeof(protocols_template));
	protocols[0].per_session_data_size = sizeof(struct lc_http_req);
	protocols[1].per_session_data_size = lc_ws_pss_size();

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.vhost_name = "livecount";
	info.user = w;
	info.options = LWS_SERVER_OPTION_LIBUV |
		       LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
		       LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_DISABLE_IPV6;
	info.signal_cb = signal_noop;
	info.max_http_header_data = 8192;
	info.max_http_header_pool = 1024;
	info.pt_serv_buf_size = 65536;
	info.timeout_secs = 10;
	info.keepalive_timeout = w->srv->cfg->http_keepalive_s;
	info.retry_and_idle_policy = &retry_policy;
	info.alpn = "http/1.1";
	if (w->srv->cfg->tls_cert[0]) {
		/* Adopted sockets then start with a TLS handshake. */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = w->srv->cfg->tls_cert;
		info.ssl_private_key_filepath = w->srv->cfg->tls_key;
		/*
		 * Forward secrecy only: TLS 1.2 with ECDHE and an AEAD
		 * cipher, TLS 1.3 as OpenSSL has it; nothing older.
		 */
		info.ssl_cipher_list = LC_TLS12_CIPHERS;
		info.ssl_options_set =
		    (long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 |
			   SSL_OP_NO_TLSv1_1 | SSL_OP_CIPHER_SERVER_PREFERENCE);
	}

	w->ctx = lws_create_context(&info);
	if (!w->ctx) {
		lc_err("worker %d: cannot create the lws context (is the "
		       "libwebsockets-evlib-uv package installed?)",
		       w->id);
		goto signal;
	}
	w->vh = lws_get_vhost_by_name(w->ctx, "livecount");
	u.filefd = w->listen_fd;
	w->listen_wsi = lws_adopt_descriptor_vhost(
	    w->vh, LWS_ADOPT_RAW_FILE_DESC, u, "lc-listen", NULL);
	if (!w->listen_wsi) {
		lc_err("worker %d: cannot adopt the listening socket", w->id);
		goto signal;
	}
	u.filefd = w->peek_ep = epoll_create1(EPOLL_CLOEXEC);
	w->peek_wsi =
	    w->peek_ep < 0
		? NULL
		: lws_adopt_descriptor_vhost(w->vh, LWS_ADOPT_RAW_FILE_DESC, u,
					     "lc-listen", NULL);
	if (!w->peek_wsi) {
		lc_err("worker %d: cannot watch sockets for their headers",
		       w->id);
		goto signal;
	}
	lc_worker_start_timers(w);
	rc = 0;
signal:
	if (rc && w->ctx) {
		lws_context_destroy(w->ctx);
		w->ctx = NULL;
	}
	pthread_mutex_lock(&w->srv->start_lock);
	w->start_rc = rc;
	w->srv->started++;
	pthread_cond_broadcast(&w->srv->start_cond);
	pthread_mutex_unlock(&w->srv->start_lock);
	if (rc) {
		free(protocols);
		return NULL;
	}
	while (!lws_service(w->ctx, 0) && !atomic_load(&w->stop))
		;
	peeks_drop(w);
	lc_worker_calls_close(w);
	lws_context_destroy(w->ctx);
	free(protocols); /* main clears w->ctx after joining */
	return NULL;
}

static int
bind_listener(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd, one = 1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "bind: '%s' is not an IPv4 address",
			 addr);
		return -1;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096)) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", addr, port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static bool guard_find(int port, const char *tag, bool other_cluster,
		       char *htag, size_t htlen, int *hnode, long *hpid);
static bool tcp_holder(int port, long *pid, char *name, size_t nlen);
static void describe_holder(const char *htag, int hnode, long hpid, bool other,
			    char *out, size_t cap);

/*
 * Without reuse_port, refuses a port that another process listens on: our
 * own workers share their port through SO_REUSEPORT, which would otherwise
 * let a second server silently take half of the connections. A probe
 * socket without SO_REUSEPORT cannot bind next to a listener.
 */
static int
check_port_free(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd, one = 1, rc = 0;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return 0; /* bind_listener says why */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    errno == EADDRINUSE) {
		char who[200] = "?", htag[32], name[64];
		int hnode;
		long hpid;

		if (guard_find(port, "", false, htag, sizeof(htag), &hnode,
			       &hpid))
			describe_holder(htag, hnode, hpid, false, who,
					sizeof(who));
		else if (tcp_holder(port, &hpid, name, sizeof(name)))
			snprintf(who, sizeof(who), "pid %ld, %s", hpid,
				 name[0] ? name : "?");
		snprintf(err, errlen,
			 "cannot listen on %s:%d: the port is in use by "
			 "another process (%s); nodes of one cluster share a "
			 "port with reuse_port = yes on each",
			 addr, port, who);
		rc = -1;
	}
	close(fd);
	return rc;
}

/*
 * A note on sharing a port on purpose: SO_REUSEPORT lets any process of
 * the same user join a port, so a cluster node with reuse_port would split
 * connections with a standalone server or an unrelated program (seen:
 * /v1/stats alternating between two counters). Each process therefore
 * holds an abstract Unix socket named after its port, its cluster (a hash
 * of redis_url without the credentials; "standalone" for a single node),
 * its node id and its pid, for as long as it runs (the kernel drops it
 * when the process dies: no stale lock file). Before listening, a process
 * reads /proc/net/unix: with reuse_port it joins only a port whose holders
 * are all nodes of its own cluster, and a port held by anything else (a
 * listener without such a name) is refused naming the holder's pid.
 */
#define GUARD_PREFIX "livecount-port:"

static int guard_fd = -1;

static uint64_t
fnv64(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

/* The cluster's identity: redis_url after any credentials, hashed. */
static void
cluster_tag(const struct lc_config *cfg, char *out, size_t cap)
{
	const char *u = cfg->redis_url, *p, *at, *slash;

	if (!u[0]) {
		snprintf(out, cap, "standalone");
		return;
	}
	p = strstr(u, "://");
	p = p ? p + 3 : u;
	slash = strchr(p, '/');
	at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (at)
		p = at + 1;
	snprintf(out, cap, "%016llx", (unsigned long long)fnv64(p, strlen(p)));
}

/* Binds this process's guard name (kept open until exit). */
static void
guard_hold(int port, const char *tag, int node_id)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
			 GUARD_PREFIX "%d:%s:%d:%ld", port, tag, node_id,
			 (long)getpid());
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			     (size_t)n))) {
		close(fd);
		return;
	}
	guard_fd = fd;
}

#define MAX_LISTENERS 64

/* The inodes of the TCP sockets listening on port (SO_REUSEPORT: several). */
static size_t
listener_inodes(int port, unsigned long *inodes, size_t max)
{
	char line[512], want[16];
	FILE *f = fopen("/proc/net/tcp", "r");
	size_t n = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), ":%04X", port);
	while (n < max && fgets(line, sizeof(line), f)) {
		char local[64], st[8];
		unsigned long ino;

		if (sscanf(line, "%*s %63s %*s %7s %*s %*s %*s %*s %*s %lu",
			   local, st, &ino) == 3 &&
		    !strcmp(st, "0A") && strstr(local, want) &&
		    strlen(strstr(local, want)) == strlen(want))
			inodes[n++] = ino;
	}
	fclose(f);
	return n;
}

/* Whether process pid holds one of the sockets inodes[0..n). */
static bool
pid_holds(long pid, const unsigned long *inodes, size_t n)
{
	char path[64];
	DIR *fds;
	struct dirent *fe;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	if (!n || !(fds = opendir(path)))
		return false;
	while (!found && (fe = readdir(fds))) {
		char fp[128], target[64];
		unsigned long ino;
		ssize_t len;

		snprintf(fp, sizeof(fp), "%s/%.32s", path, fe->d_name);
		len = readlink(fp, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &ino) != 1)
			continue;
		for (size_t i = 0; i < n && !found; i++)
			found = inodes[i] == ino;
	}
	closedir(fds);
	return found;
}

/*
 * Finds another livecount process's guard on port whose process listens
 * on it; fills its tag, node and pid. With `other_cluster`, only one whose
 * tag differs from `tag`. A process still stopping (its listener closed)
 * or refused a moment ago keeps its name until it exits: it does not
 * count, or a free port reused by the next server would look held (seen
 * under ASan: a node refused by a standalone server of an earlier test).
 */
static bool
guard_find(int port, const char *tag, bool other_cluster, char *htag,
	   size_t htlen, int *hnode, long *hpid)
{
	unsigned long inodes[MAX_LISTENERS];
	size_t ninodes = listener_inodes(port, inodes, MAX_LISTENERS);
	char line[512], want[64];
	FILE *f = fopen("/proc/net/unix", "r");
	bool found = false;

	if (!f)
		return false;
	snprintf(want, sizeof(want), "@" GUARD_PREFIX "%d:", port);
	while (!found && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, want), *c;
		long pid;
		int node;

		if (!p)
			continue;
		p += strlen(want);
		c = strchr(p, ':');
		if (!c || sscanf(c, ":%d:%ld", &node, &pid) != 2 ||
		    pid == (long)getpid())
			continue;
		if (other_cluster && (size_t)(c - p) == strlen(tag) &&
		    !memcmp(p, tag, (size_t)(c - p)))
			continue;
		if (!pid_holds(pid, inodes, ninodes))
			continue;
		snprintf(htag, htlen, "%.*s", (int)(c - p), p);
		*hnode = node;
		*hpid = pid;
		found = true;
	}
	fclose(f);
	return found;
}

/* The pid and name of the process listening on TCP port, if we can see. */
static bool
tcp_holder(int port, long *pid, char *name, size_t nlen)
{
	unsigned long inodes[MAX_LISTENERS];
	size_t n = listener_inodes(port, inodes, MAX_LISTENERS);
	char path[64];
	DIR *d;
	struct dirent *de;
	bool found = false;

	if (!n || !(d = opendir("/proc")))
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		found = pid_holds(strtol(de->d_name, NULL, 10), inodes, n);
		if (found) {
			FILE *c;

			*pid = strtol(de->d_name, NULL, 10);
			snprintf(path, sizeof(path), "/proc/%ld/comm", *pid);
			c = fopen(path, "r");
			name[0] = '\0';
			if (c) {
				if (fgets(name, (int)nlen, c))
					name[strcspn(name, "\n")] = '\0';
				fclose(c);
			}
		}
	}
	closedir(d);
	return found;
}

static void
describe_holder(const char *htag, int hnode, long hpid, bool other, char *out,
		size_t cap)
{
	if (!strcmp(htag, "standalone"))
		snprintf(out, cap,
			 "livecount pid %ld, a standalone server (no "
			 "redis_url)",
			 hpid);
	else
		snprintf(out, cap, "livecount pid %ld, node %d of %s", hpid,
			 hnode,
			 other ? "another cluster (another redis_url)"
			       : "a cluster");
}

/*
 * Decides whether this process may listen on port: 0, or -1 with the
 * reason (naming the holder) in err.
 */
static int
check_port_share(const struct lc_config *cfg, int port, char *err,
		 size_t errlen)
{
	char tag[32], htag[32], who[200], name[64];
	int hnode;
	long hpid;

	cluster_tag(cfg, tag, sizeof(tag));
	guard_hold(port, tag, cfg->node_id);
	if (!cfg->reuse_port)
		return 0; /* check_port_free refuses any listener */
	/*
	 * A standalone server shares with nobody, not even its like. A
	 * holder counts only while it listens on the port (guard_find).
	 */
	if (guard_find(port, tag, strcmp(tag, "standalone") != 0, htag,
		       sizeof(htag), &hnode, &hpid)) {
		describe_holder(htag, hnode, hpid, true, who, sizeof(who));
		snprintf(err, errlen,
			 "cannot share port %d: it is held by %s; reuse_port "
			 "shares a port only among nodes of one cluster",
			 port, who);
		return -1;
	}
	if (check_port_free(cfg->bind, port, err, errlen) &&
	    !guard_find(port, tag, false, htag, sizeof(htag), &hnode, &hpid)) {
		/* Busy, and by no node of ours: another program. */
		if (tcp_holder(port, &hpid, name, sizeof(name)))
			snprintf(err, errlen,
				 "cannot share port %d: it is held by another "
				 "program (pid %ld, %s), not a livecount node "
				 "of this cluster",
				 port, hpid, name[0] ? name : "?");
		else
			snprintf(err, errlen,
				 "cannot share port %d: it is held by another "
				 "program (not a livecount node of this "
				 "cluster)",
				 port);
		return -1;
	}
	return 0;
}

int
lc_server_start(struct lc_server *srv)
{
	const struct lc_config *cfg = srv->cfg;
	char err[640];
	int port = cfg->port;
	int64_t max_conns;

	pthread_mutex_init(&srv->start_lock, NULL);
	pthread_cond_init(&srv->start_cond, NULL);
	max_conns = cfg->max_connections;
	if (!max_conns) {
		struct rlimit rl;

		/* Leave room for listeners, the database and the loop. */
		getrlimit(RLIMIT_NOFILE, &rl);
		max_conns = rl.rlim_cur == RLIM_INFINITY
				? INT64_MAX
				: (int64_t)rl.rlim_cur - 64;
	}
	if (lc_conn_limits_init(&srv->limits, max_conns, cfg->max_conns_per_ip))
		return LC_ENOMEM;
	if (port && check_port_share(cfg, port, err, sizeof(err))) {
		lc_err("%s", err);
		return LC_EBUSY;
	}
	if (port && !cfg->reuse_port &&
	    check_port_free(cfg->bind, port, err, sizeof(err))) {
		lc_err("%s", err);
		return LC_EBUSY;
	}
	srv->workers = calloc((size_t)srv->nworkers, sizeof(*srv->workers));
	if (!srv->workers)
		return LC_ENOMEM;
	for (int i = 0; i < srv->nworkers; i++) {
		struct lc_worker *w = &srv->workers[i];

		if (lc_worker_init(w, srv, i) ||
		    lc_counter_add_reader(srv->counter, &w->qs))
			return LC_ENOMEM;
		w->source.kick = &srv->dispatch->kick; /* leading edge */
		w->peek_ep = -1;		       /* made by the worker */
		w->listen_fd = bind_listener(cfg->bind, port, err, sizeof(err));
		if (w->listen_fd < 0) {
			lc_err("%s", err);
			return LC_EIO;
		}
		if (!port) {
			/* The first socket picked the port; the rest join it.
			 */
			struct sockaddr_in sa;
			socklen_t sl = sizeof(sa);

			getsockname(w->listen_fd, (struct sockaddr *)&sa, &sl);
			port = ntohs(sa.sin_port);
		}
	}
	srv->port = port;
	/*
	 * The dispatcher's sources are set before any worker runs: a like's
	 * answer reads every source (lc_dispatch_read), and one taken before
	 * they were set was answered from the table alone (count 0).
	 */
	srv->sources = calloc((size_t)srv->nworkers, sizeof(*srv->sources));
	if (!srv->sources)
		return LC_ENOMEM;
	for (int i = 0; i < srv->nworkers; i++)
		srv->sources[i] = &srv->workers[i].source;
	srv->dispatch->sources = srv->sources;
	srv->dispatch->nsources = (size_t)srv->nworkers;
	for (int i = 0; i < srv->nworkers; i++)
		if (pthread_create(&srv->workers[i].thread, NULL, worker_main,
				   &srv->workers[i])) {
			lc_err("cannot start worker thread %d", i);
			return LC_EIO;
		}
	pthread_mutex_lock(&srv->start_lock);
	while (srv->started < srv->nworkers)
		pthread_cond_wait(&srv->start_cond, &srv->start_lock);
	pthread_mutex_unlock(&srv->start_lock);
	for (int i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].start_rc)
			return LC_EIO;
	return 0;
}

void
lc_server_goodbye(struct lc_server *srv, int wait_ms)
{
	int64_t until = lc_mono_us() + (int64_t)wait_ms * 1000;

	atomic_store(&srv->goodbye, true);
	for (int i = 0; i < srv->nworkers; i++)
		if (srv->workers[i].ctx)
			lws_cancel_service(srv->workers[i].ctx);
	/*
	 * Give the close frames and hints a moment to leave: a WebSocket is
	 * gone only once its close handshake is (or any other connection
	 * closes), so wait for every connection, at most wait_ms.
	 */
	while (lc_mono_us() < until && atomic_load(&srv->limits.total) > 0)
		usleep(10000);
}

void
lc_server_stop(struct lc_server *srv)
{
	if (!srv->workers)
		return;
	/* Answers wake the workers' contexts: stop them first (defer.h). */
	for (int i = 0; i < srv->nworkers; i++)
		lc_history_stop(srv->workers[i].history);
	for (int i = 0; i < srv->nworkers; i++) {
		struct lc_worker *w = &srv->workers[i];

		atomic_store(&w->stop, true);
		if (w->ctx)
			lws_cancel_service(w->ctx);
	}
	for (int i = 0; i < srv->nworkers; i++) {
		struct lc_worker *w = &srv->workers[i];

		if (w->thread)
			pthread_join(w->thread, NULL);
		w->ctx = NULL;
		if (w->listen_fd >= 0)
			close(w->listen_fd);
		free(w->buf);
	}
}

void
lc_server_free(struct lc_server *srv)
{
	for (int i = 0; srv->workers && i < srv->nworkers; i++)
		lc_worker_cleanup(&srv->workers[i]);
	free(srv->workers);
	free(srv->sources);
	srv->sources = NULL;
	srv->workers = NULL;
	lc_conn_limits_cleanup(&srv->limits);
	pthread_mutex_destroy(&srv->start_lock);
	pthread_cond_destroy(&srv->start_cond);
}
