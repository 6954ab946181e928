"""cgraph's performance benchmarks: every figure is a ratio against a baseline measured in the same run.

    python bench/run.py            # the full run (about 15 minutes)
    python bench/run.py --quick    # smaller sizes, fewer rounds (a few minutes)
    python bench/run.py --only scalar,mlp

How it measures, so that the ratios can be trusted on a shared machine:
- every measurement runs in its own fresh process (``python bench/run.py --worker ...``), so nothing one
  workload imports, allocates or starts (BLAS or PyTorch thread pools) affects another;
- every process runs with ``OPENBLAS_NUM_THREADS=1`` (and OMP/MKL likewise): one BLAS thread;
- cgraph and its baseline alternate, A B, B A, A B ... for R rounds (interleaved), and the ratio is
  taken per round; the table shows the median ratio and its spread (lowest and highest round);
- in-process timings exclude interpreter start-up: the first call is timed alone ("end to end"), then the
  further calls as ``timeit`` times them (the garbage collector run before them and off while they run; at
  least a few calls, more for a fast function until they take 0.2 s) and the median is taken ("steady");
  command-line timings are whole-process wall times.

Workloads and baselines are in ``bench/workloads.py``.  micrograd and PyTorch are peers measured when
installed (``pip install 'cgraph-cli[bench]'``), skipped otherwise.  Timings are never asserted anywhere.
"""

# ruff: noqa: B023  (timing lambdas are called inside the loop that defines them)
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
ENV.pop("CGRAPH_DEBUG", None)
ENV.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its byte code: start-up must not compile it
ENV.pop("CGRAPH_ENGINE", None)
# every process, cgraph's and the baselines', runs with the allocator thresholds cgraph sets for itself at its first
# evaluation (cgraph_cli/allocator.py), so that no baseline is charged for glibc's defaults (hand-written numpy's
# float64 MLP took its arrays fresh from the kernel on every call: 0.78x without this)
sys.path.insert(0, str(ROOT))
from cgraph_cli.allocator import MMAP_MAX, TRIM  # noqa: E402

ENV.update(MALLOC_MMAP_THRESHOLD_=str(MMAP_MAX), MALLOC_TRIM_THRESHOLD_=str(TRIM))
CGRAPH = [str(Path(sys.executable).parent / "cgraph")]
if not Path(CGRAPH[0]).exists():
    CGRAPH = [sys.executable, "-m", "cgraph_cli"]


# -- workers: one measurement in a fresh process, printed as JSON -------------------------------


