#!/usr/bin/python3
"""`pip install ./sdk/python` in a fresh venv of Debian's python3, with no
package index (--no-index): the build backend needs nothing downloaded.
Then the installed package imports and its SmolVM names are there."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdkfixture  # noqa: E402
from sdkfixture import check, check_eq  # noqa: E402

SDK = os.path.join(sdkfixture.ROOT, "sdk", "python")


def sh(args, **kw):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run(args, capture_output=True, text=True, env=env, **kw)


def test_pip_install_in_a_venv():
    with tempfile.TemporaryDirectory() as d:
        venv = os.path.join(d, "venv")
        r = sh(["/usr/bin/python3", "-m", "venv", venv])
        if r.returncode != 0:
            raise sdkfixture.Skip("python3 -m venv fails (python3-venv missing?): %s" %
                                  r.stderr.strip()[-200:])
        pip = os.path.join(venv, "bin", "pip")
        r = sh([pip, "install", "--no-index", SDK])
        check(r.returncode == 0, "pip install failed:\n%s%s", r.stdout[-2000:], r.stderr[-2000:])
        code = ("import porthole, porthole.tools, porthole.smolvm as s; "
                "from porthole.smolvm import SmolVM, Callback, CommandBlockedError, "
                "BrowserSession, BrowserSessionConfig, SmolVMError, VMConfig, VMState; "
                "from porthole.smolvm.exceptions import OperationTimeoutError, "
                "CommandExecutionUnavailableError; print(porthole.__version__, porthole.__file__)")
        r = sh([os.path.join(venv, "bin", "python"), "-c", code], cwd=d)
        check(r.returncode == 0, "import failed: %s", r.stderr[-2000:])
        version, path = r.stdout.split()
        check_eq(version, "0.1.0", "version")
        check(path.startswith(venv), "imported from %s, not the venv", path)


if __name__ == "__main__":
    sdkfixture.run([test_pip_install_in_a_venv])
