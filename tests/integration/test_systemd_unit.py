"""The installed systemd unit (issue 22, item 10): `systemd-analyze security
--offline` rates it 2.5 or less (the tool needs no running systemd), and
its paths let a DynamicUser service write its database: installed with
DESTDIR, then the installed binary is run the way the unit runs it (its
ExecStart, Environment, StateDirectory and UMask, with %S and the prefix
under the DESTDIR) as a fresh unprivileged user that owns nothing but the
StateDirectory, as systemd's DynamicUser would. Under strace, every system
call the server makes is one the unit's SystemCallFilter allows. Needs
root (setpriv); says so and passes without it."""
import http.client
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile

from lc import BIN, SANITIZED, WS, check, free_port, run, wait_for

BUILD = os.path.dirname(os.path.abspath(BIN))
PREFIX = "/usr/local"
UID = 61234  # in systemd's DynamicUser range, in no passwd file


def install():
    root = tempfile.mkdtemp(prefix="lc-destdir-")
    os.chmod(root, 0o755)
    p = subprocess.run(["cmake", "--install", BUILD, "--prefix", PREFIX],
                       capture_output=True, timeout=120,
                       env=dict(os.environ, DESTDIR=root))
    check(p.returncode == 0, p.stderr)
    return root


def unit_settings(root):
    path = root + PREFIX + "/lib/systemd/system/livecount.service"
    settings = {}
    section = None
    for line in open(path):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and line[0] != "#":
            k, v = line.split("=", 1)
            settings.setdefault(k, []).append(v)
    return path, settings


def test_security_exposure_at_most_2_5():
    if not shutil.which("systemd-analyze"):
        print("skip: no systemd-analyze")
        return
    root = install()
    try:
        path, _ = unit_settings(root)
        p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            path], capture_output=True, text=True,
                           timeout=60)
        m = re.search(r"Overall exposure level for livecount.service: "
                      r"([0-9.]+)", p.stdout)
        check(m, p.stdout + p.stderr)
        check(float(m.group(1)) <= 2.5, p.stdout)
        print("exposure %s" % m.group(1))
    finally:
        shutil.rmtree(root)


def expand(group):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names |= expand(line) if line.startswith("@") else {line}
    return names


def allowed_syscalls(settings):
    allow, deny = None, set()
    for f in settings["SystemCallFilter"]:
        names = set()
        for n in f.lstrip("~").split():
            names |= expand(n) if n.startswith("@") else {n}
        if f.startswith("~"):
            deny |= names
        else:
            allow = names if allow is None else allow | names
    return allow - deny


