"""The Prometheus alert rules in conf/livecount-alerts.yml (issue 20, item
7): `promtool check rules` accepts them, `promtool test rules` fires each
from synthetic series (conf/livecount-alerts.test.yml), and every metric
they read is one a real cluster node exports (a renamed metric would
silence an alert for good)."""
import os
import re
import shutil
import subprocess

from lc import Redis, Server, check, run

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                    "conf")
RULES = os.path.join(CONF, "livecount-alerts.yml")
PROMTOOL = shutil.which("promtool")


def promtool(*args):
    p = subprocess.run([PROMTOOL] + list(args), capture_output=True,
                       timeout=120, cwd=CONF)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode == 0, out)
    return out


def test_promtool_check_rules():
    if not PROMTOOL:
        print("skip: promtool not installed (apt-get install prometheus)")
        return
    out = promtool("check", "rules", RULES)
    check("SUCCESS: 8 rules found" in out, out)


def test_promtool_test_rules():
    if not PROMTOOL:
        print("skip: promtool not installed (apt-get install prometheus)")
        return
    out = promtool("test", "rules", "livecount-alerts.test.yml")
    check("SUCCESS" in out, out)


def test_every_metric_exists():
    with open(RULES) as f:
        exprs = [l.split("expr:", 1)[1] for l in f if "expr:" in l]
    names = set(re.findall(r"livecount_[a-z_]+", " ".join(exprs)))
    check(len(names) >= 8, names)
    with Redis() as r, Server("--redis-url", r.url(), "--node-id", "1",
                              workers=1) as n:
        st, body, _ = n.get("/metrics")
        text = body.decode()
        missing = [m for m in sorted(names)
                   if not re.search(r"^%s[ {]" % m, text, re.M)]
        check(not missing, missing)


run([test_promtool_check_rules, test_promtool_test_rules,
     test_every_metric_exists])
