"""Laying out and drawing DOT text with the Graphviz that the pygraphviz wheel bundles.

Graphviz runs in a child process, never in the ``cgraph`` process itself:
``dot`` can take minutes or crash on awkward graphs, and a child can be stopped
after ``timeout`` seconds and its crash reported as a clear error. No ``dot``
binary is needed: pygraphviz lays out and renders in-process through libgvc.

The child is started as ``python -I -c <bootstrap> <folder>``: isolated mode
ignores the current folder, ``PYTHONPATH`` and the user's site-packages, and
the bootstrap puts the folder that holds the running ``cgraph_cli`` package
first on ``sys.path``, so the child runs exactly this package's code (also for
an editable install) and nothing a working folder happens to contain.

For ``--steps`` the child lays the full picture out ONCE, then draws every
frame with that layout's node and edge positions (the ``nop2`` layout, like
``neato -n2``), so nodes do not move between frames and every frame has the
same size. PNG frames share a pixel budget (:data:`STEP_PIXEL_BUDGET`): a large
graph gets smaller frames, and one whose frames would become unreadable is
refused after the layout, before any frame is drawn. An animated GIF is
encoded in the child too, one frame at a time, so memory does not grow with
the number of frames. One ``timeout`` covers the whole job.

The protocol: the parent writes a job file and gives it to the child on stdin:
one JSON line ``{"format": ..., "dot": ..., "n_frames": ..., "dir": ..., "gif": ...}``
and then one JSON string per frame (its DOT text). The child writes ``0.<fmt>``,
``1.<fmt>``, ... (or ``anim.gif``) into ``dir`` and exits 0; or prints
``cgraph-render-refused: <why>`` and exits 4; or prints a message and exits 3.
Nothing is written to the user's paths until every image is ready.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from cgraph_cli.errors import CgraphError
from cgraph_cli.present.canvas import MAX_PIXELS, SLIDE_DPI
from cgraph_cli.progress import Progress, report

DEFAULT_TIMEOUT = 30.0
PNG_DPI = str(SLIDE_DPI)  # MAX_PIXELS: the longest side of a PNG; larger graphs are scaled down (svg/pdf are not)
FIT_INFO = "fit.json"  # what the child chose when fitting a canvas: {"choice": k, "zoom": z}
FORMATS = ("png", "svg", "pdf")
# --steps PNG/GIF: all frames together have at most this many pixels (drawing runs at about
# 30 megapixels a second, a GIF frame costs about as much again), so a large graph gets
# smaller frames; below MIN_STEP_DPI the text would be unreadable and the job is refused.
STEP_PIXEL_BUDGET = 400_000_000
MIN_STEP_DPI = 40.0
GIF_NAME = "anim.gif"
REFUSED = 4  # the child's exit code for "this job is too large", with its reason on stderr

_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from cgraph_cli.present.render import _child_main; _child_main()"
)


def render_dot(
    dot: str,
    fmt: str,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    *,
    fit: dict | None = None,
    alternatives: Sequence[str] = (),
    info: dict | None = None,
) -> bytes:
    """Lay out and draw ``dot`` as png/svg/pdf bytes, within ``timeout`` seconds.

    ``progress(done, 1)`` (:mod:`cgraph_cli.progress`) is called while Graphviz works (done 0) and once at the
    end (done 1). ``fit`` (:func:`cgraph_cli.present.canvas.fit_job`): fit the drawing to a canvas;
    ``alternatives`` are other DOT texts of the same picture (another ``rankdir``), the one whose shape is
    nearest the canvas is drawn. ``info`` receives what was chosen: ``choice`` (0 for ``dot``, k for
    ``alternatives[k - 1]``) and ``zoom``."""
    job = {"format": fmt, "dot": dot, "n_frames": None, "gif": False, "fit": fit, "alternatives": list(alternatives)}
    with _run_child(job, [], timeout, progress, info) as paths:
        return paths[0].read_bytes()


def choose_layout(dot: str, alternatives: Sequence[str], fit: dict, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Which of ``dot`` (0) and ``alternatives`` (1, 2, ...) has the shape nearest ``fit``'s canvas, by laying
    each out with Graphviz (for ``--format dot``, which draws nothing)."""
    if not alternatives or fit.get("width") is None or fit.get("height") is None:
        return 0
    info: dict = {}
    job = {"format": "measure", "dot": dot, "n_frames": None, "gif": False, "fit": fit}
    job["alternatives"] = list(alternatives)
    with _run_child(job, [], timeout, None, info):
        pass
    return int(info.get("choice", 0))


