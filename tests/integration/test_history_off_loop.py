"""GET /v1/history never holds up its worker: the query runs on a reader
thread and the request is answered when the rows come, while /healthz,
likes and subscribers on the same worker carry on."""

import socket
import threading
import time
import urllib.parse

import lc
from lc import Server, check, run


def poll(fn, timeout, step=0.05):
    """fn() once true, or its value at the deadline (lc.wait_for)."""
    try:
        return lc.wait_for(fn, bool, timeout, interval=step, errors=())
    except AssertionError:
        return fn()


class History(threading.Thread):
    """GET /v1/history in the background; .result once answered."""

    def __init__(self, s, url):
        super().__init__(daemon=True)
        self.s, self.url, self.result = s, url, None

    def run(self):
        self.result = self.s.json(
            "GET", "/v1/history?url=" + urllib.parse.quote(self.url, safe=""),
            timeout=30)


def test_slow_history_read_holds_up_nobody():
    # one worker: the history read, /healthz and the subscriber share it
    with Server(workers=1, env={"LC_TEST_HISTORY_DELAY_MS": "4000"}) as s:
        url = "https://example.com/h/slow"
        check(s.like(url, 3)[0] == 200)
        poll(lambda: s.metric("livecount_dirty_urls") == 0 and
             s.metric("livecount_flushes_total") >= 1, 10)
        w = s.ws([url])
        w.until(lambda m: m.get("type") == "snapshot")
        h = History(s, url)
        h.start()
        time.sleep(0.2)  # the read is waiting in the reader now
        check(s.get("/healthz")[0] == 200)
        check(s.like(url, 2)[0] == 200)
        w.until(lambda m: m.get("type") == "update" and
                m["counts"][url]["count"] == 5, timeout=10)
        check(h.result is None,
              "the history read waited while /healthz and the update went "
              "out (it answered at once: %r)" % (h.result,))
        h.join(30)
        st, body = h.result
        check(st == 200, (st, body))
        check(body["url"] == url and body["step"] == 60, body)
        # read after the wait: the later likes may be written by then
        check(sum(p["likes"] for p in body["points"]) in (3, 5), body)
        w.close()


def test_client_gone_before_the_answer():
    with Server(workers=1, env={"LC_TEST_HISTORY_DELAY_MS": "300"}) as s:
        for _ in range(5):
            c = socket.create_connection(("127.0.0.1", s.port))
            c.sendall(b"GET /v1/history?url=x HTTP/1.1\r\nHost: a\r\n\r\n")
            c.close()
        # the parked requests of closed connections are dropped; the
        # worker keeps answering, and a stop is clean
        st, body = s.json("GET", "/v1/history?url=x")
        check(st == 200 and body["points"] == [], (st, body))
        check(s.stop() == 0)


if __name__ == "__main__":
    run([test_slow_history_read_holds_up_nobody,
         test_client_gone_before_the_answer])
