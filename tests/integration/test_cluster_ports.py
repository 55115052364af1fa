"""Ports shared only on purpose (issue 20, item 6): with reuse_port a port
is shared only among nodes of one cluster, never with a standalone server,
a node of another cluster or another program, and the refusal names the
holder; a node that stopped cleanly has given its lease and its port back
(an immediate restart, or another server on the port, starts at once)."""
import os
import socket
import subprocess
import tempfile

from lc import BIN, Redis, Server, check, free_port, run, wait_for


def start(*args, port):
    """Runs a server expected to be refused; returns (code, stderr)."""
    d = tempfile.mkdtemp(prefix="lc-it-")
    p = subprocess.run([BIN, "--bind", "127.0.0.1", "--port", str(port),
                        "--db", os.path.join(d, "x.db"), "--workers", "1"]
                       + list(args), capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode(errors="replace")


def node(redis, node_id, port, **kw):
    return Server("--redis-url", redis.url(), "--node-id", str(node_id),
                  "--reuse-port", workers=1, port=port, **kw)


def test_never_with_a_standalone_server():
    port = free_port()
    with Redis() as r, Server(port=port, workers=1) as s:
        code, err = start("--reuse-port", "--redis-url", r.url(),
                          "--node-id", "1", port=port)
        check(code != 0, (code, err))
        check("held by livecount pid %d, a standalone server" % s.proc.pid
              in err, err)
        # and a second standalone with reuse_port does not join either
        with Server("--reuse-port", port=free_port(), workers=1) as s2:
            code, err = start("--reuse-port", port=s2.port)
            check(code != 0 and "pid %d, a standalone" % s2.proc.pid
                  in err, (code, err))
        # the refused node gave its lease back on the way out
        check(r.cmd("GET", "lc:node:1") is None)


def test_only_nodes_of_one_cluster():
    port = free_port()
    with Redis() as r1, Redis() as r2:
        with node(r1, 1, port) as a, node(r1, 2, port) as b:
            code, err = start("--reuse-port", "--redis-url", r2.url(),
                              "--node-id", "3", port=port)
            check(code != 0, (code, err))
            check("of another cluster" in err and
                  ("pid %d" % a.proc.pid in err or
                   "pid %d" % b.proc.pid in err), err)
            # a standalone server without reuse_port: refused, named
            code, err = start(port=port)
            check(code != 0 and "in use by another process" in err and
                  "node " in err, (code, err))
            # a third node of the same cluster joins
            with node(r1, 3, port) as c:
                check(c.get("/healthz")[0] == 200)


def test_never_with_another_program():
    port = free_port()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    try:
        with Redis() as r:
            code, err = start("--reuse-port", "--redis-url", r.url(),
                              "--node-id", "1", port=port)
            check(code != 0, (code, err))
            check("another program (pid %d" % os.getpid() in err, err)
    finally:
        s.close()


def test_stopped_cleanly_gives_back_lease_and_port():
    port = free_port()
    with Redis() as r:
        a = node(r, 1, port)
        check(a.stop() == 0 and "stopped cleanly" in a.logtext())
        check(r.cmd("GET", "lc:node:1") is None)
        # at once: the same node again, then a standalone server
        a.start()
        check(a.stop() == 0)
        with Server(port=port, workers=1) as s:
            check(s.get("/healthz")[0] == 200)


def test_a_name_without_a_listener_does_not_hold_the_port():
    """A guard name whose process no longer listens on the port (a server
    still stopping, or refused a moment ago, keeps its name until it
    exits) does not turn a node away from a port its cluster serves. Seen
    under ASan: a free port handed to this cluster's nodes still carried
    a stopping standalone server's name, and node 2 was refused."""
    port = free_port()
    with Redis() as r, node(r, 1, port) as a:
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(("\0livecount-port:%d:standalone:0:%d"
                    % (port, os.getpid())).encode())
        try:
            with node(r, 2, port) as b:
                # (the shared port answers for a: b's own log tells)
                wait_for(lambda: "listening on" in b.logtext() or
                         "cannot share" in b.logtext(),
                         what="node 2 listening or refused")
                check("listening on" in b.logtext(), b.logtext())
                check(a.proc.poll() is None and b.proc.poll() is None)
        finally:
            stale.close()


run([test_never_with_a_standalone_server, test_only_nodes_of_one_cluster,
     test_never_with_another_program,
     test_stopped_cleanly_gives_back_lease_and_port,
     test_a_name_without_a_listener_does_not_hold_the_port])
