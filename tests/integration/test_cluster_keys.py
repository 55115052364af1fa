"""Cluster-wide Idempotency-Keys never make a worker wait for Redis (issue
20, item 1): a keyed like's claim goes to the bridge's key thread and the
answer comes back through the worker's mailbox, so other requests on the
same worker are served meanwhile; every claim is settled or released (a
Redis stall leaves no key 'pending' for a day, a client that leaves
releases its claim), and a retry on another node gets the first answer."""
import socket
import threading
import time

import lc
from lc import DelayProxy, Redis, Server, check, run


def wait_for(pred, timeout=20, what="condition"):
    """Until pred() is True (lc.wait_for, the one poll of the tests)."""
    lc.wait_for(pred, lambda v: v is True, timeout, what,
                errors=(OSError, AssertionError))


def link_up(n):
    """The link and the key connection: claims then reach Redis."""
    return (n.metric("livecount_cluster_link_up") == 1 and
            n.metric("livecount_cluster_keys_link_up") == 1)


def raw_request(port, text):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(text.encode())
    return s


def read_reply(s):
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            break
        data += d
    return data


def keyed(path, key):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
            "Idempotency-Key: %s\r\n\r\n" % (path, key))


def test_worker_serves_while_a_claim_waits():
    """One worker, Redis 40 ms away each way (a claim takes ~80 ms, more
    than the 50 ms a claim may wait): the keyed like is answered after
    /healthz, sent after it on another connection. Before, the worker
    was blocked in the claim and /healthz came second."""
    with Redis() as r:
        px = DelayProxy(r.port, 0.040)
        try:
            with Server("--redis-url", "redis://127.0.0.1:%d" % px.port,
                        "--node-id", "1", workers=1) as a:
                wait_for(lambda: link_up(a), what="link up")
                order = []
                for i in range(5):
                    like = raw_request(a.port, keyed(
                        "/v1/likes?url=slow&n=1", "k-slow-%d" % i))
                    time.sleep(0.005)
                    hz = raw_request(a.port, "GET /healthz HTTP/1.1\r\n"
                                     "Host: x\r\n\r\n")
                    got = []

                    def rd(s, name):
                        read_reply(s)
                        got.append(name)
                    ts = [threading.Thread(target=rd, args=(like, "like")),
                          threading.Thread(target=rd, args=(hz, "healthz"))]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                    like.close()
                    hz.close()
                    order.append(got[0])
                check(order.count("healthz") >= 4, order)
                wait_for(lambda: a.count("slow") == 5, what="5 likes")
        finally:
            px.close()


def test_stall_leaves_no_pending_claim():
    """Redis sleeps 300 ms (DEBUG SLEEP): claims time out at 50 ms and
    are decided locally, Redis runs them late, and the settle that follows
    on the same connection stores the answer: no key stays 'pending'
    (before: pending for the key's whole lifetime, and a retry on another
    node got 409 for a day)."""
    with Redis() as r, \
            Server("--redis-url", r.url(), "--node-id", "1",
                   workers=1) as a, \
            Server("--redis-url", r.url(), "--node-id", "2",
                   workers=1) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        st, _, _ = a.request("POST", "/v1/likes?url=warm",
                             headers={"Idempotency-Key": "warm"})
        check(st == 200)
        wait_for(lambda: r.cmd("GET", "lc:idem:h:warm") is not None,
                 what="key connection up")
        sl = threading.Thread(target=lambda: r.cmd("DEBUG", "SLEEP", "0.3"))
        sl.start()
        time.sleep(0.02)
        for i in range(5):
            st, _, _ = a.request("POST", "/v1/likes?url=stall",
                                 headers={"Idempotency-Key": "st-%d" % i})
            check(st == 200, st)
        sl.join()

        def settled():
            vals = [r.cmd("GET", "lc:idem:h:st-%d" % i) for i in range(5)]
            return True if all(v and v.startswith("200\n")
                               for v in vals) else vals
        wait_for(settled, what="every claim settled with its answer")
        ttl = r.cmd("PTTL", "lc:idem:h:st-0")
        check(ttl > 3600 * 1000, ttl)  # the key's lifetime, not 'pending'
        # b's key connection may have been cut by the stall: once a
        # retry of the warm-up key is answered there, it is back
        wait_for(lambda: b.request(
            "POST", "/v1/likes?url=warm",
            headers={"Idempotency-Key": "warm"})[2].getheader(
                "idempotent-replayed") == "true", what="b's key link")
        # a retry on the other node: the first answer, not counted again
        for i in range(5):
            st, body, h = b.request("POST", "/v1/likes?url=stall",
                                    headers={"Idempotency-Key": "st-%d" % i})
            check(st == 200 and h.getheader("idempotent-replayed") ==
                  "true", (st, body))
        wait_for(lambda: a.count("stall") == 5 and b.count("stall") == 5,
                 what="5 likes on both")


def test_client_gone_never_leaves_a_pending_claim():
    """The client leaves while its claim is on its way: the claim ends
    settled (the like counted once, its answer stored for a retry) or
    released, never 'pending'; the retry counts nothing more."""
    with Redis() as r:
        px = DelayProxy(r.port, 0.020)
        try:
            with Server("--redis-url", "redis://127.0.0.1:%d" % px.port,
                        "--node-id", "1", workers=1) as a:
                wait_for(lambda: link_up(a), what="link up")
                s = raw_request(a.port, keyed("/v1/likes?url=gone",
                                              "k-gone"))
                time.sleep(0.005)
                s.close()

                def done():
                    v = r.cmd("GET", "lc:idem:h:k-gone")
                    return True if v is None or v.startswith("200\n") \
                        else v
                time.sleep(0.3)
                wait_for(done, what="claim settled or released")
                st, _, h = a.request("POST", "/v1/likes?url=gone",
                                     headers={"Idempotency-Key": "k-gone"})
                check(st == 200)
                wait_for(lambda: a.count("gone") == 1, what="counted once")
                time.sleep(0.2)
                check(a.count("gone") == 1)
                v = r.cmd("GET", "lc:idem:h:k-gone")
                check(v is not None and v.startswith("200\n"), v)
        finally:
            px.close()


def test_websocket_keyed_like_crosses_nodes():
    """A WebSocket like with an id is a key too: acknowledged after its
    claim, and its retry on another node is answered, not counted."""
    with Redis() as r, \
            Server("--redis-url", r.url(), "--node-id", "1",
                   workers=1) as a, \
            Server("--redis-url", r.url(), "--node-id", "2",
                   workers=1) as b:
        for n in (a, b):
            wait_for(lambda: link_up(n), what="link up")
        ws = a.ws([])
        ws.send({"op": "like", "url": "wsk", "id": "w-1"})
        ack = ws.until(lambda m: m.get("type") == "liked")[-1]
        check(ack["id"] == "w-1" and ack["count"] == 1, ack)
        ws.close()
        wait_for(lambda: (r.cmd("GET", "lc:idem:w:w-1") or "")
                 .startswith("200\n"), what="ws key settled")
        ws = b.ws([])
        ws.send({"op": "like", "url": "wsk", "id": "w-1"})
        ack = ws.until(lambda m: m.get("type") == "liked")[-1]
        check(ack["id"] == "w-1" and ack["count"] == 1, ack)
        ws.close()
        wait_for(lambda: a.count("wsk") == 1 and b.count("wsk") == 1,
                 what="counted once")


run([test_worker_serves_while_a_claim_waits,
     test_stall_leaves_no_pending_claim,
     test_client_gone_never_leaves_a_pending_claim,
     test_websocket_keyed_like_crosses_nodes])
