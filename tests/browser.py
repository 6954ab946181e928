"""Headless Chromium through Selenium, for the interactive page's tests, its benchmark and the README's screenshots.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the ``selenium`` package (dev
extras). :func:`why_not` says what is missing; :func:`chromium` starts a browser with a fresh profile and
every background service off, logging the console and the network (the performance log).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
)


def _binary(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def why_not() -> str | None:
    """Why no browser test can run here (None: they can)."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _binary("chromium", "chromium-browser") is None:
        return "no chromium on PATH (Debian: apt-get install chromium chromium-driver)"
    if _binary("chromedriver") is None:
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A headless Chromium driven by Selenium; closed and its profile removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cgraph-chromium-")
    opts = webdriver.ChromeOptions()
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.binary_location = _binary("chromium", "chromium-browser") or ""
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(_binary("chromedriver") or "chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requests(driver: Any) -> list[str]:
    """The URLs pages asked for since the last call (the performance log's Network events), but for those of
    the browser's own pages (its new-tab page loads chrome:// resources when it starts)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            params = msg["params"]
            if not str(params.get("documentURL", "")).startswith("chrome://"):
                urls.append(params["request"]["url"])
    return urls


def console_errors(driver: Any) -> list[str]:
    """The console's errors and warnings since the last call (CSP violations are among them)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "WARNING")]


def wait_ready(driver: Any, timeout: float = 10.0) -> None:
    """Wait until the page's script has finished starting (it marks ``<html data-ready="1">``)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')") == "1"
    )


def screenshot(page: Path, out: Path, theme: str, steps: int = 0, node: str | None = None) -> None:
    """A screenshot of ``page`` in ``theme`` after ``steps`` steps, with node ``node`` (an SVG id) pinned."""
    with chromium(1280, 720) as d:
        d.get(page.resolve().as_uri() + f"#{theme}")
        wait_ready(d)
        for _ in range(steps):
            d.execute_script("document.getElementById('next').click()")
        if node is not None:
            d.execute_script(
                f"document.getElementById({json.dumps(node)}).dispatchEvent(new MouseEvent('click', {{bubbles: true}}))"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(out))
