"""cgraph's performance benchmarks: every figure is a ratio against a baseline measured in the same run.

    python bench/run.py            # the full run (a few minutes)
    python bench/run.py --quick    # smaller sizes, fewer repeats (about a minute)

Workloads are generated here: a deep chain, a running sum of products, a wide random DAG (scalar graphs
from 1e4 to 1e6 nodes), an MLP 784-512-512-10 at batch 256 (float32 and float64), programs of 1e4..1e6
statements for the parser, a batch CSV for the lecture program, and the start-up of a one-line eval.

Baselines (written here, not in the product): a plain Python tape interpreter over floats, a level-batched
numpy evaluator, hand-written numpy for the MLP, Lark's parser on the same grammar, bare
``python -c "import numpy"``; and micrograd and PyTorch when they are installed (``pip install
'cgraph-cli[bench]'``), skipped otherwise.  Medians are printed; timings are never asserted anywhere.
"""

# ruff: noqa: B023  (timing lambdas are called inside the loop that defines them)
from __future__ import annotations

import argparse
import gc
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cgraph_cli.engine import evaluate  # noqa: E402
from cgraph_cli.errors import Source  # noqa: E402
from cgraph_cli.ir.graph import Graph  # noqa: E402

CGRAPH = [str(Path(sys.executable).parent / "cgraph")]
if not Path(CGRAPH[0]).exists():
    CGRAPH = [sys.executable, "-m", "cgraph_cli"]

ROWS: list[tuple[str, str, str, str]] = []  # (workload, measure, value, ratio / target)


def row(workload: str, measure: str, value: str, ratio: str = "") -> None:
    ROWS.append((workload, measure, value, ratio))
    print(f"  {workload:<34} {measure:<44} {value:>16}  {ratio}", flush=True)


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- scalar graphs, built directly as Graph objects ------------------------------------------

OPS2 = ("add", "sub", "mul")
OPS1 = ("sin", "cos")


def make_graph(kind: str, n: int, seed: int = 0) -> Graph:
    """A scalar graph of about n op nodes: 'chain', 'sum' (running sum of products) or 'wide' (random DAG)."""
    rng = random.Random(seed)
    g = Graph(Source("", "<bench>"))
    ops, args, attrs, shapes, names = g.ops, g.args, g.attrs, g.shapes, g.names

    def add(op, a=(), attr=None, name=None):
        ops.append(op)
        args.append(a)
        attrs.append(attr)
        shapes.append(())
        names.append(name)
        return len(ops) - 1

    k_in = 16 if kind == "wide" else 2
    for j in range(k_in):
        i = add("input", name=f"i{j}")
        g.inputs[f"i{j}"] = i
    c = add("const", attr={"value": np.asarray(0.999)})
    if kind == "chain":  # x = sin(x) * c + i1, n/3 times
        x = 0
        while len(ops) < n:
            x = add("add", (add("mul", (add("sin", (x,)), c)), 1))
    elif kind == "sum":  # s = s + sin(x) * i1; x = x + c
        s, x = c, 0
        while len(ops) < n:
            s = add("add", (s, add("mul", (add("sin", (x,)), 1))))
            x = add("add", (x, c))
        add("add", (s, x))
    else:  # each node applies a random op to random earlier nodes
        while len(ops) < n:
            m = len(ops)
            if rng.random() < 0.25:
                add(rng.choice(OPS1), (rng.randrange(m),))
            else:
                add(rng.choice(OPS2), (rng.randrange(m), rng.randrange(m)))
        add("add", (len(ops) - 1, len(ops) - 2))
    g.spans = [(0, 0)] * len(ops)
    g.frames_of = [-1] * len(ops)
    g.outputs.append(len(ops) - 1)
    return g


_CODE = {"input": 0, "const": 1, "add": 2, "sub": 3, "mul": 4, "sin": 5, "cos": 6}


def tape_of(g: Graph):
    code = [_CODE[o] for o in g.ops]
    a = [t[0] if t else 0 for t in g.args]
    b = [t[-1] if t else 0 for t in g.args]
    init = [0.0] * len(code)
    for i, o in enumerate(g.ops):
        if o == "const":
            init[i] = float(g.attrs[i]["value"])
    return code, a, b, init