@contextlib.contextmanager
def render_frames(
    base: str,
    frames: Iterable[str],
    n_frames: int,
    fmt: str,
    timeout: float = DEFAULT_TIMEOUT,
    gif: bool = False,
    palette_dot: str | None = None,
    fit: dict | None = None,
    progress: Progress | None = None,
) -> Iterator[list[Path]]:
    """Lay ``base`` out once and draw each frame (the same graph, other labels and colours) with that layout.

    Yields the paths of the ``n_frames`` images (or of the one animated GIF) in a scratch folder that is
    removed afterwards. ``frames`` is consumed lazily; ``timeout`` bounds the whole job, from now. A GIF's
    colours are taken from ``palette_dot`` (the frame that shows the most: the last one). ``fit``: every frame
    fits this canvas (:func:`render_dot`).
    ``progress(done, n_frames)`` (:mod:`cgraph_cli.progress`) is told the frames drawn so far, also while
    Graphviz works on one (the same ``done`` again).
    """
    job = {"format": fmt, "dot": base, "n_frames": n_frames, "gif": gif, "palette_dot": palette_dot, "fit": fit}
    with _run_child(job, frames, timeout, progress) as paths:
        yield paths


def _hint(n_frames: int | None) -> str:
    more = " or fewer frames" if n_frames else ""
    return (
        f"draw a smaller graph{more}, raise --timeout, or write the DOT source with --format dot "
        "and lay it out with another tool"
    )


def child_command() -> list[str]:
    """The renderer's command line: isolated mode, this package's folder first on ``sys.path``."""
    home = str(Path(__file__).resolve().parent.parent.parent)  # the folder that holds cgraph_cli/
    return [sys.executable, "-I", "-c", _BOOTSTRAP, home]


@contextlib.contextmanager
def _run_child(
    job: dict, frames: Iterable[str], timeout: float, progress: Progress | None = None, info: dict | None = None
) -> Iterator[list[Path]]:
    deadline = time.monotonic() + timeout
    if job["format"] not in FORMATS + ("measure",):
        raise CgraphError(f"cannot draw format '{job['format']}'")
    n_out = job["n_frames"]
    tmp = tempfile.mkdtemp(prefix="cgraph-render-")
    try:
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        job = dict(job, dir=str(out_dir))
        job_file = Path(tmp) / "job.jsonl"
        with open(job_file, "w", encoding="utf-8") as f:  # the frames' text, one at a time, not all in memory
            f.write(json.dumps(job) + "\n")
            written = 0
            for text in frames:
                f.write(json.dumps(text) + "\n")
                written += 1
        if n_out is not None and written != n_out:
            raise CgraphError(f"internal: {written} frames given, {n_out} announced")
        env = dict(os.environ)
        # the bundled fontconfig may complain about the system's configuration: keep it quiet
        env.setdefault("FC_DEBUG", "0")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout_error(timeout, n_out)
        total = 1 if n_out is None else n_out
        report(progress, 0, total)
        try:
            with open(job_file, "rb") as stdin, open(Path(tmp) / "stderr", "wb") as stderr:
                proc = _run_reporting(stdin, stderr, env, deadline, total, progress)
        except subprocess.TimeoutExpired:
            raise _timeout_error(timeout, n_out) from None
        except OSError as e:
            raise CgraphError(f"cannot start the Graphviz renderer: {e.strerror or e}") from None
        if proc.returncode != 0:
            err = (Path(tmp) / "stderr").read_bytes().decode("utf-8", "replace").strip()
            if os.environ.get("CGRAPH_DEBUG"):
                sys.stderr.write(err + "\n")
            lines = err.splitlines()
            refused = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("cgraph-render-refused:")]
            if proc.returncode == REFUSED and refused:
                raise CgraphError(
                    f"--steps: {refused[-1]}; nothing was written",
                    hint="render a smaller program step by step, write SVG frames into a folder with "
                    "--format svg (they scale and have no pixel budget), or draw the whole graph without --steps",
                )
            if proc.returncode < 0 or proc.returncode in (134, 139):
                why = f"Graphviz crashed (signal {-proc.returncode})" if proc.returncode < 0 else "Graphviz crashed"
            else:
                msgs = [ln for ln in lines if ln.startswith("cgraph-render:")]
                why = "Graphviz failed: " + (msgs[-1].split(":", 1)[1].strip() if msgs else "unknown error")
            raise CgraphError(f"{why} while drawing the graph; nothing was written", hint=_hint(n_out))
        ext = job["format"]
        if info is not None and (out_dir / FIT_INFO).is_file():
            info.update(json.loads((out_dir / FIT_INFO).read_text(encoding="utf-8")))
        if ext == "measure":
            names = []
        elif job["gif"]:
            names = [GIF_NAME]
        else:
            names = [f"{k}.{ext}" for k in range(1 if n_out is None else n_out)]
        paths = [out_dir / name for name in names]
        if not all(p.is_file() for p in paths):
            raise CgraphError("Graphviz produced no image; nothing was written", hint=_hint(n_out))
        report(progress, total, total)
        yield paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PROGRESS_LINE = b"cgraph-render-frame\n"  # the child's stdout: one such line per frame drawn
