"""cgraph render: the annotated DAG as PNG, SVG, PDF or DOT, and the --steps animation."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from cgraph_cli.commands.common import (
    AT_FILE_OPT,
    AT_OPT,
    EXPR_OPT,
    FILE_ARG,
    MAX_MEMORY_OPT,
    OF_OPT,
    SEED_OPT,
    check_choice,
    max_memory_bytes,
    out,
    warn,
)
from cgraph_cli.errors import CgraphError

HELP = """Draw the computation graph: one box per node with its value and its gradient ∂out/∂node.

Inputs are on the left and the output on the right; values are blue, gradients
vermillion, and each edge carries its local derivative ∂child/∂parent. Calls of
your own functions are drawn as labelled boxes. Graphviz comes with the
pygraphviz wheel: no system 'dot' is needed.

The image goes to FILE's stem + .png in the current folder (graph.png for stdin
or -e), or to -o OUT, whose suffix picks the format unless --format is given.

Examples:

  cgraph render examples/lecture.cg --at a=-1,b=3,c=4

  cgraph render examples/mlp.cg --rankdir TB -o mlp.svg

  cgraph render -e 'z = (a + b) * (b + c)' --no-values -o z.pdf

Step by step (one frame per forward and backward step, or an animated GIF):

  cgraph render examples/lecture.cg --steps frames/

  cgraph render examples/lecture.cg --steps lecture.gif
