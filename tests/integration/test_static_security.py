"""Static files stay inside web_root (issue 22 item 5): a symlink in web_root
pointing outside it (to a file or a directory) answers 404 and never the
file, while symlinks inside web_root, and a web_root that is itself reached
through a symlink, are served."""
import os
import shutil
import tempfile

from lc import Server, check, run

SECRET = b'{"secret": "outside web_root"}\n'


def make_tree():
    top = tempfile.mkdtemp(prefix="lc-static-")
    root = os.path.join(top, "web")
    outside = os.path.join(top, "outside")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(outside)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><title>t</title>\n")
    with open(os.path.join(root, "sub", "a.json"), "w") as f:
        f.write('{"inside": true}\n')
    with open(os.path.join(outside, "secret.json"), "wb") as f:
        f.write(SECRET)
    # Out of web_root: a file link (the web/leak.json -> /etc/passwd),
    # the same to an absolute system file, and a directory link.
    os.symlink(os.path.join(outside, "secret.json"),
               os.path.join(root, "leak.json"))
    os.symlink("/etc/passwd", os.path.join(root, "passwd.json"))
    os.symlink("../outside", os.path.join(root, "out"))
    os.symlink("../../outside/secret.json",
               os.path.join(root, "sub", "up.json"))
    # Inside web_root: allowed.
    os.symlink("sub/a.json", os.path.join(root, "alias.json"))
    os.symlink("sub", os.path.join(root, "lib"))
    # web_root itself through a link (e.g. /usr/share/livecount/web -> ...).
    os.symlink("web", os.path.join(top, "web-link"))
    return top


def served(s, path):
    st, body, _ = s.get(path)
    check(b"secret" not in body and b"root:" not in body,
          "%s leaked: %r" % (path, body[:80]))
    return st, body


def check_tree(top, root):
    with Server("--web-root", root) as s:
        for path in ("/leak.json", "/passwd.json", "/out/secret.json",
                     "/sub/up.json", "/lib/../out/secret.json"):
            st, body = served(s, path)
            check(st == 404, "%s -> %d %r" % (path, st, body[:80]))
        for path, want in (("/", b"<!doctype"),
                           ("/sub/a.json", b"inside"),
                           ("/alias.json", b"inside"),
                           ("/lib/a.json", b"inside")):
            st, body = served(s, path)
            check(st == 200 and want in body,
                  "%s -> %d %r" % (path, st, body[:80]))
        st, body = served(s, "/metrics")
        check(st == 200)
        rc = s.stop()
        check(rc == 0, "exit %s" % rc)


def test_symlinks_out_of_web_root_are_not_served():
    top = make_tree()
    try:
        check_tree(top, os.path.join(top, "web"))
    finally:
        shutil.rmtree(top)


def test_web_root_reached_through_a_symlink():
    top = make_tree()
    try:
        check_tree(top, os.path.join(top, "web-link"))
        check_tree(top, os.path.join(top, "web-link") + "/")
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    run([test_symlinks_out_of_web_root_are_not_served,
         test_web_root_reached_through_a_symlink])
