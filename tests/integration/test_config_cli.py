"""The configuration as a newcomer meets it, by the exact commands (issue
17): a typo gets "did you mean", a flag without its value says so, start
refuses what --check-config refuses (one lc_config_validate for both), and
SIGHUP applies the keys the table flags reloadable, names the others, and
keeps the running configuration when the new one is invalid."""
import os
import shutil
import signal
import subprocess
import tempfile

from lc import BIN, Server, check, run, wait_for

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def livecount(*args, env=None):
    return subprocess.run([BIN] + list(args), capture_output=True, timeout=20,
                          env=dict(os.environ, **(env or {})))


def one_error_line(p):
    lines = p.stderr.decode().strip().splitlines()
    check(p.returncode == 2 and len(lines) == 1, (p.returncode, lines))
    return lines[0]


def test_typo_gets_did_you_mean():
    line = one_error_line(livecount("--tikc-ms", "50"))
    check(line == "livecount: --tikc-ms: unknown flag (did you mean "
          "--tick-ms?)", line)
    line = one_error_line(livecount("--check-config",
                                    env={"LIVECOUNT_TIKC_MS": "50"}))
    check("did you mean LIVECOUNT_TICK_MS?" in line, line)
    d = tempfile.mkdtemp(prefix="lc-conf-")
    try:
        conf = os.path.join(d, "lc.conf")
        with open(conf, "w") as f:
            f.write("# a typo\ntikc_ms = 50\n")
        line = one_error_line(livecount("--config", conf))
        check(line == "livecount: %s:2: tikc_ms: unknown configuration key "
              "(did you mean tick_ms?)" % conf, line)
    finally:
        shutil.rmtree(d)
    line = one_error_line(livecount("--check-config", "--zzzzzz", "1"))
    check("did you mean" not in line and "--zzzzzz" in line, line)


def test_flag_without_value_says_so():
    for args in (["--tick-ms"], ["--tick-ms", "--db", "x.db"]):
        line = one_error_line(livecount(*args))
        check(line == "livecount: --tick-ms needs a value (--tick-ms VALUE "
              "or --tick-ms=VALUE)", (args, line))
        check("is not an integer" not in line, line)


def test_start_refuses_what_check_config_refuses():
    web = os.path.join(SRC, "web")
    for args, key in ((["--tls-cert", "/etc/hostname"], "tls_key"),
                      (["--redis-url", "redis:/x"], "redis_url"),
                      (["--redis-url", "redis://127.0.0.1:1"], "node_id"),
                      (["--web-root", "/nonexistent"], "web_root"),
                      (["--write-token", "short"], "write_token"),
                      (["--bind", "example.com"], "bind")):
        for mode in (["--check-config"], []):
            d = tempfile.mkdtemp(prefix="lc-val-")
            try:
                p = livecount(*(mode + ["--port", "0", "--db",
                                        os.path.join(d, "x.db"),
                                        "--web-root", web] + args))
                line = one_error_line(p)
                check(key in line, (mode, args, line))
                # Refused before anything was made.
                check(os.listdir(d) == [], os.listdir(d))
            finally:
                shutil.rmtree(d)


def wait_log(s, text, count=1):
    def seen():
        check(s.proc.poll() is None, "server exited")
        return s.logtext().count(text)
    try:
        wait_for(seen, lambda n: n >= count, interval=0.05)
    except AssertionError:
        raise AssertionError("no %d x %r in the log:\n%s" %
                             (count, text, s.logtext()))


def test_sighup_applies_reloadable_keys_and_names_the_rest():
    with Server() as s:
        conf = os.path.join(s.dir, "lc.conf")
        with open(conf, "w") as f:
            f.write("log_level = info\n")
        s.args += ["--config", conf]
        s.restart()
        with open(conf, "w") as f:
            f.write("log_level = warn\ntop_limit_max = 77\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_log(s, "'top_limit_max = 77' needs a restart (running: "
                 "'top_limit_max = 1000')")
        check("configuration reloaded (log_level = warn)" in s.logtext(),
              s.logtext())
        check("log_level = warn' needs a restart" not in s.logtext())
        # Applied: at warn, the next reload's info line is not logged,
        # while its warning is.
        s.proc.send_signal(signal.SIGHUP)
        wait_log(s, "'top_limit_max = 77' needs a restart", count=2)
        check(s.logtext().count("configuration reloaded") == 1, s.logtext())
        # Invalid across keys: refused whole, the running one kept.
        with open(conf, "w") as f:
            f.write("log_level = info\nredis_url = redis://127.0.0.1:1\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_log(s, "SIGHUP: configuration not reloaded: node_id")
        check(s.get("/readyz")[0] == 200)
        check(s.stop() == 0)


run([test_typo_gets_did_you_mean, test_flag_without_value_says_so,
     test_start_refuses_what_check_config_refuses,
     test_sighup_applies_reloadable_keys_and_names_the_rest])
