/*
 * A small purpose-built JSON scanner for livecount messages: snapshots,
 * updates, /v1/counts answers and like responses. It walks the text once,
 * never allocates, and hands each "counts" entry to a callback, which is all
 * the load generator needs from a message. Strings without escapes are
 * returned in place; escaped ones are decoded into a stack buffer.
 */
#include "lc_load.h"

#include <string.h>

typedef struct {
	const char *p, *e;
} js_t;

#define MAX_DEPTH 64

static void
skip_ws(js_t *j)
{
	while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
			       *j->p == '\r'))
		j->p++;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
read_u4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v * 16 + (unsigned)h;
	}
	*out = v;
	return 0;
}

/* Parse a string at j->p (which must be '"'). On success (*s, *n) is the
 * decoded value: in place when it has no escapes, else in buf. */
static int
parse_string(js_t *j, char *buf, size_t cap, const char **s, size_t *n)
{
	if (j->p >= j->e || *j->p != '"')
		return -1;
	const char *start = ++j->p;
	const char *q = start;
	while (q < j->e && *q != '"' && *q != '\\')
		q++;
	if (q >= j->e)
		return -1;
	if (*q == '"') {
		*s = start;
		*n = (size_t)(q - start);
		j->p = q + 1;
		return 0;
	}
	size_t o = (size_t)(q - start);
	if (o > cap)
		return -1;
	memcpy(buf, start, o);
	while (q < j->e && *q != '"') {
		unsigned char ch = (unsigned char)*q;
		if (ch != '\\') {
			if (o >= cap)
				return -1;
			buf[o++] = (char)ch;
			q++;
			continue;
		}
		if (q + 1 >= j->e)
			return -1;
		char esc = q[1];
		q += 2;
		char lit;
		switch (esc) {
		case '"':
			lit = '"';
			break;
		case '\\':
			lit = '\\';
			break;
		case '/':
			lit = '/';
			break;
		case 'b':
			lit = '\b';
			break;
		case 'f':
			lit = '\f';
			break;
		case 'n':
			lit = '\n';
			break;
		case 'r':
			lit = '\r';
			break;
		case 't':
			lit = '\t';
			break;
		case 'u': {
			unsigned cp;
			if (j->e - q < 4 || read_u4(q, &cp) < 0)
				return -1;
			q += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (j->e - q < 6 || q[0] != '\\' ||
				    q[1] != 'u' || read_u4(q + 2, &lo) < 0 ||
				    lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				q += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			if (o + 4 > cap)
				return -1;
			if (cp < 0x80) {
				buf[o++] = (char)cp;
			} else if (cp < 0x800) {
				buf[o++] = (char)(0xC0 | (cp >> 6));
				buf[o++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				buf[o++] = (char)(0xE0 | (cp >> 12));
				buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				buf[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				buf[o++] = (char)(0xF0 | (cp >> 18));
				buf[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				buf[o++] = (char)(0x80 | (cp & 0x3F));
			}
			continue;
		}
		default:
			return -1;
		}
		if (o >= cap)
			return -1;
		buf[o++] = lit;
	}
	if (q >= j->e)
		return -1;
	j->p = q + 1;
	*s = buf;
	*n = o;
	return 0;
}

static int
parse_int(js_t *j, int64_t *v)
{
	const char *p = j->p;
	bool neg = false;
	if (p < j->e && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= j->e || *p < '0' || *p > '9')
		return -1;
	uint64_t x = 0;
	int digits = 0;
	while (p < j->e && *p >= '0' && *p <= '9') {
		if (++digits > 19)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (p < j->e && (*p == '.' || *p == 'e' || *p == 'E'))
		return -1;
	j->p = p;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return 0;
}

static int
skip_value(js_t *j, int depth)
{
	if (depth > MAX_DEPTH)
		return -1;
	skip_ws(j);
	if (j->p >= j->e)
		return -1;
	char c = *j->p;
	if (c == '"') {
		/* Strings are skipped without decoding. */
		const char *q = j->p + 1;
		while (q < j->e && *q != '"') {
			if (*q == '\\')
				q++;
			q++;
		}
		if (q >= j->e)
			return -1;
		j->p = q + 1;
		return 0;
	}
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		skip_ws(j);
		if (j->p < j->e && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				skip_ws(j);
				if (skip_value(j, depth + 1) < 0) /* key */
					return -1;
				skip_ws(j);
				if (j->p >= j->e || *j->p != ':')
					return -1;
				j->p++;
			}
			if (skip_value(j, depth + 1) < 0)
				return -1;
			skip_ws(j);
			if (j->p >= j->e)
				return -1;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p == close) {
				j->p++;
				return 0;
			}
			return -1;
		}
	}
	const char *start = j->p;
	while (j->p < j->e && (strchr("+-.eE0123456789", *j->p) ||
			       (*j->p >= 'a' && *j->p <= 'z')))
		j->p++;
	return j->p > start ? 0 : -1;
}

static bool
key_is(const char *s, size_t n, const char *k)
{
	size_t kl = strlen(k);
	return n == kl && memcmp(s, k, kl) == 0;
}

/* A "counts" object: {U: C, ...} or {U: {"count":C,"delta":D,...}, ...}. */
static int
parse_counts(js_t *j, lc_count_cb cb, void *ctx, bool *any_delta)
{
	char ubuf[8192];
	skip_ws(j);
	if (j->p >= j->e || *j->p != '{')
		return -1;
	j->p++;
	skip_ws(j);
	if (j->p < j->e && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		const char *url;
		size_t ulen;
		skip_ws(j);
		if (parse_string(j, ubuf, sizeof(ubuf), &url, &ulen) < 0)
			return -1;
		skip_ws(j);
		if (j->p >= j->e || *j->p != ':')
			return -1;
		j->p++;
		skip_ws(j);
		if (j->p >= j->e)
			return -1;
		if (*j->p == '{') {
			int64_t count = 0, delta = 0;
			bool has_count = false, has_delta = false;
			j->p++;
			skip_ws(j);
			if (j->p < j->e && *j->p == '}') {
				j->p++;
			} else {
				for (;;) {
					char kb[64];
					const char *k;
					size_t kn;
					skip_ws(j);
					if (parse_string(j, kb, sizeof(kb), &k,
							 &kn) < 0)
						return -1;
					skip_ws(j);
					if (j->p >= j->e || *j->p != ':')
						return -1;
					j->p++;
					skip_ws(j);
					if (key_is(k, kn, "count")) {
						if (parse_int(j, &count) < 0)
							return -1;
						has_count = true;
					} else if (key_is(k, kn, "delta")) {
						if (parse_int(j, &delta) < 0)
							return -1;
						has_delta = true;
					} else if (skip_value(j, 1) < 0) {
						return -1;
					}
					skip_ws(j);
					if (j->p < j->e && *j->p == ',') {
						j->p++;
						continue;
					}
					if (j->p < j->e && *j->p == '}') {
						j->p++;
						break;
					}
					return -1;
				}
			}
			if (!has_count)
				return -1;
			if (has_delta)
				*any_delta = true;
			cb(ctx, url, ulen, count, delta, has_delta);
		} else {
			int64_t count;
			if (parse_int(j, &count) < 0)
				return -1;
			cb(ctx, url, ulen, count, 0, false);
		}
		skip_ws(j);
		if (j->p < j->e && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->e && *j->p == '}') {
			j->p++;
			return 0;
		}
		return -1;
	}
}

int
js_parse_msg(const char *p, size_t n, lc_msg_t *m, lc_count_cb cb, void *ctx)
{
	js_t j = {p, p + n};
	memset(m, 0, sizeof(*m));
	bool has_type = false, has_counts = false, any_delta = false;
	skip_ws(&j);
	if (j.p >= j.e || *j.p != '{')
		return -1;
	j.p++;
	skip_ws(&j);
	if (j.p < j.e && *j.p == '}')
		return 0;
	for (;;) {
		char kb[64];
		const char *k;
		size_t kn;
		skip_ws(&j);
		if (parse_string(&j, kb, sizeof(kb), &k, &kn) < 0)
			return -1;
		skip_ws(&j);
		if (j.p >= j.e || *j.p != ':')
			return -1;
		j.p++;
		skip_ws(&j);
		if (key_is(k, kn, "type")) {
			char vb[64];
			const char *v;
			size_t vn;
			if (parse_string(&j, vb, sizeof(vb), &v, &vn) < 0)
				return -1;
			has_type = true;
			if (key_is(v, vn, "snapshot"))
				m->type = LC_MSG_SNAPSHOT;
			else if (key_is(v, vn, "update"))
				m->type = LC_MSG_UPDATE;
			else if (key_is(v, vn, "error"))
				m->type = LC_MSG_ERROR;
		} else if (key_is(k, kn, "seq")) {
			if (parse_int(&j, &m->seq) < 0)
				return -1;
			m->has_seq = true;
		} else if (key_is(k, kn, "ts")) {
			if (parse_int(&j, &m->ts) < 0)
				return -1;
			m->has_ts = true;
		} else if (key_is(k, kn, "counts")) {
			if (parse_counts(&j, cb, ctx, &any_delta) < 0)
				return -1;
			has_counts = true;
		} else if (skip_value(&j, 1) < 0) {
			return -1;
		}
		skip_ws(&j);
		if (j.p < j.e && *j.p == ',') {
			j.p++;
			continue;
		}
		if (j.p < j.e && *j.p == '}')
			break;
		return -1;
	}
	if (!has_type) {
		if (m->has_seq || any_delta)
			m->type = LC_MSG_UPDATE;
		else if (has_counts)
			m->type = LC_MSG_SNAPSHOT;
	}
	return 0;
}

int
js_get_int(const char *p, size_t n, const char *key, int64_t *out)
{
	js_t j = {p, p + n};
	skip_ws(&j);
	if (j.p >= j.e || *j.p != '{')
		return -1;
	j.p++;
	skip_ws(&j);
	if (j.p < j.e && *j.p == '}')
		return -1;
	for (;;) {
		char kb[256];
		const char *k;
		size_t kn;
		skip_ws(&j);
		if (parse_string(&j, kb, sizeof(kb), &k, &kn) < 0)
			return -1;
		skip_ws(&j);
		if (j.p >= j.e || *j.p != ':')
			return -1;
		j.p++;
		skip_ws(&j);
		if (key_is(k, kn, key))
			return parse_int(&j, out);
		if (skip_value(&j, 1) < 0)
			return -1;
		skip_ws(&j);
		if (j.p < j.e && *j.p == ',') {
			j.p++;
			continue;
		}
		return -1;
	}
}
