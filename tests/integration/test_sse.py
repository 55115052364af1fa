"""Server-Sent Events: headers, snapshot, updates, hostile URLs, pings,
Last-Event-ID, errors, departed clients."""
import socket
import time

from lc import SSE, Server, check, run, snap, wait_for

S = None


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_headers_snapshot_updates():
    S.like("sse/a", n=5)
    S.settle()
    e = S.sse(["sse/a"])
    h = e.head.lower()
    check(e.status == 200, e.head)
    check("content-type: text/event-stream" in h, h)
    check("cache-control: no-cache" in h and "x-accel-buffering: no" in h, h)
    ev = e.event()
    check(ev[:2] == ("snapshot", None) and snap(ev[2]) == {"sse/a": 5}, ev)
    for _ in range(10):
        S.like("sse/a")
    seen = e.until(lambda ev: ev[2]["counts"]["sse/a"]["count"] == 15)
    check(sum(ev[2]["counts"]["sse/a"]["delta"] for ev in seen) == 10, seen)
    for name, eid, data in seen:
        check(name == "update" and eid == str(data["seq"]), (name, eid, data))
        check(set(data) == {"seq", "ts", "counts"}, data)
    e.close()


HOSTILE = ['q"uote', "back\\slash", "</script><script>alert(1)</script>",
           "line\u2028sep\u2029para", "emoji \U0001F44D\U0001F3FD",
           "data: fake\\n\\nevent: x", "%0A%0D", "{\"json\":[1]}"]


def test_hostile_urls_keep_framing():
    e = S.sse(HOSTILE)
    ev = e.event()
    check(ev[0] == "snapshot" and set(ev[2]["counts"]) == set(HOSTILE), ev)
    for u in HOSTILE:
        S.like(u, n=2)
    got = {}
    while len(got) < len(HOSTILE):
        name, eid, data = e.event()
        check(name == "update", name)
        for u, c in data["counts"].items():
            if c["delta"]:  # not the URL's watching figure alone
                got[u] = c["count"]
    check(got == {u: 2 for u in HOSTILE}, got)
    # every block: only known field lines, exactly one data line
    for block in e.raw.split(b"\n\n"):
        if not block:
            continue
        lines = block.split(b"\n")
        check(sum(l.startswith(b"data: ") for l in lines) == 1, block)
        for l in lines:
            check(l.split(b": ", 1)[0] in (b"id", b"event", b"data"), l)
    # a URL with a real newline is refused before any stream starts
    st, b = S.json("GET", "/v1/events?url=a%0Bb")
    check(st == 400 and b["error"] == "bad_url", (st, b))
    e.close()


def test_last_event_id_gets_fresh_snapshot():
    S.like("sse/r", n=3)
    S.settle()
    for kw in ({"headers": {"Last-Event-ID": "12345"}},
               {"extra": "&lastEventID=12345"}):
        e = S.sse(["sse/r"], **kw)
        ev = e.event()
        check(ev[:2] == ("snapshot", None) and snap(ev[2]) == {"sse/r": 3},
              ev)
        e.close()


def test_ping_comment_after_silence():
    e = S.sse(["sse/quiet"])
    e.event()
    t0 = time.time()
    ev = e.event()
    check(ev[0] == "comment" and ev[2] == ": ping", ev)
    # after the silence, not before (an upper bound would time the box)
    check(0.2 < time.time() - t0, time.time() - t0)
    e.close()


def test_errors_before_stream():
    st, b = S.json("GET", "/v1/events")
    check(st == 400 and b["error"] == "bad_url", (st, b))
    q = "&".join("url=x%d" % i for i in range(51))
    st, b = S.json("GET", "/v1/events?" + q)
    check(st == 400 and b["error"] == "too_many_urls", (st, b))


def test_departed_clients_are_closed_without_spinning():
    before = S.metric('livecount_connections{transport="sse"}')
    streams = [S.sse(["sse/gone"]) for _ in range(30)]
    for e in streams:
        e.event()
    check(S.metric('livecount_connections{transport="sse"}') == before + 30)
    for e in streams:
        e.close()
    # departed SSE clients are closed
    S.wait_metric('livecount_connections{transport="sse"}',
                  lambda v: v == before)
    t0 = cpu_ticks(S.proc.pid)
    time.sleep(1.0)  # CPU used over a second: time is the point
    used = cpu_ticks(S.proc.pid) - t0
    check(used < 30, "server idle after clients left, used %d ticks" % used)


def test_sse_and_ws_see_the_same_counts():
    e = S.sse(["both"])
    e.event()
    w = S.ws(["both"])
    w.recv()
    for i in range(20):
        S.like("both", n=i + 1)
    e.until(lambda ev: ev[0] == "update" and
            ev[2]["counts"]["both"]["count"] == 210)
    w.until(lambda m: m["counts"]["both"]["count"] == 210)
    e.close()
    w.close()


def test_idle_stream_outlives_the_keepalive_timeout():
    """An SSE stream is not an idle keep-alive connection: it stays open
    past http_keepalive_s (it was closed then: every stream ended after
    60 s, and each like walked every stream's pending timeout)."""
    with Server("--http-keepalive-s", "1", "--sse-ping-ms", "600000",
                "--workers", "1") as s:
        e = s.sse(["sse/idle"])
        check(e.event()[0] == "snapshot")
        # An idle keep-alive connection opened after the stream is closed
        # at its timeout: by then the stream has been idle longer.
        c = socket.create_connection(("127.0.0.1", s.port), 10)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            got += c.recv(4096)
        check(got.startswith(b"HTTP/1.1 200"), got)
        c.settimeout(0.2)

        def closed():
            try:
                return c.recv(4096) == b""
            except socket.timeout:
                return False
        wait_for(closed, timeout=15, what="the idle keep-alive connection closed")
        c.close()
        s.like("sse/idle", n=2)
        ev = e.event(timeout=10)
        check(ev[0] == "update" and ev[2]["counts"]["sse/idle"]["count"] == 2,
              ev)
        e.close()


def main():
    global S
    with Server("--sse-ping-ms", "500") as S:
        run([test_headers_snapshot_updates, test_hostile_urls_keep_framing,
             test_last_event_id_gets_fresh_snapshot,
             test_ping_comment_after_silence, test_errors_before_stream,
             test_departed_clients_are_closed_without_spinning,
             test_sse_and_ws_see_the_same_counts,
             test_idle_stream_outlives_the_keepalive_timeout])


if __name__ == "__main__":
    main()
