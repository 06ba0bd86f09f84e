"""Browser sessions: Chromium in a microVM, driven through CDP (Playwright,
Puppeteer), watched through noVNC, and used by computer-use agents through
screenshots and input actions.

    with BrowserSession(BrowserSessionConfig(mode="live")) as s:
        print(s.cdp_url, s.live_url)
        s.screenshot("screen.png")

Options and their checks follow SmolVM's BrowserSessionConfig.
"""

import base64
import os
import re
import time
import warnings
import webbrowser
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from .cdp import CDPSession, first_page
from .client import BOOT_TIMEOUT_S, Client, error_is_missing_route, path_part
from .errors import (BrowserSessionNotFoundError, ConflictError, FeatureUnavailableError,
                     NotFoundError, PlaywrightNotInstalledError, PortholeError,
                     UnsupportedOptionError, ValidationError)

_IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}[a-z0-9]$|^[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _range(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("%s: Input should be a valid integer" % name, {"field": name})
    if value < lo:
        raise ValidationError("%s: Input should be greater than or equal to %d" % (name, lo),
                              {"field": name})
    if value > hi:
        raise ValidationError("%s: Input should be less than or equal to %d" % (name, hi),
                              {"field": name})
    return value


# Resolves once the page has painted (true), or after 5 s for a page that
# paints nothing (false).
_FIRST_PAINT_JS = """new Promise(function (done) {
  var cap = setTimeout(function () { done(false); }, 5000);
  try {
    new PerformanceObserver(function (list, o) {
      o.disconnect(); clearTimeout(cap); done(true);
    }).observe({type: "paint", buffered: true});
  } catch (e) { clearTimeout(cap); done(false); }
})"""


@dataclass(frozen=True)
class BrowserViewport:
    width: int = 1280
    height: int = 720

    def __post_init__(self) -> None:
        _range("viewport.width", self.width, 640, 7680)
        _range("viewport.height", self.height, 480, 4320)


@dataclass
class BrowserSessionConfig:
    """A session's settings; invalid values raise ValidationError (a
    ValueError) with SmolVM's messages."""

    mode: str = "headless"
    viewport: Union[None, Dict[str, int], BrowserViewport] = None
    viewport_width: Optional[int] = None
    viewport_height: Optional[int] = None
    record_video: bool = False
    profile_mode: str = "ephemeral"
    profile_id: Optional[str] = None
    timeout_minutes: int = 30
    allow_downloads: bool = True
    env_vars: Dict[str, str] = field(default_factory=dict)
    mem_size_mib: int = 2048
    disk_size_mib: Optional[int] = None
    # Hosts CDP navigations may go to: "example.com" is that host only,
    # "*.example.com" its subdomains (not example.com itself).
    allowed_domains: Optional[List[str]] = None
    # SmolVM options with no Porthole counterpart: accepted when harmless.
    session_id: Optional[str] = None
    backend: str = "auto"
    browser: str = "chromium"
    network_policy_id: Optional[str] = None
    workspace_mounts: List[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in ("headless", "live", "desktop"):
            raise ValidationError("mode: Input should be 'headless', 'live' or 'desktop'",
                                  {"field": "mode"})
        if self.mode == "desktop":
            raise UnsupportedOptionError("mode='desktop'", "use mode='live' (Chromium with a "
                                         "screen, live view and computer use)")
        vp = self.viewport
        if vp is None:
            w = 1280 if self.viewport_width is None else self.viewport_width
            h = 720 if self.viewport_height is None else self.viewport_height
        elif isinstance(vp, BrowserViewport):
            w, h = vp.width, vp.height
        elif isinstance(vp, dict):
            w, h = vp.get("width"), vp.get("height")
        else:
            raise ValidationError("viewport must be a mapping with width/height values",
                                  {"field": "viewport"})
        if self.viewport_width is not None and self.viewport_width != w:
            raise ValidationError("viewport.width must match viewport_width")
        if self.viewport_height is not None and self.viewport_height != h:
            raise ValidationError("viewport.height must match viewport_height")
        _range("viewport_width", w, 640, 7680)
        _range("viewport_height", h, 480, 4320)
        self.viewport = BrowserViewport(w, h)
        self.viewport_width, self.viewport_height = w, h
        if self.profile_mode not in ("ephemeral", "persistent"):
            raise ValidationError("profile_mode: Input should be 'ephemeral' or 'persistent'",
                                  {"field": "profile_mode"})
        if isinstance(self.profile_id, str):
            self.profile_id = self.profile_id.strip() or None
        if self.profile_id is not None and not _IDENTIFIER.match(self.profile_id):
            raise ValidationError("profile_id: String should match pattern '%s'" %
                                  _IDENTIFIER.pattern, {"field": "profile_id"})
        if self.profile_mode == "persistent" and not self.profile_id:
            raise ValidationError("profile_id is required when profile_mode='persistent'")
        _range("timeout_minutes", self.timeout_minutes, 1, 240)
        _range("mem_size_mib", self.mem_size_mib, 512, 16384)
        if self.disk_size_mib is not None:
            _range("disk_size_mib", self.disk_size_mib, 2048, 16384)
        if self.record_video and self.mode == "headless":
            raise ValidationError("record_video requires a visible browser or desktop sandbox")
        if not isinstance(self.env_vars, dict):
            raise ValidationError("env_vars: Input should be a valid dictionary")
        for k, v in self.env_vars.items():
            if not isinstance(k, str) or not _ENV_NAME.match(k):
                raise ValidationError("Invalid environment variable name: %r" % (k,))
            if not isinstance(v, str):
                raise ValidationError("env_vars.%s: Input should be a valid string" % k)
        if self.allowed_domains is not None:
            if isinstance(self.allowed_domains, str) or not all(
                    isinstance(d, str) and d for d in self.allowed_domains):
                raise ValidationError("allowed_domains must be a list of host names")
        if self.session_id is not None:
            raise UnsupportedOptionError(
                "session_id", "the gateway chooses session ids; read session.session_id")
        if self.backend not in ("auto", "qemu", "firecracker", "libkrun"):
            raise ValidationError("backend: Input should be 'firecracker', 'qemu', 'libkrun' "
                                  "or 'auto'", {"field": "backend"})
        if self.backend not in ("auto", "qemu"):
            warnings.warn("backend=%r is ignored: Porthole runs every guest on QEMU" %
                          self.backend, stacklevel=3)
        if self.browser != "chromium":
            raise ValidationError("browser: Input should be 'chromium'", {"field": "browser"})
        if self.network_policy_id is not None:
            raise UnsupportedOptionError("network_policy_id", "use allowed_domains=[...]")
        if self.workspace_mounts:
            raise UnsupportedOptionError("workspace_mounts", "copy files in with the sandbox "
                                         "file API instead")

    def to_api(self) -> Dict[str, Any]:
        """The POST /v1/browser/sessions body."""
        vp = self.viewport
        assert isinstance(vp, BrowserViewport)
        body: Dict[str, Any] = {
            "mode": self.mode,
            "viewport": {"width": vp.width, "height": vp.height},
            "record_video": bool(self.record_video),
            "profile_mode": self.profile_mode,
            "timeout_minutes": self.timeout_minutes,
            "allow_downloads": bool(self.allow_downloads),
            "mem_size_mib": self.mem_size_mib,
            "wait": True,
        }
        if self.profile_id is not None:
            body["profile_id"] = self.profile_id
        if self.env_vars:
            body["env_vars"] = dict(self.env_vars)
        if self.disk_size_mib is not None:
            body["disk_size_mib"] = self.disk_size_mib
        if self.allowed_domains is not None:
            body["allowed_domains"] = list(self.allowed_domains)
        return body


def _sessions_path(sid: str, suffix: str = "") -> str:
    return "/v1/browser/sessions/" + path_part(sid) + suffix


class BrowserSession:
    """One browser session. The context manager starts it on enter and stops
    it on exit (recordings are finalized and kept on the gateway)."""

    def __init__(self, config: Optional[BrowserSessionConfig] = None, *,
                 client: Optional[Client] = None, url: Optional[str] = None,
                 token: Optional[str] = None, state_dir: Optional[str] = None,
                 **options: Any) -> None:
        if config is not None and options:
            raise ValidationError("give a BrowserSessionConfig or keyword options, not both")
        self.config = config if config is not None else BrowserSessionConfig(**options)
        self._client = client or Client(url, token, state_dir=state_dir)
        self._info: Dict[str, Any] = {}
        self._id: Optional[str] = None
        self._attached = False
        self._playwright: Any = None
        self._last_recording: Optional[str] = None

    @classmethod
    def from_id(cls, session_id: str, *, client: Optional[Client] = None,
                url: Optional[str] = None, token: Optional[str] = None) -> "BrowserSession":
        """Attaches to a running session; leaving `with` only detaches."""
        s = cls(client=client, url=url, token=token)
        s._id = session_id
        s._attached = True
        s.refresh()
        return s

    # ---- lifecycle -----------------------------------------------------

    def start(self) -> "BrowserSession":
        if self._id is not None:
            return self
        body = self.config.to_api()
        try:
            self._info = self._client.json("POST", "/v1/browser/sessions", body,
                                           timeout=BOOT_TIMEOUT_S, what="start browser session")
        except PortholeError as e:
            if isinstance(e, ConflictError) and self.config.profile_id:
                raise ConflictError(e.message, {"profile_id": self.config.profile_id}) from None
            raise
        self._id = self._info["session_id"]
        return self

    def stop(self) -> None:
        """Stops the session: the VM ends, recordings are finalized."""
        sid = self._require()
        self._close_playwright()
        try:
            self._client.json("DELETE", _sessions_path(sid), timeout=BOOT_TIMEOUT_S,
                              what="stop browser session")
        except NotFoundError:
            pass
        self._info = dict(self._info, status="stopped")

    delete = stop

    def pause(self, to_disk: bool = False) -> "BrowserSession":
        """Stops the browser VM's vCPUs: pages stand still (and CDP does not
        answer) until resume(). With to_disk its memory goes to disk and its
        QEMU ends."""
        return self._power("pause", {"to_disk": True} if to_disk else {})

    def resume(self) -> "BrowserSession":
        """Runs a paused session again; its pages carry on."""
        return self._power("resume", {})

    def _power(self, op: str, body: Dict[str, Any]) -> "BrowserSession":
        sid = self._require()
        try:
            self._info = self._client.json("POST", _sessions_path(sid, "/" + op), body,
                                           timeout=BOOT_TIMEOUT_S, what=op + " browser session")
        except NotFoundError as e:
            if error_is_missing_route(e):
                raise FeatureUnavailableError("%sing a browser session" % op.rstrip("e"),
                                              "POST /v1/browser/sessions/{id}/" + op,
                                              answer=e.message) from None
            raise BrowserSessionNotFoundError(sid, e.message) from None
        return self

    def fork(self, count: int = 1) -> List["BrowserSession"]:
        """count (1..8) new sessions that carry on from this one as it is now:
        the same open pages, cookies, storage and logins, each with its own
        tokens, URLs, timeout and recordings from then on. They are this
        caller's: stop() them (or use each in a `with` block)."""
        sid = self._require()
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 8:
            raise ValidationError("count must be a whole number from 1 to 8")
        answer = self._client.json("POST", _sessions_path(sid, "/fork"), {"count": count},
                                   timeout=BOOT_TIMEOUT_S * 2, what="fork browser session")
        kids, failed = [], []
        for info in answer.get("sessions", []):
            if not info.get("session_id") or info.get("status") == "error":
                failed.append(info.get("error") or "no session")
                continue
            kid = BrowserSession(self.config, client=self._client)
            kid._id = info["session_id"]
            kid._info = info
            kids.append(kid)
        if failed and not kids:
            raise PortholeError("no fork of %s started: %s" % (sid, "; ".join(map(str, failed))),
                                {"errors": failed})
        if failed:
            warnings.warn("%d of %d forks of %s did not start: %s" %
                          (len(failed), count, sid, "; ".join(map(str, failed))))
        return kids

    def close(self) -> None:
        """Releases local resources (Playwright); the session keeps running."""
        self._close_playwright()

    def _close_playwright(self) -> None:
        pw, self._playwright = self._playwright, None
        if pw is not None:
            try:
                pw.stop()
            except Exception:  # Playwright's own teardown errors are not ours
                pass

    def __enter__(self) -> "BrowserSession":
        if not self._attached:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._attached:
            self.close()
        elif self._id is not None:
            self.stop()

    def _require(self) -> str:
        if self._id is None:
            raise ValidationError("the browser session has not been started (start() or with)")
        return self._id

    def refresh(self) -> Dict[str, Any]:
        sid = self._require()
        try:
            self._info = self._client.json("GET", _sessions_path(sid))
        except NotFoundError as e:
            raise BrowserSessionNotFoundError(sid, e.message) from None
        return self._info

    # ---- properties ------------------------------------------------------

    @property
    def session_id(self) -> Optional[str]:
        return self._id

    @property
    def vm_id(self) -> Optional[str]:
        return self._info.get("vm_id")

    @property
    def cdp_url(self) -> Optional[str]:
        """For Playwright's connect_over_cdp / Puppeteer's browserURL, as is."""
        return self._info.get("cdp_url")

    @property
    def cdp_ws_url(self) -> Optional[str]:
        """The browser-level DevTools WebSocket behind the same token."""
        return self._info.get("cdp_ws_url")

    @property
    def live_url(self) -> Optional[str]:
        """The noVNC page, view only (None for headless sessions)."""
        return self._info.get("live_url")

    @property
    def control_url(self) -> Optional[str]:
        """The noVNC page with keyboard and pointer."""
        return self._info.get("control_url")

    @property
    def status(self) -> Optional[str]:
        if self._id is None:
            return None
        try:
            return self.refresh().get("status")
        except BrowserSessionNotFoundError:
            return "stopped"

    @property
    def info(self) -> Dict[str, Any]:
        return dict(self.refresh())

    @property
    def viewport(self) -> Dict[str, int]:
        vp = self._info.get("viewport") or {}
        return {"width": int(vp.get("width", 1280)), "height": int(vp.get("height", 720))}

    # ---- automation --------------------------------------------------------

    def connect_playwright(self) -> Any:
        """A Playwright Browser connected to this session over CDP."""
        try:
            from playwright.sync_api import sync_playwright  # type: ignore
        except ImportError:
            raise PlaywrightNotInstalledError(
                "connect_playwright() needs Playwright for Python: pip install playwright "
                "(no `playwright install` needed: it connects to the session's own Chromium)"
            ) from None
        if self._playwright is None:
            self._playwright = sync_playwright().start()
        return self._playwright.chromium.connect_over_cdp(self.cdp_url)

    def cdp(self, timeout: float = 30.0) -> CDPSession:
        """A raw CDP connection to the session's first page."""
        self._require()
        if not self.cdp_url:
            self.refresh()
        page = first_page(self.cdp_url or "", timeout)
        return CDPSession(page["webSocketDebuggerUrl"], timeout)

    def navigate(self, url: str, timeout: float = 60.0) -> Dict[str, Any]:
        """Opens url in the first page and waits for it to load; returns
        {"url", "title"}. The gateway's allowed_domains policy applies."""
        with self.cdp(timeout) as c:
            r = c.send("Page.navigate", {"url": url}, timeout)
            if r.get("errorText"):
                raise PortholeError("navigation to %s failed: %s" % (url, r["errorText"]),
                                    {"url": url})
            deadline = time.monotonic() + timeout
            while c.evaluate("document.readyState", timeout) != "complete":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            # Chromium drops input that comes before a page's first paint,
            # which on a slow guest can be seconds after the load event: a
            # click sent the moment navigate returned would be lost.
            c.evaluate(_FIRST_PAINT_JS, timeout)
            return {"url": c.evaluate("location.href", timeout),
                    "title": c.evaluate("document.title", timeout)}

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """Runs a JavaScript expression in the first page; returns its value."""
        with self.cdp(timeout) as c:
            return c.evaluate(expression, timeout)

    def open_live_view(self, control: bool = False) -> Optional[str]:
        """Opens the live view in this machine's web browser; returns the URL."""
        url = self.control_url if control else self.live_url
        if url:
            webbrowser.open(url)
        return url

    def screenshot_bytes(self, max_width: Optional[int] = None) -> bytes:
        """A PNG of the screen (live sessions) or of the page (headless)."""
        sid = self._require()
        if self._info.get("mode") == "headless":
            with self.cdp() as c:
                return base64.b64decode(c.send("Page.captureScreenshot",
                                               {"format": "png"})["data"])
        return self._client.request("GET", _sessions_path(sid, "/screenshot"),
                                    query={"max_width": max_width}, timeout=120,
                                    what="screenshot").body

    def screenshot(self, path: Union[str, "os.PathLike[str]", None] = None, *,
                   max_width: Optional[int] = None) -> Union[str, bytes]:
        """Saves a PNG to path and returns the path; without a path, returns
        the PNG bytes."""
        png = self.screenshot_bytes(max_width)
        if path is None:
            return png
        path = os.fspath(path)
        with open(path, "wb") as f:
            f.write(png)
        return path

    def computer(self, action: Union[str, Dict[str, Any]], **params: Any) -> Dict[str, Any]:
        """One computer-use action: computer("click", x=10, y=20) or
        computer({"action": "type", "text": "hi"}). Actions: click,
        double_click, right_click, move, drag, scroll, type, key, wait,
        screenshot; screenshot=True adds a PNG of the result
        ("screenshot_png", bytes)."""
        sid = self._require()
        body = dict(action) if isinstance(action, dict) else {"action": action}
        body.update(params)
        d = self._client.json("POST", _sessions_path(sid, "/computer"), body, timeout=120,
                              what="computer " + str(body.get("action")))
        if d.get("screenshot_base64"):
            d["screenshot_png"] = base64.b64decode(d["screenshot_base64"])
        return d

    # ---- recordings, downloads, logs ----------------------------------------

    def start_recording(self) -> Dict[str, Any]:
        sid = self._require()
        d = self._client.json("POST", _sessions_path(sid, "/recordings"), {}, timeout=120,
                              what="start recording")
        self._last_recording = d.get("id")
        return d

    def stop_recording(self, recording_id: Optional[str] = None) -> Dict[str, Any]:
        """Stops the given recording, else the running one."""
        sid = self._require()
        rid = recording_id
        if rid is None:
            active = [r for r in self.recordings() if r.get("active")]
            if not active:
                raise ConflictError("no recording is running")
            rid = active[0]["id"]
        return self._client.json("POST", _sessions_path(sid, "/recordings/%s/stop" %
                                                        path_part(rid)), {}, timeout=300,
                                 what="stop recording")

    def recordings(self) -> List[Dict[str, Any]]:
        sid = self._require()
        return self._client.json("GET", _sessions_path(sid, "/recordings")).get("recordings", [])

    def download_recording(self, recording_id: str, path: Union[str, "os.PathLike[str]"]) -> str:
        """Saves a finished recording (MP4) to path; returns the path."""
        sid = self._require()
        body = self._client.request("GET", _sessions_path(sid, "/recordings/" +
                                                          path_part(recording_id)),
                                    timeout=600, what="download recording").body
        path = os.fspath(path)
        with open(path, "wb") as f:
            f.write(body)
        return path

    def downloads(self) -> List[Dict[str, Any]]:
        """Files the browser downloaded: [{"name", "bytes"}]."""
        sid = self._require()
        return self._client.json("GET", _sessions_path(sid, "/downloads")).get("downloads", [])

    def download(self, name: str, path: Union[str, "os.PathLike[str]"]) -> str:
        sid = self._require()
        body = self._client.request("GET", _sessions_path(sid, "/downloads/" + path_part(name)),
                                    timeout=600, what="download file").body
        path = os.fspath(path)
        with open(path, "wb") as f:
            f.write(body)
        return path

    def logs(self) -> Dict[str, str]:
        """{"console": guest console, "chromium": Chromium's log}."""
        sid = self._require()
        return self._client.json("GET", _sessions_path(sid, "/logs"), timeout=60)

    def collect_artifacts(self, directory: Union[str, "os.PathLike[str]"]) -> Dict[str, List[str]]:
        """Saves recordings (finished ones), downloads and logs under
        directory; returns the paths by kind. Downloads and logs need the
        session running; recordings stay available after stop()."""
        d = os.fspath(directory)
        out: Dict[str, List[str]] = {"recordings": [], "downloads": [], "logs": []}
        for sub in out:
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for rec in self.recordings():
            if rec.get("active"):
                continue
            out["recordings"].append(self.download_recording(
                rec["id"], os.path.join(d, "recordings", rec["id"] + ".mp4")))
        running = self.status == "ready"
        if running:
            for item in self.downloads():
                name = os.path.basename(item["name"])
                out["downloads"].append(self.download(item["name"],
                                                      os.path.join(d, "downloads", name)))
            for kind, text in self.logs().items():
                p = os.path.join(d, "logs", kind + ".log")
                with open(p, "w", encoding="utf-8") as f:
                    f.write(text or "")
                out["logs"].append(p)
        return out

    def __repr__(self) -> str:
        return "<BrowserSession %s>" % (self._id or "(not started)")