def tape_fwd_bwd(code, A, B, init, inputs: list[float], out: int):
    """The plain Python tape: values and adjoints in float lists, one dispatch per node."""
    v = list(init)
    v[: len(inputs)] = inputs
    sin, cos = math.sin, math.cos
    for i, c, a, b in zip(range(len(code)), code, A, B):
        if c == 4:
            v[i] = v[a] * v[b]
        elif c == 2:
            v[i] = v[a] + v[b]
        elif c == 3:
            v[i] = v[a] - v[b]
        elif c == 5:
            v[i] = sin(v[a])
        elif c == 6:
            v[i] = cos(v[a])
    gr = [0.0] * len(code)
    gr[out] = 1.0
    for i in range(out, -1, -1):
        gi = gr[i]
        c = code[i]
        a = A[i]
        b = B[i]
        if c == 4:
            gr[a] += gi * v[b]
            gr[b] += gi * v[a]
        elif c == 2:
            gr[a] += gi
            gr[b] += gi
        elif c == 3:
            gr[a] += gi
            gr[b] -= gi
        elif c == 5:
            gr[a] += gi * cos(v[a])
        elif c == 6:
            gr[a] -= gi * sin(v[a])
    return v, gr


class LevelRef:
    """The level-batched numpy reference: groups by (level, op) prepared once, then one numpy call per group."""

    def __init__(self, g: Graph) -> None:
        n = len(g.ops)
        lvl = [0] * n
        for i, t in enumerate(g.args):
            if t:
                lvl[i] = 1 + max(lvl[j] for j in t)
        self.n = n
        groups: dict = {}
        for i, o in enumerate(g.ops):
            if o not in ("input", "const"):
                groups.setdefault((lvl[i], o), []).append(i)
        self.groups = []
        for (_lvl, o), idx in sorted(groups.items()):
            idx = np.array(idx)
            a = np.array([g.args[i][0] for i in idx])
            b = np.array([g.args[i][-1] for i in idx])
            self.groups.append((o, idx, a, b))
        self.init = np.zeros(n)
        for i, o in enumerate(g.ops):
            if o == "const":
                self.init[i] = float(g.attrs[i]["value"])

    def run(self, inputs: list[float], out: int):
        V = self.init.copy()
        V[: len(inputs)] = inputs
        for o, idx, a, b in self.groups:
            if o == "add":
                V[idx] = V[a] + V[b]
            elif o == "sub":
                V[idx] = V[a] - V[b]
            elif o == "mul":
                V[idx] = V[a] * V[b]
            elif o == "sin":
                V[idx] = np.sin(V[a])
            else:
                V[idx] = np.cos(V[a])
        G = np.zeros(self.n)
        G[out] = 1.0
        for o, idx, a, b in reversed(self.groups):
            gi = G[idx]
            if o == "add":
                np.add.at(G, a, gi)
                np.add.at(G, b, gi)
            elif o == "sub":
                np.add.at(G, a, gi)
                np.add.at(G, b, -gi)
            elif o == "mul":
                np.add.at(G, a, gi * V[b])
                np.add.at(G, b, gi * V[a])
            elif o == "sin":
                np.add.at(G, a, gi * np.cos(V[a]))
            else:
                np.add.at(G, a, -gi * np.sin(V[a]))
        return V, G


def micrograd_run(g: Graph, inputs: list[float], out: int):
    from micrograd.engine import Value

    vals: list = [None] * len(g.ops)
    for i, (o, t) in enumerate(zip(g.ops, g.args)):
        if o == "input":
            vals[i] = Value(inputs[i])
        elif o == "const":
            vals[i] = Value(float(g.attrs[i]["value"]))
        elif o == "add":
            vals[i] = vals[t[0]] + vals[t[1]]
        elif o == "sub":
            vals[i] = vals[t[0]] - vals[t[1]]
        elif o == "mul":
            vals[i] = vals[t[0]] * vals[t[1]]
        else:  # micrograd has no sin/cos: relu stands in (same cost class: one unary node)
            vals[i] = vals[t[0]].relu()
    vals[out].backward()
    return vals


