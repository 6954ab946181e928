"""The fast strategies for graphs of float64 scalars: a Python-float loop and level-batched numpy."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cgraph_cli.engine.reference import Result, check_scalar_output
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import LEAF_OPS, OPS, Kernel, Op

# A graph whose average level holds at least this many nodes runs level-batched.
WIDE = 48

# -- scalar graphs ---------------------------------------------------------------------------------------------------
#
# The Python float loop runs each op by its record's kernel (:class:`cgraph_cli.ops.Kernel`); the level-batched
# strategy runs each op's row form (:class:`cgraph_cli.ops.Rows`) on 1-D arrays, one scalar per node.

LEAF = 0  # not an op: an input or a constant (every op's Kernel is at least 1)
# the Kernel codes as plain ints (an IntEnum member's .value and comparisons are slow in a loop)
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


class Back(enum.IntEnum):
    """What a node passes on in the backward float loop: its kernel, and for a binary kernel which
    operands need a gradient (``_LHS``: operand 0 only, ``_RHS``: operand 1 only, else both)."""

    NONE = 0  # nothing: a leaf, or no operand needs a gradient
    ID = 1
    ADD = 2
    ADD_LHS = 3
    ADD_RHS = 4
    SUB = 5
    SUB_LHS = 6
    SUB_RHS = 7
    MUL = 8
    MUL_LHS = 9
    MUL_RHS = 10
    DIV = 11
    DIV_LHS = 12
    DIV_RHS = 13
    NEG = 14
    SIN = 15
    COS = 16
    SQRT = 17
    ABS = 18
    SQUARE = 19
    RELU = 20
    NP1 = 21
    NP = 22


_NAN = float("nan")


def _sign(a: float) -> float:
    return 1.0 if a > 0 else (-1.0 if a < 0 else (0.0 if a == 0 else _NAN))


# binary kernel -> Back codes (both operands, operand 0 only, operand 1 only), as plain ints
_BINARY_BACK = {
    ADD: (Back.ADD.value, Back.ADD_LHS.value, Back.ADD_RHS.value),
    SUB: (Back.SUB.value, Back.SUB_LHS.value, Back.SUB_RHS.value),
    MUL: (Back.MUL.value, Back.MUL_LHS.value, Back.MUL_RHS.value),
    DIV: (Back.DIV.value, Back.DIV_LHS.value, Back.DIV_RHS.value),
}
_UNARY_BACK = {
    ID: Back.ID.value,
    NEG: Back.NEG.value,
    SIN: Back.SIN.value,
    COS: Back.COS.value,
    SQRT: Back.SQRT.value,
    ABS: Back.ABS.value,
    SQUARE: Back.SQUARE.value,
    RELU: Back.RELU.value,
    NP1: Back.NP1.value,
}
_BACK_NONE, _BACK_NP = Back.NONE.value, Back.NP.value


def _backward_kernels(kernel: list[int], a0: list[int], a1: list[int], need: list[bool]) -> list[int]:
    """Each node's :class:`Back` code (as a plain int, for the loop's comparisons)."""
    out = [_BACK_NONE] * len(kernel)
    for i, (c, a, b) in enumerate(zip(kernel, a0, a1)):
        if c == LEAF or not need[i]:
            continue
        if c == NP:
            out[i] = _BACK_NP
        elif c in _BINARY_BACK:
            both, lhs, rhs = _BINARY_BACK[c]
            na, nb = need[a], need[b]
            out[i] = both if (na and nb) else (lhs if na else (rhs if nb else _BACK_NONE))
        elif need[a]:
            out[i] = _UNARY_BACK[c]
    return out


class Unary(NamedTuple):
    """An ``NP1`` node's functions: its record's forward and VJP, called on numpy float64 scalars."""

    fwd: Callable[..., Any]
    vjp: Callable[..., Any]


class OpCall(NamedTuple):
    """An ``NP`` node: its record and attributes, run through the record's generic functions."""

    op: Op
    attrs: dict


