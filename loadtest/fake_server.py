#!/usr/bin/env python3
"""A tiny stand-in for livecount, for testing livecount-load itself.

Implements just enough of shared/API.md (likes, batches, counts, healthz,
WebSocket and SSE subscriptions with per-tick updates) with Python's asyncio
and no third-party packages. Not a benchmark target: it is slow on purpose
simple. Usage: fake_server.py --port N [--tick-ms 100] [--sse-chunked]
It also accepts (and ignores) livecount's --db/--workers/--flush-interval-ms,
so `smoke.sh loadtest/fake_server.py build/livecount-load` tests the tester.
"""
import argparse
import asyncio
import base64
import hashlib
import json
import time
import urllib.parse

counts = {}
last_sent = {}
dirty = set()
subs = {}  # url -> set of (kind, writer)
seq = 0


def body_json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def response(status, obj, close=False):
    body = body_json(obj)
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "X")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n")
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


TORTURE = False


def ws_frame(text):
    data = text.encode()
    if TORTURE and len(data) > 8:
        # A ping, then the message as text + continuation fragments.
        a, b = len(data) // 3, 2 * len(data) // 3
        parts = [data[:a], data[a:b], data[b:]]
        out = bytes([0x89, 2]) + b"hi"
        for i, p in enumerate(parts):
            op = 0x1 if i == 0 else 0x0
            fin = 0x80 if i == len(parts) - 1 else 0
            out += bytes([fin | op, len(p)]) + p
        return out
    n = len(data)
    if n < 126:
        hdr = bytes([0x81, n])
    elif n < 65536:
        hdr = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([0x81, 127]) + n.to_bytes(8, "big")
    return hdr + data


def sse_event(args, text):
    if args.sse_chunked:
        data = text.encode()
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"
    return text.encode()


async def ticker(args):
    global seq
    while True:
        await asyncio.sleep(args.tick_ms / 1000)
        if not dirty:
            continue
        seq += 1
        ts = int(time.time() * 1000)
        changed = list(dirty)
        dirty.clear()
        for u in changed:
            c = counts.get(u, 0)
            d = c - last_sent.get(u, 0)
            last_sent[u] = c
            upd = {"seq": seq, "ts": ts, "counts": {u: {"count": c, "delta": d}}}
            for kind, w in list(subs.get(u, ())):
                try:
                    if kind == "ws":
                        upd2 = dict(type="update", **upd)
                        w.write(ws_frame(json.dumps(upd2, separators=(",", ":"))))
                    else:
                        w.write(sse_event(args, f"id: {seq}\nevent: update\ndata: "
                                          f"{json.dumps(upd, separators=(',', ':'))}\n\n"))
                except Exception:
                    pass


def like(url, n):
    counts[url] = counts.get(url, 0) + n
    dirty.add(url)
    return counts[url]


class Trickle:
    """Writes in 1..7 byte pieces, so the client sees every split point."""

    def __init__(self, w):
        self.w = w
        self.buf = bytearray()
        self.task = None

    def write(self, data):
        self.buf += data
        if not self.task or self.task.done():
            self.task = asyncio.ensure_future(self.pump())

    async def pump(self):
        import random
        while self.buf:
            n = random.randint(1, 7)
            self.w.write(bytes(self.buf[:n]))
            del self.buf[:n]
            await self.w.drain()
            if random.random() < 0.05:
                await asyncio.sleep(0.001)

    async def drain(self):
        while self.task and not self.task.done():
            await asyncio.sleep(0.001)

    def close(self):
        self.w.close()

    def __hash__(self):
        return id(self)


async def handle(reader, writer, args):
    if args.torture:
        writer = Trickle(writer)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            hdrs = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in hdrs:
                body = await reader.readexactly(int(hdrs["content-length"]))
            path, _, query = target.partition("?")
            q = urllib.parse.parse_qs(query, keep_blank_values=True)
            if path == "/healthz":
                writer.write(response(200, {"status": "ok"}))
            elif path == "/v1/likes" and method == "POST":
                if "url" in q:
                    u = q["url"][0]
                    n = int(q.get("n", ["1"])[0])
                    writer.write(response(200, {"url": u, "count": like(u, n)}))
                else:
                    doc = json.loads(body)
                    if isinstance(doc, list):
                        for it in doc:
                            like(it["url"], it.get("n", 1))
                        writer.write(response(200, {"accepted": len(doc)}))
                    else:
                        writer.write(response(200, {"url": doc["url"],
                                                    "count": like(doc["url"], doc.get("n", 1))}))
            elif path == "/v1/counts":
                out = {u: {"count": counts.get(u, 0), "likes": counts.get(u, 0), "unlikes": 0,
                           "updated_at": "2026-01-01T00:00:00.000Z"} for u in q.get("url", [])}
                writer.write(response(200, {"counts": out}))
            elif path == "/v1/ws":
                key = hdrs["sec-websocket-key"]
                acc = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                writer.write((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n"
                              f"Sec-WebSocket-Protocol: livecount.v1\r\n\r\n").encode())
                urls = q.get("url", [])
                snap = {"type": "snapshot", "counts": {u: counts.get(u, 0) for u in urls}}
                writer.write(ws_frame(json.dumps(snap, separators=(",", ":"))))
                for u in urls:
                    subs.setdefault(u, set()).add(("ws", writer))
                try:
                    while True:
                        h = await reader.readexactly(2)
                        n = h[1] & 0x7F
                        if n == 126:
                            n = int.from_bytes(await reader.readexactly(2), "big")
                        elif n == 127:
                            n = int.from_bytes(await reader.readexactly(8), "big")
                        await reader.readexactly(4 + n)
                        if h[0] & 0x0F == 8:
                            break
                finally:
                    for u in urls:
                        subs[u].discard(("ws", writer))
                return
            elif path == "/v1/events":
                te = "Transfer-Encoding: chunked\r\n" if args.sse_chunked else ""
                writer.write((f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                              f"Cache-Control: no-cache\r\n{te}\r\n").encode())
                urls = q.get("url", [])
                snap = {"counts": {u: counts.get(u, 0) for u in urls}}
                writer.write(sse_event(args, ": hello\n\nevent: snapshot\ndata: "
                                       f"{json.dumps(snap, separators=(',', ':'))}\n\n"))
                for u in urls:
                    subs.setdefault(u, set()).add(("sse", writer))
                try:
                    while await reader.read(4096):
                        pass
                finally:
                    for u in urls:
                        subs[u].discard(("sse", writer))
                return
            else:
                writer.write(response(404, {"error": "not_found", "message": path}))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tick-ms", type=int, default=100)
    ap.add_argument("--sse-chunked", action="store_true")
    ap.add_argument("--torture", action="store_true",
                    help="trickle bytes, fragment WS messages, send WS pings")
    ap.add_argument("--lifetime", type=float, default=300, help="exit after this many seconds")
    # Accepted and ignored, so that this can stand in for livecount in smoke.sh.
    ap.add_argument("--db")
    ap.add_argument("--workers")
    ap.add_argument("--flush-interval-ms")
    args = ap.parse_args()
    global TORTURE
    TORTURE = args.torture
    srv = await asyncio.start_server(lambda r, w: handle(r, w, args), "127.0.0.1", args.port,
                                     backlog=4096)
    asyncio.create_task(ticker(args))
    async with srv:
        await asyncio.wait_for(srv.serve_forever(), args.lifetime)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (asyncio.TimeoutError, KeyboardInterrupt):
        pass
