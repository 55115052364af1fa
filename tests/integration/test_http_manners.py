"""A well-mannered HTTP server (issue 12) and bounded request bodies (issue
10): HEAD, trailing newlines, unknown query parameters, url in query and
body, Content-Encoding, Expect: 100-continue, WebSocket subprotocol and
origin refusals, CORS on static files, SSE without keep-alive, the SIGTERM
drain, the access log, body bytes in flight."""
import json
import os
import signal
import socket
import time

from lc import SANITIZED, SSE, WAIT_S, WS, Server, check, run, wait_for

S = None


def raw(req, done, port=None):
    """Sends raw bytes; returns everything read until done(bytes so far)
    or EOF (then ending in "<EOF>")."""
    s = socket.create_connection(("127.0.0.1", port or S.port), WAIT_S)
    s.sendall(req if isinstance(req, bytes) else req.encode())
    out = b""
    while not done(out):
        d = s.recv(65536)
        if not d:
            out += b"<EOF>"
            break
        out += d
    s.close()
    return out


def healthz_last(out):
    """done() for a pipeline whose last request is GET /healthz."""
    return out.endswith(b'{"status":"ok"}\n')


def test_head_has_no_body_and_keeps_alive():
    out = raw("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", healthz_last)
    parts = out.split(b"HTTP/1.1 200 OK")
    check(len(parts) == 3, out)
    # the HEAD answer ends right after its headers
    check(parts[1].endswith(b"\r\n\r\n"), out)
    check(b"content-length: 16" in parts[1], out)
    check(parts[2].endswith(b'{"status":"ok"}\n'), out)
    for path in ("/v1/counts?url=h", "/v1/top", "/sdk/livecount.js"):
        st, data, r = S.request("HEAD", path)
        check(st == 200 and data == b"", (path, st, data))
    # HEAD /v1/events opens no stream: the answer is complete at once
    out = raw("HEAD /v1/events?url=h HTTP/1.1\r\nHost: x\r\n\r\n"
              "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", healthz_last)
    check(out.count(b"HTTP/1.1 200 OK") == 2, out)
    check(b"event: snapshot" not in out, out)


def test_json_bodies_end_with_newline():
    for method, path in (("GET", "/healthz"), ("GET", "/v1/top"),
                         ("GET", "/v1/counts?url=nl"),
                         ("POST", "/v1/likes?url=nl"),
                         ("GET", "/v1/nope"), ("GET", "/v1/stats")):
        st, data, r = S.request(method, path)
        check(data.endswith(b"}\n"), (path, data))
        check(int(r.getheader("content-length")) == len(data), path)


def test_unknown_query_parameters_are_named():
    # an unencoded '&' inside the liked URL
    for path in ("/v1/counts?url=https://a.test/?x=1&y=2",
                 "/v1/likes?url=https://a.test/?x=1;y=2",
                 "/v1/top?limit=3&lmit=4",
                 "/v1/history?url=a&sinec=3",
                 "/v1/events?url=a&b"):
        method = "POST" if "likes" in path else "GET"
        st, body = S.json(method, path)
        check(st == 400 and body["error"] == "bad_request", (path, st, body))
        check("unknown query parameter" in body["message"], body)
    st, body = S.json("GET", "/v1/counts?url=https://a.test/?x=1&y=2")
    check("'y'" in body["message"], body)
    # the known ones still work, and the WebSocket upgrade is refused too
    check(S.json("GET", "/v1/top?limit=3")[0] == 200)
    try:
        WS(S.port, path="/v1/ws?url=a&zz=1")
        check(False, "upgrade with an unknown parameter accepted")
    except ConnectionError as e:
        check(" 400 " in str(e), e)