def _timed(fn, repeat: int, budget: float = 0.2, most: int = 200) -> tuple[float, float]:
    """(first call, median of the further calls) in seconds. The further calls are timed as ``timeit`` times
    them: the garbage collector runs once before them and is off while they run, so no call pays for another's
    garbage (micrograd's graphs are cycles) and no collection evicts the caches between calls; at least
    ``repeat`` calls and, for a fast function, more until they have taken ``budget`` seconds (at most ``most``),
    so that a median of sub-millisecond calls is not a median of five samples."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if repeat == 0:  # (one call only: a long one)
        return first, first
    times: list[float] = []
    gc.collect()
    gc.disable()
    try:
        while len(times) < repeat or (sum(times) < budget and len(times) < most):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return first, statistics.median(times)


def worker_scalar(kind: str, n: str, impl: str) -> dict:
    """fwd+bwd of a scalar graph; 'first' includes everything built from the graph (plan, tape, groups)."""
    import numpy as np
    import workloads as w

    from cgraph_cli.engine import evaluate

    g = w.make_graph(kind, int(n))
    xin = w.input_values(g)
    out = g.output
    rep = 3 if int(n) >= 1_000_000 else 5
    if impl in ("engine", "engine-hot"):
        inputs = {name: np.asarray(x) for name, x in zip(g.inputs, xin)}
        first, steady = _timed(lambda: evaluate(g, inputs), rep)
        if impl == "engine-hot":  # a hot graph: run until its plan is compiled (engine/compiled.py), then time it
            from cgraph_cli.engine import compiled

            for _ in range(compiled.HOT):
                evaluate(g, inputs)
            _, hot = _timed(lambda: evaluate(g, inputs), rep)
    elif impl == "tape":
        t0 = time.perf_counter()
        tape = w.tape_of(g)
        build = time.perf_counter() - t0
        first, steady = _timed(lambda: w.tape_fwd_bwd(*tape, xin, out), rep)
        first += build
    elif impl == "levels":
        t0 = time.perf_counter()
        ref = w.LevelRef(g)
        build = time.perf_counter() - t0
        first, steady = _timed(lambda: ref.run(xin, out), rep)
        first += build
    elif impl == "micrograd":
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * int(n)))
        first, steady = _timed(lambda: w.micrograd_run(g, xin, out), 2)
    elif impl == "torch":
        first, steady = _timed(lambda: w.torch_run(g, xin, out), 2)
    else:
        raise SystemExit(f"unknown impl {impl}")
    nodes = sum(1 for o in g.ops if o not in ("input", "const"))
    result = {"first": first, "steady": steady, "nodes": nodes, "inputs": len(g.inputs)}
    if impl == "engine-hot":
        result["hot"] = hot
    return result


def worker_mlp(dtype: str, variant: str, impl: str) -> dict:
    import numpy as np
    import workloads as w

    data = w.mlp_data(dtype)
    if impl == "engine":
        from cgraph_cli.engine import evaluate
        from cgraph_cli.errors import Source
        from cgraph_cli.run.program import compile_program
        from cgraph_cli.run.values import bind_inputs

        text = w.MLP_MSE if variant == "mse" else w.MLP_CE
        g = compile_program(Source(text, "mlp.cg"), data, dtype=dtype, use_cache=False)
        inputs = bind_inputs(g, data)
        res = evaluate(g, inputs)
        loss, grads = w.mlp_numpy(variant, *(inputs[k] for k in w.MLP_NAMES))
        assert np.allclose(float(res.values[g.output]), loss, rtol=1e-4), (res.values[g.output], loss)
        for name, want in zip(("W1", "b1", "W2", "b2", "W3", "b3"), grads):
            assert np.allclose(res.grads[g.inputs[name]], want, rtol=1e-3, atol=1e-6), name
        assert res.grads[g.inputs["X"]] is None and res.grads[g.inputs["T"]] is None  # data: no gradient
        first, steady = _timed(lambda: evaluate(g, inputs), 9)
    elif impl == "numpy":
        args = [data[k] for k in w.MLP_NAMES]
        first, steady = _timed(lambda: w.mlp_numpy(variant, *args), 9)
    elif impl == "torch":
        import torch

        torch.set_num_threads(1)
        tt = {k: torch.tensor(v, requires_grad=True) for k, v in data.items()}

        def run_torch():
            h1 = torch.relu(tt["X"] @ tt["W1"] + tt["b1"])
            h2 = torch.relu(h1 @ tt["W2"] + tt["b2"])
            o = h2 @ tt["W3"] + tt["b3"]
            if variant == "mse":
                loss = torch.sum((o - tt["T"]) * (o - tt["T"])) / 256
            else:
                loss = -torch.sum(tt["T"] * torch.log(torch.softmax(o, 1))) / 256
            for v in tt.values():
                v.grad = None
            loss.backward()

        first, steady = _timed(run_torch, 9)
    else:
        raise SystemExit(f"unknown impl {impl}")
    return {"first": first, "steady": steady}


def worker_parse(n: str, impl: str) -> dict:
    import workloads as w

    from cgraph_cli.errors import Source
    from cgraph_cli.lang.parser import get_parser, parse, parse_lark

    text = Path(n).read_text() if not n.isdigit() else w.program_text(int(n))
    src = Source(text, "p.cg")
    get_parser()  # Lark's tables are built (or loaded) before timing either parser
    fn = parse if impl == "fast" else parse_lark
    first, steady = _timed(lambda: fn(src), 2 if len(text) < 10_000_000 else 0)
    return {"first": first, "steady": steady if len(text) < 10_000_000 else first, "bytes": len(text.encode())}


def worker_memory(n: str) -> dict:
    """Peak memory while evaluating an n-statement chain, per node: traced Python allocations, and the
    growth of the process's high-water mark (VmHWM) during the evaluation."""
    import tracemalloc

    import numpy as np

    from cgraph_cli.engine import evaluate
    from cgraph_cli.errors import Source
    from cgraph_cli.run.program import compile_program

    def hwm() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    text = "x = a\n" + "x = sin(x) * 0.999 + a\n" * int(n)
    inputs = {"a": np.asarray(0.5)}
    g = compile_program(Source(text, "m.cg"), inputs, use_cache=False)
    before = hwm()
    res = evaluate(g, inputs)  # the process's peak, without tracemalloc (whose own records would count)
    growth = hwm() - before
    del res, g
    g = compile_program(Source(text, "m.cg"), inputs, use_cache=False)  # (a new graph: its plan built again)
    tracemalloc.start()
    evaluate(g, inputs)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"nodes": len(g.ops), "traced_peak": peak, "hwm_growth": growth, "hwm_built": before}