"""

FORMATS = ("png", "svg", "pdf", "dot")
MAX_STEP_NODES = 300
_FRAME = re.compile(r"\d{3,}-(forward|backward)-[A-Za-z0-9_]+\.(png|svg)\Z")


class _TooBig(Exception):
    pass


def compile_capped(source, values: dict[str, Any], seed: int, cap: int, max_memory: int | None = None):
    """Compile, but stop as soon as the graph grows beyond ``cap`` nodes (in well under a second)."""
    import numpy as np

    from cgraph_cli.ir import Builder
    from cgraph_cli.parser import parse

    class Capped(Builder):
        def node(self, *args: Any, **kwargs: Any) -> int:
            if len(self.g.ops) >= cap:
                raise _TooBig
            return super().node(*args, **kwargs)

    stmts = parse(source)
    try:
        return Capped(source, values, seed=seed, dtype=np.float64, max_memory=max_memory).build(stmts)
    except CgraphError as err:
        raise err.with_source(source) from None


def _format_of(path: str) -> str | None:
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def _frame_name(k: int, phase: str, label: str, ext: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_") or "node"
    return f"{k:03d}-{phase}-{safe}.{ext}"


def render_command(
    file: Optional[str] = FILE_ARG,
    expr: Optional[str] = EXPR_OPT,
    at: Optional[List[str]] = AT_OPT,
    at_file: Optional[str] = AT_FILE_OPT,
    output: Optional[str] = typer.Option(
        None, "-o", "--output", metavar="OUT", help="Output file (default: FILE's stem + .png here; '-' for stdout)."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f", metavar="png|svg|pdf|dot", help="png, svg, pdf or dot (default: from -o, else png)."
    ),
    of: Optional[str] = OF_OPT,
    rankdir: str = typer.Option(
        "LR", "--rankdir", metavar="LR|TB", help="LR: inputs left, output right; TB: top to bottom."
    ),
    edge_labels: str = typer.Option(
        "local",
        "--edge-labels",
        metavar="local|none",
        help="local: label edges with ∂child/∂parent; none: no edge labels.",
    ),
    no_values: bool = typer.Option(False, "--no-values", help="Draw the structure only (needs no input values)."),
    max_nodes: int = typer.Option(1000, "--max-nodes", metavar="N", help="Refuse graphs with more nodes than this."),
    steps: Optional[str] = typer.Option(
        None,
        "--steps",
        metavar="DIR",
        help="Write one frame per forward and backward step into DIR (or an animated DIR.gif).",
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", metavar="SECONDS", help="Seconds Graphviz may take before cgraph gives up."
    ),
    seed: int = SEED_OPT,
    max_memory: Optional[str] = MAX_MEMORY_OPT,
) -> None:
    from cgraph_cli.dot import DotOptions, GraphPicture, evaluate_for_picture
    from cgraph_cli.fsutil import atomic_write
    from cgraph_cli.program import load_source, pick_output
    from cgraph_cli.values import gather_values

    if fmt is not None:
        check_choice(fmt, FORMATS, "--format")
    check_choice(rankdir, ("LR", "TB"), "--rankdir")
    check_choice(edge_labels, ("local", "none"), "--edge-labels")
    if max_nodes < 1:
        raise CgraphError("--max-nodes must be at least 1")
    if not timeout > 0:
        raise CgraphError("--timeout must be a positive number of seconds")
    if output is not None and steps is not None:
        raise CgraphError("give either -o or --steps, not both")

    source = load_source(file, expr)
    given = gather_values(at, at_file)
    try:
        g = compile_capped(source, given, seed, max_nodes, max_memory_bytes(max_memory))
    except _TooBig:
        raise CgraphError(
            f"the graph has more than {max_nodes:,} nodes (--max-nodes {max_nodes}); "
            "a picture that large is unreadable and Graphviz may take minutes",
            hint="draw a smaller program, raise the limit with --max-nodes N, "
            "or write only the DOT source with --format dot --max-nodes N",
        ) from None
    out_node = pick_output(g, of)

    if steps is not None and "\x00" in steps:
        raise CgraphError(f"--steps: cannot write {steps!r}: a file name cannot contain a NUL byte")
    if steps is not None and Path(steps).suffix.lower() in (".png", ".svg", ".pdf", ".dot", ".jpg", ".jpeg"):
        raise CgraphError(
            f"--steps writes many frames: give it a folder or a .gif file, not {steps}",
            hint="for example --steps frames/ or --steps lecture.gif",
        )
    notes: list[str] = []
    values = grads = None
    if not no_values:
        values, grads, out_node = evaluate_for_picture(g, given, out_node, notes)
    elif given:
        from cgraph_cli.values import bind_inputs

        bind_inputs(g, given, require=False)  # still reject unknown names
    if steps is not None and values is None:
        raise CgraphError(
            "--steps shows values and gradients appearing step by step, so it needs every input's value",
            hint="give them with --at, or declare defaults with 'input a = 1'",
        )
    for note in notes:
        warn(note)
    picture = GraphPicture(g, values, grads, out_node, DotOptions(rankdir=rankdir, edge_labels=edge_labels))

    stem = "graph" if file in (None, "-") or expr is not None else Path(file).stem
    if steps is not None:
        _write_steps(picture, steps, fmt or "png", timeout)
        return

    if output is None:
        fmt = fmt or "png"
        target = f"{stem}.{fmt}"
    else:
        target = output
        if fmt is None:
            fmt = "png" if output == "-" else _format_of(output)
            if fmt is None:
                raise CgraphError(
                    f"cannot tell the format from '{output}'",
                    hint="end the name in .png, .svg, .pdf or .dot, or pass --format",
                )
    text = picture.dot()
    if fmt == "dot":
        data: bytes = text.encode("utf-8")
    else:
        from cgraph_cli.render import render_dot

        data = render_dot(text, fmt, timeout)
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    atomic_write(target, data)
    if Path(target).is_file():  # not for -o /dev/stdout, a pipe or a device: the image is the output
        out(f"wrote {target}")


def _write_steps(picture: Any, steps: str, fmt: str, timeout: float) -> None:
    from cgraph_cli.fsutil import atomic_write
    from cgraph_cli.render import render_frames

    gif = steps.lower().endswith(".gif")
    if gif and fmt != "png":
        raise CgraphError("an animated GIF is made of PNG frames; drop --format or write frames to a folder")
    if fmt not in ("png", "svg"):
        raise CgraphError(f"--steps draws png or svg frames, not {fmt}")
    g = picture.g
    if len(g) > MAX_STEP_NODES:
        raise CgraphError(
            f"--steps draws two frames per node; this graph has {len(g):,} nodes "
            f"(at most {MAX_STEP_NODES} for --steps)",
            hint="render a smaller program step by step, or draw the whole graph without --steps",
        )
    if not gif:
        folder = Path(steps)
        if folder.exists() and not folder.is_dir():
            raise CgraphError(f"--steps: {steps} exists and is not a folder")
        if not folder.parent.is_dir():
            raise CgraphError(f"--steps: the folder {folder.parent} does not exist")
    plan = picture.steps()
    texts = [picture.dot(state) for _, _, state in plan]
    images = render_frames(picture.dot(picture.base_state(plan)), texts, fmt, timeout)
    if gif:
        atomic_write(steps, _gif(images))
        out(f"wrote {steps} ({len(images)} frames)")
        return
    folder = Path(steps)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise CgraphError(f"--steps: cannot create the folder {steps}: {e.strerror or e}") from None
    names = [_frame_name(k, phase, g.label(i) if g.names[i] else g.ops[i], fmt) for k, (phase, i, _) in enumerate(plan)]
    for name, data in zip(names, images):
        atomic_write(folder / name, data)
    # frames of an earlier, longer run would be mistaken for part of this one
    keep = set(names)
    for old in folder.iterdir():
        if old.name not in keep and _FRAME.match(old.name) and old.is_file():
            try:
                old.unlink()
            except OSError:
                pass
    out(f"wrote {len(images)} frames to {folder}")


def _gif(frames: list[bytes]) -> bytes:
    import io

    try:
        from PIL import Image
    except ImportError:
        raise CgraphError("writing a GIF needs Pillow", hint="pip install pillow, or give --steps a folder") from None
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in frames]
    palette = [im.convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for im in images]
    durations = [900] * len(palette)
    durations[-1] = 3000
    buf = io.BytesIO()
    palette[0].save(buf, format="GIF", save_all=True, append_images=palette[1:], duration=durations, loop=0)
    return buf.getvalue()


def register(app: typer.Typer) -> None:
    app.command("render", help=HELP)(render_command)
