"""WebSocket subscriptions: snapshot, updates across workers, unsubscribe,
likes over WS, bad frames, limits, pings."""
import json
import socket
import struct
import threading
import time

from lc import WAIT_S, WS, Server, cds, check, run, snap

S = None


def test_handshake_subprotocol_and_path():
    w = S.ws(["a"])
    check("sec-websocket-protocol: livecount.v1" in w.handshake.lower(),
          w.handshake)
    w.close()
    for kw in ({"path": "/nope"}, {"protocol": "other.v9"}):
        try:
            WS(S.port, ["a"], **kw).close()
            ok = True
        except ConnectionError:
            ok = False
        check(not ok, "refused: %r" % kw)
    st, b = S.json("GET", "/v1/ws")
    check(st == 426 and b["error"] == "upgrade_required", (st, b))


def test_snapshot_then_updates_across_workers():
    S.like("ws/a", n=5)
    S.settle()
    w = S.ws(["ws/a"])
    m = w.recv()
    check(m["type"] == "snapshot" and snap(m) == {"ws/a": 5}, m)
    # 10 more likes over separate connections (spread over both workers)
    for _ in range(10):
        S.like("ws/a")
    seen = w.until(lambda m: m["counts"]["ws/a"]["count"] == 15)
    last_seq = 0
    total_delta = 0
    for m in seen:
        check(m["type"] == "update" and m["seq"] > last_seq, m)
        check(abs(m["ts"] / 1000 - time.time()) < 60, m)  # Unix ms
        last_seq = m["seq"]
        total_delta += m["counts"]["ws/a"]["delta"]
    check(total_delta == 10, seen)
    w.close()


def test_subscribe_op_and_only_subscribed_urls():
    w = S.ws()
    w.send({"op": "subscribe", "urls": ["ws/b", "ws/c"]})
    m = w.recv()
    check(m["type"] == "snapshot" and snap(m) == {"ws/b": 0, "ws/c": 0},
          m)
    S.like("ws/not-mine", n=3)
    S.like("ws/c", n=2)
    m = w.recv()
    check(m["type"] == "update" and
          cds(m) == {"ws/c": {"count": 2, "delta": 2}}, m)
    # Nothing for ws/not-mine: the next frame, after its like is merged
    # and another like of ws/c, carries ws/c alone (frames are in order).
    S.like("ws/not-mine")
    S.settle()
    S.like("ws/c")
    m = w.recv()
    check(m["type"] == "update" and
          cds(m) == {"ws/c": {"count": 3, "delta": 1}}, m)
    w.close()


def test_unsubscribe_stops_updates():
    w = S.ws(["ws/u"])
    w.recv()
    S.like("ws/u")
    check(w.recv()["counts"]["ws/u"]["count"] == 1)
    w.send({"op": "unsubscribe", "urls": ["ws/u"]})
    # frames are handled in order: this snapshot means it is unsubscribed
    w.send({"op": "subscribe", "urls": ["ws/u-mark"]})
    check(snap(w.recv()) == {"ws/u-mark": 0})
    S.like("ws/u")
    S.settle()
    S.like("ws/u-mark")
    m = w.recv()
    check(m["type"] == "update" and
          cds(m) == {"ws/u-mark": {"count": 1, "delta": 1}},
          "update after unsubscribe: %r" % m)
    # resubscribing gives a fresh snapshot with the current count
    w.send({"op": "subscribe", "urls": ["ws/u"]})
    m = w.recv()
    check(m["type"] == "snapshot" and snap(m) == {"ws/u": 2}, m)
    w.close()


def test_like_over_websocket():
    w = S.ws(["ws/l"])
    w.recv()
    w.send({"op": "like", "url": "ws/l", "n": 4})
    w.send({"op": "like", "url": "ws/l", "n": -1})
    w.until(lambda m: m["counts"]["ws/l"]["count"] == 3)
    S.settle()
    check(S.count("ws/l") == 3)
    w.close()


def test_bad_frames_get_errors_and_connection_stays():
    w = S.ws(["ws/e"])
    w.recv()
    for frame, code in (("not json", "bad_json"),
                        ('{"op":"dance"}', "bad_op"),
                        ('{"op":"subscribe","urls":"x"}', "bad_url"),
                        ('{"op":"subscribe","urls":["a\\nb"]}', "bad_url"),
                        ('{"op":"like","url":"x","n":"1"}', "bad_n"),
                        ('{"op":"like","url":"x","n":0}', "bad_n"),
                        ("[]", "bad_op")):
        w.send(frame)
        m = w.recv()
        check(m["type"] == "error" and m["error"] == code and m["message"],
              (frame, m))
    w.send_frame(2, b"\x00\x01binary")
    check(w.recv()["error"] == "bad_op")
    # still subscribed and served
    S.like("ws/e")
    m = w.recv()
    check(m["type"] == "update" and m["counts"]["ws/e"]["count"] == 1, m)
    w.close()