WORKERS = {"scalar": worker_scalar, "mlp": worker_mlp, "parse": worker_parse, "memory": worker_memory}


def run_worker(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(Path(__file__)), "--worker", *args], env=ENV, capture_output=True, text=True, cwd=HERE
    )
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed: {r.stderr[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], env: dict | None = None, stdin_path: Path | None = None) -> float:
    """Wall time of one command in a fresh process (output thrown away)."""
    e = dict(ENV, **(env or {}))
    t0 = time.perf_counter()
    with open(stdin_path or os.devnull, "rb") as f:
        r = subprocess.run(args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=f)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{args}: {r.stderr.decode()[-400:]}")
    return t


# -- interleaved comparisons ----------------------------------------------------------------------

TABLE: list[tuple[str, str, str, str, str]] = []  # workload, cgraph, baseline, ratio, target


def interleave(a, b, rounds: int) -> tuple[list[float], list[float]]:
    """Call a() and b() alternately (A B, B A, A B ...); returns both lists of figures."""
    xs, ys = [], []
    for r in range(rounds):
        if r % 2 == 0:
            xs.append(a())
            ys.append(b())
        else:
            ys.append(b())
            xs.append(a())
    return xs, ys


def spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}–{max(ratios):.2f}]"


def record(workload: str, ours: str, base: str, ratios: list[float], target: str, met: bool | None) -> None:
    mark = "" if met is None else (" met" if met else " NOT met")
    TABLE.append((workload, ours, base, spread(ratios), target + mark))
    print(f"  {workload:<44} {ours:>22}  vs {base:<34} {spread(ratios):>22}  {target}{mark}", flush=True)


def us_per_node(t: float, nodes: int) -> str:
    return f"{t / nodes * 1e6:.3f} µs/node"


def bench_scalar(quick: bool, rounds: int) -> None:
    print("\n== scalar graphs: fwd+bwd, end to end from the graph (plan included) and steady state ==")
    n = 100_000 if quick else 1_000_000
    cases = [
        ("chain", "tape", 1.5, "2 inputs"),
        ("tanhchain", "tape", 1.5, "n/3 inputs"),
        ("runsum", "tape", 1.5, "n/2 inputs"),
        ("wide", "levels", 2.0, "16 inputs"),
        ("leaves", "levels", 2.0, "n/4 inputs"),
    ]
    for kind, base, target, what in cases:
        A, B = interleave(
            lambda: run_worker("scalar", kind, str(n), "engine"),
            lambda: run_worker("scalar", kind, str(n), base),
            rounds,
        )
        nodes = A[0]["nodes"]
        for key, label in (("first", "end to end"), ("steady", "steady")):
            ratios = [a[key] / b[key] for a, b in zip(A, B)]
            ta = statistics.median(a[key] for a in A)
            tb = statistics.median(b[key] for b in B)
            base_name = {"tape": "Python-float tape", "levels": "level-batched numpy"}[base]
            met = statistics.median(ratios) <= target
            record(
                f"{kind} {n:.0e} ({what}), {label}".replace("e+0", "e"),
                us_per_node(ta, nodes),
                f"{base_name} {us_per_node(tb, nodes)}",
                ratios,
                f"≤ {target}x",
                met if key == "first" else None,
            )


