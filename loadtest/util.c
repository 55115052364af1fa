/*
 * Small shared pieces: clocks, the URL table, the shared region, socket
 * set-up, and a blocking HTTP/1.1 client used only outside the measured
 * phases (health checks and /v1/counts verification).
 */
#include "lc_load.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

volatile int lc_stop;

uint64_t
lc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
lc_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull +
	       (uint64_t)ts.tv_nsec / 1000000ull;
}

uint64_t
lc_rand(uint64_t *s)
{
	/* xorshift64*: plenty for WebSocket keys and masks. */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

double
lc_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int
lc_proc_sample(int pid, double *cpu_s, long *rss_kb)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the ")" that ends the command name: state is field 3,
	 * utime 14, stime 15, rss (pages) 24. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long ut = 0, stt = 0;
	long rss = 0;
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d "
		   "%*d %*d %*d "
		   "%*d %*d %*u %*u %ld",
		   &ut, &stt, &rss) != 3)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	*cpu_s = (double)(ut + stt) / (double)(hz > 0 ? hz : 100);
	*rss_kb = rss * (sysconf(_SC_PAGESIZE) / 1024);
	return 0;
}

int
lc_server_sample(const cfg_t *cfg, double *cpu_s, long *rss_kb)
{
	double c = 0, ct;
	long r = 0, rt;
	int ok = 0;
	for (int i = 0; i < cfg->nserver_pids; i++)
		if (lc_proc_sample(cfg->server_pids[i], &ct, &rt) == 0) {
			c += ct;
			r += rt;
			ok++;
		}
	if (!ok)
		return -1;
	*cpu_s = c;
	*rss_kb = r;
	return 0;
}

/* ---- URL table ---- */

size_t
lc_pct_encode(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		    ch == '_' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	return o;
}

static size_t
json_escape(const char *s, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[ch >> 4];
			out[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			out[o++] = (char)ch;
		}
	}
	return o;
}

static uint64_t
fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

int
urltab_build(urltab_t *t, const char *prefix, uint32_t n, bool items)
{
	memset(t, 0, sizeof(*t));
	size_t plen = strlen(prefix);
	if (plen + 12 > 2048 || n == 0)
		return -1;
	size_t per = (plen + 12) * (1 + 3 + (items ? 6 : 0) + 1) + 32;
	t->arena = malloc(per * n);
	t->raw = calloc(n, sizeof(*t->raw));
	t->enc = calloc(n, sizeof(*t->enc));
	t->item = items ? calloc(n, sizeof(*t->item)) : NULL;
	t->rawlen = calloc(n, sizeof(uint16_t));
	t->enclen = calloc(n, sizeof(uint16_t));
	t->itemlen = items ? calloc(n, sizeof(uint16_t)) : NULL;
	uint32_t cap = 1;
	while (cap < 2 * n)
		cap <<= 1;
	t->slots = calloc(cap, sizeof(uint32_t));
	t->mask = cap - 1;
	if (!t->arena || !t->raw || !t->enc || !t->rawlen || !t->enclen ||
	    !t->slots || (items && (!t->item || !t->itemlen)))
		return -1;
	t->n = n;
	char *a = t->arena;
	for (uint32_t i = 0; i < n; i++) {
		int l = snprintf(a, plen + 12, "%su%u", prefix, i);
		t->raw[i] = a;
		t->rawlen[i] = (uint16_t)l;
		a += l + 1;
		t->enc[i] = a;
		t->enclen[i] = (uint16_t)lc_pct_encode(t->raw[i], (size_t)l, a);
		a += t->enclen[i] + 1;
		if (items) {
			char *s = a;
			memcpy(s, "{\"url\":\"", 8);
			size_t o = 8 + json_escape(t->raw[i], (size_t)l, s + 8);
			memcpy(s + o, "\",\"n\":1}", 8);
			o += 8;
			t->item[i] = s;
			t->itemlen[i] = (uint16_t)o;
			a += o + 1;
		}
		uint32_t h = (uint32_t)fnv1a(t->raw[i], (size_t)l) & t->mask;
		while (t->slots[h])
			h = (h + 1) & t->mask;
		t->slots[h] = i + 1;
	}
	return 0;
}

