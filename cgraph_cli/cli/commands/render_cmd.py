"""cgraph render: the annotated DAG as PNG, SVG, PDF or DOT, and the --steps animation."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out, param, warn
from cgraph_cli.cli.progress import progress_bar
from cgraph_cli.cli.watch import check_watch, watch_paths
from cgraph_cli.cli.watch import watch as watch_loop
from cgraph_cli.errors import CgraphError
from cgraph_cli.run.request import WATCH_OPTION, Options, check_choice

HELP = """Draw the computation graph: one box per node with its value and its gradient ∂out/∂node.

Inputs are on the left and the output on the right; values are blue, gradients
vermillion, and each edge carries its local derivative ∂successor/∂node. Calls of
your own functions are drawn as labelled boxes. Graphviz comes with the
pygraphviz wheel: no system 'dot' is needed.

The image goes to FILE's stem + .png in the current folder (graph.png for stdin
or -e), or to -o OUT, whose suffix picks the format unless --format is given.

Examples:

  cgraph render examples/lecture.cg --at a=-1,b=3,c=4

  cgraph render examples/mlp.cg --rankdir TB -o mlp.svg

  cgraph render -e 'z = (a + b) * (b + c)' --no-values -o z.pdf

An interactive page (one self-contained file: pan, zoom, a node's full value and gradient, and a stepper
through the forward and backward passes):

  cgraph render examples/lecture.cg --at a=-1,b=3,c=4 -o lecture.html

Step by step (one frame per forward and backward step, or an animated GIF):

  cgraph render examples/lecture.cg --steps frames/

  cgraph render examples/lecture.cg --steps lecture.gif

Live (the picture follows the program: drawn again at every save, Ctrl-C ends):

  cgraph render examples/lecture.cg --at a=-1,b=3,c=4 -o lecture.svg --watch
