/*
 * Cluster mode's wire format (Redis keys, members, pub/sub messages) and
 * the dispatcher <-> bridge hand-offs. See cluster.h.
 *
 * Threads: the encoding functions are pure; the hand-offs are called by
 * the dispatcher and the bridge threads, under the cluster's mutex, for a
 * pointer swap or an append.
 *
 * A note on the hash tag: Redis Cluster maps a key to a slot by the text
 * between its first '{' and '}'. lc_hash is seeded per process, so every
 * node would tag a URL differently; the tag is FNV-1a instead, the same on
 * every node and every run. Redis Cluster itself is not supported yet
 * (hiredis 0.14.1 has no slot map); the tag keeps that door open.
 */
#define _GNU_SOURCE
#include "lc/cluster.h"
#include "lc/common.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
lc_buf_add(struct lc_buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *q;

		while (cap < b->n + n + 1)
			cap *= 2;
		q = realloc(b->p, cap);
		if (!q)
			return LC_ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

void
lc_buf_free(struct lc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static uint32_t
fnv1a(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

size_t
lc_cluster_key(char *out, size_t cap, const char *url, size_t len)
{
	uint32_t h = fnv1a(url, len);

	if (cap < LC_CLUSTER_KEY_HEAD + len + 1)
		return 0;
	snprintf(out, cap, LC_CLUSTER_KEY_PREFIX "{%04x}:",
		 (unsigned)((h ^ (h >> 16)) & 0xffff));
	memcpy(out + LC_CLUSTER_KEY_HEAD, url, len);
	out[LC_CLUSTER_KEY_HEAD + len] = '\0';
	return LC_CLUSTER_KEY_HEAD + len;
}

bool
lc_cluster_key_url(const char *key, size_t klen, const char **url, size_t *len)
{
	if (klen <= LC_CLUSTER_KEY_HEAD ||
	    memcmp(key, LC_CLUSTER_KEY_PREFIX "{", 6) ||
	    memcmp(key + 10, "}:", 2))
		return false;
	*url = key + LC_CLUSTER_KEY_HEAD;
	*len = klen - LC_CLUSTER_KEY_HEAD;
	return true;
}

/* Parses a decimal in [0, max] that fills exactly [s, s+len). */
static bool
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (!len || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (x > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return true;
}

/* Parses a slot's name "<node>" or "<node>.<8 hex digits>" (cluster.h). */
static bool
slot_parse(const char *s, size_t len, struct lc_slot_id *id)
{
	const char *dot = memchr(s, '.', len);
	uint64_t v;
	uint32_t inst = 0;

	if (dot) {
		if (s + len - dot - 1 != 8)
			return false;
		for (const char *c = dot + 1; c < s + len; c++) {
			int d = *c >= '0' && *c <= '9'	 ? *c - '0'
				: *c >= 'a' && *c <= 'f' ? *c - 'a' + 10
							 : -1;

			if (d < 0)
				return false;
			inst = inst << 4 | (uint32_t)d;
		}
		if (!inst)
			return false;
		len = (size_t)(dot - s);
	}
	if (!parse_u64(s, len, LC_MAX_NODE_ID, &v) || !v)
		return false;
	*id = (struct lc_slot_id){(uint32_t)v, inst};
	return true;
}

int
lc_slot_id_format(char *out, size_t cap, struct lc_slot_id id)
{
	return id.inst ? snprintf(out, cap, "%" PRIu32 ".%08" PRIx32, id.node,
				  id.inst)
		       : snprintf(out, cap, "%" PRIu32, id.node);
}

bool
lc_cluster_member_parse(const char *m, size_t len, struct lc_slot_id *id,
			enum lc_member_kind *kind)
{
	if (len < 3 || m[len - 2] != ':' ||
	    (m[len - 1] != 'l' && m[len - 1] != 'u' && m[len - 1] != 'v') ||
	    !slot_parse(m, len - 2, id))
		return false;
	*kind = m[len - 1] == 'l'   ? LC_MEMBER_LIKES
		: m[len - 1] == 'u' ? LC_MEMBER_UNLIKES
				    : LC_MEMBER_VIEWS;
	return true;
}

bool
lc_cluster_score_parse(const char *s, size_t len, int64_t *v)
{
	uint64_t u;
	char tmp[64], *end;
	double d;

	if (parse_u64(s, len, INT64_MAX, &u)) {
		*v = (int64_t)u;
		return true;
	}
	/* Redis prints large scores as doubles ("1e+17"). */
	if (!len || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	d = strtod(tmp, &end);
	if (*end || errno || !(d >= 0) || d >= 9.2e18 || d != floor(d))
		return false;
	*v = (int64_t)d;
	return true;
}

int
lc_msg_begin(struct lc_buf *b, const struct lc_msg_header *h)
{
	char line[96];
	int n = snprintf(line, sizeof(line),
			 LC_CLUSTER_MSG_MAGIC " %" PRIu32 " %016" PRIx64
					      " %" PRIu64 "%s\n",
			 h->node, h->boot, h->seq,
			 h->kind == LC_MSG_BYE	   ? " bye"
			 : h->kind == LC_MSG_HELLO ? " hello"
			 : h->kind == LC_MSG_FULL  ? " full"
						   : "");

	b->n = 0;
	return lc_buf_add(b, line, (size_t)n);
}

int
lc_msg_add(struct lc_buf *b, const struct lc_msg_line *l)
{
	char head[128], w[16] = "-", id[LC_SLOT_ID_MAX];
	int n;

	if (l->watching >= 0)
		snprintf(w, sizeof(w), "%" PRId32, l->watching);
	lc_slot_id_format(id, sizeof(id), l->id);
	n = snprintf(head, sizeof(head),
		     "%s %" PRId64 " %" PRId64 " %" PRId64 " %s ", id,
		     l->r.likes, l->r.unlikes, l->r.views, w);
	if (lc_buf_add(b, head, (size_t)n) || lc_buf_add(b, l->url, l->len) ||
	    lc_buf_add(b, "\n", 1))
		return LC_ENOMEM;
	return 0;
}

/* Splits the next space-separated field off [*p, end). */
static bool
field(const char **p, const char *end, const char **f, size_t *len)
{
	const char *s = *p, *sp = memchr(s, ' ', (size_t)(end - s));

	if (!sp)
		return false;
	*f = s;
	*len = (size_t)(sp - s);
	*p = sp + 1;
	return true;
}

long
lc_msg_parse(const char *p, size_t n, struct lc_msg_header *h,
	     int (*fn)(void *arg, const struct lc_msg_line *l), void *arg)
{
	const char *end = p + n, *nl, *f;
	size_t flen;
	uint64_t v, boot = 0;
	long lines = 0;

	nl = memchr(p, '\n', n);
	if (!nl || !field(&p, nl, &f, &flen) || flen != 3 ||
	    memcmp(f, LC_CLUSTER_MSG_MAGIC, 3) || !field(&p, nl, &f, &flen) ||
	    !parse_u64(f, flen, LC_MAX_NODE_ID, &v) || !v)
		return LC_EINVAL;
	h->node = (uint32_t)v;
	if (!field(&p, nl, &f, &flen) || flen != 16)
		return LC_EINVAL;
	for (size_t i = 0; i < 16; i++) {
		char c = f[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;

		if (d < 0)
			return LC_EINVAL;
		boot = boot << 4 | (uint64_t)d;
	}
	h->boot = boot;
	h->kind = LC_MSG_PLAIN;
	if (field(&p, nl, &f, &flen)) {
		/* "<seq> bye" or "<seq> hello" */
		size_t klen = (size_t)(nl - p);

		if (klen == 3 && !memcmp(p, "bye", 3))
			h->kind = LC_MSG_BYE;
		else if (klen == 5 && !memcmp(p, "hello", 5))
			h->kind = LC_MSG_HELLO;
		else if (klen == 4 && !memcmp(p, "full", 4))
			h->kind = LC_MSG_FULL;
		else
			return LC_EINVAL;
	} else
		f = p, flen = (size_t)(nl - p);
	if (!parse_u64(f, flen, UINT64_MAX, &h->seq))
		return LC_EINVAL;
	p = nl + 1;
	while (p < end) {
		uint64_t l, u, vw, w = 0;
		struct lc_slot_id id;
		struct lc_msg_line line;
		bool has_w;
		int rc;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return LC_EINVAL;
		if (!field(&p, nl, &f, &flen) || !slot_parse(f, flen, &id) ||
		    !field(&p, nl, &f, &flen) ||
		    !parse_u64(f, flen, INT64_MAX, &l) ||
		    !field(&p, nl, &f, &flen) ||
		    !parse_u64(f, flen, INT64_MAX, &u) ||
		    !field(&p, nl, &f, &flen) ||
		    !parse_u64(f, flen, INT64_MAX, &vw) ||
		    !field(&p, nl, &f, &flen))
			return LC_EINVAL;
		has_w = !(flen == 1 && f[0] == '-');
		if ((has_w && !parse_u64(f, flen, INT32_MAX, &w)) || p == nl)
			return LC_EINVAL;
		line = (struct lc_msg_line){
		    id,
		    {(int64_t)l, (int64_t)u, (int64_t)vw},
		    has_w ? (int32_t)w : -1,
		    p,
		    (size_t)(nl - p),
		};
		rc = fn(arg, &line);
		if (rc)
			return rc;
		lines++;
		p = nl + 1;
	}
	return lines;
}

/* ------------------------------------------------------------------ */

struct lc_remote_batch *
lc_remote_batch_new(bool adopt)
{
	struct lc_remote_batch *b = calloc(1, sizeof(*b));

	if (b)
		b->adopt = adopt;
	return b;
}

int
lc_remote_batch_add(struct lc_remote_batch *b, struct lc_slot_id id,
		    struct lc_reading r, int32_t watching, const char *url,
		    size_t len)
{
	struct lc_remote_item *it;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		void *p = realloc(b->items, cap * sizeof(*b->items));

		if (!p)
			return LC_ENOMEM;
		b->items = p;
		b->cap = cap;
	}
	it = &b->items[b->n];
	it->id = id;
	it->r = r;
	it->watching = watching;
	it->url_off = (uint32_t)b->urls.n;
	it->url_len = (uint32_t)len;
	if (lc_buf_add(&b->urls, url, len) || lc_buf_add(&b->urls, "", 1))
		return LC_ENOMEM;
	b->n++;
	return 0;
}

void
lc_remote_batch_free(struct lc_remote_batch *b)
{
	if (!b)
		return;
	free(b->items);
	lc_buf_free(&b->urls);
	free(b);
}

int
lc_cluster_init(struct lc_cluster *cl, uint32_t self, uint32_t inst)
{
	memset(cl, 0, sizeof(*cl));
	cl->self = self;
	cl->own = (struct lc_slot_id){self, inst};
	pthread_mutex_init(&cl->lock, NULL);
	return 0;
}

void
lc_cluster_cleanup(struct lc_cluster *cl)
{
	struct lc_remote_batch *b = cl->in_head;

	while (b) {
		struct lc_remote_batch *next = b->next;

		lc_remote_batch_free(b);
		b = next;
	}
	free(cl->out);
	lc_buf_free(&cl->shares_out);
	pthread_mutex_destroy(&cl->lock);
}

void
lc_cluster_post_remote(struct lc_cluster *cl, struct lc_remote_batch *b)
{
	b->next = NULL;
	pthread_mutex_lock(&cl->lock);
	if (cl->in_tail)
		cl->in_tail->next = b;
	else
		cl->in_head = b;
	cl->in_tail = b;
	cl->in_items += b->n;
	pthread_mutex_unlock(&cl->lock);
}

size_t
lc_cluster_remote_pending(struct lc_cluster *cl)
{
	size_t n;

	pthread_mutex_lock(&cl->lock);
	n = cl->in_items;
	pthread_mutex_unlock(&cl->lock);
	return n;
}

uint64_t
lc_cluster_takes(struct lc_cluster *cl)
{
	uint64_t n;

	pthread_mutex_lock(&cl->lock);
	n = cl->takes;
	pthread_mutex_unlock(&cl->lock);
	return n;
}

void
lc_cluster_post_share(struct lc_cluster *cl, const char *url, size_t len,
		      int32_t w)
{
	struct lc_msg_line l = {{cl->self, 0}, {0, 0, 0}, w, url, len};
	bool full, first;

	pthread_mutex_lock(&cl->lock);
	first = !cl->shares_out.n;
	full = cl->shares_out.n > LC_SHARES_OUT_MAX ||
	       lc_msg_add(&cl->shares_out, &l);
	if (full)
		cl->shares_out.n = 0; /* the full announcement says it all */
	pthread_mutex_unlock(&cl->lock);
	if (full)
		atomic_store(&cl->announce_all, true);
	/* One wake per batch of lines: the bridge takes them all at once. */
	if ((first || full) && cl->wake_bridge)
		cl->wake_bridge(cl->wake_arg);
}

void
lc_cluster_take_shares(struct lc_cluster *cl, struct lc_buf *out)
{
	struct lc_buf t;

	pthread_mutex_lock(&cl->lock);
	t = cl->shares_out;
	cl->shares_out = *out;
	cl->shares_out.n = 0;
	pthread_mutex_unlock(&cl->lock);
	*out = t;
}

struct lc_remote_batch *
lc_cluster_take_remote(struct lc_cluster *cl)
{
	struct lc_remote_batch *b;

	pthread_mutex_lock(&cl->lock);
	b = cl->in_head;
	cl->in_head = cl->in_tail = NULL;
	cl->in_items = 0;
	cl->takes++;
	pthread_mutex_unlock(&cl->lock);
	return b;
}

int
lc_cluster_post_own(struct lc_cluster *cl, struct lc_entry *const *e, size_t n)
{
	if (!n)
		return 0;
	pthread_mutex_lock(&cl->lock);
	if (cl->out_n + n > cl->out_cap) {
		size_t cap = cl->out_cap ? cl->out_cap : 1024;
		void *p;

		while (cap < cl->out_n + n)
			cap *= 2;
		p = realloc(cl->out, cap * sizeof(*cl->out));
		if (!p) {
			pthread_mutex_unlock(&cl->lock);
			return LC_ENOMEM;
		}
		cl->out = p;
		cl->out_cap = cap;
	}
	memcpy(cl->out + cl->out_n, e, n * sizeof(*e));
	cl->out_n += n;
	pthread_mutex_unlock(&cl->lock);
	if (cl->wake_bridge)
		cl->wake_bridge(cl->wake_arg);
	return 0;
}

size_t
lc_cluster_take_own(struct lc_cluster *cl, struct lc_entry ***out)
{
	size_t n;

	pthread_mutex_lock(&cl->lock);
	*out = cl->out;
	n = cl->out_n;
	cl->out = NULL;
	cl->out_n = cl->out_cap = 0;
	pthread_mutex_unlock(&cl->lock);
	return n;
}
