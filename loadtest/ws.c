/*
 * WebSocket client helpers: handshake key and expected Sec-WebSocket-Accept
 * (SHA-1 + base64, RFC 6455 section 4), and masked client frames. Frame
 * parsing lives with the subscriber state machine in fanout.c.
 */
#include "lc_load.h"

#include <string.h>

static uint32_t
rol(uint32_t v, int n)
{
	return (v << n) | (v >> (32 - n));
}

static void
sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void
sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
	uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
			 0xC3D2E1F0};
	size_t i = 0;
	for (; i + 64 <= len; i += 64)
		sha1_block(h, msg + i);
	uint8_t tail[128] = {0};
	size_t rem = len - i;
	memcpy(tail, msg + i, rem);
	tail[rem] = 0x80;
	size_t tl = rem + 1 + 8 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int j = 0; j < 8; j++)
		tail[tl - 1 - j] = (uint8_t)(bits >> (8 * j));
	sha1_block(h, tail);
	if (tl == 128)
		sha1_block(h, tail + 64);
	for (int j = 0; j < 5; j++) {
		out[4 * j] = (uint8_t)(h[j] >> 24);
		out[4 * j + 1] = (uint8_t)(h[j] >> 16);
		out[4 * j + 2] = (uint8_t)(h[j] >> 8);
		out[4 * j + 3] = (uint8_t)h[j];
	}
}

static size_t
b64(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	return o;
}

void
ws_make_key(char key[24], uint64_t *rng)
{
	uint8_t raw[16];
	uint64_t a = lc_rand(rng), b = lc_rand(rng);
	memcpy(raw, &a, 8);
	memcpy(raw + 8, &b, 8);
	b64(raw, 16, key);
}

void
ws_expected_accept(const char key[24], char out[28])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t buf[24 + 36];
	memcpy(buf, key, 24);
	memcpy(buf + 24, guid, 36);
	uint8_t dig[20];
	sha1(buf, sizeof(buf), dig);
	b64(dig, 20, out);
}

size_t
ws_build_frame(uint8_t *out, int opcode, const void *payload, size_t len,
	       uint64_t *rng)
{
	if (len > 125)
		len = 125;
	uint32_t mask = (uint32_t)lc_rand(rng);
	uint8_t mk[4];
	memcpy(mk, &mask, 4);
	out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	out[1] = (uint8_t)(0x80 | len);
	memcpy(out + 2, mk, 4);
	const uint8_t *p = payload;
	for (size_t i = 0; i < len; i++)
		out[6 + i] = p[i] ^ mk[i & 3];
	return 6 + len;
}
