/*
 * HTTP/1.1 response parsing for the load generator: response heads (also for
 * the WebSocket and SSE upgrades) and whole Content-Length or chunked
 * responses. No allocation: everything points into the caller's buffer.
 */
#include "lc_load.h"

#include <string.h>
#include <strings.h>

#define MAX_HEAD 65536

static bool
name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static bool
contains_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= n; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return true;
	return false;
}

long
http_parse_head(const char *buf, size_t len, http_head_t *h)
{
	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return len > MAX_HEAD ? -1 : 0;
	h->head_len = (size_t)(end - buf) + 4;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
		return -1;
	bool http10 = buf[7] == '0';
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		st = st * 10 + (buf[i] - '0');
	}
	h->status = st;
	h->conn_close = http10;
	const char *p = memchr(buf, '\n', (size_t)(end - buf));
	while (p && p < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
		if (!eol)
			break;
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		if (colon) {
			size_t nl = (size_t)(colon - line);
			const char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t vl = (size_t)(eol - v);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (name_is(line, nl, "content-length")) {
				int64_t cl = 0;
				if (!vl)
					return -1;
				for (size_t i = 0; i < vl; i++) {
					if (v[i] < '0' || v[i] > '9' ||
					    cl > (1ll << 40))
						return -1;
					cl = cl * 10 + (v[i] - '0');
				}
				h->content_length = cl;
			} else if (name_is(line, nl, "transfer-encoding")) {
				h->chunked = contains_token(v, vl, "chunked");
			} else if (name_is(line, nl, "connection")) {
				if (contains_token(v, vl, "close"))
					h->conn_close = true;
				else if (contains_token(v, vl, "keep-alive"))
					h->conn_close = false;
			} else if (name_is(line, nl, "sec-websocket-accept")) {
				h->ws_accept = v;
				h->ws_accept_len = vl;
			} else if (name_is(line, nl,
					   "sec-websocket-protocol")) {
				h->ws_proto = v;
				h->ws_proto_len = vl;
			} else if (name_is(line, nl, "content-type")) {
				h->ctype = v;
				h->ctype_len = vl;
			}
		}
		p = eol + 1;
	}
	return (long)h->head_len;
}

static long
parse_hex_line(const char *p, const char *eol, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;
	for (; p < eol && *p != ';'; p++) {
		char ch = *p;
		int d;
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else if (ch == ' ' || ch == '\t')
			continue;
		else
			return -1;
		if (++digits > 12)
			return -1;
		v = v * 16 + (uint64_t)d;
	}
	if (!digits)
		return -1;
	*out = v;
	return 0;
}

long
http_parse_response(char *buf, size_t len, http_head_t *h, const char **body,
		    size_t *blen)
{
	long hl = http_parse_head(buf, len, h);
	if (hl <= 0)
		return hl;
	size_t pos = (size_t)hl;
	if ((h->status >= 100 && h->status < 200) || h->status == 204 ||
	    h->status == 304) {
		*body = buf + pos;
		*blen = 0;
		return (long)pos;
	}
	if (!h->chunked) {
		if (h->content_length < 0)
			return -1; /* read-until-close bodies are not used by
				      livecount */
		if (len - pos < (size_t)h->content_length)
			return 0;
		*body = buf + pos;
		*blen = (size_t)h->content_length;
		return (long)(pos + (size_t)h->content_length);
	}
	/* Pass 1: is the chunked body complete? */
	size_t total = 0;
	for (;;) {
		const char *eol = memmem(buf + pos, len - pos, "\r\n", 2);
		if (!eol)
			return len - pos > 64 ? -1 : 0;
		uint64_t sz;
		if (parse_hex_line(buf + pos, eol, &sz) < 0)
			return -1;
		pos = (size_t)(eol - buf) + 2;
		if (sz == 0) {
			for (;;) {
				const char *e2 =
				    memmem(buf + pos, len - pos, "\r\n", 2);
				if (!e2)
					return 0;
				size_t at = (size_t)(e2 - buf);
				bool empty = at == pos;
				pos = at + 2;
				if (empty)
					break;
			}
			total = pos;
			break;
		}
		if (len - pos < sz + 2)
			return 0;
		if (buf[pos + sz] != '\r' || buf[pos + sz + 1] != '\n')
			return -1;
		pos += sz + 2;
	}
	/* Pass 2: compact the chunk data in place. */
	size_t r = (size_t)hl, w = (size_t)hl;
	for (;;) {
		const char *eol = memmem(buf + r, total - r, "\r\n", 2);
		uint64_t sz = 0;
		parse_hex_line(buf + r, eol, &sz);
		r = (size_t)(eol - buf) + 2;
		if (sz == 0)
			break;
		memmove(buf + w, buf + r, sz);
		w += sz;
		r += sz + 2;
	}
	*body = buf + hl;
	*blen = w - (size_t)hl;
	return (long)total;
}