def test_misbehaving_client_is_closed():
    w = S.ws()
    for _ in range(30):
        w.send("garbage")
    try:
        while True:
            w.recv()
    except ConnectionError:
        pass
    check(w.close_code == 1008, w.close_code)


def test_message_too_large_closes_1009():
    w = S.ws()
    w.send(json.dumps({"op": "subscribe", "urls": ["x" * 2000] * 40}))
    try:
        while True:
            w.recv()
    except ConnectionError:
        pass
    check(w.close_code == 1009, w.close_code)


def test_subscription_limit():
    w = S.ws()
    w.send({"op": "subscribe", "urls": ["lim/%d" % i for i in range(100)]})
    check(w.recv()["type"] == "snapshot")
    w.send({"op": "subscribe", "urls": ["lim/extra"]})
    m = w.recv()
    check(m["type"] == "error" and m["error"] == "too_many_subscriptions", m)
    check(S.metric("livecount_subscriptions") >= 100)
    w.close()


def test_rate_limit():
    w = S.ws()
    # in one write, so all 260 land in the same one-second window however
    # slow the machine is
    op = json.dumps({"op": "like", "url": "rate", "n": 1}).encode()
    w.sock.sendall(b"".join(w.frame(1, op) for _ in range(260)))
    m = w.recv()
    check(m["type"] == "error" and m["error"] == "rate_limited", m)
    w.close()
    S.settle()
    check(S.count("rate") == 200, S.counts("rate"))


def test_unmasked_and_fragmented_frames():
    # fragmented text message, reassembled by the server
    w = S.ws()
    msg = json.dumps({"op": "subscribe", "urls": ["frag"]}).encode()
    w.send_frame(1, msg[:10], fin=False)
    w.send_frame(0, msg[10:20], fin=False)
    w.send_frame(0, msg[20:], fin=True)
    check(snap(w.recv()) == {"frag": 0})
    w.close()


def closed_with(w, timeout=None):
    try:
        while True:
            w.recv(timeout=timeout)
    except ConnectionError:
        pass
    return w.close_code


def test_protocol_violations():
    w = S.ws()
    w.send_frame(1, b'{"op":"subscribe","urls":["\xff\xfe"]}')
    check(closed_with(w) == 1007, "invalid UTF-8 closes with 1007")
    # a ping flood is answered without hurting anyone
    w = S.ws()
    other = S.ws(["flood"])
    other.recv()
    for _ in range(5000):
        w.send_frame(9, b"x")
    w.send({"op": "subscribe", "urls": ["flood"]})
    m = w.until(lambda m: m.get("type") == "snapshot")[-1]
    check(m["counts"] == {"flood": 0}, m)
    S.like("flood")
    check(other.recv()["counts"]["flood"]["count"] == 1)
    w.close()
    other.close()
    # a control frame longer than 125 bytes is a protocol error: lws 4.1.6
    # drops the connection (without a close frame)
    w = S.ws()
    w.send_frame(9, b"x" * 200)
    check(closed_with(w) in (1002, None), w.close_code)
    check(S.get("/healthz")[0] == 200)


def test_server_pings_and_drops_silent_peers():
    with Server("--ws-ping-ms", "300") as s2:
        w = s2.ws(["ping"])
        w.recv()
        w.sock.settimeout(WAIT_S)
        t0 = time.time()
        op, data = w.recv_frame()
        while op == 1:  # the URL's watching figure (this subscriber)
            op, data = w.recv_frame()
        check(op == 9, "expected a ping, got opcode %d" % op)
        print("     ping after %.2fs of silence (ws_ping_ms 300, 1 s sweep)"
              % (time.time() - t0))
        w.send_frame(10, data)
        # the polite client keeps answering pings (recv does) in a thread
        got = []
        t = threading.Thread(target=lambda: got.append(
            w.until(lambda m: m["type"] == "update")))
        t.start()
        silent = s2.ws(["ping"])
        silent.recv()
        # never answers pings: closed one interval after an unanswered ping
        deadline = time.time() + WAIT_S
        closed = False
        silent.sock.settimeout(0.5)
        while time.time() < deadline and not closed:
            try:
                op, data = silent.recv_frame()
                closed = op == 8
            except socket.timeout:
                pass
            except ConnectionError:
                closed = True
        check(closed, "a peer that never answers pings is closed")
        s2.like("ping")
        t.join()
        check(got and got[0][-1]["counts"]["ping"]["count"] == 1, got)
        w.close()


def main():
    global S
    with Server("--max-ops-per-sec", "200") as S:
        run([test_handshake_subprotocol_and_path,
             test_snapshot_then_updates_across_workers,
             test_subscribe_op_and_only_subscribed_urls,
             test_unsubscribe_stops_updates, test_like_over_websocket,
             test_bad_frames_get_errors_and_connection_stays,
             test_misbehaving_client_is_closed,
             test_message_too_large_closes_1009, test_subscription_limit,
             test_rate_limit, test_unmasked_and_fragmented_frames,
             test_protocol_violations,
             test_server_pings_and_drops_silent_peers])


if __name__ == "__main__":
    main()