_POLL = 0.1  # seconds between two looks at the child (and two calls of ``progress``)


def _run_reporting(
    stdin, stderr, env: dict, deadline: float, total: int, progress: Progress | None
) -> subprocess.CompletedProcess:
    """Run the child until it ends or ``deadline`` passes (TimeoutExpired, the child killed), telling
    ``progress`` the frames it reports on its stdout, and calling it again every :data:`_POLL` seconds."""
    import selectors

    # Ctrl-C or SIGTERM while the child is being started would leave it running unseen (Popen raises after the
    # fork): they wait until ``proc`` is known, and then end the child below (it unblocks them for itself)
    held = _hold_signals()
    try:
        proc = subprocess.Popen(child_command(), stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=env)
    except BaseException:
        _release_signals(held)
        raise
    try:
        _release_signals(held)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        done = 0
        pending = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                if sel.select(min(_POLL, remaining)):
                    data = os.read(fd, 65536)
                    if not data:
                        break  # the child closed its stdout: it has ended
                    pending += data
                    lines = pending.split(b"\n")
                    pending = lines.pop()  # a line not yet whole
                    done = min(total, done + sum(1 for line in lines if line + b"\n" == PROGRESS_LINE))
                report(progress, done, total)
        proc.stdout.close()
        proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        return subprocess.CompletedProcess(proc.args, proc.returncode)
    finally:
        if proc.returncode is None:  # timed out, interrupted (Ctrl-C): the child does not outlive us
            proc.kill()
            proc.wait()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()


_HELD = ("SIGINT", "SIGTERM")


def _hold_signals() -> object:
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, [getattr(signal, name) for name in _HELD])


def _release_signals(previous: object) -> None:
    import signal

    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # type: ignore[arg-type]


def _timeout_error(timeout: float, n_out: int | None) -> CgraphError:
    what = "the layout and every frame" if n_out else "the layout"
    return CgraphError(
        f"Graphviz did not finish {what} within {timeout:g} seconds (--timeout); nothing was written",
        hint=_hint(n_out),
    )


# -- the child -------------------------------------------------------------------------


def _bb_inches(agraph) -> tuple[float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in agraph.graph_attr["bb"].split(","))
        return max(x1 - x0, 1.0) / 72.0, max(y1 - y0, 1.0) / 72.0
    except (KeyError, ValueError):
        return 1.0, 1.0


def png_dpi(width_in: float, height_in: float, n_frames: int | None) -> float:
    """The resolution of a PNG (or of every frame of ``n_frames``): slide resolution, at most MAX_PIXELS a
    side, and for frames at most STEP_PIXEL_BUDGET pixels in all."""
    dpi = min(float(PNG_DPI), MAX_PIXELS / max(width_in, height_in, 1e-9))
    if n_frames:
        dpi = min(dpi, math.sqrt(STEP_PIXEL_BUDGET / (n_frames * width_in * height_in)))
    return dpi


def _prepare(agraph, fmt: str, dpi: float | None = None) -> None:
    """PNG at slide resolution, scaled down so that the bitmap stays within MAX_PIXELS a side."""
    if fmt != "png":
        return
    if dpi is None:
        dpi = png_dpi(*_bb_inches(agraph), None)
    agraph.graph_attr["dpi"] = f"{dpi:.2f}"