void
urltab_free(urltab_t *t)
{
	free(t->arena);
	free(t->raw);
	free(t->enc);
	free(t->item);
	free(t->rawlen);
	free(t->enclen);
	free(t->itemlen);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

int64_t
urltab_find(const urltab_t *t, const char *url, size_t len)
{
	uint32_t h = (uint32_t)fnv1a(url, len) & t->mask;
	while (t->slots[h]) {
		uint32_t i = t->slots[h] - 1;
		if (t->rawlen[i] == len && memcmp(t->raw[i], url, len) == 0)
			return i;
		h = (h + 1) & t->mask;
	}
	return -1;
}

/* ---- shared region ---- */

shm_t *
shm_create(uint32_t urls, uint32_t ring_size)
{
	size_t hdr = (sizeof(shm_t) + 63) & ~(size_t)63;
	size_t fc = (size_t)urls * sizeof(int64_t);
	size_t rs = (size_t)urls * ring_size * sizeof(ring_ent_t);
	size_t total = hdr + fc + rs;
	void *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	shm_t *s = p;
	s->ring_mask = ring_size ? ring_size - 1 : 0;
	s->final_counts = urls ? (int64_t *)((char *)p + hdr) : NULL;
	s->rings =
	    (urls && ring_size) ? (ring_ent_t *)((char *)p + hdr + fc) : NULL;
	return s;
}

/* ---- sockets ---- */

int
lc_connect_nb(const cfg_t *cfg, uint32_t src)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg->sources > 1) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		sa.sin_addr.s_addr =
		    htonl(0x7f000001u + src % (uint32_t)cfg->sources);
		/* Let connect() pick the port per 4-tuple, not per source
		 * address. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
			   sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	if (connect(fd, (const struct sockaddr *)&cfg->dst, sizeof(cfg->dst)) <
		0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* ---- blocking HTTP client ---- */

void
bhttp_init(bhttp_t *b, const cfg_t *cfg)
{
	b->cfg = cfg;
	b->fd = -1;
	b->cap = 1 << 16;
	b->buf = malloc(b->cap);
	b->len = 0;
}

void
bhttp_cleanup(bhttp_t *b)
{
	if (b->fd >= 0)
		close(b->fd);
	free(b->buf);
	b->fd = -1;
	b->buf = NULL;
}

static int
wait_fd(int fd, short ev, uint64_t deadline)
{
	for (;;) {
		uint64_t now = lc_now_ns();
		if (now >= deadline)
			return -1;
		struct pollfd p = {.fd = fd, .events = ev};
		int r = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int
bhttp_try(bhttp_t *b, const char *req, size_t rlen, int *status,
	  const char **body, size_t *blen, uint64_t deadline, bool *sent_any)
{
	*sent_any = false;
	if (b->fd < 0) {
		int fd = lc_connect_nb(b->cfg, 0);
		if (fd < 0)
			return -1;
		b->fd = fd;
		if (wait_fd(fd, POLLOUT, deadline) < 0)
			return -1;
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err)
			return -1;
	}
	size_t off = 0;
	while (off < rlen) {
		ssize_t w = send(b->fd, req + off, rlen - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(b->fd, POLLOUT, deadline) < 0)
				return -1;
			continue;
		}
		return -1;
	}
	*sent_any = true;
	b->len = 0;
	for (;;) {
		if (b->len == b->cap) {
			char *nb = realloc(b->buf, b->cap * 2);
			if (!nb)
				return -1;
			b->buf = nb;
			b->cap *= 2;
		}
		ssize_t r = recv(b->fd, b->buf + b->len, b->cap - b->len, 0);
		if (r > 0) {
			b->len += (size_t)r;
			http_head_t h;
			long done =
			    http_parse_response(b->buf, b->len, &h, body, blen);
			if (done < 0)
				return -1;
			if (done > 0) {
				*status = h.status;
				if (h.conn_close) {
					close(b->fd);
					b->fd = -1;
				}
				return 0;
			}
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(b->fd, POLLIN, deadline) < 0)
				return -1;
			continue;
		}
		if (r == 0 && b->len == 0)
			*sent_any = false; /* keep-alive connection closed under
					      us: retry */
		return -1;
	}
}

int
bhttp_request(bhttp_t *b, const char *method, const char *path, int *status,
	      const char **body, size_t *blen, int timeout_ms)
{
	size_t need = strlen(path) + 256;
	char stackbuf[4096];
	char *req = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
	if (!req)
		return -1;
	int rl = snprintf(req, need,
			  "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
			  "livecount-load\r\n%s\r\n",
			  method, path, b->cfg->hosthdr,
			  strcmp(method, "GET") ? "Content-Length: 0\r\n" : "");
	uint64_t deadline = lc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int rc = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		bool sent;
		if (bhttp_try(b, req, (size_t)rl, status, body, blen, deadline,
			      &sent) == 0) {
			rc = 0;
			break;
		}
		if (b->fd >= 0) {
			close(b->fd);
			b->fd = -1;
		}
		if (sent)
			break;
	}
	if (req != stackbuf)
		free(req);
	return rc;
}

