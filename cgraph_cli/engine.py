"""Forward and backward passes: plain loops over the node list, never recursion.

The backward pass is reverse-mode autodiff: each node's gradient
``∂out/∂node`` is the sum over its successors of the successor's gradient
times the local derivative, accumulated on write as successors are visited in
reverse topological order.

:func:`evaluate` picks one of three strategies that give the same numbers:

- ``generic``: one numpy call per node (any shapes; the reference);
- ``scalar``: every node a float64 scalar and the graph narrow (chains, running
  sums): a tight loop over Python floats with small per-op kernels;
- ``levels``: every node a float64 scalar and the graph wide: nodes grouped by
  (depth, op) and each group evaluated with one numpy call over index arrays.

The fast strategies are exact: the same IEEE operations as the generic path in
the same order (operands' gradients are accumulated in decreasing order of the
consumer, as the generic loop does), and Python's ``math`` is used only where
it agrees bit for bit with numpy; everything else calls numpy on the scalar.
A Python float exception (division by zero, a math domain error) makes the
scalar loop hand the graph to a numpy strategy, which follows numpy's rules.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cgraph_cli.errors import CgraphError
from cgraph_cli.fmt import fmt_shape
from cgraph_cli.ir import Graph
from cgraph_cli.ops import LEAF_OPS, OPS, Kernel, unbroadcast

STRATEGIES = ("auto", "generic", "scalar", "levels")
# A graph whose average level holds at least this many nodes runs level-batched.
WIDE = 48


def forward(g: Graph, inputs: dict[str, np.ndarray], upto: int | None = None, *, rows: bool = False) -> list[Any]:
    """Every node's value, in topological order (nodes after ``upto`` are skipped).

    With ``rows``, every value is a 1-D array holding one scalar per row and each op runs in its
    row form (:class:`cgraph_cli.ops.Rows`): ``eval --batch``."""
    n = len(g.ops) if upto is None else upto + 1
    vals: list[Any] = [None] * n
    with np.errstate(all="ignore"):
        for i, (op, args, attrs, name) in enumerate(zip(g.ops[:n], g.args, g.attrs, g.names)):
            if op == "const":
                vals[i] = attrs["value"]  # type: ignore[index]
            elif op == "input":
                vals[i] = inputs[name]  # type: ignore[index]
            else:
                spec = OPS[op]
                f = spec.row_fwd() if rows else spec.fwd
                vals[i] = f(*[vals[j] for j in args], **(attrs or {}))
    return vals


def backward(g: Graph, vals: list[Any], out: int, *, rows: bool = False) -> list[Any]:
    """``∂out/∂node`` for every node that depends on an input (None elsewhere).

    Reverse topological order; each node passes ``g · ∂node/∂operand`` (its op's VJPs) to every
    operand that needs a gradient, where it is summed: the chain rule over the successors."""
    need = g.needs_grad()
    grads: list[Any] = [None] * len(g.ops)
    if not need[out]:
        return _zero_grads(g, need, grads)
    grads[out] = np.ones_like(vals[out])
    with np.errstate(all="ignore"):
        for i in range(out, -1, -1):
            op, args, gi = g.ops[i], g.args[i], grads[i]
            if gi is None or op in LEAF_OPS:
                continue
            ks = [k for k, j in enumerate(args) if need[j]]
            xs = [vals[j] for j in args]
            for k, gk in zip(ks, OPS[op].vjps(ks, gi, vals[i], xs, g.attrs[i], rows=rows)):
                if gk is not None:
                    j = args[k]
                    gk = unbroadcast(gk, np.shape(vals[j]), op)
                    grads[j] = gk if grads[j] is None else grads[j] + gk
    return _zero_grads(g, need, grads, vals)


def _zero_grads(g: Graph, need: list[bool], grads: list[Any], vals: list[Any] | None = None) -> list[Any]:
    """Nodes that depend on an input but do not reach the output have gradient 0."""
    for i, nd in enumerate(need):
        if nd and grads[i] is None:
            shape = np.shape(vals[i]) if vals is not None and i < len(vals) else (g.shapes[i] or ())
            grads[i] = np.zeros(shape, dtype=g.dtype)
    return grads


@dataclass
class Result:
    graph: Graph
    values: list[Any]
    grads: list[Any]
    out: int  # the differentiated output node
    inputs: dict[str, np.ndarray]
    nonfinite: list[tuple[str, int]]  # ("forward"|"backward", node) first occurrences


def _all_finite(v: Any) -> bool:
    if np.size(v) > 64:  # one fast reduction: a finite sum means every entry is finite (inf/NaN propagate)
        with np.errstate(all="ignore"):
            if np.isfinite(np.sum(v)):
                return True
    return bool(np.all(np.isfinite(v)))


def first_nonfinite(items: list[Any], order) -> int | None:
    for i in order:
        v = items[i]
        if v is None:
            continue
        if not _all_finite(v):
            return i
    return None


def _check_scalar_output(g: Graph, out: int, shape: tuple) -> None:
    if int(np.prod(shape, dtype=np.int64)) != 1:
        name = g.label(out)
        raise CgraphError(
            f"output '{name}' has shape {fmt_shape(shape)}; only a scalar can be differentiated",
            g.spans[out],
            hint=f"differentiate a scalar such as sum({name}) or mean({name})",
            source=g.source,
        )


def evaluate(g: Graph, inputs: dict[str, np.ndarray], out: int | None = None, *, strategy: str | None = None) -> Result:
    """Forward and backward pass; the output must be a scalar (one element).

    ``strategy`` forces one of :data:`STRATEGIES` (default: ``$CGRAPH_ENGINE`` or ``auto``);
    a fast strategy that does not apply to the graph falls back to the generic one.
    """
    out = g.output if out is None else out
    strategy = strategy or os.environ.get("CGRAPH_ENGINE") or "auto"
    if strategy not in STRATEGIES:
        raise CgraphError(f"unknown engine strategy '{strategy}' (one of: {', '.join(STRATEGIES)})")
    if strategy != "generic":
        plan = scalar_plan(g, inputs)
        if plan is not None:
            kind = strategy
            if kind == "auto":
                kind = "levels" if plan.wide(out) else "scalar"
            res = None
            if kind == "scalar":
                res = plan.run_scalar(inputs, out)
                if res is not None:
                    return res
                # a Python float exception (x / 0, math domain): numpy's rules apply
                if strategy == "scalar" or not plan.wide(out):
                    kind = "generic"
            if kind == "levels" and plan.arrays()[2].max(initial=0) <= 2:
                return plan.run_levels(inputs, out)
    vals = forward(g, inputs)
    _check_scalar_output(g, out, np.shape(vals[out]))
    grads = backward(g, vals, out)
    bad: list[tuple[str, int]] = []
    fi = first_nonfinite(vals, range(len(vals)))
    if fi is not None:
        bad.append(("forward", fi))
    bi = first_nonfinite(grads, range(len(grads) - 1, -1, -1))
    if bi is not None:
        bad.append(("backward", bi))
    return Result(g, vals, grads, out, inputs, bad)


# -- scalar graphs ---------------------------------------------------------------------------------------------------
#
# The Python float loop runs each op by its record's kernel (:class:`cgraph_cli.ops.Kernel`); the level-batched
# strategy runs each op's row form (:class:`cgraph_cli.ops.Rows`) on 1-D arrays, one scalar per node.

LEAF = 0  # not an op: an input or a constant
ID, ADD, SUB, MUL, DIV, NEG = (
    Kernel.ID.value,
    Kernel.ADD.value,
    Kernel.SUB.value,
    Kernel.MUL.value,
    Kernel.DIV.value,
    Kernel.NEG.value,
)
SIN, COS, SQRT, ABS, SQUARE = (
    Kernel.SIN.value,
    Kernel.COS.value,
    Kernel.SQRT.value,
    Kernel.ABS.value,
    Kernel.SQUARE.value,
)
RELU, NP1, NP = Kernel.RELU.value, Kernel.NP1.value, Kernel.NP.value
# backward codes: binary kernels split by which operands need a gradient
(B_NONE, B_ID, B_ADD, B_ADD0, B_ADD1, B_SUB, B_SUB0, B_SUB1, B_MUL, B_MUL0, B_MUL1, B_DIV, B_DIV0, B_DIV1) = range(14)
(B_NEG, B_SIN, B_COS, B_SQRT, B_ABS, B_SQUARE, B_RELU, B_NP1, B_NP) = range(14, 23)
_NAN = float("nan")


def _sign(a: float) -> float:
    return 1.0 if a > 0 else (-1.0 if a < 0 else (0.0 if a == 0 else _NAN))


_BINARY_BCODES = {
    ADD: (B_ADD, B_ADD0, B_ADD1),
    SUB: (B_SUB, B_SUB0, B_SUB1),
    MUL: (B_MUL, B_MUL0, B_MUL1),
    DIV: (B_DIV, B_DIV0, B_DIV1),
}
_UNARY_BCODES = {
    ID: B_ID,
    NEG: B_NEG,
    SIN: B_SIN,
    COS: B_COS,
    SQRT: B_SQRT,
    ABS: B_ABS,
    SQUARE: B_SQUARE,
    RELU: B_RELU,
    NP1: B_NP1,
}


def _backward_codes(codes: list[int], a0: list[int], a1: list[int], need: list[bool]) -> list[int]:
    """Backward op codes: 0 = nothing to pass on; binary ops split by which operands need a gradient."""
    out = [0] * len(codes)
    for i, (c, a, b) in enumerate(zip(codes, a0, a1)):
        if c == LEAF or not need[i]:
            continue
        if c == NP:
            out[i] = B_NP
        elif c in _BINARY_BCODES:
            both, first, second = _BINARY_BCODES[c]
            na, nb = need[a], need[b]
            out[i] = both if (na and nb) else (first if na else (second if nb else 0))
        elif need[a]:
            out[i] = _UNARY_BCODES[c]
    return out


class ScalarPlan:
    """A scalar float64 graph compiled for the fast strategies (cached on the Graph)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.n = len(g.ops)
        self._levels: Any = None
        self._code: Any = None
        self._compile_scalar()  # one pass over the nodes: op codes, operands, which nodes need a gradient

    def need_array(self) -> np.ndarray:
        arr = getattr(self, "_need_arr", None)
        if arr is None:
            arr = self._need_arr = np.array(self.need, dtype=bool)
        return arr

    # -- shape of the graph ---------------------------------------------------------------------------------------
    def arrays(self):
        """Operands as arrays: op names, op ids, arity, a0, a1 (-1 when absent)."""
        if self._levels is None:
            g = self.g
            names = sorted(set(g.ops))
            code = {name: k for k, name in enumerate(names)}
            opid = np.array([code[o] for o in g.ops], dtype=np.int32)
            ar = np.array(self._arity, dtype=np.int32)
            a0 = np.array(self._code[1], dtype=np.int64)
            a1 = np.array(self._code[2], dtype=np.int64)
            a0[ar < 1] = -1
            a1[ar < 2] = -1
            self._levels = (names, opid, ar, a0, a1)
        return self._levels

    def wide(self, out: int) -> bool:
        """Whether the graph is wide enough for level batching (its levels are found on the way)."""
        names, opid, ar, a0, a1 = self.arrays()
        if self.n < 4 * WIDE or ar.max(initial=0) > 2:
            return False
        if getattr(self, "_narrow", False):
            return False
        wide = self.depths(give_up=True) is not None
        self._narrow = not wide
        return wide

    def depths(self, give_up: bool = False):
        """Each node's level (longest path from a leaf), by Kahn's algorithm one level at a time.

        With ``give_up``, stop (return None) once the levels seen so far hold fewer than WIDE nodes on
        average: the graph is deep and the Python float loop suits it better.
        """
        cached = getattr(self, "_depth", None)
        if cached is not None:
            return cached
        names, opid, ar, a0, a1 = self.arrays()
        n = self.n
        src = np.concatenate((np.nonzero(a0 >= 0)[0], np.nonzero(a1 >= 0)[0]))
        tgt = np.concatenate((a0[a0 >= 0], a1[a1 >= 0]))
        order = np.argsort(tgt, kind="stable")
        cons = src[order]
        start = np.searchsorted(tgt[order], np.arange(n + 1))
        indeg = (a0 >= 0).astype(np.int64) + (a1 >= 0)
        lvl = np.zeros(n, dtype=np.int64)
        frontier = np.nonzero(indeg == 0)[0]
        level = 0
        done = 0
        while frontier.size:
            lvl[frontier] = level
            done += frontier.size
            s = start[frontier]
            cnt = start[frontier + 1] - s
            total = int(cnt.sum())
            if total == 0:
                break
            offs = np.repeat(s - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
            c = cons[offs]
            np.subtract.at(indeg, c, 1)
            c = c[indeg[c] == 0]
            frontier = np.unique(c)
            level += 1
            if give_up and level >= 8 and done < WIDE * level:
                return None
        self._depth = lvl
        return lvl

    # -- the Python float loop --------------------------------------------------------------------------------------
    def _compile_scalar(self):
        if self._code is None:
            g = self.g
            n = self.n
            codes = [LEAF] * n
            a0 = [0] * n
            a1 = [0] * n
            arity = [0] * n
            need = [False] * n
            leaves = []
            extra: list[Any] = [None] * n
            kernels = {name: spec.kernel.value for name, spec in OPS.items()}
            for i, (op, t, at) in enumerate(zip(g.ops, g.args, g.attrs)):
                if op in LEAF_OPS:
                    leaves.append(i)
                    need[i] = op == "input"
                    continue
                c = codes[i] = kernels[op]
                if c == NP1:  # one operand, numpy on the float
                    spec = OPS[op]
                    extra[i] = (spec.fwd, spec.vjp_for(0))
                elif c == NP:
                    extra[i] = (OPS[op], at or {})
                k = len(t)
                arity[i] = k
                if k:
                    x = a0[i] = t[0]
                    y = a1[i] = t[-1]
                    need[i] = need[x] or need[y] or (k > 2 and any(need[j] for j in t))
            self._code = (codes, a0, a1, extra)
            self._bcodes = _backward_codes(codes, a0, a1, need)
            self._arity = arity
            self.need = need
            self.leaves = leaves
        return self._code

    def leaf_values(self, inputs: dict[str, Any]) -> list[float]:
        g = self.g
        v = [0.0] * self.n
        for i in self.leaves:
            if g.ops[i] == "const":
                v[i] = float(g.attrs[i]["value"])  # type: ignore[index]
            else:
                v[i] = float(inputs[g.names[i]])  # type: ignore[index]
        return v

    def run_scalar(self, inputs: dict[str, Any], out: int) -> Result | None:
        codes, A0, A1, extra = self._compile_scalar()
        v = self.leaf_values(inputs)
        g = self.g
        sin, cos, sqrt = math.sin, math.cos, math.sqrt
        # the kernels as locals: the loop compares each node's code with them
        leaf_, id_, add_, sub_, mul_, div_, neg_ = LEAF, ID, ADD, SUB, MUL, DIV, NEG
        sin_, cos_, sqrt_, abs_, square_, relu_, np1_ = SIN, COS, SQRT, ABS, SQUARE, RELU, NP1
        try:
            with np.errstate(all="ignore"):
                for i, c, a, b in zip(range(self.n), codes, A0, A1):
                    if c == leaf_:
                        continue
                    if c == mul_:
                        v[i] = v[a] * v[b]
                    elif c == add_:
                        v[i] = v[a] + v[b]
                    elif c == sub_:
                        v[i] = v[a] - v[b]
                    elif c == sin_:
                        v[i] = sin(v[a])
                    elif c == id_:
                        v[i] = v[a]
                    elif c == div_:
                        v[i] = v[a] / v[b]
                    elif c == neg_:
                        v[i] = -v[a]
                    elif c == cos_:
                        v[i] = cos(v[a])
                    elif c == sqrt_:
                        v[i] = sqrt(v[a])
                    elif c == abs_:
                        v[i] = abs(v[a])
                    elif c == square_:
                        x = v[a]
                        v[i] = x * x
                    elif c == relu_:
                        x = v[a]
                        v[i] = x if (x > 0.0 or x != x) else 0.0
                    elif c == np1_:
                        v[i] = float(extra[i][0](v[a]))
                    else:
                        spec, at = extra[i]
                        xs = [np.float64(v[j]) for j in g.args[i]]
                        v[i] = float(spec.fwd(*xs, **at))
                G = self._backward_scalar(v, out)
        except (ArithmeticError, ValueError):
            return None
        return self._result(inputs, out, v, G)

    def _backward_scalar(self, v: list[float], out: int) -> list[Any]:
        codes, A0, A1, extra = self._compile_scalar()
        bcodes = self._bcodes
        need = self.need
        g = self.g
        G: list[Any] = [None] * self.n
        if not need[out]:
            return G
        G[out] = 1.0
        sin, cos = math.sin, math.cos
        b_none, b_id, b_add, b_add0, b_add1, b_sub, b_sub0, b_sub1 = (
            B_NONE,
            B_ID,
            B_ADD,
            B_ADD0,
            B_ADD1,
            B_SUB,
            B_SUB0,
            B_SUB1,
        )
        b_mul, b_mul0, b_mul1, b_div, b_div0, b_div1 = B_MUL, B_MUL0, B_MUL1, B_DIV, B_DIV0, B_DIV1
        b_neg, b_sin, b_cos, b_sqrt, b_abs, b_square, b_relu, b_np = (
            B_NEG,
            B_SIN,
            B_COS,
            B_SQRT,
            B_ABS,
            B_SQUARE,
            B_RELU,
            B_NP,
        )
        # bcodes (see _backward_codes) fold in which operands need a gradient; contributions go in operand order
        for i, c, a, b in zip(range(out, -1, -1), bcodes[out::-1], A0[out::-1], A1[out::-1]):
            if c == b_none:
                continue
            gi = G[i]
            if gi is None:
                continue
            if c == b_mul:  # mul, both operands
                x = G[a]
                d = gi * v[b]
                G[a] = d if x is None else x + d
                x = G[b]
                d = gi * v[a]
                G[b] = d if x is None else x + d
            elif c == b_mul0:  # mul, operand 0
                x = G[a]
                d = gi * v[b]
                G[a] = d if x is None else x + d
            elif c == b_mul1:  # mul, operand 1
                x = G[b]
                d = gi * v[a]
                G[b] = d if x is None else x + d
            elif c == b_add:  # add, both
                x = G[a]
                G[a] = gi if x is None else x + gi
                x = G[b]
                G[b] = gi if x is None else x + gi
            elif c == b_add0:
                x = G[a]
                G[a] = gi if x is None else x + gi
            elif c == b_add1:
                x = G[b]
                G[b] = gi if x is None else x + gi
            elif c == b_sin:  # sin
                x = G[a]
                d = gi * cos(v[a])
                G[a] = d if x is None else x + d
            elif c == b_sub:  # sub, both
                x = G[a]
                G[a] = gi if x is None else x + gi
                x = G[b]
                d = -gi
                G[b] = d if x is None else x + d
            elif c == b_sub0:
                x = G[a]
                G[a] = gi if x is None else x + gi
            elif c == b_sub1:
                x = G[b]
                d = -gi
                G[b] = d if x is None else x + d
            elif c == b_div or c == b_div0 or c == b_div1:  # div
                if c != b_div1:
                    x = G[a]
                    d = gi / v[b]
                    G[a] = d if x is None else x + d
                if c != b_div0:
                    x = G[b]
                    vb = v[b]
                    d = -gi * v[a] / (vb * vb)
                    G[b] = d if x is None else x + d
            elif c == b_np:  # any op, through the op table on numpy scalars
                spec, at = extra[i]
                ans = np.float64(v[i])
                xs = [np.float64(v[j]) for j in g.args[i]]
                gg = np.float64(gi)
                if spec.vjp_many is not None:  # max/min of n operands: one linear pass
                    ks = [kk for kk, j in enumerate(g.args[i]) if need[j]]
                    for kk, dd in zip(ks, spec.vjps(ks, gg, ans, xs, at)):
                        if dd is None:
                            continue
                        j = g.args[i][kk]
                        d = float(dd)
                        x = G[j]
                        G[j] = d if x is None else x + d
                    continue
                for kk, j in enumerate(g.args[i]):
                    if not need[j]:
                        continue
                    rule = spec.vjp_for(kk)
                    if rule is None:
                        continue
                    d = float(rule(gg, ans, *xs, **at))
                    x = G[j]
                    G[j] = d if x is None else x + d
            else:  # unary ops whose operand needs a gradient
                if c == b_id:
                    d = gi
                elif c == b_neg:
                    d = -gi
                elif c == b_cos:
                    d = -gi * sin(v[a])
                elif c == b_sqrt:
                    d = gi / (2 * v[i])
                elif c == b_abs:
                    d = gi * _sign(v[a])
                elif c == b_square:
                    d = 2 * gi * v[a]
                elif c == b_relu:
                    d = gi * (1.0 if v[a] > 0 else 0.0)
                else:  # b_np1: numpy on the float
                    d = float(extra[i][1](np.float64(gi), np.float64(v[i]), np.float64(v[a])))
                x = G[a]
                G[a] = d if x is None else x + d
        return G

    # -- level batching -----------------------------------------------------------------------------------------------
    def _compile_levels(self):
        cached = getattr(self, "_lv", None)
        if cached is not None:
            return cached
        names, opid, ar, a0, a1 = self.arrays()
        lvl = self.depths()
        n = self.n
        leaf_ops = {k for k, name in enumerate(names) if name in ("input", "const")}
        isleaf = np.isin(opid, list(leaf_ops))
        nodes = np.nonzero(~isleaf)[0]
        order = nodes[np.lexsort((opid[nodes], lvl[nodes]))]
        key_l = lvl[order]
        key_o = opid[order]
        cut = np.nonzero((np.diff(key_l) != 0) | (np.diff(key_o) != 0))[0] + 1
        bounds = np.concatenate(([0], cut, [len(order)]))
        groups = []
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e == s:  # no operation nodes at all (a program of constants and inputs)
                continue
            idx = np.sort(order[s:e])
            op = names[opid[idx[0]]]
            k = int(ar[idx[0]])
            groups.append((int(lvl[idx[0]]), op, k, idx, a0[idx], a1[idx] if k > 1 else None))
        # edges (consumer i, operand slot k, target j) for the backward pass, sorted so that each target
        # receives its contributions in decreasing consumer order (as the generic loop adds them)
        ei = np.concatenate((np.nonzero(a0 >= 0)[0], np.nonzero(a1 >= 0)[0]))
        ek = np.concatenate((np.zeros(int((a0 >= 0).sum()), np.int64), np.ones(int((a1 >= 0).sum()), np.int64)))
        ej = np.where(ek == 0, a0[ei], a1[ei])
        eo = np.lexsort((ek, -ei, ej))  # by target, then consumer descending, then operand slot
        ei, ek, ej = ei[eo], ek[eo], ej[eo]
        elvl = lvl[ej]
        # position of each edge's contribution in the per-edge buffer, found from (consumer, slot)
        slot = np.full((n, 2), -1, dtype=np.int64)
        slot[ei, ek] = np.arange(len(ei))
        by_level = np.argsort(elvl, kind="stable")
        lcut = np.searchsorted(elvl[by_level], np.arange(int(lvl.max(initial=0)) + 2))
        self._lv = (groups, ei, ek, ej, slot, by_level, lcut, lvl)
        return self._lv

    def run_levels(self, inputs: dict[str, Any], out: int) -> Result:
        groups, ei, ek, ej, slot, by_level, lcut, lvl = self._compile_levels()
        n = self.n
        g = self.g
        V = np.empty(n, dtype=np.float64)
        leaves = self.leaves
        if leaves:
            V[leaves] = self.leaf_values_array(inputs)
        with np.errstate(all="ignore"):
            for _, op, k, idx, b0, b1 in groups:
                f = OPS[op].row_fwd()
                at = _attrs_of(g, idx[0], op)
                V[idx] = f(V[b0], V[b1], **at) if k == 2 else f(V[b0], **at)
            G = self._backward_levels(V, out)
        return self._result_arrays(inputs, out, V, G)

    def leaf_values_array(self, inputs: dict[str, Any]) -> np.ndarray:
        g = self.g
        return np.array(
            [float(g.attrs[i]["value"]) if g.ops[i] == "const" else float(inputs[g.names[i]]) for i in self.leaves],
            dtype=np.float64,
        )

    def _backward_levels(self, V: np.ndarray, out: int):
        groups, ei, ek, ej, slot, by_level, lcut, lvl = self._compile_levels()
        n = self.n
        g = self.g
        need = self.need_array()
        G = np.zeros(n, dtype=np.float64)
        reached = np.zeros(n, dtype=bool)
        if not need[out]:
            return G, reached
        reached[out] = True
        G[out] = 1.0
        contrib = np.zeros(len(ei), dtype=np.float64)
        valid = np.zeros(len(ei), dtype=bool)
        top = int(lvl[out])
        # groups in decreasing level; before a level runs, its nodes' gradients are summed from their edges
        gi_by_level: dict[int, list] = {}
        for grp in groups:
            gi_by_level.setdefault(grp[0], []).append(grp)
        for L in range(top, 0, -1):
            self._gather(L, G, reached, contrib, valid, need, out)
            for _, op, k, idx, b0, b1 in gi_by_level.get(L, ()):
                r = reached[idx]
                if not r.any():
                    continue
                ii = idx[r]
                gi = G[ii]
                ans = V[ii]
                xs = (V[b0[r]], V[b1[r]]) if k == 2 else (V[b0[r]],)
                at = _attrs_of(g, ii[0], op)
                for kk in range(k):
                    rule = OPS[op].row_vjp(kk)
                    pos = slot[ii, kk]
                    if rule is None:
                        continue
                    d = rule(gi, ans, *xs, **at)
                    contrib[pos] = np.broadcast_to(d, ii.shape) if np.ndim(d) == 0 else d
                    valid[pos] = True
        self._gather(0, G, reached, contrib, valid, need, out)
        return G, reached

    def _gather(self, L, G, reached, contrib, valid, need, out):
        groups, ei, ek, ej, slot, by_level, lcut, lvl = self._compile_levels()
        if L + 1 >= len(lcut):
            return
        sel = by_level[lcut[L] : lcut[L + 1]]  # edges whose target is at level L, in (target, consumer desc) order
        if len(sel) == 0:
            return
        ok = valid[sel] & need[ej[sel]]
        sel = sel[ok]
        if len(sel) == 0:
            return
        tj = ej[sel]
        c = contrib[sel]
        first = np.ones(len(sel), dtype=bool)
        first[1:] = tj[1:] != tj[:-1]
        # the first contribution is assigned (keeps -0.0 as the generic path does), the rest added in order
        G[tj[first]] = c[first]
        rest = ~first
        if rest.any():
            np.add.at(G, tj[rest], c[rest])
        reached[tj] = True

    # -- results ----------------------------------------------------------------------------------------------------
    def _result(self, inputs, out, v: list[float], G: list[Any]) -> Result:
        """Values and gradients as numpy float64 scalars (so that arithmetic on them follows numpy's rules,
        as on the generic path's); leaves keep their given arrays; None where no gradient is defined."""
        g = self.g
        _check_scalar_output(g, out, ())
        need = self.need
        V = np.array(v, dtype=np.float64)
        Ga = np.array(G, dtype=np.float64)  # None -> NaN
        nones = G.count(None)
        if nones != need.count(False):  # a node that needs a gradient was not reached: 0
            for i in np.flatnonzero(np.isnan(Ga)).tolist():
                if G[i] is None and need[i]:
                    Ga[i] = 0.0
        bad: list[tuple[str, int]] = []
        fin = np.isfinite(V)
        if not fin.all():
            bad.append(("forward", int(np.argmin(fin))))
        values: list[Any] = list(V)
        grads: list[Any] = list(Ga)
        if nones:
            for i in np.flatnonzero(np.isnan(Ga)).tolist():
                if G[i] is None:
                    grads[i] = None
        gf = np.isfinite(Ga)
        if not gf.all():
            gf |= ~np.array(need, dtype=bool)
            if not gf.all():
                bad.append(("backward", int(self.n - 1 - np.argmin(gf[::-1]))))
        for i in self.leaves:
            values[i] = g.attrs[i]["value"] if g.ops[i] == "const" else inputs[g.names[i]]  # type: ignore[index]
        return Result(g, values, grads, out, inputs, bad)

    def _result_arrays(self, inputs, out, V: np.ndarray, GR) -> Result:
        G, reached = GR
        g = self.g
        n = self.n
        _check_scalar_output(g, out, ())
        need = self.need_array()
        values: list[Any] = list(V)
        for i in self.leaves:
            values[i] = g.attrs[i]["value"] if g.ops[i] == "const" else inputs[g.names[i]]  # type: ignore[index]
        G = np.where(reached, G, 0.0)
        grads: list[Any] = list(G)
        for i in np.nonzero(~need)[0].tolist():
            grads[i] = None
        bad: list[tuple[str, int]] = []
        fin = np.isfinite(V)
        if not fin.all():
            bad.append(("forward", int(np.argmin(fin))))
        gfin = np.isfinite(G) | ~need
        if not gfin.all():
            bad.append(("backward", int(n - 1 - np.argmin(gfin[::-1]))))
        return Result(g, values, grads, out, inputs, bad)


def _attrs_of(g: Graph, i, op: str) -> dict:
    a = g.attrs[int(i)]
    return a or {}


def _scalar_graph(g: Graph) -> bool:
    """Whether every node is a scalar of an op with a row form (an input's shape, unknown until it is
    bound, is checked then; an op's shape on scalar operands comes from its shape rule)."""
    for s, op, args, at in zip(g.shapes, g.ops, g.args, g.attrs):
        if s != () and s is not None:
            return False
        if op in LEAF_OPS:
            continue
        spec = OPS[op]
        if spec.rows is None:
            return False
        if s is None and not spec.elementwise:
            try:
                if spec.shape([()] * len(args), **(at or {})) != ():
                    return False
            except ValueError:
                return False
    return True


def scalar_plan(g: Graph, inputs: dict[str, Any]) -> ScalarPlan | None:
    """The graph's fast-path plan if every node is a float64 scalar, else None."""
    if g.dtype is not np.float64 and g.dtype != np.float64:
        return None
    plan = g.derived.get("scalar_plan")
    if plan is None:
        plan = g.derived["scalar_plan"] = ScalarPlan(g) if _scalar_graph(g) else False
    if plan is False:
        return None
    for name in g.inputs:
        v = inputs.get(name)
        if v is None or np.shape(v) != ():
            return None
    return plan