def _walk(agraph):
    """The graph and its subgraphs (clusters), without recursion."""
    stack = [agraph]
    while stack:
        g = stack.pop()
        yield g
        stack.extend(g.subgraphs())


class _Layout:
    """The positions of a laid-out graph, read once, for drawing frames with the same ids."""

    def __init__(self, src) -> None:
        self.nodes = {str(n): {k: n.attr[k] for k in ("pos", "width", "height")} for n in src.nodes()}
        self.edges = {}
        for e in src.edges():
            self.edges[e.attr["id"]] = {k: e.attr[k] for k in ("pos", "lp", "head_lp", "tail_lp") if e.attr.get(k)}
        self.boxes = {
            g.name: {k: g.graph_attr.get(k) for k in ("bb", "lp", "lwidth", "lheight") if g.graph_attr.get(k)}
            for g in _walk(src)
        }

    def apply(self, dst) -> None:
        for n in dst.nodes():
            for key, v in self.nodes.get(str(n), {}).items():
                n.attr[key] = v
        for e in dst.edges():
            for k, v in self.edges.get(e.attr["id"], {}).items():
                e.attr[k] = v
        for g in _walk(dst):
            for k, v in self.boxes.get(g.name, {}).items():
                g.graph_attr[k] = v


def _copy_layout(src, dst) -> None:
    """Copy node/edge/cluster positions from a laid-out graph onto a graph with the same ids."""
    _Layout(src).apply(dst)


class _Refused(Exception):
    pass


def _pad_inches(agraph) -> float:
    try:
        return float(str(agraph.graph_attr.get("pad") or "0.0555").split(",")[0])
    except ValueError:
        return 0.0555


def _laid_out(pgv, text: str, **attrs: str):
    g = pgv.AGraph(string=text)
    g.graph_attr.update({"ratio": "", "size": "", **attrs})  # the canvas is the child's to fit, not the text's
    g.layout(prog="dot")
    return g


def _fit_layout(pgv, dots: list[str], fit: dict, fmt: str):
    """Lay the picture out to fit the canvas of ``fit`` and return (the laid-out graph, what was chosen).

    Sizes are those of what is drawn (:func:`_drawn_box`: nodes, splines, labels, the legend), not Graphviz's
    bounding box. With both sides fixed: lay out each of ``dots`` (the same picture, another rankdir) and keep
    the one whose shape is nearest the canvas's, by the ratio of the two aspect ratios (the first on a tie);
    zoom it by the largest factor that fits, at most ``max_zoom``; if that leaves room along one side, lay it
    out again with ``ratio=fill`` so that its nodes spread over the canvas (node and text sizes kept). The
    drawing is then centred in a window of exactly the canvas (``viewport``) with a margin of the graph's
    ``pad``. With one side fixed: the first of ``dots``, zoomed to that side."""
    dpi = float(fit["dpi"])
    cw = fit["width"] * 72 / dpi if fit.get("width") else None  # points of the final picture
    ch = fit["height"] * 72 / dpi if fit.get("height") else None
    graphs = [_laid_out(pgv, t) for t in (dots if cw and ch else dots[:1])]
    # the room left around the drawing: the graph's pad, but at most a quarter of a side asked for (a canvas of
    # 16 pixels is smaller than two pads)
    margin = min(_pad_inches(graphs[0]) * 72, *(side / 4 for side in (cw, ch) if side))
    boxes = [_drawn_box(g) for g in graphs]
    k = 0
    if cw and ch:
        want = math.log((cw - 2 * margin) / (ch - 2 * margin))
        k = min(range(len(graphs)), key=lambda j: (abs(math.log(_width(boxes[j]) / _height(boxes[j])) - want), j))
    g, box = graphs[k], boxes[k]
    for other in graphs:
        if other is not g:
            other.close()
    if fmt == "measure":
        return g, {"choice": k}
    if cw and ch:
        zoom = min((cw - 2 * margin) / _width(box), (ch - 2 * margin) / _height(box), float(fit["max_zoom"]))
        target = ((cw - 2 * margin) / zoom, (ch - 2 * margin) / zoom)  # points of the layout
        if target[0] > _width(box) * 1.01 or target[1] > _height(box) * 1.01:
            # ratio=fill spreads the nodes' centres over the size asked for; what that leaves out (half a node
            # at each edge, the legend below) is measured and the size asked for corrected, twice at most
            ask = (target[0], target[1] - _label_height(g) * 72)
            for _ in range(2):
                g.close()
                g = _laid_out(pgv, dots[k], ratio="fill", size=f"{ask[0] / 72:.4f},{max(ask[1], 1.0) / 72:.4f}")
                g.graph_attr["ratio"] = ""  # applied already; drawing (nop2) would apply it again, and crash on labels
                box = _drawn_box(g)
                if abs(_width(box) / target[0] - 1) < 0.01 and abs(_height(box) / target[1] - 1) < 0.01:
                    break
                ask = (ask[0] + target[0] - _width(box), ask[1] + target[1] - _height(box))
            zoom = min((cw - 2 * margin) / _width(box), (ch - 2 * margin) / _height(box), float(fit["max_zoom"]))
    elif cw:
        zoom = (cw - 2 * margin) / _width(box)
        ch = _height(box) * zoom + 2 * margin
    else:
        assert ch
        zoom = (ch - 2 * margin) / _height(box)
        cw = _width(box) * zoom + 2 * margin
    x0, y0, x1, y1 = box
    g.graph_attr["viewport"] = f"{cw:.3f},{ch:.3f},{zoom:.5f},{(x0 + x1) / 2:.3f},{(y0 + y1) / 2:.3f}"
    g.graph_attr.update(size="", dpi="")
    return g, {"choice": k, "zoom": zoom}