def test_malformed_percent_encoding_gets_json_400():
    for target, code in (("/v1/counts?url=%zz", "bad_url"),
                         ("/v1/counts?url=100%", "bad_url"),
                         ("/v1/likes?url=a&n=%g1", "bad_request"),
                         ("/nope%zz", "bad_request")):
        for delay in (0, 0.3):
            s = socket.create_connection(("127.0.0.1", S.port), 5)
            # a client that connects first, talks later: time is the point
            time.sleep(delay)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                       target).encode())
            got = b""
            s.settimeout(3)
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            s.close()
            head, _, body = got.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 400 "), (target, got))
            check(b"application/json" in head, got)
            check(json.loads(body)["error"] == code, (target, body))
    # a request line that arrives in pieces is judged whole
    s = socket.create_connection(("127.0.0.1", S.port), 5)
    s.sendall(b"GET /v1/counts?url=%z")
    time.sleep(0.05)  # so the two pieces arrive apart: time is the point
    s.sendall(b"z HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(3)
    check(s.recv(4096).startswith(b"HTTP/1.1 400 "))
    s.close()
    # well-formed escapes are untouched
    st, body = S.json("GET", "/v1/counts?url=a%20b%2Fc")
    check(st == 200 and "a b/c" in body["counts"], body)


def test_url_in_query_and_body_is_refused():
    st, body = S.json("POST", "/v1/likes?url=qb", {"url": "qb", "n": 5})
    check(st == 400 and body["error"] == "bad_request", (st, body))
    S.settle()
    check(S.count("qb") == 0)


def test_encoded_request_body_gets_415():
    import gzip
    data = gzip.compress(b'{"url":"gz"}')
    st, body = S.json("POST", "/v1/likes", data,
                      headers={"Content-Type": "application/json",
                               "Content-Encoding": "gzip"})
    check(st == 415 and body["error"] == "unsupported_media_type",
          (st, body))
    st, body = S.json("POST", "/v1/likes", b'{"url":"gz"}',
                      headers={"Content-Type": "application/json",
                               "Content-Encoding": "identity"})
    check(st == 200, (st, body))


def test_expect_100_continue():
    s = socket.create_connection(("127.0.0.1", S.port), 5)
    body = b'{"url":"expect","n":2}'
    s.sendall(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    # answered before the body is sent (not after a wait: the body never
    # comes until it is)
    got = s.recv(4096)
    check(got == b"HTTP/1.1 100 Continue\r\n\r\n", got)
    s.sendall(body)
    got = b""
    while not got.endswith(b"}\n"):
        got += s.recv(4096)
    check(got.startswith(b"HTTP/1.1 200 OK") and b'"count":2' in got, got)
    s.close()
    # a request that will be refused gets its final status at once
    s = socket.create_connection(("127.0.0.1", S.port), 5)
    s.sendall(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: text/plain\r\nExpect: 100-continue\r\n"
              b"Content-Length: 20\r\n\r\n")
    got = s.recv(4096)
    check(got.startswith(b"HTTP/1.1 415"), got)
    s.close()


def handshake(protocol, origin=None, port=None):
    h = ("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
         "Sec-WebSocket-Version: 13\r\n")
    if protocol:
        h += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    if origin:
        h += "Origin: %s\r\n" % origin
    # a 101 keeps the connection open; a refusal closes it
    return raw(h + "\r\n", lambda out: out.startswith(b"HTTP/1.1 101") and
               b"\r\n\r\n" in out, port=port)


def test_websocket_subprotocol_and_origin():
    for proto in (None, "chat"):
        out = handshake(proto)
        head, _, body = out.partition(b"\r\n\r\n")
        check(b" 400 " in head.split(b"\r\n")[0], out)
        check(json.loads(body.replace(b"<EOF>", b""))["error"] ==
              "bad_subprotocol", out)
    out = handshake("chat, livecount.v1")
    check(out.startswith(b"HTTP/1.1 101") and
          b"Sec-WebSocket-Protocol: livecount.v1" in out, out)
    with Server("--allowed-origins", "http://ok.test") as s2:
        out = handshake("livecount.v1", "http://evil.test", port=s2.port)
        head, _, body = out.partition(b"\r\n\r\n")
        check(b" 403 " in head.split(b"\r\n")[0], out)
        check(json.loads(body.replace(b"<EOF>", b""))["error"] ==
              "forbidden_origin", out)
        out = handshake("livecount.v1", "http://ok.test", port=s2.port)
        check(out.startswith(b"HTTP/1.1 101"), out)
        s2.stop()


def test_static_files_follow_allowed_origins():
    st, data, r = S.get("/sdk/live-count.js",
                        headers={"Origin": "http://other.test"})
    check(st == 200 and r.getheader("access-control-allow-origin") == "*",
          r.getheaders())
    with Server("--allowed-origins", "http://ok.test") as s2:
        st, data, r = s2.get("/sdk/livecount.js",
                             headers={"Origin": "http://ok.test"})
        check(r.getheader("access-control-allow-origin") == "http://ok.test",
              r.getheaders())
        st, data, r = s2.get("/sdk/livecount.js",
                             headers={"Origin": "http://evil.test"})
        check(st == 200 and not r.getheader("access-control-allow-origin"),
              r.getheaders())
        s2.stop()


def sse_raw(first_lines):
    s = socket.create_connection(("127.0.0.1", S.port), 5)
    s.sendall(first_lines.encode())
    buf = b""
    while b"event: snapshot" not in buf:
        d = s.recv(65536)
        check(d, "closed after %r" % buf)
        buf += d
    return s, buf


def test_sse_http10_and_connection_close_keep_streaming():
    for req in ("GET /v1/events?url=old HTTP/1.0\r\n\r\n",
                "GET /v1/events?url=old HTTP/1.1\r\nHost: x\r\n"
                "Connection: close\r\n\r\n"):
        s, buf = sse_raw(req)
        check(b"transfer-encoding" not in buf.lower(), buf)
        for i in range(3):
            S.like("old")
            s.settimeout(3)
            got = b""
            while b"event: update" not in got:
                d = s.recv(65536)
                check(d, "stream ended: %r" % (buf + got))
                got += d
        s.close()
    # a departed client is noticed (once a second) and the worker idles
    wait_for(lambda: S.stats()["connections"]["sse"], lambda n: n == 0,
             what="SSE connections closed")
    t0 = cpu_ticks(S.proc.pid)
    time.sleep(1.0)  # CPU used over a second: time is the point
    check(cpu_ticks(S.proc.pid) - t0 < 30, "spinning after departure")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_access_log():
    with Server("--access-log", "") as s0:
        s0.get("/healthz")
        check("GET /healthz" not in s0.logtext())
        s0.stop()
    path = os.path.join(S.dir, "access.log")
    with Server("--access-log", path) as s2:
        s2.like("https://a.test/x?secret=1")
        s2.request("HEAD", "/healthz")
        s2.get("/sdk/livecount.js")
        s2.get("/v1/nope")
        w = s2.ws(["a"])
        w.recv()
        w.close()
        e = s2.sse(["a"])
        e.event()
        e.close()
        s2.stop()
    lines = open(path).read().splitlines()
    want = [("POST", "/v1/likes", "200"), ("HEAD", "/healthz", "200"),
            ("GET", "/sdk/livecount.js", "200"), ("GET", "/v1/nope", "404"),
            ("GET", "/v1/ws", "101"), ("GET", "/v1/events", "200")]
    for m, p, st in want:
        hit = [l for l in lines if l.split()[2:5] == [m, p, st]]
        check(hit, (m, p, st, lines))
        f = hit[0].split()
        check(len(f) == 7 and f[1] == "127.0.0.1" and f[0].endswith("Z"), f)
        float(f[6])
    check(not any("secret" in l for l in lines), lines)
    size = os.path.getsize(os.path.join(os.path.dirname(__file__),
                                        "../../web/sdk/livecount.js"))
    hit = [l for l in lines if "/sdk/livecount.js" in l][0]
    check(hit.split()[5] == str(size), (hit, size))
    head = [l for l in lines if "HEAD /healthz" in l][0]
    check(head.split()[5] == "0", head)
    # in a config file, a relative path is relative to the file
    confdir = os.path.join(S.dir, "conf")
    os.makedirs(confdir, exist_ok=True)
    with open(os.path.join(confdir, "lc.conf"), "w") as f:
        f.write("access_log = rel.log\n")
    with Server("--config", os.path.join(confdir, "lc.conf")) as s3:
        s3.get("/healthz")
        s3.stop()
    check("GET /healthz 200" in open(os.path.join(confdir, "rel.log")).read())


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_body_bytes_in_flight_are_bounded():
    bound = 16 << 20
    with Server("--max-body-bytes-in-flight", str(bound)) as s2:
        base = rss_kb(s2.proc.pid)
        socks, refused = [], 0
        # ~7 MB of 8 MiB: one long string (no items for the batch scan)
        part = b'{"url":"' + b"x" * 7000000
        for i in range(12):
            s = socket.create_connection(("127.0.0.1", s2.port), 10)
            s.sendall(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: 8388608\r\n\r\n")
            try:
                s.sendall(part)
            except OSError:
                pass
            socks.append(s)
        refusals = s2.wait_metric("livecount_body_refusals_total",
                                  lambda v: v >= 8)
        # each refused socket has its answer (or was reset by it)
        answers = {}

        def read_answers():
            for i, s in enumerate(socks):
                if i in answers:
                    continue
                s.setblocking(False)
                try:
                    answers[i] = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    answers[i] = b""
            return len(answers)
        wait_for(read_answers, lambda n: n >= refusals,
                 what="%d refused sockets answered" % refusals)
        for got in answers.values():
            if got.startswith(b"HTTP/1.1 503"):
                refused += 1
                check(b"retry-after: 1" in got.lower() and
                      b'"error":"busy"' in got, got)
        check(refused >= 8, refused)
        held = s2.metric("livecount_body_bytes_in_flight")
        check(0 < held <= bound, held)
        check(s2.metric("livecount_body_refusals_total") >= refused)
        if not SANITIZED:
            grown = rss_kb(s2.proc.pid) - base
            check(grown < (bound >> 10) + 8 * 1024, "RSS +%d kB" % grown)
        # a normal like still works meanwhile
        st, body = s2.json("POST", "/v1/likes", {"url": "ok", "n": 1})
        check(st == 200, (st, body))
        for s in socks:
            s.close()
        s2.wait_metric("livecount_body_bytes_in_flight", lambda v: v == 0)
        if not SANITIZED:
            back = rss_kb(s2.proc.pid) - base
            check(back < 4 * 1024, "RSS still +%d kB after close" % back)
        s2.stop()


def test_batch_item_limit_checked_as_bytes_arrive():
    # 4 MiB declared, 200 kB of bare integers sent (~100k items > 10000),
    # then the sender stalls: the answer comes before the rest.
    s = socket.create_connection(("127.0.0.1", S.port), 10)
    s.sendall(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\n"
              b"Content-Length: 4194304\r\n\r\n[" + b"1," * 100000)
    s.settimeout(5)
    got = s.recv(4096)
    check(got.startswith(b"HTTP/1.1 413") and b"too_many_items" in got, got)
    s.close()
    # strings with commas and nested objects are not items
    items = [{"url": "a,b,[c],{d}", "n": 1}] * 3
    st, body = S.json("POST", "/v1/likes", items)
    check(st == 200 and body == {"accepted": 3}, (st, body))


def test_sigterm_drains_then_says_goodbye():
    # A drain long enough for the checks inside it on a loaded machine;
    # that it lasts at least drain_ms is asserted (a lower bound).
    with Server("--drain-ms", "3000") as s2:
        w = s2.ws(["bye"])
        check(w.recv()["type"] == "snapshot")
        e = s2.sse(["bye"])
        check(e.event()[0] == "snapshot")
        t0 = time.time()
        s2.proc.send_signal(signal.SIGTERM)
        st, body = wait_for(lambda: s2.json("GET", "/readyz"),
                            lambda r: r[0] == 503, what="draining")
        check(body["status"] == "draining", (st, body))
        # still serving: likes are counted and delivered
        st, body = s2.json("POST", "/v1/likes?url=bye")
        check(st == 200 and body["count"] == 1, (st, body))
        check(w.until(lambda m: m["type"] == "update")[-1]["counts"]
              ["bye"]["count"] == 1)
        check(e.until(lambda ev: ev[0] == "update")[-1][2]["counts"]
              ["bye"]["count"] == 1)
        try:
            while True:
                w.recv()
        except ConnectionError:
            pass
        check(w.close_code == 1001, w.close_code)
        check(time.time() - t0 >= 2.9, time.time() - t0)
        ev = e.event()
        check(ev[0] == "retry" and ev[2] > 0, ev)
        rc = s2.proc.wait(WAIT_S)
        check(rc == 0, rc)
        s2.stop()
        check("draining for 3000 ms" in s2.logtext(), s2.logtext())
    # drain_ms = 0: no drain
    with Server("--drain-ms", "0") as s3:
        s3.proc.send_signal(signal.SIGTERM)
        check(s3.proc.wait(WAIT_S) == 0)
        s3.stop()
        check("draining" not in s3.logtext(), s3.logtext())


if __name__ == "__main__":
    with Server() as srv:
        S = srv
        run([test_head_has_no_body_and_keeps_alive,
             test_json_bodies_end_with_newline,
             test_unknown_query_parameters_are_named,
             test_malformed_percent_encoding_gets_json_400,
             test_url_in_query_and_body_is_refused,
             test_encoded_request_body_gets_415,
             test_expect_100_continue,
             test_websocket_subprotocol_and_origin,
             test_static_files_follow_allowed_origins,
             test_sse_http10_and_connection_close_keep_streaming,
             test_access_log,
             test_body_bytes_in_flight_are_bounded,
             test_batch_item_limit_checked_as_bytes_arrive,
             test_sigterm_drains_then_says_goodbye])
