"""One like path (issue 18): every transport meets the same rules and the
answers read this node's writes. README's curl walk-through, a request a
new connection each (so each may land on another worker), prints the
counts a person expects; WebSocket like ops are rate limited per IP like
HTTP likes (they were not); the 507 message is the same; %00 and other
control bytes in a query get a JSON 400."""
import json
import socket
import urllib.parse

from lc import Server, check, run

A = "https://example.com/a"
B = "https://example.com/b"


def test_walk_through_reads_your_writes():
    # many workers and a slow tick: a stale answer would show
    with Server(workers=4, tick_ms=2000) as s:
        for _ in range(3):  # each round on fresh connections
            base = s.count(A)
            st, b = s.like(A)
            check(st == 200 and b["count"] == base + 1, b)
            st, b = s.like(A, 5)
            check(st == 200 and b["count"] == base + 6, b)
            st, b = s.like(A, method="DELETE")
            check(st == 200 and b["count"] == base + 5, b)
            check(s.count(A) == base + 5)
        st, b = s.json("POST", "/v1/likes", {"url": B, "n": 3})
        check(st == 200 and b["count"] == 3, b)
        st, b = s.json("POST", "/v1/likes", [{"url": A, "n": 2},
                                              {"url": B, "n": -1}])
        check(st == 200 and b["accepted"] == 2, b)
        c = s.counts(A, B)
        check(c[A]["count"] == 17 and c[B]["count"] == 2, c)
        check(c[B]["likes"] == 3 and c[B]["unlikes"] == 1, c)


def test_ws_like_ops_share_the_ip_rate():
    with Server("--max-likes-per-sec-per-ip", "5") as s:
        w = s.ws()
        for i in range(20):
            w.send({"op": "like", "url": "rl", "n": 1, "id": "k%d" % i})
        msgs = w.until(lambda m: m["type"] == "error", timeout=10)
        err = msgs[-1]
        check(err["error"] == "rate_limited" and err["retry_after"] >= 1, err)
        w.close()
        liked = s.count("rl")
        check(1 <= liked <= 6, liked)  # 5 a second (plus refill)


def test_ws_like_answers_like_http():
    with Server("--max-urls", "1") as s:
        check(s.like("only")[0] == 200)
        st, http_err = s.like("new")
        check(st == 507, (st, http_err))
        w = s.ws()
        w.send({"op": "like", "url": "new", "n": 1})
        m = w.until(lambda m: m["type"] == "error")[-1]
        check(m["error"] == "url_limit" and
              m["message"] == http_err["message"], (m, http_err))
        w.send({"op": "like", "url": "only", "n": 2, "id": "x1"})
        ack = w.until(lambda m: m["type"] == "liked")[-1]
        check(ack == {"type": "liked", "id": "x1", "url": "only",
                      "count": 3}, ack)
        w.close()


def raw(port, line):
    sock = socket.create_connection(("127.0.0.1", port), 5)
    sock.sendall(line + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    sock.close()
    return data


def test_control_bytes_in_query_get_json_400():
    with Server() as s:
        for esc in ("%00", "%01", "%1f", "%7f"):
            for method, path in (("POST", "/v1/likes?url=a" + esc + "b"),
                                 ("GET", "/v1/counts?url=a" + esc),
                                 ("GET", "/v1/history?url=" + esc)):
                data = raw(s.port, ("%s %s HTTP/1.1" % (method, path))
                           .encode())
                head, _, body = data.partition(b"\r\n\r\n")
                check(b" 400 " in head.split(b"\r\n")[0], (esc, path, data))
                err = json.loads(body)
                check(err["error"] in ("bad_url", "bad_request"), err)
        check(s.get("/healthz")[0] == 200)


if __name__ == "__main__":
    run([test_walk_through_reads_your_writes,
         test_ws_like_ops_share_the_ip_rate, test_ws_like_answers_like_http,
         test_control_bytes_in_query_get_json_400])
