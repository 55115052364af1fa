"""/metrics passes `promtool check metrics` (Debian's prometheus package,
installed by scripts/deps.sh test) and carries the standard process_*
metrics with plausible values (issue 12). Without promtool the lint part
is skipped with a note; the process_* checks still run."""
import os
import shutil
import subprocess
import time

from lc import Server, check, run

S = None
PROMTOOL = shutil.which("promtool")


def scrape():
    st, data, r = S.get("/metrics")
    check(st == 200, st)
    return data.decode()


def traffic():
    S.like("m/a", n=3)
    S.json("POST", "/v1/likes", [{"url": "m/b", "n": 2}])
    S.get("/v1/nope")
    w = S.ws(["m/a"])
    w.recv()
    e = S.sse(["m/a"])
    e.event()
    S.like("m/a")
    w.until(lambda m: m["type"] == "update")
    # a flush happened: flush metrics are non-zero
    S.wait_metric("livecount_flush_rows_total", lambda v: v > 0)
    return w, e


def test_promtool_check_metrics():
    w, e = traffic()
    text = scrape()
    w.close()
    e.close()
    if not PROMTOOL:
        print("note: promtool not installed (scripts/deps.sh test installs "
              "prometheus); lint skipped")
        return
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    check(p.returncode == 0 and not p.stdout.strip() and
          not p.stderr.strip(), (p.returncode, p.stdout, p.stderr))
    # no counter without _total, no _sum/_count/_bucket outside histograms
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            types[name] = typ
    for name, typ in types.items():
        if typ == "counter":
            check(name.endswith("_total"), name)
        if typ != "histogram":
            check(not name.endswith(("_sum", "_count", "_bucket")), name)


def value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("%s missing" % name)


def test_process_metrics():
    text = scrape()
    pid = S.proc.pid
    with open("/proc/%d/status" % pid) as f:
        rss = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")][0]
    got = value(text, "process_resident_memory_bytes")
    check(abs(got - rss) < max(rss * 0.5, 8 << 20), (got, rss))
    fds = len(os.listdir("/proc/%d/fd" % pid))
    check(abs(value(text, "process_open_fds") - fds) <= 4,
          (value(text, "process_open_fds"), fds))
    check(value(text, "process_max_fds") >= 64)
    start = value(text, "process_start_time_seconds")
    check(time.time() - 120 < start <= time.time() + 1, start)
    cpu = value(text, "process_cpu_seconds_total")
    check(0 <= cpu < 600, cpu)
    check(value(text, "process_virtual_memory_bytes") > 0)
    check("livecount_flush_seconds_total" in text)


if __name__ == "__main__":
    with Server() as srv:
        S = srv
        run([test_promtool_check_metrics, test_process_metrics])
