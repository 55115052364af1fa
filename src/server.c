/*
 * Worker threads: one lws_context each on its own libuv loop, one
 * SO_REUSEPORT listening socket each, the per-worker sweep timer, and the
 * mailbox wake-up.
 *
 * Threads: lc_server_start/stop run on the main thread; everything else on
 * the worker threads. Main talks to a worker only through `stop`, the
 * source mailbox and lws_cancel_service().
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
#include "lc/batcher.h"
#include "lc/common.h"
#include "lc/hash.h"
#include "lc/server.h"
#include "lc/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 64
#define SWEEP_US (1000 * LWS_US_PER_MS)

static int listen_callback(struct lws *wsi, enum lws_callback_reasons reason,
			   void *user, void *in, size_t len);

static const struct lws_protocols protocols_template[] = {
    /* [0] also receives plain HTTP and SSE; pss size set at start */
    {"http", lc_http_callback, 0, 0, 0, NULL, 0},
    {"livecount.v1", lc_ws_callback, sizeof(struct lc_session), 256, 0, NULL,
     0},
    {"lc-listen", listen_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No per-connection validity timers: the sweep does pings (LWS-NOTES). */
static const lws_retry_bo_t retry_policy = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

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

void
lc_worker_session_link(struct lc_worker *w, struct lc_session *s)
{
	s->prev = NULL;
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
}

void
lc_worker_session_unlink(struct lc_worker *w, struct lc_session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (w->sessions == s)
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void
tune_socket(int fd)
{
	int one = 1, idle = 60, intvl = 10, cnt = 3;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Dead peers of idle subscribers are found by the kernel too. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* Counts the connection against the limits; false when over one. */
static bool
conn_admit(struct lc_server *srv, struct lc_conn *c)
{
	const struct lc_config *cfg = srv->cfg;
	uint32_t per_ip;

	if (atomic_fetch_add(&srv->conns_total, 1) + 1 > srv->max_conns) {
		atomic_fetch_sub(&srv->conns_total, 1);
		return false;
	}
	per_ip = atomic_fetch_add(&srv->ip_conns[c->bucket], 1) + 1;
	if (cfg->max_conns_per_ip && per_ip > (uint32_t)cfg->max_conns_per_ip) {
		atomic_fetch_sub(&srv->ip_conns[c->bucket], 1);
		atomic_fetch_sub(&srv->conns_total, 1);
		return false;
	}
	return true;
}

static void
conn_uncount(struct lc_server *srv, struct lc_conn *c)
{
	atomic_fetch_sub(&srv->ip_conns[c->bucket], 1);
	atomic_fetch_sub(&srv->conns_total, 1);
}

void
lc_conn_release(struct lws *wsi)
{
	struct lc_conn *c = lc_conn_of(wsi);
	struct lc_worker *w;

	if (!c)
		return;
	lws_set_opaque_user_data(wsi, NULL);
	w = lws_context_user(lws_get_context(wsi));
	conn_uncount(w->srv, c);
	free(c);
}

/* Hands an accepted socket to lws, within the connection limits. */
static void
adopt(struct lc_worker *w, int fd, uint32_t ip)
{
	struct lc_conn *c = calloc(1, sizeof(*c));
	struct lws *wsi;

	if (!c) {
		close(fd);
		return;
	}
	c->ip = ip;
	c->bucket = (uint16_t)(lc_hash_mix(ip) & (LC_IP_BUCKETS - 1));
	if (!conn_admit(w->srv, c)) {
		LC_STAT_ADD(w->stats.accept_refused, 1);
		free(c);
		close(fd);
		return;
	}
	tune_socket(fd);
	/*
	 * The record is attached only once lws returns the wsi: a failed
	 * adoption may still be closed (and reported destroyed) later, and
	 * must not find a record we already freed.
	 */
	wsi = lws_adopt_socket_vhost(w->vh, fd);
	if (!wsi) {
		/* lws closed the fd. */
		LC_STAT_ADD(w->stats.accept_refused, 1);
		conn_uncount(w->srv, c);
		free(c);
		return;
	}
	lws_set_opaque_user_data(wsi, c);
}

int
lc_worker_rate_take(struct lc_worker *w, struct lws *wsi, int64_t cost)
{
	int limit = w->srv->cfg->max_likes_per_sec_per_ip;
	struct lc_conn *c = lc_conn_of(wsi);
	struct lc_rate *r;
	int64_t now;

	if (!limit || !c)
		return 0;
	if (cost > limit)
		cost = limit; /* a batch larger than the rate still gets in */
	r = &w->rate[lc_hash_mix(c->ip) & (LC_RATE_SLOTS - 1)];
	now = lc_now_ms();
	if (r->ip != c->ip || !r->last_ms) {
		/* Direct-mapped: a new address takes the slot, full bucket. */
		r->ip = c->ip;
		r->tokens = limit;
		r->last_ms = now;
	}
	r->tokens += (double)(now - r->last_ms) * limit / 1000.0;
	if (r->tokens > limit)
		r->tokens = limit;
	r->last_ms = now;
	if (r->tokens < (double)cost) {
		int wait = (int)(((double)cost - r->tokens) / limit) + 1;

		return wait;
	}
	r->tokens -= (double)cost;
	return 0;
}

static void
drain_mailbox(struct lc_worker *w)
{
	struct lc_update_set *sets[16];
	size_t n;

	while ((n = lc_source_take_updates(&w->source, sets, 16))) {
		for (size_t i = 0; i < n; i++) {
			lc_worker_apply_updates(w, sets[i]);
			lc_update_set_unref(sets[i]);
		}
	}
	lc_worker_requeue_waiting(w);
	lc_worker_flush_pending(w);
}

static void
sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct lc_worker *w = lws_container_of(sul, struct lc_worker, sweep);

	lc_worker_sweep(w, lc_now_ms());
	lws_sul_schedule(w->ctx, 0, &w->sweep, sweep_cb, SWEEP_US);
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
			lws_context_destroy(w->ctx);
			return 0;
		}
		drain_mailbox(w);
		return 0;

	case LWS_CALLBACK_RAW_CLOSE_FILE:
		return 0;

	default:
		return 0;
	}
}

