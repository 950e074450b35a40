"""Open a page in headless Chromium, check that it really works, and take a full-page screenshot.

    python scripts/browser.py runs/quickstart/eval/report.html      # writes report.png beside it

Chromium is driven through the DevTools protocol (CDP) over ``--remote-debugging-pipe``: two pipes on file
descriptors 3 and 4 carrying NUL-terminated JSON messages, the transport Playwright and Puppeteer use. That needs
no Node.js, no npm package, no websocket library and no TCP port, so checks run in parallel and offline. Chromium
is the Debian package ``chromium`` (``apt-get install -y chromium``); it starts with a fresh profile and without
the background services that would try the network.

A check (``PageCheck``) collects what a user would notice: console errors and uncaught exceptions (a missing image
or WAV shows up as "Failed to load resource"), images that did not decode, and each ``<audio>`` element's
``readyState`` (> 0: its metadata loaded, so it can play) or media error.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from taae.io.atomic import write_bytes

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic", "--disable-extensions", "--mute-audio", "--hide-scrollbars")
"""Headless, as root in a container (no sandbox), and no background service that would try the network."""
VIEWPORT = (1400, 900)
"""CSS pixels of the window; the screenshot covers the whole page, however tall."""
TIMEOUT_S = 60.0
"""Longest wait for one protocol answer, the page's load event, or its media to load."""
POLL_S = 0.1

MEDIA_STATE_JS = """Array.from(document.querySelectorAll("audio, video")).map(function (m) {
  return {src: m.getAttribute("src") || (m.querySelector("source") || {}).src || "", ready_state: m.readyState,
          error: m.error ? m.error.code + " " + (m.error.message || "") : null}; })"""
IMAGES_JS = """Array.from(document.images).map(function (i) {
  return {src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}; })"""


class BrowserError(RuntimeError):
    """Chromium could not be found or started, or stopped answering."""


def find_chromium(path: str | None = None) -> str:
    """The Chromium executable: ``path``, else ``$CHROMIUM``, else the first of ``CHROMIUM_NAMES`` on PATH.

    Raises:
        BrowserError: none found (the message says how to install it).
    """
    explicit = path or os.environ.get("CHROMIUM")
    if explicit:  # asked for by name: that one or an error, never a different browser
        if found := shutil.which(explicit):
            return found
        raise BrowserError(f"Chromium executable {explicit!r} not found or not executable")
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    raise BrowserError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH): install the Debian "
                       "package (apt-get install -y chromium), or set $CHROMIUM to its executable")


