"""Laying out and drawing DOT text with the Graphviz that the pygraphviz wheel bundles.

Graphviz runs in a child process (``python -m cgraph_cli.render``), never in
the ``cgraph`` process itself: ``dot`` can take minutes or crash on awkward
graphs, and a child can be stopped after ``timeout`` seconds and its crash
reported as a clear error. No ``dot`` binary is needed: pygraphviz lays out
and renders in-process through libgvc.

For ``--steps`` the child lays the full picture out ONCE, then draws every
frame with that layout's node and edge positions (the ``nop2`` layout, like
``neato -n2``), so nodes do not move between frames and every frame has the
same size.

The protocol: the parent writes a JSON job on the child's stdin
(``{"format": ..., "dot": ..., "frames": [...], "dir": ...}``); the child
writes ``0.<fmt>``, ``1.<fmt>``, ... into ``dir`` and exits 0, or prints a
message and exits 3. Nothing is written to the user's paths until every image
is ready.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cgraph_cli.errors import CgraphError

DEFAULT_TIMEOUT = 30.0
PNG_DPI = "144"
MAX_PIXELS = 12000  # the longest side of a PNG; larger graphs are scaled down (svg/pdf are not)
FORMATS = ("png", "svg", "pdf")


def render_dot(dot: str, fmt: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Lay out and draw ``dot`` as png/svg/pdf bytes, within ``timeout`` seconds."""
    return _run_child({"format": fmt, "dot": dot, "frames": None}, timeout, 1)[0]


def render_frames(base: str, frames: list[str], fmt: str, timeout: float = DEFAULT_TIMEOUT) -> list[bytes]:
    """Lay ``base`` out once and draw each frame (the same graph, other labels and colours) with that layout."""
    budget = timeout * (1 + len(frames) / 4)
    return _run_child({"format": fmt, "dot": base, "frames": frames}, budget, len(frames))


def _hint(n_frames: int) -> str:
    more = " or fewer frames" if n_frames > 1 else ""
    return (
        f"draw a smaller graph{more}, raise --timeout, or write the DOT source with --format dot "
        "and lay it out with another tool"
    )


def _run_child(job: dict, timeout: float, n_out: int) -> list[bytes]:
    if job["format"] not in FORMATS:
        raise CgraphError(f"cannot draw format '{job['format']}'")
    tmp = tempfile.mkdtemp(prefix="cgraph-render-")
    try:
        job = dict(job, dir=tmp)
        env = dict(os.environ)
        # the bundled fontconfig may complain about the system's configuration: keep it quiet
        env.setdefault("FC_DEBUG", "0")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "cgraph_cli.render"],
                input=json.dumps(job).encode("utf-8"),
                capture_output=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise CgraphError(
                f"Graphviz did not finish the layout within {timeout:g} seconds (--timeout); nothing was written",
                hint=_hint(n_out),
            ) from None
        except OSError as e:
            raise CgraphError(f"cannot start the Graphviz renderer: {e.strerror or e}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            if os.environ.get("CGRAPH_DEBUG"):
                sys.stderr.write(err + "\n")
            if proc.returncode < 0 or proc.returncode in (134, 139):
                why = f"Graphviz crashed (signal {-proc.returncode})" if proc.returncode < 0 else "Graphviz crashed"
            else:
                lines = [ln for ln in err.splitlines() if ln.startswith("cgraph-render:")]
                why = "Graphviz failed: " + (lines[-1].split(":", 1)[1].strip() if lines else "unknown error")
            raise CgraphError(f"{why} while drawing the graph; nothing was written", hint=_hint(n_out))
        ext = job["format"]
        outs = []
        for k in range(n_out):
            p = Path(tmp) / f"{k}.{ext}"
            if not p.is_file():
                raise CgraphError("Graphviz produced no image; nothing was written", hint=_hint(n_out))
            outs.append(p.read_bytes())
        return outs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the child -------------------------------------------------------------------------


def _prepare(agraph, fmt: str) -> None:
    """PNG at slide resolution, scaled down so that the bitmap stays within MAX_PIXELS a side."""
    if fmt != "png":
        return
    try:
        x0, y0, x1, y1 = (float(v) for v in agraph.graph_attr["bb"].split(","))
        side = max(x1 - x0, y1 - y0, 1.0) / 72.0  # inches
    except (KeyError, ValueError):
        side = 1.0
    dpi = min(float(PNG_DPI), MAX_PIXELS / side)
    agraph.graph_attr["dpi"] = f"{dpi:.2f}"


def _walk(agraph):
    """The graph and its subgraphs (clusters), without recursion."""
    stack = [agraph]
    while stack:
        g = stack.pop()
        yield g
        stack.extend(g.subgraphs())


def _copy_layout(src, dst) -> None:
    """Copy node/edge/cluster positions from a laid-out graph onto a graph with the same ids."""
    for n in src.nodes():
        d = dst.get_node(n)
        for key in ("pos", "width", "height"):
            d.attr[key] = n.attr[key]
    epos = {}
    for e in src.edges():
        epos[e.attr["id"]] = {k: e.attr[k] for k in ("pos", "lp", "head_lp", "tail_lp") if e.attr.get(k)}
    for e in dst.edges():
        for k, v in epos.get(e.attr["id"], {}).items():
            e.attr[k] = v
    boxes = {
        g.name: (
            g.graph_attr.get("bb"),
            g.graph_attr.get("lp"),
            g.graph_attr.get("lwidth"),
            g.graph_attr.get("lheight"),
        )
        for g in _walk(src)
    }
    for g in _walk(dst):
        bb, lp, lw, lh = boxes.get(g.name, (None, None, None, None))
        for key, v in (("bb", bb), ("lp", lp), ("lwidth", lw), ("lheight", lh)):
            if v:
                g.graph_attr[key] = v


def _child() -> int:
    import pygraphviz as pgv

    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    fmt = job["format"]
    out = Path(job["dir"])
    base = pgv.AGraph(string=job["dot"])
    base.layout(prog="dot")
    if job["frames"] is None:
        _prepare(base, fmt)
        base.draw(str(out / f"0.{fmt}"), format=fmt, prog="nop2")
        return 0
    for k, text in enumerate(job["frames"]):
        frame = pgv.AGraph(string=text)
        _copy_layout(base, frame)
        _prepare(frame, fmt)
        frame.has_layout = True
        frame.draw(str(out / f"{k}.{fmt}"), format=fmt, prog="nop2")
    return 0


if __name__ == "__main__":
    try:
        code = _child()
    except Exception as e:  # reported by the parent as one line
        sys.stderr.write(f"cgraph-render: {type(e).__name__}: {e}\n")
        code = 3
    sys.stdout.flush()
    os._exit(code)