"""

FORMATS = ("png", "svg", "pdf", "dot", "html")
PROGRESS_FROM = 10  # --steps frames: fewer are drawn before a bar would be worth showing (unless they take 0.5 s)
MAX_STEP_WORK = 80_000  # nodes × frames for --steps: about 200 nodes (two frames per node)
STEP_SECONDS = 0.003  # --steps' default timeout: this for each node of each frame, beyond RENDER_TIMEOUT
_FRAME = re.compile(r"\d{3,}-(forward|backward)-[A-Za-z0-9_]+\.(png|svg)\Z")


def _format_of(path: str) -> str | None:
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def _frame_name(k: int, phase: str, label: str, ext: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_") or "node"
    return f"{k:03d}-{phase}-{safe}.{ext}"


def render_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    output: Optional[str] = typer.Option(
        None, "-o", "--output", metavar="OUT", help="Output file (default: FILE's stem + .png here; '-' for stdout)."
    ),
    fmt: Optional[str] = typer.Option(
        None,
        "--format",
        "-f",
        metavar="png|svg|pdf|dot|html",
        help="png, svg, pdf, dot or html (an interactive page; default: from -o, else png).",
    ),
    of: Optional[str] = PARAM["of"],
    rankdir: Optional[str] = typer.Option(
        None,
        "--rankdir",
        metavar="LR|TB|auto",
        help="LR: inputs left, output right; TB: top to bottom; auto (the default): with --size, the one whose "
        "shape is nearer the size's, else LR.",
        show_default=False,
    ),
    edge_labels: str = typer.Option(
        "local",
        "--edge-labels",
        metavar="local|none",
        help="local: label edges with ∂successor/∂node; none: no edge labels.",
    ),
    no_values: bool = typer.Option(False, "--no-values", help="Draw the structure only (needs no input values)."),
    max_nodes: int = typer.Option(1000, "--max-nodes", metavar="N", help="Refuse graphs with more nodes than this."),
    steps: Optional[str] = typer.Option(
        None,
        "--steps",
        metavar="DIR",
        help="Write one frame per forward and backward step into DIR (or an animated DIR.gif).",
    ),
    timeout: Optional[float] = typer.Option(
        None,
        "--timeout",
        metavar="SECONDS",
        help="Seconds the whole drawing may take (layout and every --steps frame) before cgraph gives up "
        "(default: 30, and with --steps 3 ms more for each node of each frame).",
    ),
    backward: bool = typer.Option(
        False,
        "--backward",
        help="Draw the backward pass too, as the nodes that compute the gradient (styled apart).",
    ),
    size: Optional[str] = typer.Option(
        None,
        "--size",
        metavar="16:9|4:3|1920x1080",
        help="A slide-shaped picture: an aspect ratio (1920 pixels along the longer side, or --width/--height) or "
        "WIDTHxHEIGHT pixels; the layout fills it.",
    ),
    width: Optional[int] = typer.Option(None, "--width", metavar="PIXELS", help="The PNG's width in pixels."),
    height: Optional[int] = typer.Option(None, "--height", metavar="PIXELS", help="The PNG's height in pixels."),
    font_size: Optional[float] = typer.Option(
        None,
        "--font-size",
        metavar="POINTS",
        help="Node text size in points (default 12; on a --size slide, the size it is drawn at if it fits).",
    ),
    theme: str = typer.Option(
        "light", "--theme", metavar="light|dark", help="Colours: light, or dark for dark slides."
    ),
    seed: int = PARAM["seed"],
    max_memory: Optional[str] = PARAM["max_memory"],
    watch: bool = param(WATCH_OPTION),
) -> None:
    from cgraph_cli.api import RENDER_TIMEOUT, Program, check_picture_options
    from cgraph_cli.fsutil import atomic_write

    if fmt is not None:
        check_choice(fmt, FORMATS, "--format")
    look = dict(size=size, width=width, height=height, font_size=font_size, theme=theme)
    whole = RENDER_TIMEOUT if timeout is None else timeout  # (--steps: more for more frames, see _write_steps)
    check_picture_options(rankdir, edge_labels, max_nodes, whole, **look)  # type: ignore[arg-type]
    if output is not None and steps is not None:
        raise CgraphError("give either -o or --steps, not both")
    if backward and steps is not None:
        raise CgraphError(
            "--steps animates the forward and backward passes of the program; --backward draws the backward pass "
            "as nodes in one picture: give one of them"
        )

    options = Options(file=file, expr=expr, at=at or (), at_file=at_file, of=of, seed=seed, max_memory=max_memory)
    if watch:
        check_watch(
            file,
            expr,
            conflicts=[
                (output == "-", "draws the picture again at every save; it cannot write it to standard output (-o -)")
            ],
        )
        if output is not None and fmt is None and _format_of(output) is None:  # refused now, not at every save
            raise CgraphError(
                f"cannot tell the format from '{output}'",
                hint="end the name in .png, .svg, .pdf, .dot or .html, or pass --format",
            )

    def once() -> None:
        kind = fmt
        program = Program.from_options(options, max_nodes=max_nodes)
        picture = program.picture(
            show_values=not no_values,
            rankdir=rankdir,
            edge_labels=edge_labels,
            max_nodes=max_nodes,
            timeout=whole,
            backward=backward,
            **look,  # type: ignore[arg-type]
        )

        if steps is not None and "\x00" in steps:
            raise CgraphError(f"--steps: cannot write {steps!r}: a file name cannot contain a NUL byte")
        if steps is not None and Path(steps).suffix.lower() in (".png", ".svg", ".pdf", ".dot", ".jpg", ".jpeg"):
            raise CgraphError(
                f"--steps writes many frames: give it a folder or a .gif file, not {steps}",
                hint="for example --steps frames/ or --steps lecture.gif",
            )
        notes = picture.notes  # the values and gradients are computed here
        if steps is not None and not picture.has_values:
            picture.steps()  # refused: the frames need every input's value
        for note in picture.warnings + notes:
            warn(note)

        stem = "graph" if file in (None, "-") or expr is not None else Path(file).stem
        if steps is not None:
            _write_steps(picture, steps, kind or "png", timeout)
            return None

        if output is None:
            kind = kind or "png"
            target = f"{stem}.{kind}"
        else:
            target = output
            if kind is None:
                kind = "png" if output == "-" else _format_of(output)
                if kind is None:
                    raise CgraphError(
                        f"cannot tell the format from '{output}'",
                        hint="end the name in .png, .svg, .pdf, .dot or .html, or pass --format",
                    )
        if target == "-" and kind in ("png", "pdf") and sys.stdout.isatty():  # as curl does: no binary on a terminal
            raise CgraphError(
                f"-o - would write a binary {kind.upper()} image to the terminal",
                hint=f"redirect it (cgraph render ... -o - > picture.{kind}), give a file name with -o, "
                "or use --format svg",
            )
        # the title as the user wrote it
        title = file if file not in (None, "-") and expr is None else picture.graph.source.filename
        with progress_bar("drawing the graph") as progress:  # shown when Graphviz takes more than half a second
            data = picture.render(kind, title=title, progress=progress)  # type: ignore[arg-type]
        for note in picture.layout_notes:
            warn(note)
        if target == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return None
        atomic_write(target, data)
        if Path(target).is_file():  # not for -o /dev/stdout, a pipe or a device: the image is the output
            out(f"wrote {target}")

    if watch:
        raise typer.Exit(watch_loop(watch_paths(file, at_file), once))
    once()


def _write_steps(whole: Any, steps: str, fmt: str, timeout: float | None) -> None:
    """Draw the frames of ``whole`` (an :class:`cgraph_cli.api.Picture`) into a folder or a GIF, within
    ``timeout`` seconds (None: 30 and :data:`STEP_SECONDS` for each node of each frame)."""
    from cgraph_cli.api import RENDER_TIMEOUT
    from cgraph_cli.fsutil import atomic_write
    from cgraph_cli.present.render import render_frames

    gif = steps.lower().endswith(".gif")
    if gif and fmt != "png":
        raise CgraphError("an animated GIF is made of PNG frames; drop --format or write frames to a folder")
    if fmt not in ("png", "svg"):
        raise CgraphError(f"--steps draws png or svg frames, not {fmt}")
    if gif:
        import importlib.util

        if importlib.util.find_spec("PIL") is None:
            raise CgraphError("writing a GIF needs Pillow", hint="pip install pillow, or give --steps a folder")
    picture = whole.settle()  # the rankdir decided (auto: by the canvas's shape) before any frame's text is made
    g = picture.g
    plan = picture.steps()
    work = len(g) * len(plan)  # each frame draws every node: the cost grows with nodes × frames
    if work > MAX_STEP_WORK:
        raise CgraphError(
            f"--steps would draw {len(plan):,} frames of {len(g):,} nodes each ({work:,} node drawings; "
            f"at most {MAX_STEP_WORK:,}, about 200 nodes), which takes too long",
            hint="render a smaller program step by step, or draw the whole graph without --steps",
        )
    if timeout is None:  # the default grows with the frames (newton's 180 frames of 116 nodes took 36 s)
        timeout = RENDER_TIMEOUT + STEP_SECONDS * work
    names = [_frame_name(k, phase, g.label(i) if g.names[i] else g.ops[i], fmt) for k, (phase, i, _) in enumerate(plan)]
    folder = None if gif else _StepsFolder(Path(steps), names)  # refusals come before any drawing
    texts = (picture.dot(state) for _, _, state in plan)
    last = picture.dot(plan[-1][2]) if gif and plan else None
    base = picture.dot(picture.base_state(plan))
    with (
        progress_bar("drawing frames", min_total=PROGRESS_FROM) as progress,
        render_frames(
            base, texts, len(plan), fmt, timeout, gif=gif, palette_dot=last, progress=progress, fit=whole.fit_job()
        ) as images,
    ):
        if gif:
            atomic_write(steps, images[0].read_bytes())
            out(f"wrote {steps} ({len(plan)} frames)")
            return
        assert folder is not None
        folder.write(images)
    out(f"wrote {len(names)} frames to {steps}")


MANIFEST = ".cgraph-steps.json"  # in a --steps folder: the frames cgraph wrote there, with their checksums


def _digest(path: Path) -> str | None:
    import hashlib

    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


class _StepsFolder:
    """Writing frames into a --steps folder: all of them or none, and never a file cgraph did not write.

    cgraph records the frames it wrote in the folder's :data:`MANIFEST` (name and checksum). A later run
    replaces and removes only frames recorded there and unchanged since; a file of the same name that
    cgraph did not write (or that was changed since) is refused before anything is drawn, and other files
    are left alone. New frames are first copied into a hidden staging folder inside the target folder
    (a full disk fails there, before any file of the folder is touched) and then renamed into place.
    """

    def __init__(self, folder: Path, names: list[str]) -> None:
        self.folder = folder
        self.names = names
        self.created = not folder.exists()
        if folder.exists() and not folder.is_dir():
            raise CgraphError(f"--steps: {folder} exists and is not a folder")
        if not (folder.parent if str(folder.parent) else Path(".")).is_dir():
            raise CgraphError(f"--steps: the folder {folder.parent} does not exist")
        self.owned: dict[str, str] = {}
        if not self.created:
            self.owned = self._read_manifest()
            for name in names:
                p = folder / name
                if not (p.exists() or p.is_symlink()):
                    continue
                if p.is_symlink() or not p.is_file() or self.owned.get(name) != _digest(p):
                    raise CgraphError(
                        f"--steps: {p} exists and was not written by cgraph (or was changed since); "
                        "it would be replaced; nothing was written",
                        hint="move it away, or give --steps a new or empty folder",
                    )

    def _read_manifest(self) -> dict[str, str]:
        try:
            data = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
            frames = data["frames"]
            return {
                str(k): str(v)
                for k, v in frames.items()
                if isinstance(k, str) and isinstance(v, str) and _FRAME.match(k)
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def write(self, images: list[Path]) -> None:
        import tempfile

        folder = self.folder
        try:
            folder.mkdir(exist_ok=True)
        except OSError as e:
            raise CgraphError(f"--steps: cannot create the folder {folder}: {e.strerror or e}") from None
        staged: Path | None = None
        moved: list[str] = []
        try:
            staged = Path(tempfile.mkdtemp(prefix=".cgraph-steps-", dir=folder))
            digests = {}
            for name, src in zip(self.names, images):
                _copy(src, staged / name)
                digests[name] = _digest(staged / name)
            manifest = json.dumps({"frames": digests}, indent=0, sort_keys=True) + "\n"
            (staged / MANIFEST).write_text(manifest, encoding="utf-8")
            for name in self.names:  # renames in one file system: no data is written any more
                os.replace(staged / name, folder / name)
                moved.append(name)
            os.replace(staged / MANIFEST, folder / MANIFEST)
        except BaseException as e:
            for name in moved:  # all or none: take back what this run put in place
                try:
                    (folder / name).unlink()
                except OSError:
                    pass
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)
            if self.created:
                shutil.rmtree(folder, ignore_errors=True)
            if isinstance(e, OSError):
                raise CgraphError(
                    f"--steps: cannot write the frames into {folder}: {e.strerror or e}; nothing was written"
                ) from None
            raise
        shutil.rmtree(staged, ignore_errors=True)
        # frames of an earlier, longer run would be mistaken for part of this one: remove those that cgraph
        # wrote there and that nobody changed since; never a file cgraph did not write
        keep = set(self.names)
        foreign = []
        for name, digest in sorted(self.owned.items()):
            p = folder / name
            if name in keep or p.is_symlink() or not p.is_file():
                continue
            if _digest(p) == digest:
                try:
                    p.unlink()
                except OSError:
                    pass
        for p in sorted(folder.iterdir()):
            if p.name not in keep and _FRAME.match(p.name) and p.exists():
                foreign.append(p.name)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            warn(f"note: {folder} also holds {shown}, named like frames but not written by this run; left in place")


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as r, open(dst, "xb") as w:
        shutil.copyfileobj(r, w, 1 << 20)
        w.flush()
        os.fsync(w.fileno())


def register(app: typer.Typer) -> None:
    app.command("render", help=HELP)(render_command)