static void
wake_worker(void *ctx)
{
	lws_cancel_service(ctx);
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
	protocols[0].per_session_data_size = lc_http_pss_size();

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
	info.keepalive_timeout = 60;
	info.retry_and_idle_policy = &retry_policy;
	info.alpn = "http/1.1";
	if (w->srv->cfg->tls_cert[0]) {
		/* Adopted sockets then start with a TLS handshake. */
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = w->srv->cfg->tls_cert;
		info.ssl_private_key_filepath = w->srv->cfg->tls_key;
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
	w->source.wake = wake_worker;
	w->source.wake_arg = w->ctx;
	lws_sul_schedule(w->ctx, 0, &w->sweep, sweep_cb, SWEEP_US);
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
		snprintf(err, errlen,
			 "cannot listen on %s:%d: the port is in use by "
			 "another process (set reuse_port = yes on every "
			 "node that should share it)",
			 addr, port);
		rc = -1;
	}
	close(fd);
	return rc;
}

int
lc_server_start(struct lc_server *srv)
{
	const struct lc_config *cfg = srv->cfg;
	char err[256];
	int port = cfg->port;

	pthread_mutex_init(&srv->start_lock, NULL);
	pthread_cond_init(&srv->start_cond, NULL);
	srv->ip_conns = calloc(LC_IP_BUCKETS, sizeof(*srv->ip_conns));
	if (!srv->ip_conns)
		return LC_ENOMEM;
	srv->max_conns = cfg->max_connections;
	if (!srv->max_conns) {
		struct rlimit rl;

		/* Leave room for listeners, the database and the loop. */
		getrlimit(RLIMIT_NOFILE, &rl);
		srv->max_conns = rl.rlim_cur == RLIM_INFINITY
				     ? INT64_MAX
				     : (int64_t)rl.rlim_cur - 64;
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

		w->srv = srv;
		w->id = i;
		w->listen_fd = -1;
		if (lc_source_init(&w->source) || lc_subs_init(&w->subs))
			return LC_ENOMEM;
		w->source.kick = &srv->dispatch->kick; /* leading edge */
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
lc_server_stop(struct lc_server *srv)
{
	if (!srv->workers)
		return;
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
		lc_store_close(w->reader);
		free(w->buf);
	}
}

/** Frees the workers' sources and indexes after the final tick. */
void
lc_server_free(struct lc_server *srv)
{
	for (int i = 0; srv->workers && i < srv->nworkers; i++) {
		lc_subs_cleanup(&srv->workers[i].subs);
		lc_source_cleanup(&srv->workers[i].source);
	}
	free(srv->workers);
	srv->workers = NULL;
	free(srv->ip_conns);
	srv->ip_conns = NULL;
	pthread_mutex_destroy(&srv->start_lock);
	pthread_cond_destroy(&srv->start_cond);
}