struct fc_ctx {
	const urltab_t *t;
	int64_t *out;
	int bad;
};

static void
fc_cb(void *vctx, const char *url, size_t ulen, int64_t count, int64_t delta,
      bool has_delta)
{
	(void)delta;
	(void)has_delta;
	struct fc_ctx *c = vctx;
	int64_t i = urltab_find(c->t, url, ulen);
	if (i < 0)
		c->bad++;
	else
		c->out[i] = count;
}

int
lc_fetch_counts(const cfg_t *cfg, const urltab_t *t, int64_t *out)
{
	bhttp_t b;
	bhttp_init(&b, cfg);
	size_t cap = 64;
	for (uint32_t i = 0; i < t->n && i < 50; i++)
		cap += t->enclen[i] + 5u;
	cap = cap * 2 + 4096;
	char *path = malloc(cap);
	int rc = 0;
	for (uint32_t i = 0; i < t->n && rc == 0; i += 50) {
		size_t o = (size_t)snprintf(path, cap, "/v1/counts?");
		for (uint32_t j = i; j < t->n && j < i + 50; j++) {
			if (o + t->enclen[j] + 8 >= cap) {
				rc = -1;
				break;
			}
			if (j > i)
				path[o++] = '&';
			memcpy(path + o, "url=", 4);
			memcpy(path + o + 4, t->enc[j], t->enclen[j]);
			o += 4 + t->enclen[j];
			out[j] = 0; /* unknown URLs read as 0 */
		}
		path[o] = 0;
		int status = 0;
		const char *body;
		size_t blen;
		if (rc ||
		    bhttp_request(&b, "GET", path, &status, &body, &blen,
				  10000) < 0 ||
		    status != 200) {
			fprintf(stderr,
				"livecount-load: GET /v1/counts failed (status "
				"%d)\n",
				status);
			rc = -1;
			break;
		}
		struct fc_ctx c = {.t = t, .out = out};
		lc_msg_t m;
		if (js_parse_msg(body, blen, &m, fc_cb, &c) < 0 || c.bad) {
			fprintf(stderr,
				"livecount-load: bad /v1/counts body: %.*s\n",
				(int)(blen > 200 ? 200 : blen), body);
			rc = -1;
		}
	}
	free(path);
	bhttp_cleanup(&b);
	return rc;
}

/* ---- progress ---- */

void
lc_progress(const cfg_t *cfg, shm_t *shm, int proc, const stats_t *st,
	    uint64_t now, uint64_t t0, const char *phase)
{
	uint64_t *pg = shm->progress[proc];
	__atomic_store_n(&pg[PG_REQ], st->requests_ok, __ATOMIC_RELAXED);
	__atomic_store_n(&pg[PG_LIKES], st->likes_acked, __ATOMIC_RELAXED);
	__atomic_store_n(&pg[PG_ERR], stats_errors(st), __ATOMIC_RELAXED);
	__atomic_store_n(&pg[PG_CONN], st->connections, __ATOMIC_RELAXED);
	__atomic_store_n(&pg[PG_MSGS], st->msgs, __ATOMIC_RELAXED);
	__atomic_store_n(&pg[PG_READY], st->ready, __ATOMIC_RELAXED);
	if (proc != 0 || cfg->quiet)
		return;
	uint64_t tot[6] = {0};
	for (int p = 0; p < cfg->procs; p++)
		for (int k = 0; k < 6; k++)
			tot[k] += __atomic_load_n(&shm->progress[p][k],
						  __ATOMIC_RELAXED);
	double t = t0 && now > t0 ? (double)(now - t0) / 1e9 : 0.0;
	if (cfg->mode == LC_MODE_INGEST)
		fprintf(stderr,
			"[%s %5.1fs] requests=%llu likes=%llu errors=%llu "
			"conns=%llu\n",
			phase, t, (unsigned long long)tot[PG_REQ],
			(unsigned long long)tot[PG_LIKES],
			(unsigned long long)tot[PG_ERR],
			(unsigned long long)tot[PG_CONN]);
	else
		fprintf(stderr,
			"[%s %5.1fs] subscribers ready=%llu/%d msgs=%llu "
			"likes=%llu errors=%llu\n",
			phase, t, (unsigned long long)tot[PG_READY],
			cfg->subscribers, (unsigned long long)tot[PG_MSGS],
			(unsigned long long)tot[PG_LIKES],
			(unsigned long long)tot[PG_ERR]);
}
