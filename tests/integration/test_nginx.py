"""SSE and WebSocket behind a real nginx (issue 12): a stock `proxy_pass`
speaks HTTP/1.0 upstream with Connection: close, and the stream must keep
flowing; the README's recommended configuration carries WebSocket too.
Skipped (exit 0 with a note) when nginx is not installed."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.parse

from lc import WAIT_S, WS, Server, check, free_port, read_until, run, wait_for

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
S = None
PROXY = {}

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # stock: nothing but proxy_pass (HTTP/1.0 upstream, Connection: close)
    server {{
        listen 127.0.0.1:{stock};
        location / {{ proxy_pass http://127.0.0.1:{lc}; }}
    }}
    # README's recommended settings
    server {{
        listen 127.0.0.1:{tuned};
        location /v1/events {{
            proxy_pass http://127.0.0.1:{lc};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
        location /v1/ws {{
            proxy_pass http://127.0.0.1:{lc};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
        location / {{ proxy_pass http://127.0.0.1:{lc}; }}
    }}
}}
"""


def start_nginx():
    d = tempfile.mkdtemp(prefix="lc-nginx-")
    PROXY.update(stock=free_port(), tuned=free_port(), dir=d)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(CONF.format(dir=d, stock=PROXY["stock"], tuned=PROXY["tuned"],
                            lc=S.port))
    p = subprocess.Popen([NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket.create_connection(
            ("127.0.0.1", PROXY["tuned"]), 1).close() or True,
            interval=0.05, what="nginx to listen")
        return p
    except AssertionError:
        p.kill()
        raise RuntimeError("nginx did not start: " +
                           open(os.path.join(d, "error.log")).read())


class ProxiedSSE:
    """An SSE stream read through http.client, which undoes the chunked
    encoding nginx adds towards an HTTP/1.1 client."""

    def __init__(self, port, url):
        self.c = http.client.HTTPConnection("127.0.0.1", port,
                                            timeout=WAIT_S)
        self.c.request("GET", "/v1/events?url=" +
                       urllib.parse.quote(url, safe=""),
                       headers={"Accept": "text/event-stream"})
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.buf = b""

    def event(self, timeout=WAIT_S):
        self.c.sock.settimeout(timeout)
        while b"\n\n" not in self.buf:
            d = self.r.read1(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d
        block, self.buf = self.buf.split(b"\n\n", 1)
        fields = dict(l.split(": ", 1) for l in block.decode().split("\n")
                      if not l.startswith(":"))
        data = json.loads(fields["data"]) if "data" in fields else None
        return fields.get("event"), fields.get("id"), data

    def until(self, pred, timeout=WAIT_S):
        return read_until(self.event, pred, timeout)

    def close(self):
        self.c.close()


def sse_count_stream(port, url, likes):
    e = ProxiedSSE(port, url)
    check(e.status == 200, e.status)
    ev = e.event()
    check(ev[0] == "snapshot", ev)
    start = ev[2]["counts"][url]
    for i in range(1, likes + 1):
        S.like(url)
        e.until(lambda ev: ev[0] == "update" and
                ev[2]["counts"][url]["count"] == start + i)
    return e


def sse_conns():
    return S.json("GET", "/v1/stats")[1]["connections"]["sse"]


def test_sse_through_stock_proxy_pass():
    e = sse_count_stream(PROXY["stock"], "nginx/stock", 4)
    check(sse_conns() == 1)
    e.close()
    # nginx closes its upstream connection; livecount notices (once a
    # second) and closes the stream
    wait_for(sse_conns, lambda n: n == 0,
             what="stream closed after the client went")


def test_sse_and_ws_through_recommended_config():
    e = sse_count_stream(PROXY["tuned"], "nginx/tuned", 3)
    e.close()
    w = WS(PROXY["tuned"], ["nginx/ws"])
    check(w.recv()["type"] == "snapshot")
    S.like("nginx/ws", n=2)
    msgs = w.until(lambda m: m["type"] == "update")
    check(msgs[-1]["counts"]["nginx/ws"]["count"] == 2, msgs)
    w.close()


if __name__ == "__main__":
    if not NGINX:
        print("skip: nginx is not installed (apt-get install nginx)")
        sys.exit(0)
    with Server() as srv:
        S = srv
        ng = start_nginx()
        try:
            run([test_sse_through_stock_proxy_pass,
                 test_sse_and_ws_through_recommended_config])
        finally:
            ng.terminate()
            ng.wait(5)