@dataclass
class PageCheck:
    """What a load of one page showed."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    """Console errors, uncaught exceptions and failed loads, in order."""
    media: list[dict] = field(default_factory=list)
    """One ``{src, ready_state, error}`` per ``<audio>``/``<video>``, in document order."""
    broken_images: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        """No console error, no broken image, and every media element has a playable source."""
        return not self.console_errors and not self.broken_images and all(
            m["ready_state"] > 0 and not m["error"] for m in self.media)


def _high_fd(fd: int) -> int:
    # Above 10, so that moving the pipes onto fds 3 and 4 in the child can never overwrite one with the other;
    # close-on-exec, so that only the copies on 3 and 4 reach Chromium.
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Chromium:
    """A headless Chromium with one page, driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, executable: str | None = None, viewport: tuple[int, int] = VIEWPORT,
                 timeout: float = TIMEOUT_S):
        self.executable, self.viewport, self.timeout = find_chromium(executable), viewport, timeout
        self.events: list[dict] = []
        self._next_id, self._buffer = 0, b""

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="taae_chromium_")
        to_browser_r, to_browser_w = map(_high_fd, os.pipe())
        from_browser_r, from_browser_w = map(_high_fd, os.pipe())

        def child_fds():  # runs in the child between fork and exec; dup2 makes 3 and 4 inheritable
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        width, height = self.viewport
        cmd = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
               f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"]
        # Chromium's log goes to a file: an unread stderr pipe would fill up and stall it.
        self._log = open(Path(self._profile.name, "chromium.log"), "w+b")  # noqa: SIM115 - closed in __exit__
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                         preexec_fn=child_fds, close_fds=False)
        except OSError as err:
            for fd in (to_browser_w, from_browser_r):
                os.close(fd)
            self._log.close()
            self._profile.cleanup()
            raise BrowserError(f"cannot start {self.executable}: {err}") from err
        finally:  # the child's ends: Chromium holds its own copies on 3 and 4 (or never started)
            os.close(to_browser_r)
            os.close(from_browser_w)
        self._write, self._read = to_browser_w, from_browser_r
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=True)
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                              "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc.poll() is None:
                self._send("Browser.close", {})
                self.proc.wait(timeout=10)
        except (OSError, BrowserError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for fd in (self._write, self._read):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self._profile.cleanup()

    # -- protocol ------------------------------------------------------------------------------------------

    def _send(self, method: str, params: dict, session: bool = False) -> int:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                self._log.seek(0)
                log = self._log.read().decode(errors="replace")[-2000:]
                raise BrowserError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()}): {log}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile go to ``events``."""
        msg_id = self._send(method, params or {}, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._receive(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message', msg['error'])}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def _wait_event(self, method: str, start: int) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == method for e in self.events[start:]):
            msg = self._receive(deadline)
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    # -- page ----------------------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate and wait for the load event, then for every media element to load or fail.

        Events of the previous page are dropped, so ``console_errors`` speaks of this page only.
        """
        self.events.clear()
        answer = self.call("Page.navigate", {"url": url}, session=True)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        self._wait_event("Page.loadEventFired", 0)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if all(m["ready_state"] > 0 or m["error"] for m in self.evaluate(MEDIA_STATE_JS)):
                return
            time.sleep(POLL_S)

    def check(self, url: str, screenshot: str | Path | None = None) -> PageCheck:
        """``open`` the page, then collect a ``PageCheck`` (and a screenshot when ``screenshot`` is given)."""
        self.open(url)
        check = PageCheck(url=url, media=self.evaluate(MEDIA_STATE_JS),
                          broken_images=[i["src"] for i in self.evaluate(IMAGES_JS) if not i["ok"]])
        if screenshot is not None:
            check.screenshot = self.screenshot(screenshot)
        check.console_errors = self.console_errors()
        return check

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed resource loads seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        return out

    def screenshot(self, path: str | Path) -> Path:
        """A PNG of the whole page (not only the window), written atomically."""
        size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip},
                         session=True)
        return write_bytes(path, base64.b64decode(shot["data"]))


def check_page(page: str | Path, screenshot: str | Path | None = None, executable: str | None = None) -> PageCheck:
    """Load a local page in headless Chromium and report console errors, broken images and media readiness.

    Args:
        page: an HTML file.
        screenshot: where to write a full-page PNG (None: no screenshot).
    """
    page = Path(page).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"page not found: {page}")
    with Chromium(executable) as browser:
        return browser.check(page.as_uri(), screenshot)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/browser.py", description=(
        "Open an HTML page (e.g. an evaluation's report.html) in headless Chromium: print console errors, broken "
        "images and each audio element's readyState, and write a full-page screenshot beside it."))
    p.add_argument("page", help="HTML file")
    p.add_argument("--screenshot", default=None, help="PNG to write (default: the page's name with .png)")
    p.add_argument("--chromium", default=None, help="Chromium executable (default: $CHROMIUM or PATH)")
    args = p.parse_args(argv)
    page = Path(args.page)
    try:
        check = check_page(page, args.screenshot or page.with_suffix(".png"), args.chromium)
    except (BrowserError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    ready = sum(m["ready_state"] > 0 and not m["error"] for m in check.media)
    print(f"{check.url}: {len(check.console_errors)} console errors, {len(check.broken_images)} broken images, "
          f"{ready}/{len(check.media)} audio elements ready; screenshot {check.screenshot}")
    for line in check.console_errors:
        print(f"  console: {line}")
    for src in check.broken_images:
        print(f"  broken image: {src}")
    for m in check.media:
        if m["ready_state"] == 0 or m["error"]:
            print(f"  not playable: {m['src']} (readyState {m['ready_state']}, error {m['error']})")
    return 0 if check.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
