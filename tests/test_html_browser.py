"""The interactive page in a real browser: headless Chromium driven by Selenium (see tests/browser.py).

Loads pages from file:// and checks the DOM after the page's script ran: the stepper (12 steps for the
lecture; the caption of ∂z/∂b), the node panel (b: value 3, gradient 9), the toggles, pan and zoom, the
theme; that the console stays clean and no request leaves the page; that a program whose path and comments
hold markup shows it as text. Skipped, with the reason, where Chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests import browser
from tests.conftest import ROOT, run_inproc
from tests.test_html_page import EVIL, evil_program

WHY = browser.why_not()  # tests/conftest.py prints it at the end of a run that skipped these tests
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY is not None, reason=f"no headless browser: {WHY}")]


@pytest.fixture(scope="module")
def driver():
    with browser.chromium(1280, 800) as d:
        yield d


@pytest.fixture(scope="module")
def lecture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("page") / "lecture.html"
    r = run_inproc("render", "examples/lecture.cg", "--at", "a=-1,b=3,c=4", "-o", str(out), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return out


def load(d, page: Path, fragment: str = "") -> None:
    d.get("about:blank")  # a new document even where only the #fragment changes
    browser.requests(d)  # forget what came before
    browser.console_errors(d)
    d.get(page.resolve().as_uri() + fragment)
    browser.wait_ready(d)


def js(d, script: str, *args):
    return d.execute_script(script, *args)


def text(d, id_: str) -> str:
    return js(d, "return document.getElementById(arguments[0]).textContent", id_)


def press(d, key: str, times: int = 1) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    body = d.find_element("tag name", "body")
    for _ in range(times):
        ActionChains(d).send_keys_to_element(body, key).perform()


def hover(d, svg_id: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(d).move_to_element(d.find_element("css selector", f"#graph g#{svg_id} path")).perform()


def panel(d) -> dict:
    return js(
        d,
        """const info = document.getElementById('info');
        const q = s => [...info.querySelectorAll(s)].map(e => e.textContent);
        return {name: q('h2')[0], value: q('.value .num').join(' '), grad: q('.grad .num').join(' '),
                pending: q('.pending'), steps: q('.step pre')};""",
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_lecture_page_steps_hovers_and_stays_offline(driver, lecture, tmp_path):
    from selenium.webdriver.common.keys import Keys

    d = driver
    load(d, lecture, "#light")
    assert js(d, "return document.documentElement.dataset.steps") == "12"
    assert text(d, "position") == "0 / 12"
    assert js(d, "return document.getElementById('slider').max") == "12"
    # the whole picture first: every value and gradient shown
    assert js(d, "return document.querySelectorAll('#graph .nv, #graph .ng').length") == 0
    press(d, Keys.ARROW_RIGHT, 11)
    assert text(d, "position") == "11 / 12"
    caption = text(d, "caption")
    assert caption == "backward 5/6:  ∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9"
    assert caption.endswith("7 · 1 + 2 · 1 = 9")
    assert js(d, "return document.querySelector('#graph g.node.active').id") == "n1"  # b
    assert sorted(js(d, "return [...document.querySelectorAll('#graph g.edge.active')].map(e => e.id)")) == [
        "e1",
        "e2",
    ]
    # (the lecture's order: z, x, y, a, b, c) a's gradient is shown; c's is not known yet at this step: hidden in the
    # picture and pending in the panel
    assert js(d, "return document.getElementById('n0').classList.contains('ng')") is False
    assert js(d, "return document.getElementById('n2').classList.contains('ng')") is True
    hover(d, "n1")
    p = panel(d)
    assert p["name"].startswith("b") and p["value"] == "3" and p["grad"] == "9"
    assert "∂z/∂b = ∂z/∂x · ∂x/∂b + ∂z/∂y · ∂y/∂b = 7 · 1 + 2 · 1 = 9\n    where ∂x/∂b = 1, ∂y/∂b = 1" in p["steps"]
    hover(d, "n2")
    p = panel(d)
    assert p["name"].startswith("c") and p["value"] == "4" and p["pending"] == ["not computed yet at this step"]
    # back and forth: ← and the buttons
    press(d, Keys.ARROW_LEFT)
    assert text(d, "position") == "10 / 12"
    js(d, "document.getElementById('last').click()")
    assert text(d, "caption").startswith("backward 6/6:  ∂z/∂c")
    assert js(d, "return document.querySelectorAll('#graph .nv, #graph .ng').length") == 0  # the last: all
    js(d, "document.getElementById('first').click()")
    assert text(d, "position") == "0 / 12"
    js(d, "const s = document.getElementById('slider'); s.value = 4; s.dispatchEvent(new Event('input'))")
    assert text(d, "caption") == "forward 4/6:  x = a + b = -1 + 3 = 2"
    shown = js(
        d,
        "return [...document.querySelectorAll('#graph g.node')]"
        ".filter(n => !n.classList.contains('nv')).map(n => n.id)",
    )
    assert sorted(shown) == ["n0", "n1", "n2", "n3"]
    assert js(d, "return getComputedStyle(document.querySelector('#n4 text[fill=\"#0b5cad\"]')).visibility") == (
        "hidden"
    )
    # clicking pins a node; the panel keeps it when the mouse goes elsewhere
    js(d, "document.getElementById('n2').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    js(d, "document.getElementById('viewport').dispatchEvent(new MouseEvent('mouseleave'))")
    assert panel(d)["name"].startswith("c") and "pinned" in js(
        d, "return document.getElementById('n2').className.baseVal"
    )
    # the pinned node's panel goes to its steps (c: forward 3 of 6, backward 4 of 6: the stepper's 3rd and 10th)
    buttons = js(d, "return [...document.querySelectorAll('#info button.goto')].map(b => b.textContent)")
    assert buttons == ["show step 3 / 12", "show step 12 / 12"]  # c: the last backward step (the lecture's order)
    js(d, "document.querySelectorAll('#info button.goto')[1].click()")
    assert text(d, "caption") == "backward 6/6:  ∂z/∂c = ∂z/∂y · ∂y/∂c = 2 · 1 = 2"
    assert browser.console_errors(d) == []
    urls = browser.requests(d)
    assert urls and all(u.startswith("file://") for u in urls), urls
    assert set(urls) == {lecture.resolve().as_uri()}


def test_the_request_and_console_checks_can_fail(driver, tmp_path):
    """The checks above see a request and a console error when a page makes them (a page without cgraph's CSP)."""
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><html data-ready="1"><body><img src="http://127.0.0.1:9/cgraph-probe.png">'
        "<script>console.error('probe')</script></body></html>",
        encoding="utf-8",
    )
    d = driver
    load(d, page)
    assert "http://127.0.0.1:9/cgraph-probe.png" in browser.requests(d)
    assert any("probe" in e for e in browser.console_errors(d))