def torch_run(g: Graph, inputs: list[float], out: int):
    import torch

    vals: list = [None] * len(g.ops)
    leaves = []
    for i, (o, t) in enumerate(zip(g.ops, g.args)):
        if o == "input":
            vals[i] = torch.tensor(inputs[i], dtype=torch.float64, requires_grad=True)
            leaves.append(vals[i])
        elif o == "const":
            vals[i] = torch.tensor(float(g.attrs[i]["value"]), dtype=torch.float64)
        elif o == "add":
            vals[i] = vals[t[0]] + vals[t[1]]
        elif o == "sub":
            vals[i] = vals[t[0]] - vals[t[1]]
        elif o == "mul":
            vals[i] = vals[t[0]] * vals[t[1]]
        elif o == "sin":
            vals[i] = torch.sin(vals[t[0]])
        else:
            vals[i] = torch.cos(vals[t[0]])
    vals[out].backward()
    return leaves


def have(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except Exception:
        return False


def bench_scalar(quick: bool) -> None:
    print("\n== scalar graphs: fwd+bwd per op node (engine steady state; plan built on first call) ==")
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    rep = 3 if quick else 5
    for kind in ("chain", "sum", "wide"):
        for n in sizes:
            g = make_graph(kind, n)
            nops = sum(1 for o in g.ops if o not in ("input", "const"))
            out = g.output
            xin = [0.3 + 0.01 * j for j in range(len(g.inputs))]
            inputs = {name: np.asarray(xin[j]) for j, name in enumerate(g.inputs)}
            t0 = time.perf_counter()
            res = evaluate(g, inputs)  # first call: plan + run
            first = time.perf_counter() - t0
            t_eng = median_time(lambda: evaluate(g, inputs), rep)
            tape = tape_of(g)
            t_tape = median_time(lambda: tape_fwd_bwd(*tape, xin, out), rep)
            v_ref, g_ref = tape_fwd_bwd(*tape, xin, out)
            assert np.allclose(float(res.values[out]), v_ref[out])
            label = f"{kind} {n:.0e}".replace("e+0", "e")
            us = lambda t: f"{t / nops * 1e6:.3f} µs/node"  # noqa: E731
            if kind == "wide":
                lref = LevelRef(g)
                t_lvl = median_time(lambda: lref.run(xin, out), rep)
                row(label, "engine (auto: levels) vs level-batched numpy", us(t_eng), f"{t_eng / t_lvl:.2f}x (≤ 2x)")
                row(label, "  level-batched numpy reference", us(t_lvl))
                row(label, "  plain Python tape (for scale)", us(t_tape), f"engine {t_tape / t_eng:.1f}x faster")
            else:
                row(label, "engine (auto: scalar loop) vs plain tape", us(t_eng), f"{t_eng / t_tape:.2f}x (≤ 1.5x)")
                row(label, "  plain Python tape reference", us(t_tape))
            row(label, "  engine first call (incl. plan)", us(first))
            if n <= 100_000 and have("micrograd") and kind != "wide" or (kind == "wide" and n <= 100_000):
                if have("micrograd"):
                    gm = make_graph(kind, n) if kind != "wide" else g
                    if True:
                        lim = sys.getrecursionlimit()
                        sys.setrecursionlimit(max(lim, 10 * n))
                        try:
                            t_mg = median_time(lambda: micrograd_run(gm, xin, out), 1)
                            row(label, "  micrograd (sin/cos -> relu)", us(t_mg))
                        except RecursionError:
                            row(label, "  micrograd", "RecursionError")
                        finally:
                            sys.setrecursionlimit(lim)
                    else:
                        row(label, "  micrograd", "n/a (no sin/cos)")
            if n <= 100_000 and have("torch"):
                t_pt = median_time(lambda: torch_run(g, xin, out), 1)
                row(label, "  PyTorch eager (one tensor per node)", us(t_pt))


# -- the MLP ------------------------------------------

MLP = """input X[256, 784], T[256, 10]
input W1[784, 512], b1[512], W2[512, 512], b2[512], W3[512, 10], b3[10]
h1 = relu(X @ W1 + b1)
h2 = relu(h1 @ W2 + b2)
o = h2 @ W3 + b3
loss = sum((o - T) * (o - T)) / 256
"""


def mlp_numpy(X, T, W1, b1, W2, b2, W3, b3):
    """Hand-written forward and backward, every input's gradient (as cgraph reports them all)."""
    z1 = X @ W1 + b1
    h1 = np.maximum(z1, 0)
    z2 = h1 @ W2 + b2
    h2 = np.maximum(z2, 0)
    o = h2 @ W3 + b3
    d = o - T
    loss = np.sum(d * d) / 256
    do = d * (2 / 256)
    gW3 = h2.T @ do
    gb3 = do.sum(0)
    dz2 = (do @ W3.T) * (z2 > 0)
    gW2 = h1.T @ dz2
    gb2 = dz2.sum(0)
    dz1 = (dz2 @ W2.T) * (z1 > 0)
    gW1 = X.T @ dz1
    gb1 = dz1.sum(0)
    gX = dz1 @ W1.T
    return loss, (gX, -do, gW1, gb1, gW2, gb2, gW3, gb3)


def bench_mlp(quick: bool) -> None:
    from cgraph_cli.run.program import compile_program
    from cgraph_cli.run.values import bind_inputs

    print("\n== MLP 784-512-512-10, batch 256, fwd+bwd (inputs from .npz; start-up excluded) ==")
    rng = np.random.default_rng(0)
    shapes = {"X": (256, 784), "T": (256, 10), "W1": (784, 512), "b1": (512,), "W2": (512, 512), "b2": (512,)}
    shapes.update({"W3": (512, 10), "b3": (10,)})
    data = {k: rng.standard_normal(s) * (0.05 if k.startswith("W") else 1.0) for k, s in shapes.items()}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "mlp.npz"
        np.savez(npz, **data)
        from cgraph_cli.run.values import read_at_file

        given_all = read_at_file(str(npz))
    rep = 5 if quick else 15
    for dtype, npt in (("float32", np.float32), ("float64", np.float64)):
        g = compile_program(Source(MLP, "mlp.cg"), given_all, dtype=dtype, use_cache=False)
        inputs = bind_inputs(g, given_all)
        args = [inputs[k] for k in ("X", "T", "W1", "b1", "W2", "b2", "W3", "b3")]
        res = evaluate(g, inputs)
        loss, grads = mlp_numpy(*args)
        assert np.allclose(float(res.values[g.output]), loss, rtol=1e-4)
        assert np.allclose(res.grads[g.inputs["W1"]], grads[2], rtol=1e-3, atol=1e-6)
        t_eng = median_time(lambda: evaluate(g, inputs), rep)
        t_np = median_time(lambda: mlp_numpy(*args), rep)
        row(f"MLP {dtype}", "engine vs hand-written numpy", f"{t_eng * 1e3:.2f} ms", f"{t_eng / t_np:.2f}x (≤ 1.10x)")
        row(f"MLP {dtype}", "  hand-written numpy reference", f"{t_np * 1e3:.2f} ms")
        if have("torch"):
            import torch

            tt = {k: torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=True) for k, v in inputs.items()}

            def run_torch():
                h1 = torch.relu(tt["X"] @ tt["W1"] + tt["b1"])
                h2 = torch.relu(h1 @ tt["W2"] + tt["b2"])
                o = h2 @ tt["W3"] + tt["b3"]
                loss = torch.sum((o - tt["T"]) * (o - tt["T"])) / 256
                for v in tt.values():
                    v.grad = None
                loss.backward()

            t_pt = median_time(run_torch, rep)
            row(f"MLP {dtype}", "  PyTorch eager", f"{t_pt * 1e3:.2f} ms")
        del npt