def _width(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], 1.0)


def _height(box: tuple[float, float, float, float]) -> float:
    return max(box[3] - box[1], 1.0)


def _drawn_box(agraph) -> tuple[float, float, float, float]:
    """What a laid-out graph draws, (x0, y0, x1, y1) in its coordinates (points): measured on a PNG at 72 dpi,
    so that every piece counts (nodes, splines, edge labels, the legend) and nothing else (Graphviz's ``bb``
    has room around the legend and the ``pad``)."""
    import io

    from PIL import Image, ImageChops

    layout = _Layout(agraph)  # drawing writes some positions back in another form (bb with spaces): kept as laid out
    agraph.graph_attr.update(dpi="72", size="", viewport="")
    agraph.has_layout = True
    data = agraph.draw(format="png", prog="nop2")
    x0, y0, x1, y1 = (float(v) for v in str(agraph.graph_attr["bb"]).replace(" ", ",").split(","))  # as drawn
    layout.apply(agraph)
    pad = _pad_inches(agraph) * 72
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    bg = _rgb(agraph.graph_attr.get("bgcolor") or "white")
    # faint pixels do not count, nor the outermost ones: the background's own anti-aliased edge is drawn there
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, bg)).convert("L").point([0] * 25 + [255] * 231)
    found = diff.crop((2, 2, rgb.width - 2, rgb.height - 2)).getbbox()
    if found is None:
        return x0, y0, x1, y1
    left, top, right, bottom = (v + 2 for v in found)
    sx = rgb.width / (x1 - x0 + 2 * pad)  # pixels per point (the PNG is rounded to whole pixels)
    sy = rgb.height / (y1 - y0 + 2 * pad)
    return (
        x0 + left / sx - pad - 0.5,
        y1 - (bottom / sy - pad) - 0.5,
        x0 + right / sx - pad + 0.5,
        y1 - (top / sy - pad) + 0.5,
    )


def _label_height(agraph) -> float:
    """Inches: the height of the graph's label (the legend under the picture)."""
    try:
        return float(agraph.graph_attr.get("lheight") or 0.0)
    except ValueError:
        return 0.0


def _exact_size(fit: dict) -> tuple[int | None, int | None]:
    return fit.get("width"), fit.get("height")