def test_toggles_theme_pan_and_zoom(driver, lecture, tmp_path):
    d = driver
    load(d, lecture, "#light")
    value_text = "#n1 text[fill='#0b5cad']"
    grad_text = "#n1 text[fill='#c2410c']"
    display = "return getComputedStyle(document.querySelector(arguments[0])).display"
    assert js(d, display, value_text) != "none"
    d.find_element("id", "show-values").click()
    assert js(d, display, value_text) == "none" and js(d, display, grad_text) != "none"
    d.find_element("id", "show-grads").click()
    assert js(d, display, grad_text) == "none"
    assert js(d, display, "#e0 text") != "none"
    d.find_element("id", "show-edges").click()
    assert js(d, display, "#e0 text") == "none"
    for box in ("show-values", "show-grads", "show-edges"):
        d.find_element("id", box).click()
    # theme
    assert js(d, "return document.documentElement.dataset.theme") == "light"
    bg_light = js(d, "return getComputedStyle(document.body).backgroundColor")
    d.find_element("id", "theme").click()
    assert js(d, "return document.documentElement.dataset.theme") == "dark"
    assert js(d, "return getComputedStyle(document.body).backgroundColor") != bg_light
    d.find_element("id", "theme").click()
    # zoom with the wheel around the cursor, then fit
    box = "return document.querySelector('#n1 path').getBoundingClientRect().width"
    w0 = js(d, box)
    js(
        d,
        "document.getElementById('viewport').dispatchEvent(new WheelEvent('wheel',"
        " {deltaY: -300, clientX: 300, clientY: 300, bubbles: true, cancelable: true}))",
    )
    js(d, "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    w1 = js(d, box)
    assert w1 > w0 * 1.5
    # drag pans
    from selenium.webdriver.common.action_chains import ActionChains

    left = "return document.querySelector('#n1 path').getBoundingClientRect().left"
    x0 = js(d, left)
    vp = d.find_element("id", "viewport")
    ActionChains(d).move_to_element_with_offset(vp, -300, 200).click_and_hold().move_by_offset(40, 0).move_by_offset(
        60, 0
    ).release().perform()
    js(d, "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert js(d, left) == pytest.approx(x0 + 100, abs=2)
    d.find_element("id", "fit").click()
    js(d, "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert js(d, box) == pytest.approx(w0, rel=0.01)
    assert browser.console_errors(d) == []
    assert all(u.startswith("file://") for u in browser.requests(d))


def test_screenshots_light_and_dark(driver, lecture, tmp_path):
    d = driver
    shots = {}
    for theme in ("light", "dark"):
        load(d, lecture, f"#{theme}")
        press_steps = 11 if theme == "dark" else 0
        for _ in range(press_steps):
            js(d, "document.getElementById('next').click()")
        out = tmp_path / f"lecture-page-{theme}.png"
        d.save_screenshot(str(out))
        shots[theme] = out
        w, h = png_size(out)
        assert w >= 800 and h >= 500
    from PIL import Image, ImageStat

    light = ImageStat.Stat(Image.open(shots["light"]).convert("L")).mean[0]
    dark = ImageStat.Stat(Image.open(shots["dark"]).convert("L")).mean[0]
    assert light > 200 and dark < 80, (light, dark)


def test_markup_in_the_path_and_comments_is_text(driver, tmp_path):
    src = evil_program(tmp_path)
    out = tmp_path / "evil.html"
    r = run_inproc("render", str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    d = driver
    js(d, "window.name = ''")
    load(d, out)
    assert js(d, "return document.querySelectorAll('img').length") == 0
    assert js(d, "return document.querySelectorAll('script').length") == 2
    assert js(d, "return document.title") == f"{src} · cgraph"
    assert text(d, "title") == str(src)
    js(d, "document.querySelector('#panel details').open = true")
    program = js(d, "return document.getElementById('source').textContent")
    assert EVIL in program and "<b>bold</b>" in program
    hover(d, "n0")
    assert EVIL in js(d, "return document.querySelector('#info pre.srcline').textContent")
    errors = browser.console_errors(d)
    assert errors == [], errors
    assert all(u.startswith("file://") for u in browser.requests(d))


def test_big_tensors_show_as_matrices_and_summaries(driver, tmp_path):
    prog = tmp_path / "t.cg"
    prog.write_text("input W[3, 4]\ninput v[500]\nz = sum(tanh(W) * 2) + sum(v * v)\n", encoding="utf-8")
    at = json.dumps({"W": [[0.1 * (i + j) for j in range(4)] for i in range(3)], "v": [0.01 * k for k in range(500)]})
    at_file = tmp_path / "at.json"
    at_file.write_text(at, encoding="utf-8")
    out = tmp_path / "t.html"
    r = run_inproc("render", str(prog), "--at-file", str(at_file), "-o", str(out))
    assert r.returncode == 0, r.stderr
    d = driver
    load(d, out)
    hover(d, "n0")
    cells = js(d, "return [...document.querySelectorAll('#info .value table.matrix tr')].map(r => r.cells.length)")
    assert cells == [4, 4, 4]
    hover(d, "n1")
    summary = js(d, "return [...document.querySelectorAll('#info .value dt')].map(e => e.textContent)")
    assert summary[:5] == ["entries", "‖·‖", "min", "max", "mean"]
    assert browser.console_errors(d) == []


def test_a_leaf_drawn_once_per_use_answers_for_the_leaf(driver, tmp_path):
    out = tmp_path / "f.html"
    text = "def f(u) = u * u + 1\ninput w = 0.5\nz = " + " + ".join(f"f(w * {k})" for k in range(1, 11))
    r = run_inproc("render", "-e", text, "-o", str(out))
    assert r.returncode == 0, r.stderr
    d = driver
    load(d, out)
    w = js(
        d, "return JSON.parse(document.getElementById('cgraph-data').textContent).nodes.findIndex(n => n.name == 'w')"
    )
    hover(d, f"n{w}_3")
    p = panel(d)
    assert p["name"].startswith("w") and p["value"] == "0.5" and p["grad"] == "385"  # Σ 2·0.5·k², k = 1..10
    # stepping to a use of w highlights that copy with its edge
    k, copy = js(
        d,
        """const data = JSON.parse(document.getElementById('cgraph-data').textContent);
        const w = arguments[0];
        const k = data.steps.findIndex(s => s.edges.some(e => data.edges[e][0] == w && data.edges[e][2] >= 0));
        const e = data.steps[k].edges.find(e => data.edges[e][0] == w);
        return [k + 1, data.edges[e][2]];""",
        w,
    )
    js(d, "const s = document.getElementById('slider'); s.value = arguments[0]; s.dispatchEvent(new Event('input'))", k)
    assert "active" in js(d, "return document.getElementById(arguments[0]).className.baseVal", f"n{w}_{copy}")
    assert browser.console_errors(d) == []