# -- parsing, eval end to end, the IR cache ------------------------------------------


def program_text(n: int, seed: int = 0) -> str:
    """n statements over the whole grammar: calls, powers, unary minus, tensor literals, indexing, defs."""
    rng = random.Random(seed)
    lines = ["input a = 0.5, b = -1.25, c = 2", "def f(u, v) = u * v + sin(u) - v / 2"]
    forms = [
        "x{k} = x{j} * 1.0001 + a",
        "x{k} = sin(x{j}) - b ^ 2",
        "x{k} = f(x{j}, c) / (1 + abs(x{i}))",
        "x{k} = max(x{j}, x{i}, -0.5) + tanh(x{j})",
        "x{k} = sum([x{j}, x{i}, 1.5e-3] * [1, 2, 3]) # a comment",
        "x{k} = -x{j} + [x{i}, a][1] - relu(x{j} - x{i})",
    ]
    lines.append("x0 = a + b * c")
    for k in range(1, n - 2):
        lines.append(rng.choice(forms).format(k=k, j=k - 1, i=rng.randrange(max(k - 50, 0), k)))
    return "\n".join(lines) + "\n"


def cli_time(args: list[str], env: dict | None = None, repeat: int = 1, stdin=None) -> float:
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    if env:
        e.update(env)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=stdin)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"{args}: {r.stderr.decode()[:400]}")
    return statistics.median(times)


