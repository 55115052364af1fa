"""Cluster mode with a Redis that wants credentials (issue 20, item 5):
requirepass and ACL users through redis://[USER]:PASSWORD@HOST:PORT/DB;
wrong or missing credentials refused at start (exit 2, naming the problem);
the password never shown (logs, errors, --check-config, /v1/stats,
/metrics); rediss:// refused (hiredis 0.14.1 has no TLS) and the README's
stunnel tunnel to a TLS-only Redis, tested as written there."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import lc
from lc import (BIN, REDIS_SERVER, Redis, Server, _read, check, free_port,
                node_totals, run)

PASSWORD = "s3cr3t-PW%x"   # percent-encoded below
PASSWORD_URL = "s3cr3t-PW%25x"
ACL_PASS = "u-pass-9"


class SecureRedis(Redis):
    """redis-server with requirepass, and optionally TLS only."""

    def __init__(self, password=PASSWORD, tls_dir=None):
        self.password = password
        self.tls_dir = tls_dir
        super().__init__()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls_dir:
            t = self.tls_dir
            args += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", t + "/cert.pem",
                     "--tls-key-file", t + "/key.pem",
                     "--tls-ca-cert-file", t + "/cert.pem",
                     "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cmd(self, *args, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout)
        if self.tls_dir:
            ctx = ssl.create_default_context(
                cafile=self.tls_dir + "/cert.pem")
            s = ctx.wrap_socket(s, server_hostname="localhost")
        try:
            cmds = [args]
            if self.password:
                cmds.insert(0, ("AUTH", self.password))
            out = b""
            for c in cmds:
                out += b"*%d\r\n" % len(c)
                for a in c:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            r = None
            for _ in cmds:
                r = _read(f)
            return r
        finally:
            s.close()


def wait_for(pred, timeout=20, what="condition"):
    """Until pred() is True (lc.wait_for, the one poll of the tests)."""
    lc.wait_for(pred, lambda v: v is True, timeout, what,
                errors=(OSError, AssertionError))


def link_up(n):
    return n.metric("livecount_cluster_link_up") == 1


def env_node(url, node_id, **kw):
    """A node given its redis_url through LIVECOUNT_REDIS_URL (not argv)."""
    kw.setdefault("workers", 1)
    return Server("--node-id", str(node_id),
                  env={"LIVECOUNT_REDIS_URL": url}, **kw)


def refused(url, *secrets):
    """Starts a node that must exit 2; returns its stderr."""
    d = tempfile.mkdtemp(prefix="lc-it-")
    p = subprocess.run(
        [BIN, "--bind", "127.0.0.1", "--port", "0", "--db", d + "/x.db",
         "--node-id", "1"], capture_output=True, timeout=30,
        env=dict(os.environ, LIVECOUNT_REDIS_URL=url))
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2, (p.returncode, err))
    for s in secrets:
        check(s not in err, err)
    shutil.rmtree(d, ignore_errors=True)
    return err


def no_secret(n, *secrets):
    for path in ("/v1/stats", "/metrics"):
        st, body, _ = n.get(path)
        check(st == 200)
        for s in secrets:
            check(s.encode() not in body, (path, body[:300]))
    for s in secrets:
        check(s not in n.logtext(), n.logtext())


def test_requirepass_and_acl_user():
    with SecureRedis() as r:
        r.cmd("ACL", "SETUSER", "lcnode", "on", ">" + ACL_PASS, "~lc:*",
              "&lc:*", "+@all")
        url1 = "redis://:%s@127.0.0.1:%d" % (PASSWORD_URL, r.port)
        url2 = "redis://lcnode:%s@127.0.0.1:%d/0" % (ACL_PASS, r.port)
        with env_node(url1, 1) as a, env_node(url2, 2) as b:
            for n in (a, b):
                wait_for(lambda: link_up(n), what="link up")
            a.like("auth", n=2)
            b.like("auth", n=5)
            wait_for(lambda: a.count("auth") == 7 and b.count("auth") == 7,
                     what="counts cross nodes")
            st, s = a.json("GET", "/v1/stats")
            check(s["cluster"]["redis"] ==
                  "redis://:***@127.0.0.1:%d" % r.port, s["cluster"])
            check(node_totals(r, "auth")["2:l"] == 5)
            no_secret(a, PASSWORD, PASSWORD_URL)
            no_secret(b, ACL_PASS)
        # --check-config masks it too
        p = subprocess.run([BIN, "--check-config", "--node-id", "1"],
                           capture_output=True, timeout=20,
                           env=dict(os.environ, LIVECOUNT_REDIS_URL=url2))
        out = p.stdout.decode() + p.stderr.decode()
        check(p.returncode == 0, out)
        check("redis_url = redis://lcnode:***@127.0.0.1:%d/0" % r.port
              in out and ACL_PASS not in out, out)


def test_wrong_credentials_refused():
    with SecureRedis() as r:
        port = r.port
        e = refused("redis://:wrong-one@127.0.0.1:%d" % port, "wrong-one")
        check("refused the credentials" in e and "WRONGPASS" in e, e)
        e = refused("redis://nobody:nope-pw@127.0.0.1:%d" % port, "nope-pw")
        check("refused the credentials" in e, e)
        e = refused("redis://127.0.0.1:%d" % port)
        check("without a password" in e and "NOAUTH" in e, e)
        # a malformed URL with a password: named, not echoed
        e = refused("redis://:hush-hush@127.0.0.1:notaport", "hush-hush")
        check("redis_url: not redis://" in e, e)


def test_rediss_refused():
    e = refused("rediss://:tls-secret@127.0.0.1:6380", "tls-secret")
    check("hiredis >= 1.0" in e and "tunnel" in e, e)


def make_cert(d):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", d + "/key.pem", "-out", d + "/cert.pem", "-days", "2",
         "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)


def test_stunnel_tunnel_to_tls_redis():
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if not stunnel or not shutil.which("openssl"):
        print("skip: stunnel4 or openssl not installed "
              "(apt-get install stunnel4)")
        return
    d = tempfile.mkdtemp(prefix="lc-tls-")
    make_cert(d)
    local = free_port()
    with SecureRedis(tls_dir=d) as r:
        # the README's client configuration, with this test's paths
        conf = os.path.join(d, "livecount-redis.conf")
        with open(conf, "w") as f:
            f.write("foreground = yes\npid =\n\n"
                    "[redis]\nclient = yes\n"
                    "accept = 127.0.0.1:%d\n"
                    "connect = 127.0.0.1:%d\n"
                    "verifyChain = yes\nCAfile = %s/cert.pem\n"
                    "checkHost = localhost\n" % (local, r.port, d))
        tun = subprocess.Popen([stunnel, conf], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: socket.create_connection(
                ("127.0.0.1", local), 1).close() is None,
                what="tunnel listening")
            url = "redis://:%s@127.0.0.1:%d" % (PASSWORD_URL, local)
            with env_node(url, 1) as a, env_node(url, 2) as b:
                for n in (a, b):
                    wait_for(lambda: link_up(n), what="link up (tunnel)")
                a.like("tls", n=3)
                wait_for(lambda: b.count("tls") == 3, what="tls like")
                check(node_totals(r, "tls")["1:l"] == 3)
        finally:
            tun.terminate()
            tun.wait()
    shutil.rmtree(d, ignore_errors=True)


run([test_requirepass_and_acl_user, test_wrong_credentials_refused,
     test_rediss_refused, test_stunnel_tunnel_to_tls_redis])
