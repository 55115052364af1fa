"""Every HTTP endpoint of API.md and every error case, against the real
binary on loopback."""
import json
import socket

from lc import WAIT_S, Server, check, run, wait_for

S = None


def raw(data, read_until_close=True):
    """Sends raw bytes, returns everything the server answers."""
    s = socket.create_connection(("127.0.0.1", S.port), 5)
    s.sendall(data)
    out = b""
    s.settimeout(WAIT_S)  # every use ends with the server closing
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
            if not read_until_close and b"\r\n\r\n" in out:
                break
    except socket.timeout:
        pass
    s.close()
    return out


def err(method, path, body=None, headers=None):
    st, data, r = S.request(method, path, body, headers)
    j = json.loads(data)
    check(set(j) >= {"error", "message"}, j)
    check(r.getheader("Content-Type") == "application/json")
    return st, j["error"]


def test_like_query_form_and_unlike():
    st, b = S.like("https://example.com/a")
    check(st == 200 and b == {"url": "https://example.com/a", "count": 1}, b)
    # Another worker may not have merged the first like yet: the count a
    # POST returns is at most one tick stale for likes on other threads.
    st, b = S.like("https://example.com/a", n=10)
    check(b["count"] in (10, 11), b)
    st, b = S.like("https://example.com/a", n=3, method="DELETE")
    check(st == 200 and b["count"] in (-3, 7, -2, 8), b)
    S.settle()
    c = S.counts("https://example.com/a")["https://example.com/a"]
    check(c["count"] == 8 and c["likes"] == 11 and c["unlikes"] == 3, c)
    check(c["updated_at"].endswith("Z") and "T" in c["updated_at"], c)


def test_like_json_object_and_batch():
    st, b = S.json("POST", "/v1/likes", {"url": "j/1", "n": 4})
    check(st == 200 and b == {"url": "j/1", "count": 4}, b)
    st, b = S.json("POST", "/v1/likes", {"url": "j/1", "n": -1})
    check(st == 200 and b["count"] in (-1, 3), b)
    st, b = S.json("POST", "/v1/likes", {"url": "j/2"})
    check(b == {"url": "j/2", "count": 1}, b)
    batch = [{"url": "j/%d" % (i % 10), "n": 1} for i in range(10000)]
    st, b = S.json("POST", "/v1/likes", batch)
    check(st == 200 and b == {"accepted": 10000}, b)
    S.settle()
    check(S.count("j/1") == 4 - 1 + 1000, S.counts("j/1"))
    check(S.count("j/2") == 1 + 1000)
    # charset parameter on the content type is fine
    st, b = S.json("POST", "/v1/likes", json.dumps({"url": "j/3"}),
                   headers={"Content-Type": "application/json; charset=utf-8"})
    check(st == 200, b)


def test_rejected_batch_counts_nothing():
    bad = [{"url": "r/ok", "n": 1}] * 50 + [{"url": "r/ok", "n": "1"}]
    st, code = err("POST", "/v1/likes", bad)
    check((st, code) == (400, "bad_n"), (st, code))
    st, code = err("POST", "/v1/likes", [{"url": "r/ok"}] * 10001)
    check((st, code) == (413, "too_many_items"), (st, code))
    st, code = err("POST", "/v1/likes", [{"url": "r/ok"}, {"url": "a\nb"}])
    check((st, code) == (400, "bad_url"))
    S.settle()
    check(S.count("r/ok") == 0, S.counts("r/ok"))