def bench_peers(quick: bool, rounds: int) -> None:
    import workloads  # noqa: F401  (puts the repository on sys.path)

    from cgraph_cli.engine.compiled import HOT

    print("\n== against peers: 1e4-node scalar graphs, fwd+bwd (peer time / cgraph time), steady state ==")
    print(f"   (a graph is compiled to straight-line Python on its {HOT}th run: engine/compiled.py)")
    n = 10_000
    for peer, target in (("micrograd", 25), ("torch", 40)):
        if not _have(peer):
            print(f"  {peer}: not installed, skipped")
            continue
        for kind in ("chain", "wide"):
            A, B = interleave(
                lambda: run_worker("scalar", kind, str(n), "engine-hot"),
                lambda: run_worker("scalar", kind, str(n), peer),
                max(3, rounds // 2),
            )
            nodes = A[0]["nodes"]
            for key, label in (("steady", "before"), ("hot", "after")):
                ratios = [b["steady"] / a[key] for a, b in zip(A, B)]
                record(
                    f"{kind} 1e4 vs {peer}, {label} its {HOT} runs",
                    us_per_node(statistics.median(a[key] for a in A), nodes),
                    f"{peer} {us_per_node(statistics.median(b['steady'] for b in B), nodes)}",
                    ratios,
                    f"≥ {target}x faster",
                    statistics.median(ratios) >= target if key == "hot" else None,
                )


def bench_mlp(quick: bool, rounds: int) -> None:
    print("\n== MLP 784-512-512-10, batch 256, fwd+bwd, one BLAS thread ==")
    for dtype, variant in (("float32", "mse"), ("float32", "ce"), ("float64", "mse")):
        A, B = interleave(
            lambda: run_worker("mlp", dtype, variant, "engine"),
            lambda: run_worker("mlp", dtype, variant, "numpy"),
            rounds,
        )
        ratios = [a["steady"] / b["steady"] for a, b in zip(A, B)]
        record(
            f"MLP {dtype} {'squared error' if variant == 'mse' else 'softmax cross-entropy'}",
            f"{statistics.median(a['steady'] for a in A) * 1e3:.2f} ms",
            f"hand-written numpy {statistics.median(b['steady'] for b in B) * 1e3:.2f} ms",
            ratios,
            "≤ 1.10x",
            statistics.median(ratios) <= 1.10,
        )
        if _have("torch") and variant == "mse":
            T = [run_worker("mlp", dtype, variant, "torch")["steady"] for _ in range(3)]
            print(f"  {'':<44} (PyTorch eager, one thread: {statistics.median(T) * 1e3:.2f} ms)")


def bench_parse(quick: bool, rounds: int) -> None:
    import workloads as w

    print("\n== parsing and eval end to end ==")
    n = 100_000 if quick else 1_000_000
    A, B = interleave(lambda: run_worker("parse", str(n), "fast"), lambda: run_worker("parse", str(n // 10), "lark"), 3)
    mb_a = A[0]["bytes"] / 1e6
    mb_b = B[0]["bytes"] / 1e6
    speeds = [mb_a / a["steady"] for a in A]
    lark = [mb_b / b["steady"] for b in B]
    record(
        f"parse {n:.0e} statements ({mb_a:.0f} MB)".replace("e+0", "e"),
        f"{statistics.median(speeds):.2f} MB/s",
        f"Lark LALR {statistics.median(lark):.2f} MB/s",
        [s / b for s, b in zip(speeds, lark)],
        "≥ 1.0 MB/s",
        statistics.median(speeds) >= 1.0,
    )
    n = 50_000
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "big.cg"
        p.write_text(w.program_text(n))
        for fmt, target in (("json", 1.3), ("csv", 1.3)):
            A, B = interleave(
                lambda: run_cli([*CGRAPH, "eval", str(p), "--format", fmt, "--no-cache"]),
                lambda: run_worker("parse", str(p), "lark")["steady"],
                rounds,
            )
            ratios = [a / b for a, b in zip(A, B)]
            record(
                f"eval 5e4 statements --format {fmt} (no cache)",
                f"{statistics.median(A):.2f} s",
                f"bare Lark parse {statistics.median(B):.2f} s",
                ratios,
                f"≤ {target}x",
                statistics.median(ratios) <= target,
            )


def bench_repeat(quick: bool, rounds: int) -> None:
    import workloads as w

    print("\n== a repeat run of a compiled program ==")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "big.cg"
        p.write_text(w.program_text(50_000))
        # a repeat run: the same program, new input values, after a first run that filled the cache
        firsts, repeats = [], []
        for r in range(rounds):
            cache = {"CGRAPH_CACHE_DIR": str(Path(tmp) / f"cache{r}")}
            firsts.append(run_cli([*CGRAPH, "eval", str(p), "--format", "csv", "--at", "a=0.25"], cache))
            repeats.append(run_cli([*CGRAPH, "eval", str(p), "--format", "csv", "--at", f"a=0.{r + 3}"], cache))
        ratios = [f / r for f, r in zip(firsts, repeats)]
        record(
            "eval 5e4 statements, repeat run, new values",
            f"{statistics.median(repeats):.2f} s",
            f"first run {statistics.median(firsts):.2f} s",
            ratios,
            "≥ 5x faster",
            statistics.median(ratios) >= 5,
        )


def bench_startup(quick: bool, rounds: int) -> None:
    print("\n== start-up ==")
    A, B = interleave(
        lambda: run_cli([*CGRAPH, "eval", "-e", "x^2", "--at", "x=3", "--format", "json"]),
        lambda: run_cli([sys.executable, "-c", "import numpy"]),
        max(rounds, 11),
    )
    record(
        "start-up: eval -e 'x^2' --at x=3 --format json",
        f"{statistics.median(A) * 1e3:.0f} ms",
        f'python -c "import numpy" {statistics.median(B) * 1e3:.0f} ms',
        [a / b for a, b in zip(A, B)],
        "≤ 2.0x",
        statistics.median(a / b for a, b in zip(A, B)) <= 2.0,
    )


def bench_batch(quick: bool, rounds: int) -> None:
    """Whole ``cgraph eval --batch`` processes (start-up, reading, evaluating, writing to /dev/null): chunks spread
    over all CPUs and in one process (CGRAPH_BATCH_WORKERS; by default cgraph uses the CPUs not busy), interleaved.
    Besides the wall time, the CPU time of the process and its workers: rows per CPU-second is what a loaded
    machine blurs least."""
    import resource

    import numpy as np

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n== eval --batch (the lecture program), whole process; {cpus} cpus, load average {load} ==")
    n = 200_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        pts = Path(tmp) / "pts.csv"
        vals = np.round(rng.uniform(-5, 5, size=(n, 3)), 3)
        with open(pts, "w") as f:
            f.write("a,b,c\n")
            f.write("\n".join(",".join(map(repr, r)) for r in vals.tolist()) + "\n")
        cmd = [*CGRAPH, "eval", str(ROOT / "examples" / "lecture.cg"), "--batch", str(pts)]

        def timed(env: dict) -> tuple[float, float]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = run_cli(cmd, env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        timed({})  # a warm-up (file cache, byte code)
        spread_t, single_t = interleave(
            lambda: timed({"CGRAPH_BATCH_WORKERS": str(cpus)}), lambda: timed({"CGRAPH_BATCH_WORKERS": "1"}), rounds
        )
        size = f"{n:.0e}".replace("e+0", "e")
        for what, times in ((f"{cpus} worker processes", spread_t), ("one process", single_t)):
            rates = [n / wall / 1e6 for wall, _ in times]
            per_cpu = statistics.median(n / cpu / 1e6 for _, cpu in times)
            med = statistics.median(rates)
            TABLE.append(
                (
                    f"batch {size} rows, lecture program, {what}",
                    f"{med:.2f} M rows/s ({per_cpu:.2f} M rows per CPU-second)",
                    "—",
                    f"[{min(rates):.2f}–{max(rates):.2f}]",
                    "≥ 1 M rows/s" + (" met" if med >= 1 else " NOT met"),
                )
            )
            print(
                f"  batch, {what}: {med:.2f} M rows/s [{min(rates):.2f}–{max(rates):.2f}], "
                f"{per_cpu:.2f} M rows per CPU-second (target ≥ 1 M rows/s)"
            )


def bench_memory(quick: bool, rounds: int) -> None:
    print("\n== memory while evaluating ==")
    n = 100_000 if quick else 1_000_000
    r = run_worker("memory", str(n))
    per = r["traced_peak"] / r["nodes"]
    hwm = r["hwm_growth"] / r["nodes"]
    TABLE.append(
        (
            f"memory, {n:.0e} statements ({r['nodes']:,} nodes)".replace("e+0", "e"),
            f"{per:.0f} B/node traced",
            f"VmHWM growth {hwm:.0f} B/node",
            "—",
            "≤ 300 B/node" + (" met" if max(per, hwm) <= 300 else " NOT met"),
        )
    )
    print(f"  evaluate: {per:.0f} B/node traced peak, {hwm:.0f} B/node high-water-mark growth (≤ 300)")


def _have(mod: str) -> bool:
    r = subprocess.run([sys.executable, "-c", f"import {mod}"], env=ENV, capture_output=True)
    return r.returncode == 0


PARTS = {
    "scalar": bench_scalar,
    "peers": bench_peers,
    "mlp": bench_mlp,
    "parse": bench_parse,
    "repeat": bench_repeat,
    "startup": bench_startup,
    "batch": bench_batch,
    "memory": bench_memory,
}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(HERE))
        sys.path.insert(0, str(ROOT))
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    ap.add_argument("--only", default="", help="comma-separated: " + ",".join(PARTS))
    ap.add_argument("--rounds", type=int, default=0, help="interleaved A/B rounds per comparison")
    ns = ap.parse_args()
    rounds = ns.rounds or (3 if ns.quick else 7)
    chosen = [p for p in ns.only.split(",") if p] or list(PARTS)
    import numpy as np

    print(
        f"cgraph benchmarks ({'quick' if ns.quick else 'full'}, {rounds} interleaved rounds; python "
        f"{sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cpus, OPENBLAS_NUM_THREADS=1; "
        f"micrograd {'yes' if _have('micrograd') else 'no'}, torch {'yes' if _have('torch') else 'no'})"
    )
    for p in chosen:
        PARTS[p](ns.quick, rounds)
    print("\n| workload | cgraph | baseline, same run | ratio: median [spread] | target |")
    print("| --- | --- | --- | --- | --- |")
    for row in TABLE:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
