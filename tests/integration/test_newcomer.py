"""What a newcomer following README trips on (issue 17), by the exact
commands: README's `--data-urlencode` examples (with -G) count a URL
holding & and ?, `make run PORT=9000` passes the port, and
scripts/cluster.sh documents PORT/REDIS_PORT and says when nothing runs
(exit 3) instead of failing silently with curl's 7."""
import os
import re
import shlex
import shutil
import subprocess
import tempfile

from lc import BIN, Server, check, run

SRC = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
URL = "https://example.com/a?x=1&y=2"


def readme_commands(needle):
    with open(os.path.join(SRC, "README.md")) as f:
        return [l.strip() for l in f if l.startswith("curl ") and needle in l]


def test_readme_data_urlencode_commands():
    cmds = readme_commands("--data-urlencode")
    check(len(cmds) == 2 and all(" -G " in c for c in cmds), cmds)
    with Server() as s:
        for cmd in cmds:
            argv = shlex.split(cmd.replace("localhost:8080",
                                           "127.0.0.1:%d" % s.port))
            p = subprocess.run(argv + ["-s", "-w", " %{http_code}"],
                               capture_output=True, timeout=20, text=True)
            check(p.returncode == 0 and p.stdout.endswith(" 200"),
                  (cmd, p.stdout, p.stderr))
            check(URL in p.stdout, p.stdout)
        check(s.count(URL) == 1, s.count(URL))
        # Why -G: without it curl sends a form body, which is refused.
        argv = shlex.split(cmds[0].replace(" -G", "").replace(
            "localhost:8080", "127.0.0.1:%d" % s.port))
        p = subprocess.run(argv + ["-s", "-w", " %{http_code}"],
                           capture_output=True, timeout=20, text=True)
        check(p.stdout.endswith(" 415"), p.stdout)
        check(s.stop() == 0)


def test_make_run_takes_port():
    with open(os.path.join(SRC, "README.md")) as f:
        check("`make run PORT=9000`" in f.read())
    p = subprocess.run(["make", "-n", "-C", SRC, "run", "PORT=9000",
                        "BUILD=" + os.path.dirname(os.path.abspath(BIN))],
                       capture_output=True, timeout=60, text=True)
    line = [l for l in p.stdout.splitlines() if "livecount --config" in l]
    check(len(line) == 1 and re.search(r"--port 9000\b", line[0]),
          p.stdout + p.stderr)


def test_cluster_sh_usage_and_status():
    script = os.path.join(SRC, "scripts", "cluster.sh")
    p = subprocess.run([script, "help"], capture_output=True, timeout=10,
                       text=True)
    check(p.returncode == 0 and "PORT=8080" in p.stdout and
          "REDIS_PORT=6390" in p.stdout, p.stdout)
    p = subprocess.run([script], capture_output=True, timeout=10, text=True)
    check(p.returncode == 2 and "REDIS_PORT" in p.stderr, p)
    d = tempfile.mkdtemp(prefix="lc-cl-")
    try:
        p = subprocess.run([script, "status"], capture_output=True,
                           timeout=10, text=True,
                           env=dict(os.environ, DIR=d, PORT="1"))
        check(p.returncode == 3 and "no livecount node running" in p.stdout,
              (p.returncode, p.stdout, p.stderr))
    finally:
        shutil.rmtree(d)


run([test_readme_data_urlencode_commands, test_make_run_takes_port,
     test_cluster_sh_usage_and_status])
