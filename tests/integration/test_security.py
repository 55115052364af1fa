"""Security: the holes found by probing as an attacker would (issue 22),
each with the request that reached it. A WebSocket like op's longest "id"
through the flush and a restart (it overflowed the batcher's key record);
an Origin too long to read refused like a wrong one (it was taken for "no
Origin"); writes and SSE from a foreign Origin refused; per-IP bounds on
subscribed URL bytes; metrics_token; short tokens refused; Vary: Origin;
TLS with forward secrecy only, HSTS and a warning for a readable key."""
import os
import socket
import ssl
import subprocess
import tempfile

import lc
from lc import WS, Server, check, run, wait_for

TOKEN = "0123456789abcdef-metrics"


def poll(fn, timeout=None, what="condition"):
    """Calls fn() until it returns something true; returns that."""
    return wait_for(fn, timeout=timeout, what=what, interval=0.05,
                    errors=())


def test_longest_ws_id_survives_flush_and_restart():
    client_id = "i" * 128  # the longest id API.md allows
    with Server() as s:
        w = s.ws(["k/1"])
        w.recv()
        w.send({"op": "like", "url": "k/1", "n": 1, "id": client_id})
        ack = w.until(lambda m: m["type"] == "liked")[-1]
        check(ack["count"] == 1, ack)
        # one byte longer is refused, not truncated
        w.send({"op": "like", "url": "k/1", "n": 1, "id": client_id + "i"})
        err = w.until(lambda m: m["type"] == "error")[-1]
        check(err["error"] == "bad_request", err)
        w.close()
        s.restart()  # SIGTERM: the final flush writes the key
        check(s.count("k/1") == 1)
        w = s.ws(["k/1"])
        w.recv()
        w.send({"op": "like", "url": "k/1", "n": 1, "id": client_id})
        ack = w.until(lambda m: m["type"] == "liked")[-1]
        check(ack["count"] == 1, ack)  # the first answer, replayed
        w.close()
        check(s.count("k/1") == 1)


def upgrade(port, origin):
    return lc.ws_upgrade_raw(port, origin, "/v1/ws?url=o")


def test_origin_refused_whatever_its_length():
    good = "https://example.com"
    long_evil = "https://" + "a" * 240 + ".evil.net"
    with Server("--allowed-origins", good) as s:
        check(upgrade(s.port, good).startswith(b"HTTP/1.1 101"))
        check(b" 403 " in upgrade(s.port, "https://evil.net").split(b"\r\n")[0])
        data = upgrade(s.port, long_evil)  # was 101 Switching Protocols
        check(b" 403 " in data.split(b"\r\n")[0] and
              b"forbidden_origin" in data, data[:200])
        # longer than any header line we read: refused too
        data = upgrade(s.port, "https://" + "b" * 2000 + ".evil.net")
        check(b"101 Switching" not in data, data[:200])
        # writes: a foreign browser page cannot like (no-cors form post)
        for origin in ("https://evil.net", long_evil):
            st, b = s.json("POST", "/v1/likes?url=o",
                           headers={"Origin": origin})
            check(st == 403 and b["error"] == "forbidden_origin", (st, b))
        st, b = s.json("POST", "/v1/likes?url=o", headers={"Origin": good})
        check(st == 200 and b["count"] == 1, (st, b))
        st, b = s.json("POST", "/v1/likes?url=o")  # not a browser
        check(st == 200, (st, b))
        # SSE from a foreign origin
        for origin in ("https://evil.net", long_evil):
            st, data, r = s.request("GET", "/v1/events?url=o",
                                    headers={"Origin": origin})
            check(st == 403, (st, data))
        # refused CORS answers vary by Origin too (caches)
        st, data, r = s.request("GET", "/v1/counts?url=o",
                                headers={"Origin": "https://evil.net"})
        check(st == 200 and r.getheader("access-control-allow-origin") is None
              and r.getheader("vary") == "Origin", r.getheaders())
        st, data, r = s.request("GET", "/v1/counts?url=o",
                                headers={"Origin": good})
        check(r.getheader("access-control-allow-origin") == good and
              r.getheader("vary") == "Origin", r.getheaders())
        poll(lambda: s.count("o") == 2, what="both likes counted")
    with Server() as s:  # "*": a public like button works from anywhere
        st, b = s.json("POST", "/v1/likes?url=o", headers={"Origin": long_evil})
        check(st == 200, (st, b))