def _rgb(colour: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(colour)[:3]  # type: ignore[return-value]
    except ValueError:
        return (255, 255, 255)


def _exact_png(path: Path, size: tuple[int | None, int | None], background: tuple[int, int, int]) -> None:
    """Make the PNG exactly ``size`` pixels (a side None: as drawn): Graphviz rounds the scaled drawing to a
    pixel or two off; the difference is background, shared out evenly on both sides."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        w, h = size[0] or im.width, size[1] or im.height
        if im.size == (w, h):
            return
        mode = im.mode if im.mode in ("RGB", "RGBA") else "RGBA"
        fill = background + ((255,) if mode == "RGBA" else ())
        canvas = Image.new(mode, (w, h), fill)
        canvas.paste(im.convert(mode), ((w - im.width) // 2, (h - im.height) // 2))
    canvas.save(path, format="PNG")


def _child() -> int:
    import pygraphviz as pgv

    stdin = sys.stdin.buffer
    job = json.loads(stdin.readline().decode("utf-8"))
    fmt = job["format"]
    out = Path(job["dir"])
    fit = job.get("fit")
    n_frames = job["n_frames"]
    if fit is not None:
        base, info = _fit_layout(pgv, [job["dot"], *job.get("alternatives", [])], fit, fmt)
        (out / FIT_INFO).write_text(json.dumps(info), encoding="utf-8")
        if fmt == "measure":
            return 0
    else:
        base = pgv.AGraph(string=job["dot"])
        base.layout(prog="dot")
    background = _rgb(base.graph_attr.get("bgcolor") or "white")
    exact = _exact_size(fit) if fit is not None and fmt == "png" else None
    if n_frames is None:
        _prepare(base, fmt, float(fit["dpi"]) if fit is not None else None)
        target = out / f"0.{fmt}"
        base.draw(str(target), format=fmt, prog="nop2")
        if exact is not None:
            _exact_png(target, exact, background)
        return 0
    dpi = None
    # the fitted window; a frame's own ratio=fill is the layout's, applied already (and nop2 crashes on it)
    sized = {"ratio": "", "size": "", **{k: base.graph_attr[k] for k in ("viewport",) if base.graph_attr.get(k)}}
    if fit is not None and fmt == "png":
        dpi = float(fit["dpi"])
        w, h = _bb_inches(base)
        pixels = n_frames * (fit["width"] or w * dpi) * (fit["height"] or h * dpi)
        if pixels > STEP_PIXEL_BUDGET:
            raise _Refused(
                f"{n_frames} frames of {fit['width'] or '?'} × {fit['height'] or '?'} pixels would take "
                f"{pixels / 1e6:,.0f} megapixels, more than the {STEP_PIXEL_BUDGET / 1e6:,.0f} that --steps draws"
            )
    elif fmt == "png":
        w, h = _bb_inches(base)
        dpi = png_dpi(w, h, n_frames)
        if dpi < MIN_STEP_DPI:
            px = n_frames * w * h * MIN_STEP_DPI**2
            raise _Refused(
                f"{n_frames} frames of this graph ({w:.0f} × {h:.0f} inches) would need "
                f"{px / 1e6:,.0f} megapixels to stay readable, more than the {STEP_PIXEL_BUDGET / 1e6:,.0f} "
                "that --steps draws"
            )
    layout = _Layout(base)
    del base
    encoder = None
    scratch = out / f"frame.{fmt}"
    if job["gif"]:
        encoder = _GifWriter(out / GIF_NAME, background)
        if job.get("palette_dot"):  # the colours of the frame that shows the most
            frame = pgv.AGraph(string=job["palette_dot"])
            layout.apply(frame)
            frame.graph_attr.update(sized)
            _prepare(frame, fmt, dpi)
            frame.has_layout = True
            frame.draw(str(scratch), format=fmt, prog="nop2")
            frame.close()
            if exact is not None:
                _exact_png(scratch, exact, background)
            encoder.take_palette(scratch)
    for k in range(n_frames):
        frame = pgv.AGraph(string=json.loads(stdin.readline().decode("utf-8")))
        layout.apply(frame)
        frame.graph_attr.update(sized)
        _prepare(frame, fmt, dpi)
        frame.has_layout = True
        target = scratch if encoder is not None else out / f"{k}.{fmt}"
        frame.draw(str(target), format=fmt, prog="nop2")
        frame.close()
        if exact is not None:
            _exact_png(target, exact, background)
        if encoder is not None:
            encoder.add(target, 3000 if k == n_frames - 1 else 900)
        os.write(1, PROGRESS_LINE)  # the parent counts these (progress); nothing else writes to stdout
    if encoder is not None:
        encoder.close()
        scratch.unlink()
    return 0


class _GifWriter:
    """An animated GIF written frame by frame: memory holds the previous and the current frame only.

    Every frame uses one palette (from :meth:`take_palette`, else the first frame's): 255 colours, median
    cut, no dithering (the pictures are flat colours and anti-aliased text). A frame stores only the
    rectangle that changed since the previous one.
    """

    def __init__(self, path: Path, background: tuple[int, int, int] = (255, 255, 255)) -> None:
        self.f = open(path, "wb")
        self.background = background
        self.prev = None  # the previous frame, as palette indices
        self.palette = None  # a "P" image carrying the shared palette

    def take_palette(self, png: Path) -> None:
        from PIL import Image

        with Image.open(png) as im:
            rgb = im.convert("RGB")
        self.palette = _palette_of(rgb, self.background)

    def add(self, png: Path, duration_ms: int) -> None:
        from PIL import Image, ImageChops

        with Image.open(png) as im:
            rgb = im.convert("RGB")
        if self.palette is None:
            self.palette = _palette_of(rgb, self.background)
        frame = rgb.quantize(palette=self.palette, dither=Image.Dither.NONE)
        # Pillow matches colours through a coarse cache: the background would come out a shade off
        same = ImageChops.difference(rgb, Image.new("RGB", rgb.size, self.background)).convert("L")
        frame.paste(255, mask=same.point([255] + [0] * 255))
        del rgb
        if self.prev is None:
            self._header(frame)
        box = (0, 0, *frame.size)
        if self.prev is not None:
            changed = ImageChops.difference(self.prev, frame).getbbox()
            box = changed or (0, 0, 1, 1)
        self.prev = frame
        part = frame.crop(box) if box != (0, 0, *frame.size) else frame
        self._frame(part, box[:2], duration_ms)

    def _header(self, frame) -> None:
        pal = bytes(frame.getpalette() or [])[: 3 * 256]
        pal += b"\0" * (768 - len(pal))
        w, h = frame.size
        self.f.write(b"GIF89a" + _u16(w) + _u16(h) + bytes([0xF7, 0, 0]) + pal)
        self.f.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + _u16(0) + b"\0")  # loop for ever

    def _frame(self, part, offset: tuple[int, int], duration_ms: int) -> None:
        import io

        buf = io.BytesIO()
        part.save(buf, format="GIF", optimize=False, interlace=False)
        data = _gif_image_data(buf.getvalue())
        self.f.write(b"!\xf9\x04\x04" + _u16(duration_ms // 10) + b"\0\0")  # disposal 1: keep what is drawn
        w, h = part.size
        self.f.write(b"," + _u16(offset[0]) + _u16(offset[1]) + _u16(w) + _u16(h) + b"\0" + data)

    def close(self) -> None:
        self.f.write(b";")
        self.f.close()


def _palette_of(rgb, background: tuple[int, int, int] = (255, 255, 255)):
    """A "P" image whose palette has the picture's 255 main colours (median cut) and the background's exact
    colour: median cut would average the background with the faint anti-aliased pixels near it."""
    from PIL import Image

    colours = (rgb.quantize(255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).getpalette() or [])[
        : 3 * 255
    ]
    colours += [0] * (3 * 255 - len(colours)) + list(background)
    pal = Image.new("P", (1, 1))
    pal.putpalette(colours)
    return pal


def _u16(v: int) -> bytes:
    return int(v).to_bytes(2, "little")


def _gif_image_data(gif: bytes) -> bytes:
    """The LZW code size and data sub-blocks of the (first) image in a GIF file."""
    pos = 13
    if gif[10] & 0x80:
        pos += 3 << ((gif[10] & 7) + 1)
    while pos < len(gif):
        kind = gif[pos]
        if kind == 0x21:  # an extension: label, then sub-blocks
            pos += 2
            while gif[pos]:
                pos += gif[pos] + 1
            pos += 1
        elif kind == 0x2C:
            packed = gif[pos + 9]
            if packed & 0x40:
                raise ValueError("interlaced GIF frame")
            pos += 10
            if packed & 0x80:
                pos += 3 << ((packed & 7) + 1)
            start = pos
            pos += 1  # the LZW minimum code size
            while gif[pos]:
                pos += gif[pos] + 1
            return gif[start : pos + 1]
        else:
            break
    raise ValueError("no image in the GIF data")


def _child_main() -> None:
    import signal

    if hasattr(signal, "pthread_sigmask"):  # held by the parent while it started this process
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [getattr(signal, name) for name in _HELD])
    try:
        code = _child()
    except _Refused as e:
        sys.stderr.write(f"cgraph-render-refused: {e}\n")
        code = REFUSED
    except Exception as e:  # reported by the parent as one line
        sys.stderr.write(f"cgraph-render: {type(e).__name__}: {e}\n")
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _child_main()
