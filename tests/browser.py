"""A headless Chromium driven over the DevTools protocol on a pipe (no port, no extra package).

    with Browser() as browser:
        page = browser.open("file:///.../report.html", ready="document.body.dataset.ready")
        page.evaluate("document.querySelectorAll('tr').length")
        page.errors   # script errors and console errors the page logged

`find_chromium()` names the browser (Debian's `chromium`, or $RUNNER_CHROMIUM); `.ci/run`
installs it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--enable-unsafe-swiftshader", "--mute-audio",
         "--hide-scrollbars"]


# Run in the child: put the pipe ends on fds 3 and 4, then become the browser.
PLACE_PIPES = """if True:
    import os, sys
    ends = [int(fd) for fd in sys.argv[1:3]]
    for target, fd in zip((3, 4), ends):
        os.dup2(fd, target)
    for fd in ends:
        os.close(fd)
    os.execv(sys.argv[3], sys.argv[3:])
"""


def find_chromium() -> Optional[str]:
    """The Chromium to use: $RUNNER_CHROMIUM, else `chromium` (Debian) or `chromium-browser`."""
    named = os.environ.get("RUNNER_CHROMIUM")
    if named:
        return shutil.which(named)
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(Exception):
    """The browser did not answer, or answered with an error."""


class Browser:
    """One headless Chromium with a fresh profile, spoken to through fds 3 and 4."""

    def __init__(self, executable: Optional[str] = None, width: int = 1280, height: int = 1600,
                 timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no chromium on PATH")
        self.size = (width, height)
        self.timeout = timeout
        self._next = 0
        self._replies: Dict[int, Dict[str, Any]] = {}
        self._events: List[Dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False

    def __enter__(self) -> "Browser":
        self.profile = tempfile.mkdtemp(prefix="runner-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4: its ends go there
        # from numbers above 4, so that neither is overwritten by the other on the way.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (to_browser_r, from_browser_w)]
        os.close(to_browser_r)
        os.close(from_browser_w)
        argv = [self.executable, *FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}", "--remote-debugging-pipe",
                "about:blank"]
        self.log = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", PLACE_PIPES, *map(str, ends), *argv],
                pass_fds=ends, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        finally:
            for fd in ends:
                os.close(fd)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close", timeout=10)
        except BrowserError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # our own child, started above
            self.process.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=10)
        os.close(self._from_browser)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(self, method: str, params: Optional[Dict[str, Any]] = None,
             session: Optional[str] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        with self._cond:
            self._next += 1
            ident = self._next
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data):]
        except OSError as e:
            raise BrowserError(f"{method}: the browser is gone ({e}); it said: "
                               f"{self.said()}") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise BrowserError(f"{method}: no answer from the browser; it said: "
                                       f"{self.said()}")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def said(self) -> str:
        """The end of what the browser printed."""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]

    def events(self, session: str) -> List[Dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if e.get("sessionId") == session]

    def open(self, url: str, ready: str, timeout: Optional[float] = None) -> "Page":
        """A new tab at `url`, once the JavaScript expression `ready` is truthy."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1,
                   "mobile": False}, session=session)
        started = time.monotonic()
        self.send("Page.navigate", {"url": url}, session=session)
        page.wait_for(ready, timeout or self.timeout)
        page.load_seconds = time.monotonic() - started
        return page


class Page:
    """One tab: evaluate JavaScript in it, read what it logged."""

    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session
        self.load_seconds = 0.0

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError:  # the page is still loading
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r} still false after {timeout} s; "
                                   f"errors: {self.errors}")
            time.sleep(0.05)

    @property
    def errors(self) -> List[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries."""
        out = []
        for event in self.browser.events(self.session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out.append(details.get("exception", {}).get("description") or details["text"])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description")))
                                    for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(params["entry"]["text"])
        return out

    def warnings(self) -> List[str]:
        """console.warn calls and warning log entries (plotly says so when WebGL is missing)."""
        out = []
        for event in self.browser.events(self.session):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] == "warning":
                out.append(" ".join(str(a.get("value", a.get("description")))
                                    for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "warning":
                out.append(params["entry"]["text"])
        return out

    def drag(self, x: float, y0: float, y1: float, steps: int = 10) -> None:
        """Press the left mouse button at (x, y0), move to (x, y1), release (viewport pixels)."""
        def mouse(kind: str, y: float, buttons: int) -> None:
            self.browser.send("Input.dispatchMouseEvent", {
                "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
                "clickCount": 1}, session=self.session)

        mouse("mouseMoved", y0, 0)
        mouse("mousePressed", y0, 1)
        for step in range(1, steps + 1):
            mouse("mouseMoved", y0 + (y1 - y0) * step / steps, 1)
        mouse("mouseReleased", y1, 0)

    def screenshot(self, path: str) -> None:
        """The whole page as a PNG."""
        width, height = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        data = self.browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
            session=self.session)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