def test_metrics_token():
    with Server("--metrics-token", TOKEN) as s:
        for path in ("/metrics", "/v1/stats"):
            st, b = s.json("GET", path)
            check(st == 401 and b["error"] == "unauthorized", (path, st, b))
            st, b = s.json("GET", path,
                           headers={"Authorization": "Bearer " + TOKEN[:-1]})
            check(st == 401, (path, st))
            st, data, r = s.request(
                "GET", path, headers={"Authorization": "Bearer " + TOKEN})
            check(st == 200 and len(data) > 100, (path, st))
        check(s.get("/healthz")[0] == 200 and s.get("/readyz")[0] == 200)
        check(s.like("m/1")[0] == 200)  # the API stays open


def start_fails(*args):
    d = tempfile.mkdtemp(prefix="lc-sec-")
    p = subprocess.run([lc.BIN, "--port", "0", "--db", os.path.join(d, "db")]
                       + list(args), capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode()


def test_short_tokens_refused():
    for key in ("--write-token", "--metrics-token"):
        rc, err = start_fails(key, "s3cret")
        check(rc == 2 and "shorter than 16 bytes" in err, (rc, err))
        check("s3cret" not in err, err)


def test_subscribed_bytes_per_ip():
    url = "https://example.com/" + "p" * 1980
    limit = 20 * (len(url[:2000]) + 4 + 256)  # room for 20 subscriptions
    with Server("--max-subscribed-bytes-per-ip", str(limit),
                "--max-subs-per-conn", "100") as s:
        base = s.metric("livecount_urls")
        conns, refused = [], 0
        for c in range(5):
            w = s.ws()
            w.send({"op": "subscribe",
                    "urls": ["%s/%d/%d" % (url[:2000], c, i)
                             for i in range(5)]})
            m = w.until(lambda m: m["type"] in ("snapshot", "error"))[-1]
            if m["type"] == "error":
                check(m["error"] == "too_many_subscriptions", m)
                refused += 1
            conns.append(w)
        # 4 connections x 5 fit in 20; the fifth is refused
        check(refused == 1, refused)
        e = s.sse(["x/small"])  # also SSE, also counted
        # leaving gives the bytes back: a new connection fits again
        for w in conns:
            w.close()
        e.close()

        def fits():
            w = s.ws()
            w.send({"op": "subscribe",
                    "urls": ["%s/n/%d" % (url[:2000], i) for i in range(19)]})
            m = w.until(lambda m: m["type"] in ("snapshot", "error"))[-1]
            w.close()
            return m["type"] == "snapshot"
        poll(fits, what="the account to be given back")
        # and the URLs nobody liked are freed
        poll(lambda: s.metric("livecount_urls") <= base + 1,
             what="subscribe-only URLs freed")


def make_cert(d, mode):
    crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, mode)
    return crt, key


def tls_connect(port, crt, ciphers=None, maxver=None):
    ctx = ssl.create_default_context(cafile=crt)
    ctx.check_hostname = False
    if ciphers:
        ctx.set_ciphers(ciphers)
    if maxver:
        ctx.maximum_version = maxver
    raw = socket.create_connection(("127.0.0.1", port), 5)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_policy_hsts_and_key_mode():
    d = tempfile.mkdtemp(prefix="lc-tls-")
    crt, key = make_cert(d, 0o644)
    port = lc.free_port()
    log = os.path.join(d, "server.log")
    p = subprocess.Popen([lc.BIN, "--bind", "127.0.0.1", "--port", str(port),
                          "--db", os.path.join(d, "lc.db"), "--tls-cert", crt,
                          "--tls-key", key, "--hsts-max-age", "31536000"],
                         stderr=open(log, "wb"))
    try:
        tls = poll(lambda: _try(tls_connect, port, crt), what="TLS listener")
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = tls.recv(4096).decode(errors="replace").lower()
        check("strict-transport-security: max-age=31536000" in head, head)
        tls.close()
        # TLS 1.2 without forward secrecy: refused
        for weak in ("AES128-SHA", "AES256-SHA256"):
            try:
                t = tls_connect(port, crt, weak, ssl.TLSVersion.TLSv1_2)
                t.close()
                raise AssertionError(weak + " was accepted")
            except ssl.SSLError:
                pass
        t = tls_connect(port, crt, "ECDHE-RSA-AES128-GCM-SHA256",
                        ssl.TLSVersion.TLSv1_2)
        check(t.version() == "TLSv1.2", t.version())
        t.close()
        t = tls_connect(port, crt)
        check(t.version() == "TLSv1.3", t.version())
        t.close()
    finally:
        p.terminate()
        p.wait(20)
    text = open(log).read()
    check("tls_key" in text and "readable by group or others" in text, text)


def _try(fn, *a):
    try:
        return fn(*a)
    except OSError:
        return None


if __name__ == "__main__":
    run([test_longest_ws_id_survives_flush_and_restart,
         test_origin_refused_whatever_its_length, test_metrics_token,
         test_short_tokens_refused, test_subscribed_bytes_per_ip,
         test_tls_policy_hsts_and_key_mode])