class ScalarCode(NamedTuple):
    """A scalar graph compiled for the Python float loop: parallel lists, one entry per node."""

    kernel: list[int]  # the forward Kernel code, LEAF for an input or a constant
    back: list[int]  # the Back code
    a0: list[int]  # the first operand (0 when there is none)
    a1: list[int]  # the last operand (the first again for one operand)
    extra: list[Unary | OpCall | None]  # for an NP1 or NP node
    arity: list[int]
    need: list[bool]  # whether the node depends on an input
    leaves: list[int]  # the inputs and constants, in order


class Operands(NamedTuple):
    """The graph's shape as arrays, for the level-batched strategy."""

    names: list[str]  # the op names present, sorted
    opid: np.ndarray  # each node's op, as an index into names
    arity: np.ndarray
    a0: np.ndarray  # first operand, -1 when absent
    a1: np.ndarray  # second operand, -1 when absent


class LevelGroup(NamedTuple):
    """The nodes of one op at one level: evaluated by one call of the op's row form."""

    level: int
    op: str
    arity: int
    nodes: np.ndarray  # in increasing order
    a0: np.ndarray  # their first operands
    a1: np.ndarray | None  # their second operands (None for one operand)


class Edges(NamedTuple):
    """Every edge (consumer, operand slot, target), sorted by target, then consumer in decreasing order, then slot:
    the order in which the generic loop adds the contributions to a target's gradient."""

    consumer: np.ndarray
    slot: np.ndarray
    target: np.ndarray
    index: np.ndarray  # (n, 2): the edge of (consumer, slot), -1 when absent
    by_level: np.ndarray  # edge numbers ordered by their target's level (stable)
    level_start: np.ndarray  # by_level[level_start[L]:level_start[L + 1]] are the edges into level L


class LevelPlan(NamedTuple):
    depth: np.ndarray  # each node's level: the longest path from a leaf
    groups: list[LevelGroup]  # in increasing level
    groups_at: dict[int, list[LevelGroup]]  # by level
    edges: Edges


