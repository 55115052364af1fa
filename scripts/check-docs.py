#!/usr/bin/env python3
"""check-docs.py [--fix] CHECK [BIN]: documentation that cannot drift.

Each check is a ctest entry (docs_<check>) and fails naming what drifted:

  layers    every src/*.c (and *.cc) is in src/layers.txt, the one place a
            file's layer is written (CMakeLists.txt and check-layers.sh read
            it), and README's table under "How it works" is generated from it
  schema    README ("Schema version N") and include/lc/store.h
            ("user_version N") name the last migration of src/store.c, and
            both list every table and view the migrations create
  config    (needs BIN, the built livecount) every configuration key is in
            README and the man page, each with its default, doc line and
            whether SIGHUP reloads it, generated from `livecount --help`
            (which prints the config table) between marker lines
  comments  every lc_ name cited in a comment of src/, include/, tests/unit
            and tests/fuzz exists (ctags over the same files); with BIN,
            every name() too, here or in a library BIN links (nm -D); and
            every file a comment cites (README.md, docs/X.md, store.h, ...)
            is in the repository

--fix rewrites the generated blocks (layers, config) instead of failing:
`make docs` runs it.
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "--fix" in sys.argv
ARGS = [a for a in sys.argv[1:] if a != "--fix"]
problems = []


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def write(rel, text):
    with open(os.path.join(ROOT, rel), "w", encoding="utf-8") as f:
        f.write(text)


def problem(msg):
    problems.append(msg)


def replace_block(rel, begin, end, body):
    """Puts body between the lines containing begin and end in file rel;
    without --fix, reports a difference instead."""
    text = read(rel)
    m = re.search(r"(^[^\n]*%s[^\n]*\n)(.*?)(^[^\n]*%s)" % (
        re.escape(begin), re.escape(end)), text, re.S | re.M)
    if not m:
        problem("%s: no block between '%s' and '%s' lines" %
                (rel, begin, end))
        return
    if m.group(2) == body:
        return
    if FIX:
        write(rel, text[:m.start(2)] + body + text[m.end(2):])
        print("check-docs: rewrote the %s block of %s" % (begin, rel))
    else:
        old, new = m.group(2).splitlines(), body.splitlines()
        diff = [l for l in new if l not in old][:3]
        problem("%s: the block after '%s' is not current (make docs "
                "rewrites it); e.g. missing: %s" % (rel, begin, diff))


# -- layers ------------------------------------------------------------------
def check_layers(*_):
    titles, rows = {}, []
    for line in read("src/layers.txt").splitlines():
        if line.startswith("layer "):
            name, title = line[6:].split("\t", 1)
            titles[name] = title
        elif re.match(r"[a-z]+\t", line):
            layer, files, concept = line.split("\t")
            if layer not in titles:
                problem("src/layers.txt: layer %s is not declared" % layer)
            rows.append((layer, files.split(), concept))
    listed = [f for _, files, _ in rows for f in files]
    on_disk = sorted(f for f in os.listdir(os.path.join(ROOT, "src"))
                     if f.endswith((".c", ".cc")))
    for f in on_disk:
        if f not in listed:
            problem("src/%s is in no layer of src/layers.txt (so not "
                    "built, and not in README's source map)" % f)
    for f in listed:
        if f not in on_disk:
            problem("src/layers.txt names src/%s, which does not exist" % f)
        if listed.count(f) > 1:
            problem("src/layers.txt names src/%s twice" % f)
    out, last = ["| layer | file | concept |", "|---|---|---|"], None
    for layer, files, concept in rows:
        out.append("|%s| %s | %s |" % (
            " %s " % titles.get(layer, layer) if layer != last else " ",
            ", ".join("`%s`" % f for f in files), concept))
        last = layer
    replace_block("README.md", "<!-- layers: begin", "<!-- layers: end",
                  "\n".join(out) + "\n")


# -- schema ------------------------------------------------------------------
def check_schema(*_):
    store = read("src/store.c")
    m = re.search(r"migrations\[\] = \{(.*?)\n\};", store, re.S)
    if not m:
        problem("src/store.c: no 'migrations[] = {' array")
        return
    steps = [int(n) for n in re.findall(r"/\* (\d+): ", m.group(1))]
    if not steps or steps != list(range(1, len(steps) + 1)):
        problem("src/store.c: migrations are not commented /* 1: */, "
                "/* 2: */, ... in order: %s" % steps)
        return
    version = steps[-1]
    names = re.findall(r"CREATE (?:TABLE|VIEW) (\w+)", m.group(1))
    readme, header = read("README.md"), read("include/lc/store.h")
    said = re.findall(r"Schema version (\d+)", readme)
    if said != [str(version)]:
        problem("README.md says 'Schema version %s'; src/store.c migrates "
                "to %d" % ("/".join(said) or "(nothing)", version))
    said = [int(n) for n in re.findall(r"user_version (\d+)", header)]
    if not said or max(said) != version:
        problem("include/lc/store.h's schema reaches user_version %s; "
                "src/store.c migrates to %d" % (max(said or [0]), version))
    for n in names:
        if not re.search(r"^\| `%s` \|" % n, readme, re.M):
            problem("README.md's schema table has no row for `%s`" % n)
        if not re.search(r"\b%s\b" % n, header):
            problem("include/lc/store.h's schema does not name %s" % n)


# -- config ------------------------------------------------------------------
def config_keys(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    keys = []
    for line in out.splitlines():
        m = re.match(r"^  --([a-z0-9-]+) +(.*) \(([^()]*)\)( \[SIGHUP\])?$",
                     line)
        if m:
            keys.append((m.group(1).replace("-", "_"), m.group(3),
                         m.group(2), bool(m.group(4))))
    if len(keys) < 10:
        problem("%s --help lists %d keys: its format changed?" %
                (binary, len(keys)))
    return keys


def shown_default(key, default):
    if key == "web_root":  # the build's source tree; installed elsewhere
        return "`web/` (installed: `PREFIX/share/livecount/web`)"
    return "`%s`" % default if default else "empty"


def check_config(binary):
    keys = config_keys(binary)
    md = ["| key | default | what it does |", "|---|---|---|"]
    man = []
    for key, default, doc, reload in keys:
        md.append("| `%s` | %s | %s%s |" % (
            key, shown_default(key, default), doc.replace("|", "\\|"),
            " (reloads on SIGHUP)" if reload else ""))
        man += [".TP", '.BR %s " (%s)"' % (
            key, re.sub(r"`", "", shown_default(key, default)).replace(
                "-", "\\-")),
                doc.replace("\\", "\\\\").replace("-", "\\-") +
                (" (reloads on SIGHUP)" if reload else "")]
    replace_block("README.md", "<!-- keys: begin", "<!-- keys: end",
                  "\n".join(md) + "\n")
    replace_block("docs/livecount.8", '.\\" keys: begin', '.\\" keys: end',
                  "\n".join(man) + "\n")
    conf = read("conf/livecount.conf")
    for key, _, _, _ in keys:
        if not re.search(r"^%s =" % key, conf, re.M):
            problem("conf/livecount.conf does not set %s" % key)


# -- comments ----------------------------------------------------------------
C_DIRS = ["src", "include/lc", "tests/unit", "tests/fuzz"]
TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|'
                    r'/\*.*?\*/|//[^\n]*', re.S)
CITED_FILE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\."
                        r"(?:md|c|h|py|sh|mjs|conf|txt|in|8))\b")


def system_header(path):
    """A header of an installed library (libwebsockets.h, lws-write.h)."""
    return path.endswith(".h") and any(
        os.path.exists(os.path.join(d, path))
        for d in ["/usr/include"] + [os.path.join("/usr/include", e)
                                     for e in os.listdir("/usr/include")])


def library_symbols(binary):
    """Functions the libraries BIN links to define (libc, lws, SQLite, ...):
    a comment may cite those too, e.g. sigtimedwait() or lws_write()."""
    names = set()
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    for lib in re.findall(r"=> (/\S+)", out.stdout):
        nm = subprocess.run(["nm", "-D", "--defined-only", lib],
                            capture_output=True, text=True).stdout
        names |= {l.split()[-1].split("@")[0] for l in nm.splitlines()
                  if l.strip()}
    return names


def check_comments(binary=None):
    if not shutil.which("ctags"):
        problem("ctags not found: apt-get install universal-ctags "
                "(scripts/deps.sh test does)")
        return
    files = [os.path.join(d, f) for d in C_DIRS
             for f in sorted(os.listdir(os.path.join(ROOT, d)))
             if f.endswith((".c", ".h", ".cc"))]
    tags = subprocess.run(
        ["ctags", "-x", "--_xformat=%N", "--languages=C,C++",
         "--kinds-C=+px", "-f", "-"] + files, cwd=ROOT, capture_output=True,
        text=True, check=True).stdout.split()
    known = set(tags) | set(re.findall(r"\blc_\w+", read("CMakeLists.txt")))
    functions = known | (library_symbols(binary) if binary else set())
    repo = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                          text=True).stdout.split()
    repo_names = set(repo) | {os.path.basename(p) for p in repo} | set(
        p[len(d) + 1:] for p in repo for d in ("include", "tests")
        if p.startswith(d + "/"))
    for rel in files:
        text = read(rel)
        for m in TOKENS.finditer(text):
            tok = m.group(0)
            if tok[0] in "\"'":
                continue
            def line(at):
                return text.count("\n", 0, m.start() + at) + 1

            for n in re.finditer(r"\blc_[a-z0-9_]*[a-z0-9]\b", tok):
                if n.group(0) not in known:
                    problem("%s:%d: a comment cites %s, which does not "
                            "exist" % (rel, line(n.start()), n.group(0)))
            for n in re.finditer(r"\b([a-z_][a-z0-9_]*)\(\)", tok):
                if binary and n.group(1) not in functions:
                    problem("%s:%d: a comment cites %s(), which is not a "
                            "function here or in a library livecount "
                            "links" % (rel, line(n.start()), n.group(1)))
            for n in CITED_FILE.finditer(tok):
                path = n.group(1)
                if path not in repo_names and not os.path.exists(
                        os.path.join(ROOT, path)) and not system_header(path):
                    problem("%s:%d: a comment cites %s, which is not in "
                            "the repository" % (rel, line(n.start()), path))


CHECKS = {"layers": check_layers, "schema": check_schema,
          "config": check_config, "comments": check_comments}

if __name__ == "__main__":
    if not ARGS or ARGS[0] not in CHECKS:
        sys.exit(__doc__)
    CHECKS[ARGS[0]](*ARGS[1:])
    for p in problems:
        print("check-docs: " + p, file=sys.stderr)
    if not problems:
        print("check-docs: %s ok" % ARGS[0])
    sys.exit(1 if problems else 0)
