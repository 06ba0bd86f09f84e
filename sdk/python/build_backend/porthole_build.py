"""A PEP 517 build backend for the porthole package, standard library only.

It builds a pure-Python wheel of porthole/ (and an sdist), reading name and
version from pyproject.toml, so installing needs no download: pip's build
isolation has nothing to fetch. PEP 660 editable installs are a .pth file
pointing at this source tree.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "porthole"


def _project():
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    block = text.split("[project]", 1)[1].split("\n[", 1)[0]

    def field(name):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % name, block, re.M)
        return m.group(1) if m else ""
    return {"name": field("name"), "version": field("version"),
            "summary": field("description"), "requires_python": field("requires-python")}


def _metadata(p):
    lines = ["Metadata-Version: 2.1", "Name: %s" % p["name"], "Version: %s" % p["version"],
             "Summary: %s" % p["summary"], "Requires-Python: %s" % p["requires_python"],
             "Provides-Extra: playwright", 'Requires-Dist: playwright; extra == "playwright"']
    readme = os.path.join(HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        body = open(readme, encoding="utf-8").read()
    return ("\n".join(lines) + "\n\n" + body).encode()


def _package_files():
    root = os.path.join(HERE, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py") or f == "py.typed":
                full = os.path.join(dirpath, f)
                yield full, os.path.relpath(full, HERE).replace(os.sep, "/")


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arc, digest, len(data))


def _write_wheel(directory, files):
    p = _project()
    dist = "%s-%s" % (p["name"], p["version"])
    name = "%s-py3-none-any.whl" % dist
    info = dist + ".dist-info"
    entries = list(files)
    entries.append((info + "/METADATA", _metadata(p)))
    entries.append((info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: porthole_build\n"
                                     b"Root-Is-Purelib: true\nTag: py3-none-any\n"))
    entries.append((info + "/top_level.txt", (PACKAGE + "\n").encode()))
    record = [_record_line(arc, data) for arc, data in entries]
    record.append(info + "/RECORD,,")
    entries.append((info + "/RECORD", ("\n".join(record) + "\n").encode()))
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in entries:
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for full, arc in _package_files():
        with open(full, "rb") as f:
            files.append((arc, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [("porthole_editable.pth", (HERE + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = "%s-%s" % (p["name"], p["version"])
    name = base + ".tar.gz"
    paths = [os.path.join(HERE, "pyproject.toml"), os.path.join(HERE, "README.md"),
             os.path.abspath(__file__)] + [f for f, _ in _package_files()]
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for full in paths:
            if os.path.exists(full):
                t.add(full, arcname=base + "/" + os.path.relpath(full, HERE))
        pkg_info = _metadata(p)
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        t.addfile(ti, io.BytesIO(pkg_info))
    return name
