"""cgraph export: the program as a numpy, JAX or PyTorch module, or an ONNX model."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Optional

import typer

from cgraph_cli.cli.commands.common import PARAM, out
from cgraph_cli.errors import CgraphError
from cgraph_cli.run.request import Options, check_choice

HELP = """Write the program for another engine: a numpy, JAX or PyTorch module, or an ONNX model.

numpy: a standalone module with forward(**inputs) and value_and_grad(**inputs),
the backward pass written out as numpy statements. jax and torch: a module with
f(**inputs) written with that framework's ops, so jax.grad / jax.jit or
torch.func.grad / torch.compile apply. onnx: a model of the forward graph
(onnxruntime runs it anywhere); --with-gradients adds an output grad_<input> per
input, computed by the backward pass as ONNX nodes. Values and gradients are
cgraph's, derivatives at kinks included (PyTorch's conventions).

The target comes from --to, or from an -o name ending in .onnx; a .py file needs
--to. Without -o the file is FILE's stem + _numpy.py, _jax.py, _torch.py or
.onnx in the current folder; -o - writes to standard output (not a binary ONNX
model to a terminal). --at values fix input shapes and become the defaults.

Examples:

  cgraph export examples/mlp.cg --to jax -o mlp_jax.py

  cgraph export examples/lecture.cg --to numpy -o -

  cgraph export examples/mlp.cg -o mlp.onnx --with-gradients
"""

TARGETS = ("numpy", "jax", "torch", "onnx")


def export_command(
    file: Optional[str] = PARAM["file"],
    expr: Optional[str] = PARAM["expr"],
    to: Optional[str] = typer.Option(
        None, "--to", "-t", metavar="numpy|jax|torch|onnx", help="The target (default: from -o's suffix)."
    ),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", metavar="OUT", help="Output file ('-' for stdout; default: FILE's stem + suffix)."
    ),
    at: Optional[List[str]] = PARAM["at"],
    at_file: Optional[str] = PARAM["at_file"],
    of: Optional[str] = PARAM["of"],
    seed: int = PARAM["seed"],
    max_memory: Optional[str] = PARAM["max_memory"],
    gradients: Optional[bool] = typer.Option(
        None,
        "--with-gradients/--forward-only",
        help="With the gradient of every input: numpy's value_and_grad (its default for a one-number output), "
        "ONNX outputs grad_<input>. --forward-only: the forward pass alone.",
    ),
) -> None:
    from cgraph_cli.fsutil import atomic_write

    target = _target(to, output)
    if output == "-" and target == "onnx" and sys.stdout.isatty():  # as render does: no binary on a terminal
        raise CgraphError(
            "-o - would write a binary ONNX model to the terminal",
            hint="redirect it (cgraph export ... -o - > model.onnx) or give a file name with -o",
        )
    from cgraph_cli.api import Program

    options = Options(file=file, expr=expr, at=at or (), at_file=at_file, of=of, seed=seed, max_memory=max_memory)
    stem = "graph" if file in (None, "-") or expr is not None else Path(file).stem
    source_name = "<expr>" if expr is not None else ("<stdin>" if file in (None, "-") else Path(file).name)
    data = Program.from_options(options).export(target, source_name=source_name, gradients=gradients)
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    target_path = output or _default_name(stem, target)
    atomic_write(target_path, data)
    if Path(target_path).is_file():
        out(f"wrote {target_path}")


def _target(to: str | None, output: str | None) -> str:
    suffix = Path(output).suffix.lower() if output not in (None, "-") else ""
    if to is not None:
        check_choice(to, TARGETS, "--to")
        if suffix == ".onnx" and to != "onnx":
            raise CgraphError(
                f"-o {output} names an ONNX model, but --to is {to}", hint="write the module to a .py file"
            )
        if suffix == ".py" and to == "onnx":
            raise CgraphError(f"-o {output} names a Python file, but --to onnx writes a binary model", hint="use .onnx")
        return to
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".py":
        raise CgraphError(
            "a .py file can hold a numpy, JAX or PyTorch module: say which with --to numpy|jax|torch",
        )
    raise CgraphError(
        "say what to export to with --to numpy|jax|torch|onnx",
        hint="for example: cgraph export prog.cg --to jax -o prog_jax.py",
    )


def _default_name(stem: str, target: str) -> str:
    """FILE's stem as a module name (letters, digits and _) + _numpy.py etc., or + .onnx."""
    if target == "onnx":
        return f"{stem}.onnx"
    safe = re.sub(r"\W", "_", stem, flags=re.ASCII)
    if not safe or safe[0].isdigit():
        safe = "_" + safe
    return f"{safe}_{target}.py"


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP)(export_command)