def bench_parse_eval_cache(quick: bool) -> None:
    from cgraph_cli.lang.parser import get_parser, parse, parse_lark

    print("\n== parsing (the full grammar), eval end to end, IR cache ==")
    get_parser()
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    for n in sizes:
        text = program_text(n)
        src = Source(text, "p.cg")
        mb = len(text.encode()) / 1e6
        t = median_time(lambda: parse(src), 1 if n >= 1_000_000 else 3)
        label = f"parse {n:.0e} statements".replace("e+0", "e")
        row(label, f"fast path ({mb:.1f} MB)", f"{mb / t:.2f} MB/s", f"{n / t / 1e3:.0f}k stmt/s (≥ 1.0 MB/s)")
        if n <= 100_000:
            t_l = median_time(lambda: parse_lark(src), 1)
            row(label, "  Lark LALR with inline callbacks", f"{mb / t_l:.2f} MB/s", f"fast path {t_l / t:.1f}x")
    n = 10_000 if quick else 100_000
    text = program_text(n)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "big.cg"
        p.write_text(text)
        t_parse = median_time(lambda: parse(Source(text, "p.cg")), 3)
        env = {"CGRAPH_CACHE_DIR": str(Path(tmp) / "cache")}
        label = f"eval {n:.0e} statements".replace("e+0", "e")
        for fmt in ("csv", "json"):
            t_first = cli_time(CGRAPH + ["eval", str(p), "--format", fmt, "--no-cache"], env)
            row(
                label,
                f"cgraph eval --format {fmt} (no cache) vs parse",
                f"{t_first:.2f} s",
                f"{t_first / t_parse:.2f}x parse (≤ 1.3x)",
            )
        row(label, "  parse alone (in process)", f"{t_parse:.2f} s")
        t1 = cli_time(CGRAPH + ["eval", str(p), "--format", "csv"], env)  # builds and stores
        t2 = cli_time(CGRAPH + ["eval", str(p), "--format", "csv"], env, repeat=3)
        row(
            label,
            "cgraph eval --format csv: first / repeated (cache)",
            f"{t1:.2f} / {t2:.2f} s",
            f"{t1 / t2:.1f}x faster (≥ 20x)",
        )
        from cgraph_cli.run import cache
        from cgraph_cli.run.program import compile_program

        os.environ["CGRAPH_CACHE_DIR"] = env["CGRAPH_CACHE_DIR"]
        try:
            src = Source(text, str(p))
            t_c = median_time(lambda: compile_program(src, {}, use_cache=False), 1)
            compile_program(src, {})
            k = cache.key(src, {}, 0, "float64|None")
            t_l = median_time(lambda: cache.load(k, src), 3)
            row(label, "  compile (parse+build) / load from cache", f"{t_c:.2f} / {t_l:.3f} s", f"{t_c / t_l:.0f}x")
        finally:
            os.environ.pop("CGRAPH_CACHE_DIR", None)


# -- start-up, batch, memory ------------------------------------------


