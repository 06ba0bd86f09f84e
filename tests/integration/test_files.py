#!/usr/bin/python3
"""files: upload and download bytes exactly; refuse paths that are not plain
absolute file paths."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
from fixture import check, check_eq, check_error  # noqa: E402

fx = fixture.ensure()
TAG = "files-%d" % os.getpid()


def files_url(path_query):
    return "/v1/sandboxes/%s/files?path=%s" % (fx.sandbox, path_query)


def put(path, data, expect=200):
    r = fx.req("PUT", files_url(path), data, headers={"Content-Type": "application/octet-stream"},
               timeout=300)
    if expect is not None:
        check_eq(r.status, expect, "PUT %s status (%r)" % (path, r.body[:300]))
    return r


def get(path):
    return fx.req("GET", files_url(path), timeout=300)


def guest_sha256(path):
    return fx.exec("sha256sum %s" % path, shell="raw")["stdout"].split()[0]


def round_trip(path, data):
    r = put(path, data)
    check_eq(r.json(), {"path": path, "bytes": len(data)}, "PUT reply")
    # What landed in the guest is exactly what was sent.
    check_eq(guest_sha256(path), hashlib.sha256(data).hexdigest(), "sha256 in the guest")
    r = get(path)
    check_eq(r.status, 200, "GET %s status" % path)
    check(r.body == data, "GET %s returned %d different bytes (sent %d)", path, len(r.body),
          len(data))


def test_binary_round_trip():
    data = bytes(range(256)) * 64 + b"\x00\x00\xff\xfe\r\n\x00" + os.urandom(100000)
    round_trip("/root/%s.bin" % TAG, data)
    # The guest also sees every byte value (no text-mode translation).
    res = fx.exec("head -c 256 /root/%s.bin | od -An -tx1 | tr -d ' \\n'" % TAG, shell="raw")
    check_eq(res["stdout"], bytes(range(256)).hex(), "first 256 bytes in the guest")


def test_large_file():
    round_trip("/tmp/%s-5mb.bin" % TAG, os.urandom(5 * 1024 * 1024))


def test_empty_and_overwrite():
    path = "/root/%s-over.txt" % TAG
    round_trip(path, b"a much longer first version of the file\n" * 100)
    # A shorter upload replaces the file, no old tail left behind.
    round_trip(path, b"short\n")
    round_trip(path, b"")


def test_guest_written_file():
    fx.exec("printf 'from the guest\\0\\377' > /root/%s-guest" % TAG)
    r = get("/root/%s-guest" % TAG)
    check_eq((r.status, r.body), (200, b"from the guest\x00\xff"), "download of a guest file")


def test_missing():
    r = get("/root/%s-does-not-exist" % TAG)
    check_error(r, 404, "not_found", "GET of a missing file")
    r = get("/nonexistent-dir-%s/file" % TAG)
    check_error(r, 404, "not_found", "GET in a missing directory")


def test_directories():
    check_error(get("/root"), 400, "bad_request", "GET of a directory")
    check_error(put("/root", b"x", expect=None), 400, "bad_request", "PUT onto a directory")
    check_error(get("/root/"), 400, "bad_request", "GET of a path ending in /")
    check_error(put("/tmp/", b"x", expect=None), 400, "bad_request", "PUT of a path ending in /")
    fx.exec("test -d /root")


def test_path_tricks():
    name = "/tmp/%s-trick" % TAG
    tricks = [
        ("relative", name.lstrip("/")),
        ("dot-dot relative", "../" + name.lstrip("/")),
        ("dot-dot inside", "/tmp/../tmp/%s-trick" % TAG),
        ("dot-dot escaped", "/tmp/%2e%2e/etc/passwd"),
        ("dot-dot at the end", "/tmp/.."),
        # %0A, %0D and %00 are not here: libwebsockets 4.1 decodes the query
        # itself and cuts it at a decoded CR/LF (dropping the rest of the
        # query) or drops the connection on NUL, before the gateway sees it.
        # A known limitation of the HTTP layer, tracked in the issue notes.
        ("tab", name + "%09x"),
        ("DEL", name + "%7Fx"),
        ("empty", ""),
    ]
    # Every case is tried before failing, so one bug does not hide another.
    problems = []
    for what, q in tricks:
        for method in ("GET", "PUT"):
            r = fx.req(method, files_url(q), b"trick" if method == "PUT" else None)
            try:
                check_error(r, 400, "bad_request", "%s %s path (%r)" % (method, what, q))
            except fixture.TestFailure as e:
                problems.append(str(e))
    # None of them wrote anything, under any spelling.
    res = fx.exec("ls -d /tmp/%s-trick* /tmp/tmp/%s-trick* 2>/dev/null; true" % (TAG, TAG),
                  shell="raw")
    if res["stdout"]:
        problems.append("files created by uploads that should have been refused: %r"
                        % res["stdout"])
    check(not problems, "%d problem(s):\n  %s", len(problems), "\n  ".join(problems))
    # No path at all.
    r = fx.req("GET", "/v1/sandboxes/%s/files" % fx.sandbox)
    check_error(r, 400, "bad_request", "GET without ?path")


def test_too_large():
    # Over 64 MiB is refused: 413, and nothing written.
    status, reply = fixture.raw_request(
        fx.port, "PUT", files_url("/tmp/%s-huge" % TAG), b"\0" * (64 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/octet-stream"}, timeout=120)
    check_eq(status, 413, "status of a 64 MiB + 1 upload (reply %r)" % reply[:200])
    fx.exec("test ! -e /tmp/%s-huge" % TAG)


def test_unknown_sandbox():
    r = fx.req("GET", "/v1/sandboxes/sb-000000000000/files?path=/etc/hostname")
    check_error(r, 404, "not_found", "GET file of an unknown sandbox")
    r = fx.req("PUT", "/v1/sandboxes/sb-000000000000/files?path=/tmp/x", b"x")
    check_error(r, 404, "not_found", "PUT file of an unknown sandbox")


fixture.run([test_binary_round_trip, test_large_file, test_empty_and_overwrite,
             test_guest_written_file, test_missing, test_directories, test_path_tricks,
             test_too_large, test_unknown_sandbox])
