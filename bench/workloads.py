"""The benchmark workloads and the baselines they are measured against (written here, not in the product).

Scalar graphs are built directly as ``Graph`` objects: a deep chain, chains and running sums with many
inputs, and random DAGs.  Baselines: a plain Python tape interpreter over floats, a level-batched numpy
evaluator, micrograd and PyTorch eager (when installed), hand-written numpy for the MLP, and generated
programs over the whole grammar for the parser.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cgraph_cli.errors import Source  # noqa: E402
from cgraph_cli.ir.graph import Graph  # noqa: E402

OPS2 = ("add", "sub", "mul")
OPS1 = ("sin", "cos")
KINDS = ("chain", "tanhchain", "runsum", "wide", "leaves")


def make_graph(kind: str, n: int, seed: int = 0) -> Graph:
    """A scalar graph of about n op nodes.

    chain: x = sin(x) * c + i1 (2 inputs); tanhchain: x = tanh(x * c + i_k) with a new input every step
    (about n/3 inputs); runsum: s = s + i_k * c (about n/2 inputs); wide: a random DAG over 16 inputs;
    leaves: a random DAG where a quarter of the nodes are inputs.
    """
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

    def new_input():
        j = len(g.inputs)
        i = add("input", name=f"i{j}")
        g.inputs[f"i{j}"] = i
        return i

    k_in = {"wide": 16, "chain": 2}.get(kind, 1)
    for _ in range(k_in):
        new_input()
    c = add("const", attr={"value": np.asarray(0.999)})
    if kind == "chain":  # x = sin(x) * c + i1, n/3 times
        x = 0
        while len(ops) < n:
            x = add("add", (add("mul", (add("sin", (x,)), c)), 1))
    elif kind == "tanhchain":  # x = tanh(x * c + i_k)
        x = 0
        while len(ops) < n:
            x = add("tanh", (add("add", (add("mul", (x, c)), new_input())),))
    elif kind == "runsum":  # s = s + i_k * c
        s = 0
        while len(ops) < n:
            s = add("add", (s, add("mul", (new_input(), c))))
    else:  # each node applies a random op to random earlier nodes ('leaves': a quarter are new inputs)
        while len(ops) < n:
            m = len(ops)
            r = rng.random()
            if kind == "leaves" and r < 0.25:
                new_input()
            elif r < 0.45:
                add(rng.choice(OPS1), (rng.randrange(m),))
            else:
                add(rng.choice(OPS2), (rng.randrange(m), rng.randrange(m)))
        add("add", (len(ops) - 1, len(ops) - 2))
    g.spans = [(0, 0)] * len(ops)
    g.frames_of = [-1] * len(ops)
    g.outputs.append(len(ops) - 1)
    return g


def input_values(g: Graph) -> list[float]:
    return [0.3 + 0.5 * math.sin(j) for j in range(len(g.inputs))]


_CODE = {"input": 0, "const": 1, "add": 2, "sub": 3, "mul": 4, "sin": 5, "cos": 6, "tanh": 7}


def tape_of(g: Graph):
    """The tape: op codes, operand indices and constants as flat Python lists."""
    code = [_CODE[o] for o in g.ops]
    a = [t[0] if t else 0 for t in g.args]
    b = [t[-1] if t else 0 for t in g.args]
    init = [0.0] * len(code)
    for i, o in enumerate(g.ops):
        if o == "const":
            init[i] = float(g.attrs[i]["value"])
    return code, a, b, init, list(g.inputs.values())


def tape_fwd_bwd(code, A, B, init, where, inputs: list[float], out: int):
    """The plain Python tape: values and adjoints in float lists, one dispatch per node."""
    v = list(init)
    for i, x in zip(where, inputs):
        v[i] = x
    sin, cos, tanh = math.sin, math.cos, math.tanh
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
        elif c == 7:
            v[i] = tanh(v[a])
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
        elif c == 7:
            gr[a] += gi * (1.0 - v[i] * v[i])
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
        self.where = np.array(list(g.inputs.values()), dtype=np.intp)

    def run(self, inputs: list[float], out: int):
        V = self.init.copy()
        V[self.where] = inputs
        for o, idx, a, b in self.groups:
            if o == "add":
                V[idx] = V[a] + V[b]
            elif o == "sub":
                V[idx] = V[a] - V[b]
            elif o == "mul":
                V[idx] = V[a] * V[b]
            elif o == "sin":
                V[idx] = np.sin(V[a])
            elif o == "cos":
                V[idx] = np.cos(V[a])
            else:
                V[idx] = np.tanh(V[a])
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
            elif o == "cos":
                np.add.at(G, a, -gi * np.sin(V[a]))
            else:
                np.add.at(G, a, gi * (1 - V[idx] ** 2))
        return V, G


def micrograd_run(g: Graph, inputs: list[float], out: int):
    from micrograd.engine import Value

    vals: list = [None] * len(g.ops)
    given = dict(zip(g.inputs.values(), inputs))
    for i, (o, t) in enumerate(zip(g.ops, g.args)):
        if o == "input":
            vals[i] = Value(given[i])
        elif o == "const":
            vals[i] = Value(float(g.attrs[i]["value"]))
        elif o == "add":
            vals[i] = vals[t[0]] + vals[t[1]]
        elif o == "sub":
            vals[i] = vals[t[0]] - vals[t[1]]
        elif o == "mul":
            vals[i] = vals[t[0]] * vals[t[1]]
        else:  # micrograd has no sin/cos/tanh on Value in every release: relu stands in (one unary node)
            vals[i] = vals[t[0]].relu()
    vals[out].backward()
    return vals


def torch_run(g: Graph, inputs: list[float], out: int):
    import torch

    vals: list = [None] * len(g.ops)
    given = dict(zip(g.inputs.values(), inputs))
    leaves = []
    for i, (o, t) in enumerate(zip(g.ops, g.args)):
        if o == "input":
            vals[i] = torch.tensor(given[i], dtype=torch.float64, requires_grad=True)
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
        elif o == "cos":
            vals[i] = torch.cos(vals[t[0]])
        else:
            vals[i] = torch.tanh(vals[t[0]])
    vals[out].backward()
    return leaves


# -- the MLP ------------------------------------------------------------------------------------

# X and T are data (`input data`): cgraph computes the gradients of the weights and biases only, as the
# hand-written baseline does
MLP_MSE = """input data X[256, 784], T[256, 10]
input W1[784, 512], b1[512], W2[512, 512], b2[512], W3[512, 10], b3[10]
h1 = relu(X @ W1 + b1)
h2 = relu(h1 @ W2 + b2)
o = h2 @ W3 + b3
loss = sum((o - T) * (o - T)) / 256
"""
MLP_CE = """input data X[256, 784], T[256, 10]
input W1[784, 512], b1[512], W2[512, 512], b2[512], W3[512, 10], b3[10]
h1 = relu(X @ W1 + b1)
h2 = relu(h1 @ W2 + b2)
o = h2 @ W3 + b3
loss = -sum(T * log(softmax(o, 1))) / 256
"""
MLP_NAMES = ("X", "T", "W1", "b1", "W2", "b2", "W3", "b3")
MLP_SHAPES = {"X": (256, 784), "T": (256, 10), "W1": (784, 512), "b1": (512,), "W2": (512, 512), "b2": (512,)}
MLP_SHAPES.update({"W3": (512, 10), "b3": (10,)})


def mlp_data(dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    d = {k: rng.standard_normal(s) * (0.05 if k.startswith("W") else 1.0) for k, s in MLP_SHAPES.items()}
    d["T"] = np.eye(10)[rng.integers(0, 10, 256)]  # one-hot targets (also fine for the squared error)
    return {k: v.astype(dtype) for k, v in d.items()}


def mlp_numpy(variant, X, T, W1, b1, W2, b2, W3, b3):
    """Hand-written forward and backward: the gradients of the weights and biases (X and T are data), in the
    order W1, b1, W2, b2, W3, b3."""
    z1 = X @ W1 + b1
    h1 = np.maximum(z1, 0)
    z2 = h1 @ W2 + b2
    h2 = np.maximum(z2, 0)
    o = h2 @ W3 + b3
    if variant == "mse":
        d = o - T
        loss = np.sum(d * d) / 256
        do = d * (2 / 256)
    else:
        m = o.max(axis=1, keepdims=True)
        e = np.exp(o - m)
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.sum(T * np.log(p)) / 256
        do = (p * T.sum(axis=1, keepdims=True) - T) / 256
    gW3 = h2.T @ do
    gb3 = do.sum(0)
    dz2 = (do @ W3.T) * (z2 > 0)
    gW2 = h1.T @ dz2
    gb2 = dz2.sum(0)
    dz1 = (dz2 @ W2.T) * (z1 > 0)
    gW1 = X.T @ dz1
    gb1 = dz1.sum(0)
    return loss, (gW1, gb1, gW2, gb2, gW3, gb3)


# -- programs for the parser and the CLI ---------------------------------------------------------


def program_text(n: int, seed: int = 0) -> str:
    """n statements over the whole grammar: calls, powers, unary minus, tensor literals, indexing, defs.

    Every statement is contractive (values stay in [-3, 3]), so no size overflows to inf and the
    figures measure the normal path, not the non-finite replay."""
    rng = random.Random(seed)
    lines = ["input a = 0.5, b = -1.25, c = 2", "def f(u, v) = u * v * 0.25 + sin(u) - v / 2"]
    forms = [
        "x{k} = tanh(x{j} * 1.0001 + a)",
        "x{k} = sin(x{j}) - b ^ 2 / 4",
        "x{k} = f(tanh(x{j}), c) / (1 + abs(x{i}))",
        "x{k} = max(tanh(x{j}), x{i} * 0.5, -0.5) + 0.1 * tanh(x{j})",
        "x{k} = tanh(sum([x{j}, x{i}, 1.5e-3] * [1, 2, 3])) # a comment",
        "x{k} = tanh(-x{j} + [x{i}, a][1] - relu(x{j} - x{i}))",
    ]
    lines.append("x0 = a + b * c")
    for k in range(1, n - 2):
        lines.append(rng.choice(forms).format(k=k, j=k - 1, i=rng.randrange(max(k - 50, 0), k)))
    return "\n".join(lines) + "\n"
