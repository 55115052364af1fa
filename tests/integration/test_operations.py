"""What operators hit first: make install into a prefix and the installed
binary started from /, sd_notify over a real datagram socket, --check-config
checking what start would check (and hiding the write token), relative
paths in a config file, --version."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request

from lc import BIN, Server, check, free_port, run, wait_for

BIN = os.path.abspath(BIN)
BUILD = os.path.dirname(BIN)


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=5) as r:
        return r.status, r.headers, r.read()


def wait_ready(port, proc):
    def ready():
        if proc.poll() is not None:
            raise AssertionError("exited %d" % proc.returncode)
        return get(port, "/readyz")[0]
    wait_for(ready, lambda st: st == 200, interval=0.05, what="/readyz")


def test_install_into_prefix_and_run_from_root():
    prefix = tempfile.mkdtemp(prefix="lc-prefix-")
    try:
        p = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                           capture_output=True, timeout=120)
        check(p.returncode == 0, p.stderr)
        exe = os.path.join(prefix, "bin", "livecount")
        conf = os.path.join(prefix, "etc", "livecount", "livecount.conf")
        unit = os.path.join(prefix, "lib", "systemd", "system",
                            "livecount.service")
        for f in (exe, conf, unit,
                  os.path.join(prefix, "share", "man", "man8", "livecount.8"),
                  os.path.join(prefix, "share", "livecount", "web", "sdk",
                               "livecount.js")):
            check(os.path.exists(f), f)
        text = open(unit).read()
        check("Type=notify" in text and "ExecStart=%s --config %s" %
              (exe, conf) in text and "ExecReload=" in text, text)
        port = free_port()
        proc = subprocess.Popen([exe, "--config", conf, "--port", str(port),
                                 "--bind", "127.0.0.1", "--workers", "1"],
                                cwd="/", stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            wait_ready(port, proc)
            st, h, body = get(port, "/")
            check(st == 200 and b"<html" in body.lower(), body[:100])
            st, h, body = get(port, "/sdk/livecount.js")
            check(st == 200 and len(body) > 1000)
            req = urllib.request.Request(
                "http://127.0.0.1:%d/v1/likes?url=installed" % port,
                method="POST")
            check(urllib.request.urlopen(req, timeout=5).status == 200)
        finally:
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(20) == 0, proc.stderr.read())
        check(os.path.exists(os.path.join(prefix, "var", "lib", "livecount",
                                          "livecount.db")))
        # a second install keeps the operator's configuration
        with open(conf, "a") as f:
            f.write("# edited\n")
        subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix],
                       capture_output=True, check=True, timeout=120)
        check(open(conf).read().endswith("# edited\n"))
        check(os.path.exists(conf + ".new"))
    finally:
        shutil.rmtree(prefix)


def test_sd_notify():
    d = tempfile.mkdtemp(prefix="lc-notify-")
    path = os.path.join(d, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        with Server(env={"NOTIFY_SOCKET": path}) as s:
            msg = sock.recv(4096).decode()
            check("READY=1" in msg and "STATUS=listening on" in msg, msg)
            check("MAINPID=%d" % s.proc.pid in msg, msg)
            s.proc.send_signal(signal.SIGHUP)
            check(sock.recv(4096).decode() == "RELOADING=1")
            check(sock.recv(4096).decode().startswith("READY=1"))
            s.proc.send_signal(signal.SIGTERM)
            msg = sock.recv(4096).decode()
            check(msg.startswith("STOPPING=1"), msg)
            check(s.stop() == 0)
    finally:
        sock.close()
        shutil.rmtree(d)


def check_config(*args, cwd=None):
    return subprocess.run([BIN, "--check-config"] + list(args),
                          capture_output=True, timeout=10, cwd=cwd)


def test_check_config_checks_what_start_checks():
    for args, key in ((["--bind", "999.1.1.1"], "bind"),
                      (["--db", "/proc/x/y.db"], "db"),
                      (["--db", "/proc/y.db"], "db"),
                      (["--web-root", "/nonexistent"], "web_root"),
                      (["--tick-ms", "0"], "tick_ms")):
        p = check_config(*args)
        check(p.returncode == 2, (args, p))
        err = p.stderr.decode().strip().splitlines()
        check(len(err) == 1 and key in err[0], (args, err))
    p = check_config("--write-token", "hunter2-hunter2-hunter2")
    check(p.returncode == 0, p)
    check(b"hunter2-hunter2-hunter2" not in p.stdout + p.stderr, p.stdout)
    check(b"write_token = (set, 23 bytes)" in p.stdout, p.stdout)


def test_relative_paths_follow_the_config_file():
    d = tempfile.mkdtemp(prefix="lc-conf-")
    try:
        os.makedirs(os.path.join(d, "etc"))
        os.makedirs(os.path.join(d, "site"))
        with open(os.path.join(d, "site", "index.html"), "w") as f:
            f.write("<html>relative web root</html>")
        conf = os.path.join(d, "etc", "lc.conf")
        with open(conf, "w") as f:
            f.write("web_root = ../site\ndb = ../data/lc.db\n")
        port = free_port()
        proc = subprocess.Popen([BIN, "--config", conf, "--port", str(port),
                                 "--bind", "127.0.0.1", "--workers", "1"],
                                cwd="/", stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, proc)
            st, h, body = get(port, "/")
            check(b"relative web root" in body, body)
        finally:
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(20) == 0)
        check(os.path.exists(os.path.join(d, "data", "lc.db")))
    finally:
        shutil.rmtree(d)


def test_version():
    out = subprocess.run([BIN, "--version"], capture_output=True,
                         timeout=5).stdout.decode()
    check(out.startswith("livecount ") and "libwebsockets 4.1.6," in out and
          "-," not in out, out)


run([test_install_into_prefix_and_run_from_root, test_sd_notify,
     test_check_config_checks_what_start_checks,
     test_relative_paths_follow_the_config_file, test_version])