class ScalarPlan:
    """A scalar float64 graph compiled for the fast strategies (cached in ``Graph.derived``)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.n = len(g.ops)
        self.code = self._compile_scalar()  # one pass over the nodes: kernels, operands, which need a gradient
        self.need = self.code.need
        self.leaves = self.code.leaves
        self._operands: Operands | None = None
        self._levels: LevelPlan | None = None
        self._depth: np.ndarray | None = None
        self._narrow = False  # found too deep for level batching
        self._need_array: np.ndarray | None = None

    def need_array(self) -> np.ndarray:
        if self._need_array is None:
            self._need_array = np.array(self.need, dtype=bool)
        return self._need_array

    # -- shape of the graph ---------------------------------------------------------------------------------------
    def operands(self) -> Operands:
        if self._operands is None:
            g = self.g
            names = sorted(set(g.ops))
            code = {name: k for k, name in enumerate(names)}
            opid = np.array([code[o] for o in g.ops], dtype=np.int32)
            arity = np.array(self.code.arity, dtype=np.int32)
            a0 = np.array(self.code.a0, dtype=np.int64)
            a1 = np.array(self.code.a1, dtype=np.int64)
            a0[arity < 1] = -1
            a1[arity < 2] = -1
            self._operands = Operands(names, opid, arity, a0, a1)
        return self._operands

    def batchable(self) -> bool:
        """Whether every op has at most two operands (the level-batched strategy's edge tables)."""
        return int(self.operands().arity.max(initial=0)) <= 2

    def wide(self, out: int) -> bool:
        """Whether the graph is wide enough for level batching (its levels are found on the way)."""
        if self.n < 4 * WIDE or not self.batchable() or self._narrow:
            return False
        wide = self.depths(give_up=True) is not None
        self._narrow = not wide
        return wide

    def depths(self, give_up: bool = False) -> np.ndarray | None:
        """Each node's level (longest path from a leaf), by Kahn's algorithm one level at a time.

        With ``give_up``, stop (return None) once the levels seen so far hold fewer than WIDE nodes on
        average: the graph is deep and the Python float loop suits it better.
        """
        if self._depth is not None:
            return self._depth
        ops = self.operands()
        a0, a1 = ops.a0, ops.a1
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
    def _compile_scalar(self) -> ScalarCode:
        g = self.g
        n = self.n
        kernel = [LEAF] * n
        a0 = [0] * n
        a1 = [0] * n
        arity = [0] * n
        need = [False] * n
        leaves = []
        extra: list[Unary | OpCall | None] = [None] * n
        kernels = {name: spec.kernel.value for name, spec in OPS.items()}
        for i, (op, t, at) in enumerate(zip(g.ops, g.args, g.attrs)):
            if op in LEAF_OPS:
                leaves.append(i)
                need[i] = op == "input"
                continue
            c = kernel[i] = kernels[op]
            if c == NP1:  # one operand, numpy on the float
                spec = OPS[op]
                extra[i] = Unary(spec.fwd, spec.vjp_for(0))
            elif c == NP:
                extra[i] = OpCall(OPS[op], at or {})
            k = len(t)
            arity[i] = k
            if k:
                x = a0[i] = t[0]
                y = a1[i] = t[-1]
                need[i] = need[x] or need[y] or (k > 2 and any(need[j] for j in t))
        back = _backward_kernels(kernel, a0, a1, need)
        return ScalarCode(kernel, back, a0, a1, extra, arity, need, leaves)

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
        code = self.code
        kernel, A0, A1, extra = code.kernel, code.a0, code.a1, code.extra
        v = self.leaf_values(inputs)
        args = self.g.args
        sin, cos, sqrt = math.sin, math.cos, math.sqrt
        # the kernels as local ints: the loop compares each node's code with them
        leaf_, id_, add_, sub_, mul_, div_, neg_ = LEAF, ID, ADD, SUB, MUL, DIV, NEG
        sin_, cos_, sqrt_, abs_, square_, relu_, np1_ = SIN, COS, SQRT, ABS, SQUARE, RELU, NP1
        try:
            with np.errstate(all="ignore"):
                for i, c, a, b in zip(range(self.n), kernel, A0, A1):
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
                    elif c == np1_:  # a Unary
                        fwd, _ = extra[i]  # type: ignore[misc]
                        v[i] = float(fwd(v[a]))
                    else:  # NP: an OpCall
                        spec, at = extra[i]  # type: ignore[misc]
                        xs = [np.float64(v[j]) for j in args[i]]
                        v[i] = float(spec.fwd(*xs, **at))
                G = self._backward_scalar(v, out)
        except (ArithmeticError, ValueError):
            return None
        return self._result(inputs, out, v, G)

    def _backward_scalar(self, v: list[float], out: int) -> list[Any]:
        code = self.code
        back, A0, A1, extra, need = code.back, code.a0, code.a1, code.extra, code.need
        args = self.g.args
        G: list[Any] = [None] * self.n
        if not need[out]:
            return G
        G[out] = 1.0
        sin, cos = math.sin, math.cos
        backward_np = _backward_np
        # the Back codes as local ints
        b_none, b_id, b_neg, b_np = Back.NONE.value, Back.ID.value, Back.NEG.value, Back.NP.value
        b_add, b_add0, b_add1 = Back.ADD.value, Back.ADD_LHS.value, Back.ADD_RHS.value
        b_sub, b_sub0, b_sub1 = Back.SUB.value, Back.SUB_LHS.value, Back.SUB_RHS.value
        b_mul, b_mul0, b_mul1 = Back.MUL.value, Back.MUL_LHS.value, Back.MUL_RHS.value
        b_div, b_div0, b_div1 = Back.DIV.value, Back.DIV_LHS.value, Back.DIV_RHS.value
        b_sin, b_cos, b_sqrt, b_abs = Back.SIN.value, Back.COS.value, Back.SQRT.value, Back.ABS.value
        b_square, b_relu = Back.SQUARE.value, Back.RELU.value
        # operands' contributions go in operand order, consumers in decreasing order (as the generic loop adds them)
        for i, c, a, b in zip(range(out, -1, -1), back[out::-1], A0[out::-1], A1[out::-1]):
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
            elif c == b_np:  # any op, through its record on numpy scalars
                spec, at = extra[i]  # type: ignore[misc]
                backward_np(G, v, i, spec, at, np.float64(gi), args[i], need)
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
                else:  # Back.NP1: numpy on the float
                    _, vjp = extra[i]  # type: ignore[misc]
                    d = float(vjp(np.float64(gi), np.float64(v[i]), np.float64(v[a])))
                x = G[a]
                G[a] = d if x is None else x + d
        return G

    # -- level batching -----------------------------------------------------------------------------------------------
    def levels(self) -> LevelPlan:
        if self._levels is None:
            self._levels = self._compile_levels()
        return self._levels

    def _attr_variants(self) -> np.ndarray:
        """A number per node telling its attributes apart (0: none), so that a level group, which runs its op
        once with its first node's attributes, holds only nodes of equal attributes (norm's p, var's ddof)."""
        g = self.g
        variant = np.zeros(self.n, dtype=np.int64)
        seen: dict[str, int] = {}
        for i, (op, at) in enumerate(zip(g.ops, g.attrs)):
            if at and op not in LEAF_OPS:
                variant[i] = seen.setdefault(repr(sorted(at.items())), len(seen) + 1)
        return variant

    def _compile_levels(self) -> LevelPlan:
        ops = self.operands()
        names, opid, arity, a0, a1 = ops.names, ops.opid, ops.arity, ops.a0, ops.a1
        lvl = self.depths()
        assert lvl is not None
        n = self.n
        isleaf = np.isin(opid, [k for k, name in enumerate(names) if name in LEAF_OPS])
        nodes = np.nonzero(~isleaf)[0]
        variant = self._attr_variants()
        order = nodes[np.lexsort((variant[nodes], opid[nodes], lvl[nodes]))]
        key_l = lvl[order]
        key_o = opid[order]
        key_v = variant[order]
        cut = np.nonzero((np.diff(key_l) != 0) | (np.diff(key_o) != 0) | (np.diff(key_v) != 0))[0] + 1
        bounds = np.concatenate(([0], cut, [len(order)]))
        groups = []
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e == s:  # no operation nodes at all (a program of constants and inputs)
                continue
            idx = np.sort(order[s:e])
            k = int(arity[idx[0]])
            groups.append(
                LevelGroup(int(lvl[idx[0]]), names[opid[idx[0]]], k, idx, a0[idx], a1[idx] if k > 1 else None)
            )
        groups_at: dict[int, list[LevelGroup]] = {}
        for grp in groups:
            groups_at.setdefault(grp.level, []).append(grp)
        # edges (consumer i, operand slot k, target j) for the backward pass, sorted so that each target
        # receives its contributions in decreasing consumer order (as the generic loop adds them)
        ei = np.concatenate((np.nonzero(a0 >= 0)[0], np.nonzero(a1 >= 0)[0]))
        ek = np.concatenate((np.zeros(int((a0 >= 0).sum()), np.int64), np.ones(int((a1 >= 0).sum()), np.int64)))
        ej = np.where(ek == 0, a0[ei], a1[ei])
        eo = np.lexsort((ek, -ei, ej))  # by target, then consumer descending, then operand slot
        ei, ek, ej = ei[eo], ek[eo], ej[eo]
        elvl = lvl[ej]
        # each edge's position in the per-edge buffer of contributions, found from (consumer, slot)
        index = np.full((n, 2), -1, dtype=np.int64)
        index[ei, ek] = np.arange(len(ei))
        by_level = np.argsort(elvl, kind="stable")
        level_start = np.searchsorted(elvl[by_level], np.arange(int(lvl.max(initial=0)) + 2))
        return LevelPlan(lvl, groups, groups_at, Edges(ei, ek, ej, index, by_level, level_start))

    def run_levels(self, inputs: dict[str, Any], out: int) -> Result:
        plan = self.levels()
        g = self.g
        V = np.empty(self.n, dtype=np.float64)
        if self.leaves:
            V[self.leaves] = self.leaf_values_array(inputs)
        with np.errstate(all="ignore"):
            for grp in plan.groups:
                f = OPS[grp.op].row_fwd()
                at = _attrs_of(g, grp.nodes[0])
                V[grp.nodes] = f(V[grp.a0], V[grp.a1], **at) if grp.arity == 2 else f(V[grp.a0], **at)
            G, reached = self._backward_levels(V, out)
        return self._result_arrays(inputs, out, V, G, reached)

    def leaf_values_array(self, inputs: dict[str, Any]) -> np.ndarray:
        g = self.g
        return np.array(
            [float(g.attrs[i]["value"]) if g.ops[i] == "const" else float(inputs[g.names[i]]) for i in self.leaves],
            dtype=np.float64,
        )

    def _backward_levels(self, V: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
        """Gradients, and which nodes the output reached (the others' gradients are 0)."""
        plan = self.levels()
        edges = plan.edges
        n = self.n
        g = self.g
        need = self.need_array()
        G = np.zeros(n, dtype=np.float64)
        reached = np.zeros(n, dtype=bool)
        if not need[out]:
            return G, reached
        reached[out] = True
        G[out] = 1.0
        contrib = np.zeros(len(edges.consumer), dtype=np.float64)  # one slot per edge
        valid = np.zeros(len(edges.consumer), dtype=bool)
        # levels in decreasing order; before a level runs, its nodes' gradients are summed from their edges
        for L in range(int(plan.depth[out]), 0, -1):
            _gather(edges, L, G, reached, contrib, valid, need)
            for grp in plan.groups_at.get(L, ()):
                r = reached[grp.nodes]
                if not r.any():
                    continue
                ii = grp.nodes[r]
                gi = G[ii]
                ans = V[ii]
                xs = (V[grp.a0[r]], V[grp.a1[r]]) if grp.arity == 2 else (V[grp.a0[r]],)
                at = _attrs_of(g, ii[0])
                spec = OPS[grp.op]
                for k in range(grp.arity):
                    rule = spec.row_vjp(k)
                    if rule is None:
                        continue
                    pos = edges.index[ii, k]
                    d = rule(gi, ans, *xs, **at)
                    contrib[pos] = np.broadcast_to(d, ii.shape) if np.ndim(d) == 0 else d
                    valid[pos] = True
        _gather(edges, 0, G, reached, contrib, valid, need)
        return G, reached

    # -- results ----------------------------------------------------------------------------------------------------
    def _result(self, inputs, out, v: list[float], G: list[Any]) -> Result:
        """Values and gradients as numpy float64 scalars (so that arithmetic on them follows numpy's rules,
        as on the generic path's); leaves keep their given arrays; None where no gradient is defined."""
        g = self.g
        check_scalar_output(g, out, ())
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

    def _result_arrays(self, inputs, out, V: np.ndarray, G: np.ndarray, reached: np.ndarray) -> Result:
        g = self.g
        n = self.n
        check_scalar_output(g, out, ())
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


def _backward_np(G: list[Any], v: list[float], i: int, spec: Op, at: dict, gg: Any, args, need) -> None:
    """Pass node ``i``'s gradient ``gg`` to its operands by its record's VJPs on numpy scalars."""
    ans = np.float64(v[i])
    xs = [np.float64(v[j]) for j in args]
    if spec.vjp_many is not None:  # max/min of n operands: one linear pass
        ks = [k for k, j in enumerate(args) if need[j]]
        ds = list(zip(ks, spec.vjps(ks, gg, ans, xs, at)))
    else:
        ds = []
        for k, j in enumerate(args):
            rule = spec.vjp_for(k) if need[j] else None
            if rule is not None:
                ds.append((k, rule(gg, ans, *xs, **at)))
    for k, d in ds:
        if d is None:
            continue
        j = args[k]
        d = float(d)
        x = G[j]
        G[j] = d if x is None else x + d


def _gather(edges: Edges, L: int, G, reached, contrib, valid, need) -> None:
    """Sum the contributions along the edges into level ``L``'s nodes: the first one assigned (keeping -0.0
    as the generic path does), the others added in the edges' order."""
    if L + 1 >= len(edges.level_start):
        return
    sel = edges.by_level[edges.level_start[L] : edges.level_start[L + 1]]  # (target, consumer desc) order
    if len(sel) == 0:
        return
    sel = sel[valid[sel] & need[edges.target[sel]]]
    if len(sel) == 0:
        return
    tj = edges.target[sel]
    c = contrib[sel]
    first = np.ones(len(sel), dtype=bool)
    first[1:] = tj[1:] != tj[:-1]
    G[tj[first]] = c[first]
    rest = ~first
    if rest.any():
        np.add.at(G, tj[rest], c[rest])
    reached[tj] = True


def _attrs_of(g: Graph, i) -> dict:
    return g.attrs[int(i)] or {}


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
