"""What a Hessian-vector product costs next to one gradient (issue 12: "a small constant times a gradient").

    python bench/hvp.py            # examples/mlp.cg and a 64-128-10 MLP (9,610 parameters), 7 rounds
    python bench/hvp.py --rounds 11

For each program, every measurement runs in its own fresh process with OPENBLAS_NUM_THREADS=1 (and
OMP/MKL likewise); the gradient (``engine.evaluate``: forward and backward pass) and the HVP
(``HvpProgram.hvp``: the forward pass of the backward graph, then reverse mode over it) alternate
A B, B A, ... for R rounds, and the ratio HVP / gradient is taken per round: the table shows its median
and its spread (lowest and highest round). In a process, each timing is the median of repeats after a
warm-up; building the HVP graph (once per program, tracing the VJPs) is reported on its own. The Hessian
itself is never formed (9,610² entries would be 0.7 GB). Timings are never asserted anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
ENV.pop("CGRAPH_ENGINE", None)

BIG_MLP = """\
input x = randn(64), t = zeros(10)
input W1 = randn(128, 64), b1 = zeros(128)
input W2 = randn(10, 128), b2 = zeros(10)
h = tanh(W1 @ x * 0.125 + b1)
o = W2 @ h * 0.1 + b2
loss = 0.5 * sum(square(o - t))
"""
PROGRAMS = {"examples/mlp.cg": (ROOT / "examples" / "mlp.cg").read_text(), "mlp 64-128-10": BIG_MLP}


def _median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def worker(program: str, what: str) -> dict:
    import numpy as np

    from cgraph_cli.engine import evaluate
    from cgraph_cli.engine.second import HvpProgram
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program
    from cgraph_cli.run.values import bind_inputs

    g = compile_program(Source(PROGRAMS[program]), {}, use_cache=False)
    inputs = bind_inputs(g, {})
    params = sum(int(np.size(v)) for v in inputs.values())
    if what == "grad":
        t = _median_time(lambda: evaluate(g, inputs), 25)
        return {"seconds": t, "params": params, "nodes": len(g)}
    t0 = time.perf_counter()
    prog = HvpProgram(g, g.output)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    v = {x: rng.standard_normal(np.shape(val)) for x, val in inputs.items()}
    t = _median_time(lambda: prog.hvp(inputs, v), 25)
    return {"seconds": t, "build": build, "params": params, "nodes": len(prog.graph)}


def run_worker(program: str, what: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--worker", program, what], env=ENV, capture_output=True, text=True, check=True
    )
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--worker", nargs=2, metavar=("PROGRAM", "WHAT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(*a.worker)))
        return
    import numpy as np

    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, OPENBLAS_NUM_THREADS=1, {a.rounds} rounds\n")
    print(
        "| program | parameters | nodes (forward / with backward) | gradient | HVP | HVP / gradient: median (spread) "
        "| building the HVP graph |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in PROGRAMS:
        ratios, grads, hvps, builds = [], [], [], []
        nodes = params = 0
        for k in range(a.rounds):
            order = ("grad", "hvp") if k % 2 == 0 else ("hvp", "grad")
            got = {w: run_worker(name, w) for w in order}
            grads.append(got["grad"]["seconds"])
            hvps.append(got["hvp"]["seconds"])
            builds.append(got["hvp"]["build"])
            ratios.append(got["hvp"]["seconds"] / got["grad"]["seconds"])
            nodes = (got["grad"]["nodes"], got["hvp"]["nodes"])
            params = got["grad"]["params"]
        print(
            f"| {name} | {params:,} | {nodes[0]} / {nodes[1]} | {statistics.median(grads) * 1e6:.0f} µs "
            f"| {statistics.median(hvps) * 1e6:.0f} µs | {statistics.median(ratios):.2f}× "
            f"({min(ratios):.2f}–{max(ratios):.2f}) | {statistics.median(builds) * 1e3:.1f} ms |"
        )


if __name__ == "__main__":
    main()
