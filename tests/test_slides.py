"""Slide-shaped pictures (issue 15, item 3): `render --size/--width/--height/--font-size/--theme`.

Every picture is checked on its pixels (Pillow, numpy): its size, the background it is drawn on, and the
border of plain background around the drawing. The automatic rankdir is checked against an independent
layout of both directions (pygraphviz in this process).
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

from cgraph_cli.present.style import DARK, LIGHT, SIZES
from tests.conftest import EXAMPLES, ROOT, run_inproc

pytest.importorskip("pygraphviz")
Image = pytest.importorskip("PIL.Image")

MLP = str(EXAMPLES / "mlp.cg")
LECTURE = str(EXAMPLES / "lecture.cg")
AT = ("--at", "a=-1,b=3,c=4")


def render(tmp_path, *args: str, name: str = "pic.png"):
    out = tmp_path / name
    r = run_inproc("render", *args, "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def rgb(colour: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    return ImageColor.getrgb(colour)[:3]


def margins(a: np.ndarray) -> tuple[float, float, float, float]:
    """The border of plain background (the corner's colour) on each side, as a fraction of that side."""
    bg = a[0, 0]
    drawn = np.abs(a - bg).sum(axis=2) > 24
    ys, xs = np.nonzero(drawn)
    h, w = drawn.shape
    return xs.min() / w, (w - 1 - xs.max()) / w, ys.min() / h, (h - 1 - ys.max()) / h


# -- size and shape ---------------------------------------------------------------------------------------------


def test_16_9_on_mlp_is_a_full_hd_slide_with_tight_margins(tmp_path):
    out, r = render(tmp_path, MLP, "--size", "16:9")
    a = pixels(out)
    h, w = a.shape[:2]
    assert (w, h) == (1920, 1080)  # an aspect ratio alone: 1920 pixels along the longer side
    assert abs((w / h) / (16 / 9) - 1) < 0.1
    assert max(margins(a)) < 0.04, margins(a)  # the drawing fills the slide: no band of white around it
    assert tuple(a[0, 0]) == rgb(LIGHT.background)
    # the old picture was 0.48 wide per unit of height: this one is the slide's shape, not a tall strip on it
    assert "small on a slide" in r.stderr  # mlp's 12 ranks are small at 16:9, and cgraph says so


@pytest.mark.parametrize(
    "args, size",
    [
        (("--size", "16:9", "--width", "1280"), (1280, 720)),
        (("--size", "4:3", "--height", "600"), (800, 600)),
        (("--size", "1000x500"), (1000, 500)),
        (("--width", "640", "--height", "480"), (640, 480)),
        (("--size", "9:16"), (1080, 1920)),
    ],
)
def test_requested_pixel_size_is_exact(tmp_path, args, size):
    out, _ = render(tmp_path, LECTURE, *AT, *args)
    a = pixels(out)
    assert (a.shape[1], a.shape[0]) == size
    assert max(margins(a)) < 0.05, margins(a)


@pytest.mark.parametrize(
    "args, size",
    [
        (("--size", "2000x20"), (2000, 20)),
        (("--size", "16x16"), (16, 16)),
        (("--size", "16x12000"), (16, 12000)),
        (("--width", "16"), None),
        (("--height", "16"), None),
    ],
)
def test_a_canvas_smaller_than_two_pads_is_drawn_too(tmp_path, args, size):
    """Every side from 16 pixels is accepted: on a canvas of fewer points than two of the graph's pads, the room
    around the drawing shrinks (to a quarter of the side) instead of leaving none, or less than none."""
    out, r = render(tmp_path, LECTURE, *AT, *args)
    a = pixels(out)
    assert size is None or (a.shape[1], a.shape[0]) == size
    assert "-" not in r.stderr.split("scaled to")[-1].split("%")[0]  # a positive scale


def test_one_side_keeps_the_drawings_own_shape(tmp_path):
    plain, _ = render(tmp_path, LECTURE, *AT, name="plain.png")
    wide, _ = render(tmp_path, LECTURE, *AT, "--width", "1500", name="wide.png")
    a, b = pixels(plain), pixels(wide)
    assert b.shape[1] == 1500
    assert abs((b.shape[1] / b.shape[0]) / (a.shape[1] / a.shape[0]) - 1) < 0.05


@pytest.mark.parametrize("example", ["lecture.cg", "functions.cg", "mlp.cg", "neuron.cg"])
def test_default_pictures_have_tight_margins(tmp_path, example):
    out, _ = render(tmp_path, str(EXAMPLES / example))
    m = margins(pixels(out))
    assert max(m) < 0.05, m  # the pad and the legend's spacing are small, on every side


def test_a_small_graph_grows_on_a_large_canvas_but_not_beyond_twice_its_text():
    import cgraph_cli as cg

    pic = cg.load(LECTURE).picture(a=-1, b=3, c=4, size="16:9")
    pic.render("png")
    assert pic.fitted["zoom"] == pytest.approx(2.0, rel=0.01)  # capped: 24-point text on a 13.3-inch slide
    given = cg.load(LECTURE).picture(a=-1, b=3, c=4, size="16:9", font_size=12)
    given.render("png")
    assert given.fitted["zoom"] == pytest.approx(1.0, rel=0.01)  # --font-size given: drawn at that size when it fits


# -- the automatic rankdir -----------------------------------------------------------------------------------------


def _aspect_of_layout(dot_text: str) -> float:
    import pygraphviz as pgv

    g = pgv.AGraph(string=dot_text)
    g.layout(prog="dot")
    x0, y0, x1, y1 = (float(v) for v in g.graph_attr["bb"].split(","))
    return (x1 - x0) / (y1 - y0)


@pytest.mark.parametrize("shape", ["16:9", "4:3", "9:16", "3:1"])
def test_auto_rankdir_picks_the_nearer_aspect(shape):
    import cgraph_cli as cg

    program = cg.load(MLP)
    lr = _aspect_of_layout(program.picture(rankdir="LR").dot())
    tb = _aspect_of_layout(program.picture(rankdir="TB").dot())
    a, b = (float(v) for v in shape.split(":"))
    want = a / b
    expected = "LR" if abs(math.log(lr / want)) <= abs(math.log(tb / want)) else "TB"
    pic = program.picture(size=shape)
    assert pic.rankdir == expected
    # the DOT text says the choice, and the shape it fills
    text = pic.dot()
    assert f'rankdir="{expected}"' in text and 'ratio="fill"' in text
    assert lr > 1 > tb  # mlp is a chain: both directions are far from square, so the choice matters


def test_auto_rankdir_in_the_png_matches_the_dot_choice(tmp_path):
    tall, _ = render(tmp_path, MLP, "--size", "9:16", name="tall.png")
    a = pixels(tall)
    assert (a.shape[1], a.shape[0]) == (1080, 1920)
    assert max(margins(a)) < 0.05
    r = run_inproc("render", MLP, "--size", "9:16", "--format", "dot", "-o", "-")
    assert 'rankdir="TB"' in r.stdout


def test_without_size_rankdir_stays_lr():
    import cgraph_cli as cg

    assert cg.load(MLP).picture().rankdir == "LR"
    assert cg.load(MLP).picture(width=800).rankdir == "LR"  # one side: no shape to aim at
    assert 'rankdir="TB"' in cg.load(MLP).picture(size="16:9", rankdir="TB").dot()  # given: kept


# -- the dark theme ------------------------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    r, g, b = (c / 255 for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_palette_is_dark_with_light_text_and_distinct_passes():
    assert _luminance(DARK.background) < 0.1 < 0.8 < _luminance(DARK.text)
    assert _luminance(DARK.edge) > 0.5 and _luminance(DARK.edge_label) > 0.5
    for colour in (DARK.value, DARK.grad):
        assert _luminance(colour) > 0.4  # readable on the dark background
    v, g = np.array(rgb(DARK.value)), np.array(rgb(DARK.grad))
    assert np.abs(v - g).sum() > 200  # values and gradients are told apart by colour
    assert set(vars(DARK)) == set(vars(LIGHT))  # the same facts, another palette


def test_dark_dot_uses_the_dark_palette_only():
    r = run_inproc("render", LECTURE, "--theme", "dark", "--format", "dot", "-o", "-")
    text = r.stdout
    assert f'bgcolor="{DARK.background}"' in text and f'fontcolor="{DARK.text}"' in text
    assert DARK.value in text and DARK.grad in text
    for colour in {LIGHT.value, LIGHT.grad, LIGHT.fill_input, LIGHT.border_op, LIGHT.edge}:
        assert colour not in text, colour
    light = run_inproc("render", LECTURE, "--format", "dot", "-o", "-").stdout
    # the same picture: only the colours differ
    strip = re.compile(r"#[0-9a-f]{6}|\b(white|black)\b|fontcolor=\"[^\"]*\"\s?")
    assert strip.sub("", text) == strip.sub("", light)


def test_dark_png_has_dark_background_and_light_text(tmp_path):
    out, _ = render(tmp_path, LECTURE, *AT, "--theme", "dark", "--size", "16:9")
    a = pixels(out)
    assert tuple(a[0, 0]) == rgb(DARK.background)
    colours = {tuple(c) for c in a.reshape(-1, 3)[::7]}
    near = lambda c: any(sum(abs(x - y) for x, y in zip(rgb(c), p)) < 30 for p in colours)  # noqa: E731
    assert near(DARK.value) and near(DARK.grad) and near(DARK.text)
    assert max(margins(a)) < 0.04


@pytest.mark.slow
def test_dark_steps_and_gif_follow_the_theme_and_the_size(tmp_path):
    folder = tmp_path / "frames"
    r = run_inproc("render", LECTURE, *AT, "--theme", "dark", "--size", "800x450", "--steps", str(folder))
    assert r.returncode == 0, r.stderr
    frames = sorted(folder.glob("*.png"))
    assert len(frames) == 12
    for f in frames:
        a = pixels(f)
        assert (a.shape[1], a.shape[0]) == (800, 450)
        assert tuple(a[0, 0]) == rgb(DARK.background)
    gif = tmp_path / "anim.gif"
    r = run_inproc("render", LECTURE, *AT, "--theme", "dark", "--size", "16:9", "--width", "640", "--steps", str(gif))
    assert r.returncode == 0, r.stderr
    with Image.open(gif) as im:
        assert im.size == (640, 360)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB")).astype(int)
    assert tuple(last[0, 0]) == rgb(DARK.background)  # the exact background, not a quantised shade


def test_dark_html_page_opens_dark_and_finds_the_dark_colours():
    r = run_inproc("render", LECTURE, *AT, "--theme", "dark", "--format", "html", "-o", "-")
    page = r.stdout
    assert '<html lang="en" data-theme="dark" data-picture="dark">' in page
    assert f'text[fill="{DARK.value}"]' in page and f'text[fill="{DARK.grad}"]' in page  # the stepper's selectors
    assert f'fill="{DARK.background}"' in page or f'fill="{DARK.background.upper()}"' in page
    light = run_inproc("render", LECTURE, *AT, "--format", "html", "-o", "-").stdout
    assert 'data-picture="light"' in light and f'text[fill="{LIGHT.value}"]' in light


# -- font size -----------------------------------------------------------------------------------------------------


def test_font_size_scales_every_text_size():
    def sizes(text):
        return sorted(float(v) for v in re.findall(r'(?:fontsize|POINT-SIZE)="([\d.]+)"', text))

    base = run_inproc("render", LECTURE, "--format", "dot", "-o", "-").stdout
    big = run_inproc("render", LECTURE, "--font-size", "18", "--format", "dot", "-o", "-").stdout
    a, b = sizes(base), sizes(big)
    assert a and len(a) == len(b)
    assert b == pytest.approx([x * 18 / 12 for x in a])
    assert f'fontsize="{SIZES["node"] * 18 / 12:g}"' in big


# -- refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("--size", "16:0"), "error: --size: '16:0' is not a shape: both sides of an aspect ratio must be positive"),
        (("--width", "-3"), "error: --width must be a whole number of pixels from 16 to 12,000, not -3"),
        (("--size", "banana"), "error: --size: 'banana' is neither an aspect ratio such as 16:9 nor a size in pixels"),
        (("--size", "0x100"), "error: --size: '0x100' has a side of 0 pixels"),
        (("--height", "20000"), "error: --height must be a whole number of pixels from 16 to 12,000, not 20000"),
        (("--size", "16:9", "--width", "900", "--height", "500"), "error: --size 16:9 with both --width and --height"),
        (("--size", "800x600", "--width", "900"), "error: --size 800x600 gives the size in pixels already"),
        (("--size", "1:1000"), "error: --size 1:1000 makes a picture of 2 × 1920 pixels"),
        (("--font-size", "0"), "error: --font-size must be a number of points from 4 to 96, not 0"),
        (("--font-size", "nan"), "error: --font-size must be a number of points from 4 to 96, not nan"),
        (("--theme", "neon"), "error: --theme: 'neon' is not one of: light, dark"),
        (("--rankdir", "BT"), "error: --rankdir: 'BT' is not one of: LR, TB, auto"),
    ],
)
def test_bad_values_exit_2_with_a_clear_message_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "pic.png"
    r = run_inproc("render", LECTURE, *args, "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(message), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_api_refuses_the_same_values():
    import cgraph_cli as cg

    program = cg.parse("z = x * y")
    with pytest.raises(cg.CgraphError, match="--size: 'banana'"):
        program.render(x=2, y=3, size="banana")
    with pytest.raises(cg.CgraphError, match="--width must be"):
        program.picture(x=2, y=3, width=-3)
    with pytest.raises(cg.CgraphError, match="--theme"):
        program.eval(x=2, y=3).picture(theme="sepia")


def test_api_render_with_slide_options():
    import cgraph_cli as cg

    ev = cg.load(LECTURE).eval(a=-1, b=3, c=4)
    data = ev.render("png", size="4:3", width=800, theme="dark")
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (800, 600)
        assert im.convert("RGB").getpixel((0, 0)) == rgb(DARK.background)
    assert ev.render("png", size="4:3", width=800, theme="dark") is data  # kept per options
    svg = cg.load(LECTURE).render(a=-1, b=3, c=4, format="svg", size="16:9").decode()
    w, h = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert w / h == pytest.approx(16 / 9, rel=0.01)


def test_readme_documents_the_slide_options():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for option in ("--size 16:9", "--theme dark", "--font-size", "--width", "--rankdir"):
        assert option in text, option


def test_shell_completion_offers_the_slide_words():
    from tests.test_completion import bash_request

    assert bash_request("cgraph render x.cg --theme ") == ["light", "dark"]
    assert bash_request("cgraph render x.cg --size ") == ["16:9", "4:3", "1920x1080"]  # each a real value
    assert bash_request("cgraph render x.cg --rankdir ") == ["LR", "TB", "auto"]