def test_bad_input_errors():
    cases = [
        ("POST", "/v1/likes", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=" + "a" * 2049, None, (400, "bad_url")),
        ("POST", "/v1/likes?url=a%01b", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=a%7F", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=%C3%28", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=%ED%A0%80", None, (400, "bad_url")),
        ("POST", "/v1/likes?url=a&n=0", None, (400, "bad_n")),
        ("POST", "/v1/likes?url=a&n=-1", None, (400, "bad_n")),
        ("POST", "/v1/likes?url=a&n=1.5", None, (400, "bad_n")),
        ("POST", "/v1/likes?url=a&n=1000001", None, (400, "bad_n")),
        ("POST", "/v1/likes?url=a&n=x", None, (400, "bad_n")),
        ("POST", "/v1/likes", "{", (400, "bad_json")),
        ("POST", "/v1/likes", '{"url":5}', (400, "bad_url")),
        ("POST", "/v1/likes", '{"url":{"a":1}}', (400, "bad_url")),
        ("POST", "/v1/likes", '{"url":"a","n":"2"}', (400, "bad_n")),
        ("POST", "/v1/likes", '{"url":"a","n":2.5}', (400, "bad_n")),
        ("POST", "/v1/likes", '"just a string"', (400, "bad_json")),
        ("GET", "/v1/likes?url=a", None, (405, "method_not_allowed")),
        ("PUT", "/v1/likes?url=a", None, (405, "method_not_allowed")),
        ("POST", "/v1/counts?url=a", None, (405, "method_not_allowed")),
        ("GET", "/v1/nope", None, (404, "not_found")),
        ("GET", "/nope.html", None, (404, "not_found")),
        ("GET", "/v1/counts", None, (400, "bad_url")),
        ("GET", "/v1/top?limit=0", None, (400, "bad_request")),
        ("GET", "/v1/top?limit=abc", None, (400, "bad_request")),
        ("GET", "/v1/history", None, (400, "bad_url")),
        ("GET", "/v1/history?url=a&since=yesterday", None,
         (400, "bad_request")),
    ]
    for method, path, body, want in cases:
        h = {"Content-Type": "application/json"} if body else None
        got = err(method, path, body, h)
        check(got == want, "%s %s: got %r want %r" % (method, path, got, want))
    # wrong content type on a body
    got = err("POST", "/v1/likes", '{"url":"a"}',
              {"Content-Type": "text/plain"})
    check(got == (415, "unsupported_media_type"), got)
    # body larger than the limit (refused from Content-Length)
    out = raw(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: 8388609\r\n\r\n[")
    check(out.startswith(b"HTTP/1.1 413") and b'"too_large"' in out, out)
    # an encoded LF would cut the request line in lws: refused, not truncated
    got = err("POST", "/v1/likes?url=cut%0Ahere")
    check(got == (400, "bad_url"), got)  # a control byte in the url
    S.settle()
    check(S.count("cut") == 0)
    check(S.count("a") == 0, "no error case counted anything")


def test_post_without_content_length():
    # curl -X POST sends no length: no body, answered, connection closed
    out = raw(b"POST /v1/likes?url=nolen HTTP/1.1\r\nHost: x\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 200"), out)
    check(b"connection: close" in out.lower(), out)
    check(json.loads(out.split(b"\r\n\r\n", 1)[1])["count"] == 1, out)
    out = raw(b"POST /v1/likes HTTP/1.1\r\nHost: x\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 411"), out)


def test_pipelined_requests_each_counted_once():
    req = (b"POST /v1/likes?url=pipe HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 0\r\n\r\n")
    out = raw(req * 20 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    check(out.count(b"HTTP/1.1 200") == 21, out[:300])
    S.settle()
    check(S.count("pipe") == 20)


def test_counts_many_and_unknown():
    S.like("m/1", n=2)
    S.settle()
    c = S.counts("m/1", "m/unknown", "caf\u00e9 \U0001F44D")
    check(c["m/1"]["count"] == 2)
    check(c["m/unknown"] == {"count": 0, "likes": 0, "unlikes": 0,
                             "views": 0, "watching": 0,
                             "updated_at": None}, c)
    check(c["caf\u00e9 \U0001F44D"]["count"] == 0)
    q = "&".join("url=u%d" % i for i in range(51))
    st, code = err("GET", "/v1/counts?" + q)
    check((st, code) == (400, "too_many_urls"), (st, code))


def test_top():
    for i in range(5):
        S.like("top/%d" % i, n=100000 + i)
    # top lists are republished at most once a tick
    b = wait_for(lambda: S.json("GET", "/v1/top?limit=3")[1],
                 lambda b: [t["url"] for t in b["top"]] ==
                 ["top/4", "top/3", "top/2"], what="the top list")
    check(b["top"][0]["count"] == 100004)
    st, b = S.json("GET", "/v1/top")
    check(len(b["top"]) == 10, b)


def test_history_from_database():
    S.like("h/1", n=7)
    S.like("h/1", n=2, method="DELETE")
    # read from the database: there once a flush wrote it
    st, b = wait_for(lambda: S.json("GET", "/v1/history?url=h/1"),
                     lambda r: r[0] != 200 or (
                         r[1]["points"] and
                         r[1]["points"][0]["unlikes"] == 2),
                     what="h/1 in /v1/history")
    check(st == 200 and b["url"] == "h/1" and b["step"] == 60, b)
    check(len(b["points"]) == 1, b)
    p = b["points"][0]
    check(p["likes"] == 7 and p["unlikes"] == 2 and p["t"].endswith(":00.000Z"),
          p)
    st, b = S.json("GET", "/v1/history?url=h/1&since=2001-01-01&until=2001-01-02")
    check(b["points"] == [], b)
    st, b = S.json("GET", "/v1/history?url=h/never")
    check(b["points"] == [], b)


def test_health_ready_metrics_stats():
    st, b = S.json("GET", "/healthz")
    check((st, b) == (200, {"status": "ok"}))
    st, b = S.json("GET", "/readyz")
    check((st, b) == (200, {"status": "ready"}))
    st, data, r = S.get("/metrics")
    text = data.decode()
    check(st == 200 and r.getheader("Content-Type").startswith("text/plain"))
    for name in ("livecount_likes_total", "livecount_http_requests_total",
                 "livecount_connections", "livecount_dispatch_tick_seconds",
                 "livecount_flush_rows_total", "livecount_flush_errors_total"):
        check(name in text, name)
    check('route="likes",code="400"' in text)
    check("example.com" not in text, "no URL in metric labels")
    st, b = S.json("GET", "/v1/stats")
    check(st == 200 and b["likes_total"] > 0 and "connections" in b, b)


def test_cors():
    st, data, r = S.request("OPTIONS", "/v1/likes?url=x",
                            headers={"Origin": "http://elsewhere.example",
                                     "Access-Control-Request-Method": "POST"})
    check(st == 204, st)
    check("POST" in r.getheader("Access-Control-Allow-Methods"))
    check(r.getheader("Access-Control-Allow-Origin") == "*")
    st, data, r = S.request("GET", "/v1/counts?url=x")
    check(r.getheader("Access-Control-Allow-Origin") == "*")
    st, data, r = S.request("POST", "/v1/likes?url=cors")
    check(st == 200 and r.getheader("Access-Control-Allow-Origin") == "*")


def test_static_dashboard_files():
    st, data, r = S.get("/")
    if st == 404:  # web/ not written yet in this checkout
        return
    check(st == 200 and r.getheader("Content-Type").startswith("text/html"))
    st, data, r = S.get("/../../etc/passwd")
    check(st == 404, st)


def main():
    global S
    with Server() as S:
        run([test_like_query_form_and_unlike, test_like_json_object_and_batch,
             test_rejected_batch_counts_nothing, test_bad_input_errors,
             test_post_without_content_length,
             test_pipelined_requests_each_counted_once,
             test_counts_many_and_unknown, test_top,
             test_history_from_database, test_health_ready_metrics_stats,
             test_cors, test_static_dashboard_files])


if __name__ == "__main__":
    main()