def bench_startup(quick: bool) -> None:
    print("\n== start-up ==")
    rep = 5 if quick else 11
    t_np = cli_time([sys.executable, "-c", "import numpy"], repeat=rep)
    t_ev = cli_time(CGRAPH + ["eval", "-e", "x^2", "--at", "x=3", "--format", "json"], repeat=rep)
    row(
        "start-up",
        "cgraph eval -e 'x^2' --at x=3 --format json",
        f"{t_ev * 1e3:.0f} ms",
        f"{t_ev / t_np:.2f}x numpy import (≤ 2.0x)",
    )
    row("start-up", '  python -c "import numpy"', f"{t_np * 1e3:.0f} ms")
    t_tab = cli_time(CGRAPH + ["eval", "-e", "x^2", "--at", "x=3"], repeat=rep)
    row("start-up", "  cgraph eval -e 'x^2' --at x=3 (rich table)", f"{t_tab * 1e3:.0f} ms")


def bench_batch(quick: bool) -> None:
    print("\n== eval --batch (the lecture program) ==")
    n = 200_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        pts = Path(tmp) / "pts.csv"
        vals = np.round(rng.uniform(-5, 5, size=(n, 3)), 3)
        with open(pts, "w") as f:
            f.write("a,b,c\n")
            f.write("\n".join(",".join(map(repr, r)) for r in vals.tolist()) + "\n")
        t = cli_time(CGRAPH + ["eval", str(ROOT / "examples" / "lecture.cg"), "--batch", str(pts)], repeat=1)
        row(
            f"batch {n:.0e} rows".replace("e+0", "e"),
            "end to end, output to /dev/null",
            f"{n / t / 1e6:.2f} M rows/s",
            "(≥ 1 M rows/s)",
        )


def bench_memory(quick: bool) -> None:
    print("\n== memory ==")
    n = 100_000 if quick else 1_000_000
    code = f"""
import resource, sys, tracemalloc
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from cgraph_cli.errors import Source
from cgraph_cli.run.program import compile_program
from cgraph_cli.engine import evaluate
text = "x = a" + chr(10) + ("x = sin(x) * 0.999 + a" + chr(10)) * {n}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
g = compile_program(Source(text, "m.cg"), {{"a": np.asarray(0.5)}}, use_cache=False)
built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nodes = len(g.ops)
tracemalloc.start()
r = evaluate(g, {{"a": np.asarray(0.5)}})
cur, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(nodes, peak, built * 1024, end * 1024)
"""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "mem.py"
        script.write_text(code)
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    try:
        nodes, peak, build_rss, total_rss = (int(x) for x in r.stdout.split())
    except ValueError:
        row("memory", "failed", r.stderr[-200:])
        return
    label = f"memory {n:.0e} statements".replace("e+0", "e")
    row(
        label, f"evaluate ({nodes:,} nodes): peak traced bytes per node", f"{peak / nodes:.0f} B/node", "(≤ 300 B/node)"
    )
    row(
        label,
        "  whole process max RSS (interpreter, parse, build, evaluate)",
        f"{total_rss / nodes:.0f} B/node",
        f"after parse+build {build_rss / nodes:.0f} B/node",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--only", default="", help="comma-separated: scalar,mlp,parse,startup,batch,memory")
    ns = ap.parse_args()
    parts = {
        "scalar": bench_scalar,
        "mlp": bench_mlp,
        "parse": bench_parse_eval_cache,
        "startup": bench_startup,
        "batch": bench_batch,
        "memory": bench_memory,
    }
    chosen = [p for p in ns.only.split(",") if p] or list(parts)
    print(
        f"cgraph benchmarks ({'quick' if ns.quick else 'full'}; python {sys.version.split()[0]}, "
        f"numpy {np.__version__}, {os.cpu_count()} cpus; micrograd {'yes' if have('micrograd') else 'no'}, "
        f"torch {'yes' if have('torch') else 'no'})"
    )
    for p in chosen:
        parts[p](ns.quick)
    print("\n| workload | measure | median | ratio (target) |\n| --- | --- | --- | --- |")
    for w, m, v, r in ROWS:
        print(f"| {w} | {m.strip()} | {v} | {r} |")


if __name__ == "__main__":
    main()