def request(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start_as_fresh_user(root, settings, port, trace=None):
    """ExecStart as systemd would run it, relocated under root."""
    state_root = root + "/var/lib"
    for d in settings["StateDirectory"]:
        os.makedirs(os.path.join(state_root, d))
        os.chown(os.path.join(state_root, d), UID, UID)
    env = {"PATH": "/usr/bin:/bin", "LIVECOUNT_PORT": str(port),
           "LIVECOUNT_WORKERS": "2",
           "LIVECOUNT_WEB_ROOT": root + PREFIX + "/share/livecount/web"}
    for e in settings.get("Environment", []):
        k, v = e.split("=", 1)
        env[k] = v.replace("%S", state_root)
    argv = [a if not a.startswith(PREFIX) else root + a
            for a in settings["ExecStart"][0].split()]
    cmd = ["setpriv", "--reuid=%d" % UID, "--regid=%d" % UID,
           "--clear-groups", "--"] + argv
    if trace:
        cmd = ["strace", "-f", "-qq", "-o", trace] + cmd
    umask = int(settings.get("UMask", ["0022"])[0], 8)
    log = open(os.path.join(root, "server.log"), "wb")
    proc = subprocess.Popen(cmd, env=env, umask=umask, stdout=log,
                            stderr=subprocess.STDOUT)

    def ready():
        if proc.poll() is not None:
            raise AssertionError("exited %d:\n%s" % (
                proc.returncode, open(log.name).read()))
        return request(port, "GET", "/readyz")[0]

    try:
        wait_for(ready, lambda st: st == 200, what="/readyz")
    except AssertionError:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return proc, env.get("LIVECOUNT_DB"), log.name


def test_dynamic_user_writes_its_database():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("skip: needs root and setpriv to become a fresh user")
        return
    root = install()
    try:
        _, settings = unit_settings(root)
        port = free_port()
        proc, db, log = start_as_fresh_user(root, settings, port)
        state = root + "/var/lib/" + settings["StateDirectory"][0]
        try:
            check(db and os.path.dirname(db) == state,
                  "the database %s is not in the StateDirectory %s" %
                  (db, state))
            check(request(port, "POST", "/v1/likes?url=unit&n=3")[0] == 200)
        finally:
            proc.send_signal(signal.SIGTERM)
            check(proc.wait(30) == 0, open(log).read())
        st = os.stat(db)
        check(st.st_uid == UID and st.st_mode & 0o077 == 0,
              (st.st_uid, oct(st.st_mode)))
        con = sqlite3.connect(db)
        check(con.execute("SELECT count FROM counts_v WHERE url = 'unit'")
              .fetchone() == (3,))
        con.close()
    finally:
        shutil.rmtree(root)


def test_system_calls_within_the_filter():
    if SANITIZED or os.geteuid() != 0 or not all(
            shutil.which(t) for t in ("strace", "setpriv",
                                      "systemd-analyze")):
        print("skip: needs root, strace, setpriv, systemd-analyze and a "
              "build without sanitizers")
        return
    root = install()
    try:
        _, settings = unit_settings(root)
        allowed = allowed_syscalls(settings)
        check("read" in allowed and "mount" not in allowed, len(allowed))
        trace = os.path.join(root, "trace")
        port = free_port()
        proc, _, log = start_as_fresh_user(root, settings, port, trace)
        try:
            for method, path in (("POST", "/v1/likes?url=a"),
                                 ("GET", "/v1/counts?url=a"),
                                 ("GET", "/v1/top"),
                                 ("GET", "/v1/history?url=a"),
                                 ("GET", "/metrics"), ("GET", "/v1/stats"),
                                 ("GET", "/"), ("GET", "/sdk/livecount.js")):
                check(request(port, method, path)[0] == 200, path)
            ws = WS(port, ["a"])
            ws.send({"op": "like", "url": "a", "n": 1, "id": "unit-1"})
            ws.until(lambda m: m.get("type") == "liked", timeout=15)
            ws.close()
            # To the server, not to strace (which would not pass them on).
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                server = int(f.read().split()[0])
            os.kill(server, signal.SIGHUP)
            wait_for(lambda: open(log).read(),
                     lambda t: "configuration reloaded" in t,
                     what="the reload in the log")
            check(request(port, "GET", "/readyz")[0] == 200)
        finally:
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                os.kill(int(f.read().split()[0]), signal.SIGTERM)
            check(proc.wait(60) == 0, open(log).read())
        used, started = set(), set()
        for line in open(trace):
            pid, _, rest = line.partition(" ")
            m = re.match(r"\s*([a-z0-9_]+)\(", rest)
            if not m:
                continue
            if m.group(1) == "execve" and "/bin/livecount\"" in rest:
                started.add(pid)
            elif started:
                used.add(m.group(1))
        check(started and len(used) > 20, (started, used))
        check(used <= allowed, "outside the unit's SystemCallFilter: %s" %
              sorted(used - allowed))
        print("%d system calls used, all allowed" % len(used))
    finally:
        shutil.rmtree(root)


run([test_security_exposure_at_most_2_5, test_dynamic_user_writes_its_database,
     test_system_calls_within_the_filter])
