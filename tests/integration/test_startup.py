"""A like taken while the server is still starting (the port accepts
before every worker is up: each makes its own lws context, slow with TLS)
is answered with a count that includes it, and is counted. Before the fix
the dispatcher learnt the workers' shards only after all had started, so
such an answer read none of them: count 0 (half of the starts with TLS
and 4 workers). Likes are sent from the moment the port accepts, each to
its own URL."""
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time

import lc
from lc import check, run, wait_for

STARTS = 8      # P(missing the window on every start) was ~0.4 %
PER_START = 30  # likes sent from the first accepted connection on


def make_cert(d):
    crt, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True)
    return crt, key


def like_over_tls(port, ctx, url):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                    timeout=lc.WAIT_S)
    try:
        c.request("POST", "/v1/likes?url=" + url,
                  headers={"Content-Length": "0"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def test_likes_during_start_answer_their_own_count():
    d = tempfile.mkdtemp(prefix="lc-start-")
    crt, key = make_cert(d)
    ctx = ssl.create_default_context(cafile=crt)
    ctx.check_hostname = False
    wrong = []
    for start in range(STARTS):
        port = lc.free_port()
        db = os.path.join(d, "lc%d.db" % start)
        p = subprocess.Popen([lc.BIN, "--bind", "127.0.0.1", "--port",
                              str(port), "--db", db, "--workers", "4",
                              "--tls-cert", crt, "--tls-key", key],
                             stderr=subprocess.DEVNULL)
        try:
            answers = {}
            while len(answers) < PER_START:
                check(p.poll() is None, "the server exited")
                url = "start/%d" % len(answers)
                try:
                    answers[url] = like_over_tls(port, ctx, url)
                except OSError:  # not accepting yet: poll again
                    time.sleep(0.002)  # poll interval of the connect loop
            wrong += [(start, u, a) for u, a in answers.items()
                      if a != (200, {"url": u, "count": 1})]
            # and every one is counted once, once the server is up
            wait_for(lambda: http.client.HTTPSConnection(
                "127.0.0.1", port, context=ctx, timeout=lc.WAIT_S),
                what="connection")
            for u in answers:
                c = http.client.HTTPSConnection("127.0.0.1", port,
                                                context=ctx,
                                                timeout=lc.WAIT_S)
                c.request("GET", "/v1/counts?url=" + u)
                got = json.loads(c.getresponse().read())["counts"][u]
                c.close()
                check(got["count"] == 1, (start, u, got))
        finally:
            p.terminate()
            check(p.wait(lc.WAIT_S) == 0)
    check(not wrong, "answers without their own like: %r" % wrong[:5])


run([test_likes_during_start_answer_their_own_count])
