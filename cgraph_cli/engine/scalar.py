"""The fast strategies for graphs of float64 scalars: a Python-float loop and level-batched numpy.

The float loop's plan is a few flat lists built once per graph (:class:`FloatCode`, kept in ``Graph.derived``)
and, per differentiated output, once more (:class:`BackCode`): the op nodes in order with their kernels and
operands, and the op nodes the backward pass visits, in decreasing order. The loops test nothing but the
kernel: the forward loop visits only op nodes (the leaves are bound before it), the backward loop only the
nodes that receive a gradient (found when the plan is built), and every gradient starts at ``-0.0``, the
identity of IEEE addition (``-0.0 + x`` is ``x`` bit for bit for every ``x``, ``-0.0`` and NaN included), so
adding every contribution gives exactly the reference's "the first one, then the sum with each next one".
Values and gradients come back as two float64 arrays; the per-node list of the :class:`Result` is made from them.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from itertools import compress, repeat
from operator import and_, attrgetter, eq, gt, itemgetter, not_
from typing import Any, NamedTuple

import numpy as np

from cgraph_cli.engine import compiled
from cgraph_cli.engine.compiled import FLOAT_VJP, Compiled, float_sign
from cgraph_cli.engine.reference import Result, all_finite, check_scalar_output, scan_plan
from cgraph_cli.ir.graph import Graph
from cgraph_cli.ops import LEAF_OPS, OPS, Kernel, Op, unbroadcast

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

_first, _last = itemgetter(0), itemgetter(-1)
_value = itemgetter("value")  # a constant's value, from its attributes
_shape = attrgetter("shape")


class Unary(NamedTuple):
    """An ``NP1`` node's functions: its record's forward and VJP (on numpy float64 scalars, or on the Python
    floats themselves when the record says its VJP is exact on them)."""

    fwd: Callable[..., Any]
    vjp: Callable[..., Any]


class OpCall(NamedTuple):
    """An ``NP`` node: its record and attributes, run through the record's generic functions, and the
    operands a gradient flows to (those with a VJP rule)."""

    op: Op
    attrs: dict
    grad_operands: tuple[int, ...]  # operand slots k whose VJP rule exists
    scalar: bool = True  # whether its value is a scalar (a Python float in the loop), else an array


class _Tables(NamedTuple):
    """From the op records (made again when an op is registered): each op's code in the loops (its Kernel code,
    FLOAT_VJP for an NP1 op whose VJP runs on the floats, LEAF for the leaves) and the NP1 ops' functions."""

    kernel: dict[str, int]
    unary: dict[str, Unary]
    np_ops: frozenset[str]  # the ops whose kernel is NP


_tables: list[Any] = [None, None]  # [the records (by identity), _Tables]


def _op_tables() -> _Tables:
    key = tuple(map(id, OPS.values()))
    if _tables[0] != key:
        kernel = {
            name: FLOAT_VJP if spec.kernel is Kernel.NP1 and spec.float_vjp else spec.kernel.value
            for name, spec in OPS.items()
        } | dict.fromkeys(LEAF_OPS, LEAF)
        unary = {name: Unary(spec.fwd, spec.vjp_for(0)) for name, spec in OPS.items() if spec.kernel is Kernel.NP1}
        np_ops = frozenset(name for name, code in kernel.items() if code == NP)
        _tables[:] = [key, _Tables(kernel, unary, np_ops)]
    return _tables[1]


class FloatCode(NamedTuple):
    """A scalar graph compiled for the Python float loop. The op nodes, in increasing order, as parallel lists
    (``nodes``, ``kernel``, ``a0``, ``a1``, ``aux``); the rest per node or per leaf."""

    nodes: list[int]  # the op nodes
    kernel: list[int]  # their Kernel codes (FLOAT_VJP: an NP1 node whose VJP runs on the floats)
    a0: list[int]  # their first operand
    a1: list[int]  # their last operand (the first again for one operand)
    aux: list[Unary | OpCall | None] | None  # an NP1 or NP node's functions (None: the graph has no such node)
    np_at: list[int]  # the positions of the NP nodes in these lists
    many: frozenset[int]  # the nodes of more than two operands (all NP)
    need: list[bool]  # per node: whether it depends on an input
    no_grad: list[int]  # the nodes that do not (their gradient is None)
    input_nodes: list[int]
    input_names: list[str]
    consts: list[int]  # the constant nodes
    init: list[Any]  # per node: a constant's value (a float; an array if a tensor), 0.0 elsewhere
    mixed: bool = False  # some nodes are tensors (see compile_floats)
    tensors: list[int] = []  # (mixed) the nodes whose value is an array


class BackCode(NamedTuple):
    """The backward pass to one output: the op nodes that receive a gradient, in decreasing order, as parallel
    lists, and the nodes that depend on an input but do not reach the output (their gradient is 0)."""

    nodes: list[int]
    kernel: list[int]
    a0: list[int]
    a1: list[int]
    aux: list[Unary | OpCall | None] | None
    unreached: list[int]


def compile_floats(g: Graph, mixed: bool = False) -> FloatCode:
    """The float loop's plan: a handful of passes over the node list, most of them in C (map, compress).

    ``mixed``: some nodes are tensors (every shape known): a node runs its kernel only if it and its operands
    are scalars, else it is an NP node whose value is the record's array (see :func:`_mixed_graph`)."""
    ops, args, attrs = g.ops, g.args, g.attrs
    n = len(ops)
    tables = _op_tables()
    kernel = list(map(tables.kernel.__getitem__, ops))
    nodes = list(compress(range(n), kernel))
    kern = list(compress(kernel, kernel))
    # (no list of the op nodes' operand tuples, nor of their op names: on a machine where fresh memory is slow to
    # touch, each list of the op nodes costs as much as a pass)
    a0 = list(map(_first, compress(args, kernel)))
    a1 = list(map(_last, compress(args, kernel)))
    present = set(ops)
    # (mixed) the nodes not scalars: a shape is a tuple, and only a scalar's, (), is false (every shape is known)
    tensors = list(compress(range(n), g.shapes)) if mixed else []
    tensor = set(tensors)
    if mixed:  # a node that is or takes a tensor: NP
        scalar = np.ones(n, dtype=bool)
        scalar[tensors] = False
        at = [np.fromiter(ix, dtype=np.intp, count=len(nodes)) for ix in (nodes, a0, a1)]
        for k in np.flatnonzero(~(scalar[at[0]] & scalar[at[1]] & scalar[at[2]])).tolist():
            kern[k] = NP  # (a node of more than two operands is NP already)
    aux: list[Unary | OpCall | None] | None = None
    if not present.isdisjoint(tables.unary):  # the NP1 nodes' functions, from their records (shared by an op's nodes)
        aux = list(map(tables.unary.get, compress(ops, kernel)))
    has_np = mixed or not present.isdisjoint(tables.np_ops)  # (without a scan of the kernels)
    np_at = list(compress(range(len(kern)), map(eq, kern, repeat(NP)))) if has_np else []
    many = set()
    calls: dict[tuple[str, int, bool], OpCall] = {}  # the NP nodes without attributes share their OpCall
    no_attrs: dict = {}
    if np_at and aux is None:
        aux = [None] * len(kern)
    for k in np_at:  # an NP node: its record and attributes
        i = nodes[k]
        t = args[i]
        if len(t) > 2:
            many.add(i)
        key = (ops[i], len(t), i not in tensor)
        call = calls.get(key)
        if call is None:
            spec = OPS[key[0]]
            grad_operands = tuple(s for s in range(len(t)) if spec.vjp_many is not None or spec.vjp_for(s) is not None)
            call = calls[key] = OpCall(spec, no_attrs, grad_operands, key[2])
        if attrs[i]:
            call = OpCall(call.op, attrs[i], call.grad_operands, call.scalar)
        aux[k] = call  # type: ignore[index]
    input_nodes = list(g.inputs.values())
    consts = _positions(ops, "const")
    if not many and _no_constant_op(consts, a0, a1):  # (the usual case) every op node depends on an input
        need = [True] * n
        for i in consts:
            need[i] = False
    else:
        need = _needs(n, input_nodes, nodes, a0, a1, many, args)
    init: list[Any] = [0.0] * n
    values = list(map(_value, map(attrs.__getitem__, consts)))
    if mixed:  # a tensor constant's value stays its array
        big = list(map(bool, map(g.shapes.__getitem__, consts)))
        deque(map(init.__setitem__, compress(consts, big), compress(values, big)), maxlen=0)
        small = list(map(not_, big))
        deque(map(init.__setitem__, compress(consts, small), map(float, compress(values, small))), maxlen=0)
    else:
        deque(map(init.__setitem__, consts, map(float, values)), maxlen=0)
    no_grad = consts if need.count(False) == len(consts) else list(compress(range(n), map(not_, need)))
    return FloatCode(
        nodes,
        kern,
        a0,
        a1,
        aux,
        np_at,
        frozenset(many),
        need,
        no_grad,
        input_nodes,
        list(g.inputs),
        consts,
        init,
        mixed,
        tensors,
    )


def _no_constant_op(consts: list[int], a0: list[int], a1: list[int]) -> bool:
    """Whether no op node has constants only as operands, shown by counting (in C) a few constants among the first
    operands, and among the last: if none is ever a first operand (or none ever a last one), every op node depends
    on an input (by induction along the nodes: each has an operand that is an input or an earlier op node).
    False: not shown."""
    if len(consts) > 8:
        return False
    return not any(map(a0.count, consts)) or not any(map(a1.count, consts))


def _needs(n: int, input_nodes, nodes, a0, a1, many, args) -> list[bool]:
    """Which nodes depend on an input, by one pass over the op nodes."""
    need = [False] * n
    for i in input_nodes:
        need[i] = True
    if many:
        for i, a, b in zip(nodes, a0, a1):
            if need[a] or need[b] or (i in many and any(need[j] for j in args[i])):
                need[i] = True
    else:
        for i, a, b in zip(nodes, a0, a1):
            if need[a] or need[b]:
                need[i] = True
    return need


def _positions(items: list, x: Any) -> list[int]:
    """The positions of ``x`` in ``items`` (by list.index, in C, when there are few)."""
    count = items.count(x)
    if count > len(items) // 64:
        return [i for i, y in enumerate(items) if y == x]
    out = []
    i = -1
    for _ in range(count):
        i = items.index(x, i + 1)
        out.append(i)
    return out


def compile_back(code: FloatCode, g: Graph, out: int) -> BackCode:
    """The op nodes that receive a gradient on the way back from ``out``: those that depend on an input and
    reach ``out`` along operands that get one (every operand of a Kernel op; an NP op's operands with a VJP).

    Reachability is marked along every edge (a node that needs no gradient has only such operands, so marking
    them is harmless), then kept where a gradient is needed."""
    need = code.need
    n = len(need)
    m = bisect_right(code.nodes, out)
    aux = code.aux
    if need[out]:
        np_here = code.np_at[: bisect_right(code.np_at, m - 1)]
        # (the whole lists when nothing is patched and the output is the last op node: no copies)
        a0, a1 = (code.a0, code.a1) if m == len(code.nodes) and not np_here else (code.a0[:m], code.a1[:m])
        args = g.args
        for k in np_here:  # an NP node: the edges without a VJP lead nowhere
            call = code.aux[k]  # type: ignore[index]
            t = args[code.nodes[k]]
            a0[k] = t[0] if 0 in call.grad_operands else n  # type: ignore[union-attr]
            a1[k] = t[-1] if len(t) - 1 in call.grad_operands else n  # type: ignore[union-attr]
        inner = [  # the operands between the first and the last of a node of more than two, that get a gradient
            args[i][s]
            for i in code.many
            if i <= out
            for s in code.aux[bisect_left(code.nodes, i)].grad_operands  # type: ignore[union-attr, index]
        ]
        consumed = _all_consumed(a0, a1, inner, n, out)  # every node up to the output reaches it
        if consumed and code.no_grad is code.consts:  # and every op node needs a gradient (the usual case)
            return BackCode(  # the lists reversed (m may be 0, an input before every op node: then they are empty)
                _head_reversed(code.nodes, m),
                _head_reversed(code.kernel, m),
                _head_reversed(code.a0, m),
                _head_reversed(code.a1, m),
                None if aux is None else _head_reversed(aux, m),
                list(compress(range(out + 1, n), need[out + 1 :])),
            )
        if consumed:
            reach = [True] * (out + 1) + [False] * (n - out)
        else:
            reach = [False] * (n + 1)
            reach[out] = True
            if not code.many:
                for i, a, b in zip(_head_reversed(code.nodes, m), a0[::-1], a1[::-1]):
                    if reach[i]:
                        reach[a] = True
                        reach[b] = True
            else:
                for i, a, b, f in zip(_head_reversed(code.nodes, m), a0[::-1], a1[::-1], _head_reversed(aux, m)):  # type: ignore[arg-type]
                    if reach[i]:
                        reach[a] = True
                        reach[b] = True
                        if i in code.many:  # the operands between the first and the last
                            t = args[i]
                            for s in f.grad_operands:  # type: ignore[union-attr]
                                reach[t[s]] = True
    else:
        reach = [False] * (n + 1)
    del reach[n]
    reached = list(map(and_, reach, need))
    unreached = list(compress(range(n), map(gt, need, reached)))
    sel = list(map(reached.__getitem__, code.nodes))
    return BackCode(
        list(compress(code.nodes, sel))[::-1],
        list(compress(code.kernel, sel))[::-1],
        list(compress(code.a0, sel))[::-1],
        list(compress(code.a1, sel))[::-1],
        None if aux is None else list(compress(aux, sel))[::-1],
        unreached,
    )


def _unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of a 1-D integer array, by a sort (numpy's own imports numpy.ma, 7 ms, at its first call)."""
    a = np.sort(a)
    if len(a) > 1:
        a = a[np.concatenate(([True], a[1:] != a[:-1]))]
    return a


def _head_reversed(items: list, m: int) -> list:
    """``items[:m][::-1]`` in one copy."""
    if m == len(items):
        return items[::-1]
    return items[m - 1 :: -1] if m else []


def _all_consumed(a0: list[int], a1: list[int], inner: list[int], n: int, out: int) -> bool:
    """Whether every node below ``out`` is an operand, along an edge that carries a gradient, of an op node up to
    ``out`` (``a0``, ``a1``: the first and last operands of those op nodes, ``n`` where the edge carries none;
    ``inner``: the other operands that get one), marked in one array. Then every node up to ``out`` reaches it: a
    node's consumers come after it, so by induction from ``out`` down, each node has a consumer that does."""
    used = np.zeros(n + 1, dtype=bool)
    for ix in (a0, a1, inner):
        used[np.fromiter(ix, dtype=np.intp, count=len(ix))] = True
    return bool(used[:out].all())


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

    def __init__(
        self, g: Graph, code: FloatCode | None = None, *, mixed: bool = False, wrt: list[str] | None = None
    ) -> None:
        self.g = g
        self.n = len(g.ops)
        self.code = compile_floats(g, mixed) if code is None else code
        self.need = self.code.need
        self._back: dict[int, BackCode] = {}
        self._operands: Operands | None = None
        self._levels: LevelPlan | None = None
        self._depth: np.ndarray | None = None
        self._wide: bool | None = None
        self._need_array: np.ndarray | None = None
        self._pruned: dict[tuple[str, ...], ScalarPlan] = {}
        self._runs: dict[int, int] = {}  # per output: the runs so far (until it is compiled)
        self._compiled: dict[int, Compiled | None] = {}  # per output: its compiled passes (None: cannot be)
        self._fixed_leaves: list[float] | None = None
        self._compiling = threading.Lock()  # one thread compiles a plan's passes
        self._scan: tuple[Callable, Callable] | None = None  # (compiled runs) pick the nodes scan_plan scans
        self._wrt = wrt  # the inputs differentiated (None: every input)

    def pruned(self, names: list[str]) -> ScalarPlan:
        """This plan differentiating only the inputs ``names`` (``eval --wrt``, ``input data``): the nodes that
        depend on none of them need no gradient, so the backward pass leaves them out. The gradients kept are the
        whole pass's bit for bit: a node's gradient sums its consumers' contributions in the same order, and every
        consumer of a node that depends on ``names`` does too."""
        key = tuple(names)
        plan = self._pruned.get(key)
        if plan is None:
            need = self.g.needs_grad(names)
            no_grad = list(compress(range(self.n), map(not_, need)))
            plan = self._pruned[key] = ScalarPlan(self.g, self.code._replace(need=need, no_grad=no_grad), wrt=names)
        return plan

    def need_array(self) -> np.ndarray:
        if self._need_array is None:
            a = np.ones(self.n, dtype=bool)
            a[self.code.no_grad] = False
            self._need_array = a
        return self._need_array

    def back(self, out: int) -> BackCode:
        """The backward pass's lists for output ``out`` (built once per output)."""
        bc = self._back.get(out)
        if bc is None:
            bc = self._back[out] = compile_back(self.code, self.g, out)
        return bc

    def bind(self, inputs: dict[str, Any]) -> list[float] | None:
        """Each input's value as a Python float, in the order of ``code.input_nodes``; None if one is missing or
        is not a scalar (the graph is then not a scalar graph for these inputs)."""
        values = list(map(inputs.get, self.code.input_names))
        try:  # the usual case, in C: every input an array of shape ()
            if set(map(_shape, values)) <= {()}:
                return list(map(float, values))
        except AttributeError:  # one is missing (None) or has no shape (a Python float): one by one
            pass
        xs = []
        for name in self.code.input_names:
            x = inputs.get(name)
            if x is None or (getattr(x, "shape", None) != () and np.shape(x) != ()):
                return None
            xs.append(float(x))
        return xs

    # -- shape of the graph ---------------------------------------------------------------------------------------
    def operands(self) -> Operands:
        if self._operands is None:
            g = self.g
            names = sorted(set(g.ops))
            code = {name: k for k, name in enumerate(names)}
            opid = np.array([code[o] for o in g.ops], dtype=np.int32)
            arity = np.fromiter(map(len, g.args), dtype=np.int32, count=self.n)
            a0 = np.full(self.n, -1, dtype=np.int64)
            a1 = np.full(self.n, -1, dtype=np.int64)
            nodes = np.array(self.code.nodes, dtype=np.int64)
            if len(nodes):
                a0[nodes] = self.code.a0
                a1[nodes] = self.code.a1
            a1[arity < 2] = -1
            self._operands = Operands(names, opid, arity, a0, a1)
        return self._operands

    def batchable(self) -> bool:
        """Whether every op has at most two operands (the level-batched strategy's edge tables) and every node is
        a scalar."""
        return not self.code.many and not self.code.mixed

    def wide(self, out: int) -> bool:
        """Whether the graph is wide enough for level batching (its levels are found on the way)."""
        if self._wide is None:
            self._wide = (
                self.n >= 4 * WIDE and self.batchable() and not self._deep() and self.depths(give_up=True) is not None
            )
        return self._wide

    def _deep(self) -> bool:
        """Whether some path from the last node back to a leaf is longer than the op nodes / WIDE (then the levels
        hold fewer than WIDE nodes on average): two walks, one along the first operand that is an op, one along
        the latest, each stopped at that length. (False does not mean wide: :meth:`depths` decides that.)"""
        args = self.g.args
        limit = len(self.code.nodes) // WIDE + 1
        for latest in (False, True):
            i = self.n - 1
            steps = 0
            while steps <= limit:
                ops = [j for j in args[i] if args[j]]
                if not ops:
                    break
                i = max(ops) if latest else ops[0]
                steps += 1
            if steps > limit:
                return True
        return False

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
            frontier = _unique(c)
            level += 1
            if give_up and level >= 8 and done < WIDE * level:
                return None
        self._depth = lvl
        return lvl

    # -- compiled passes -----------------------------------------------------------------------------------------------
    def hot(self, out: int, now: bool = False) -> Compiled | None:
        """The passes to ``out`` compiled to straight-line Python (:mod:`cgraph_cli.engine.compiled`), once this is
        their HOT-th run (``now``: at once); None before, or if they cannot be compiled (NP nodes)."""
        if out in self._compiled:
            return self._compiled[out]
        runs = self._runs[out] = self._runs.get(out, 0) + 1
        if runs < compiled.HOT and not now:
            return None
        if not self._compiling.acquire(blocking=False):  # another thread compiles: this run takes the loop
            return None
        try:
            if out not in self._compiled:
                bc = self.back(out) if self.need[out] else None
                self._compiled[out] = compiled.compile_passes(self.code, bc, out)
            return self._compiled[out]
        finally:
            self._compiling.release()

    def run_compiled(self, fn: Compiled, inputs: dict[str, Any], out: int, xs: list[float]) -> Result | None:
        """:meth:`run_scalar` by the compiled passes ``fn``: the same values and gradients bit for bit, and None
        likewise if a float operation raised."""
        if self._fixed_leaves is None:  # the leaves that are not inputs, in compiled.leaf_order
            init = self.code.init
            self._fixed_leaves = [init[i] for i in compiled.leaf_order(self.code)[len(xs) :]]
        try:
            with np.errstate(all="ignore"):
                v, G = fn(xs + self._fixed_leaves)
        except (ArithmeticError, ValueError):
            return None
        if self._scan is None:  # the nodes that could hide a NaN or an infinity (as the generic path scans)
            scan = scan_plan(self.g, list(self.g.inputs) if self._wrt is None else self._wrt)
            self._scan = (_picker(scan.values), _picker(scan.grads))
        finite = math.isfinite(sum(self._scan[0](v))) and math.isfinite(sum(self._scan[1](G)))
        return self._finish(inputs, out, v, G, self.back(out).unreached if self.need[out] else None, finite)

    # -- the Python float loop --------------------------------------------------------------------------------------
    def run_scalar(self, inputs: dict[str, Any], out: int, xs: list[float] | None = None) -> Result | None:
        """Forward and backward pass over Python floats; None if a float operation raised (x / 0, a math
        domain error): then numpy's rules apply and the caller runs a numpy strategy. ``xs``: the inputs
        as :meth:`bind` gives them."""
        code = self.code
        if xs is None:
            xs = self.bind(inputs)
            assert xs is not None
        v = code.init.copy()
        deque(map(v.__setitem__, code.input_nodes, xs), maxlen=0)  # (in C)
        args = self.g.args
        sin, cos, sqrt = math.sin, math.cos, math.sqrt
        f64 = np.float64
        # the kernels as local ints: the loop compares each node's code with them
        id_, add_, sub_, mul_, div_, neg_ = ID, ADD, SUB, MUL, DIV, NEG
        sin_, cos_, sqrt_, abs_, square_, relu_, np1_, fv_ = SIN, COS, SQRT, ABS, SQUARE, RELU, NP1, FLOAT_VJP
        try:
            with np.errstate(all="ignore"):
                aux = repeat(None) if code.aux is None else code.aux
                for i, c, a, b, f in zip(code.nodes, code.kernel, code.a0, code.a1, aux):
                    if c == mul_:
                        v[i] = v[a] * v[b]
                    elif c == add_:
                        v[i] = v[a] + v[b]
                    elif c == sub_:
                        v[i] = v[a] - v[b]
                    elif c == fv_ or c == np1_:  # the record's function on the float (tanh, exp, log: numpy's)
                        v[i] = float(f.fwd(v[a]))  # type: ignore[union-attr]
                    elif c == sin_:
                        v[i] = sin(v[a])
                    elif c == cos_:
                        v[i] = cos(v[a])
                    elif c == div_:
                        v[i] = v[a] / v[b]
                    elif c == neg_:
                        v[i] = -v[a]
                    elif c == id_:
                        v[i] = v[a]
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
                    else:  # NP: an OpCall, the record's function on numpy scalars (and arrays)
                        spec, at, _, scalar = f  # type: ignore[misc]
                        r = spec.fwd(*[f64(y) if type(y) is float else y for y in map(v.__getitem__, args[i])], **at)
                        v[i] = float(r) if scalar else r
                check_scalar_output(self.g, out, np.shape(v[out]))
                bc = self.back(out)
                G = self._backward_scalar(v, out, bc)
        except (ArithmeticError, ValueError):
            return None
        return self._result(inputs, out, v, G, bc)

    def _backward_scalar(self, v: list[float], out: int, bc: BackCode) -> list[float]:
        """Every node's gradient, starting at -0.0 (see the module's docstring); contributions go to the operands
        in operand order, consumers in decreasing order, as the generic loop adds them."""
        code = self.code
        args, need = self.g.args, code.need
        shapes = self.g.shapes if code.mixed else None
        G: list[Any] = [-0.0] * self.n
        if not need[out]:
            return G
        G[out] = 1.0
        sin, cos = math.sin, math.cos
        f64 = np.float64
        backward_np = _backward_np
        id_, add_, sub_, mul_, div_, neg_ = ID, ADD, SUB, MUL, DIV, NEG
        sin_, cos_, sqrt_, abs_, square_, relu_, np1_, fv_ = SIN, COS, SQRT, ABS, SQUARE, RELU, NP1, FLOAT_VJP
        aux = repeat(None) if bc.aux is None else bc.aux
        for i, c, a, b, f in zip(bc.nodes, bc.kernel, bc.a0, bc.a1, aux):
            gi = G[i]
            if c == mul_:
                G[a] += gi * v[b]
                G[b] += gi * v[a]
            elif c == add_:
                G[a] += gi
                G[b] += gi
            elif c == sub_:
                G[a] += gi
                G[b] += -gi
            elif c == fv_:  # the record's VJP, plain arithmetic, on the floats
                G[a] += f.vjp(gi, v[i], v[a])  # type: ignore[union-attr]
            elif c == sin_:
                G[a] += gi * cos(v[a])
            elif c == cos_:
                G[a] += -gi * sin(v[a])
            elif c == div_:
                G[a] += gi / v[b]
                vb = v[b]
                G[b] += -gi * v[a] / (vb * vb)
            elif c == neg_:
                G[a] += -gi
            elif c == id_:
                G[a] += gi
            elif c == sqrt_:
                G[a] += gi / (2 * v[i])
            elif c == abs_:
                G[a] += gi * float_sign(v[a])
            elif c == square_:
                G[a] += 2 * gi * v[a]
            elif c == relu_:
                G[a] += gi * (1.0 if v[a] > 0 else 0.0)
            elif c == np1_:  # the record's VJP on numpy scalars
                G[a] += float(f.vjp(f64(gi), f64(v[i]), f64(v[a])))  # type: ignore[union-attr]
            else:  # NP: any op, through its record on numpy scalars
                backward_np(G, v, i, f, gi, args[i], need, shapes)  # type: ignore[arg-type]
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
        isleaf = np.array([name in LEAF_OPS for name in names], dtype=bool)[opid]
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

    def run_levels(self, inputs: dict[str, Any], out: int, xs: list[float] | None = None) -> Result:
        plan = self.levels()
        g = self.g
        code = self.code
        if xs is None:
            xs = self.bind(inputs)
            assert xs is not None
        V = np.array(code.init, dtype=np.float64)
        V[code.input_nodes] = xs
        with np.errstate(all="ignore"):
            for grp in plan.groups:
                f = OPS[grp.op].row_fwd()
                at = _attrs_of(g, grp.nodes[0])
                V[grp.nodes] = f(V[grp.a0], V[grp.a1], **at) if grp.arity == 2 else f(V[grp.a0], **at)
            G, reached = self._backward_levels(V, out)
        check_scalar_output(g, out, ())
        return self._finish(inputs, out, V, np.where(reached, G, 0.0), [])

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
    def _result(self, inputs, out, v: list[Any], G: list[Any], bc: BackCode) -> Result:
        if self.code.mixed:
            return self._result_mixed(inputs, out, v, G, bc.unreached if self.need[out] else None)
        return self._finish(inputs, out, v, G, bc.unreached if self.need[out] else None)

    def _result_mixed(self, inputs, out, v: list[Any], G: list[Any], unreached: list[int] | None) -> Result:
        """A mixed graph's Result, with its per-node lists (numpy float64 scalars, and the tensors' arrays)."""
        code, g, n = self.code, self.g, self.n
        tensors = code.tensors
        vs, gs = v.copy(), G.copy()
        for i in tensors:
            vs[i] = gs[i] = 0.0
        V = np.array(vs, dtype=np.float64)
        Ga = np.array(gs, dtype=np.float64)
        if unreached is None:
            Ga[:] = 0.0
            unreached = list(compress(range(n), code.need))
        elif unreached:
            Ga[unreached] = 0.0
        values: list[Any] = list(V)
        grads: list[Any] = list(Ga)
        vbad = ~np.isfinite(V)
        gbad = ~np.isfinite(Ga) & self.need_array()
        for i in tensors:
            values[i] = v[i]
            grads[i] = G[i] if type(G[i]) is not float else np.zeros(g.shapes[i], dtype=np.float64)
        for i in unreached:
            if type(G[i]) is not float:
                grads[i] = np.zeros(g.shapes[i], dtype=np.float64)
        if not _all_finite_many([v[i] for i in tensors]):
            for i in tensors:
                vbad[i] = not all_finite(v[i])
        if not _all_finite_many([grads[i] for i in tensors if code.need[i]]):
            for i in tensors:
                gbad[i] = code.need[i] and not all_finite(grads[i])
        for i, name in zip(code.input_nodes, code.input_names):
            values[i] = inputs[name]
        attrs = g.attrs
        for i in code.consts:
            values[i] = attrs[i]["value"]  # type: ignore[index]
        for i in code.no_grad:
            grads[i] = None
            gbad[i] = False
        bad: list[tuple[str, int]] = []
        if vbad.any():
            bad.append(("forward", int(np.argmax(vbad))))
        if gbad.any():
            bad.append(("backward", int(n - 1 - np.argmax(gbad[::-1]))))
        return Result(g, values, grads, out, inputs, bad, masks=(vbad, gbad))

    def _finish(
        self, inputs, out, v: Any, G: Any, unreached: list[int] | None, finite: bool | None = None
    ) -> ArrayResult:
        """The Result of the values and gradients ``v`` and ``G`` (lists of floats or float64 arrays, a gradient
        wherever the backward pass wrote one; ``unreached``: the nodes whose gradient is 0, None: all), with the
        non-finite scan: a finite sum means every term is finite (inf and NaN propagate through a sum), else
        the arrays are scanned. ``finite``: the caller's answer to that question already (True: every value and
        gradient is finite; False: maybe not, scan)."""
        res = ArrayResult(self.g, None, None, out, inputs, [])
        res.plan, res.unreached, res.raw = self, unreached, (v, G)
        res.value_array_ = res.grad_array_ = None
        if finite is None:
            finite = _finite_sum(v) and _finite_sum(G)
        if finite:
            res.masks = (np.zeros(self.n, dtype=bool), np.zeros(self.n, dtype=bool))
            return res
        vbad = ~np.isfinite(res.value_array)
        gbad = ~np.isfinite(res.grad_array)
        if vbad.any():
            res.nonfinite.append(("forward", int(np.argmax(vbad))))
        if gbad.any():
            res.nonfinite.append(("backward", int(self.n - 1 - np.argmax(gbad[::-1]))))
        res.masks = (vbad, gbad)
        return res

    def value_list(self, V: np.ndarray, inputs: dict[str, Any]) -> list[Any]:
        """Every node's value as the generic path gives it: a numpy float64 scalar, a leaf its given array."""
        code = self.code
        values: list[Any] = list(V)
        for i, name in zip(code.input_nodes, code.input_names):
            values[i] = inputs[name]
        attrs = self.g.attrs
        for i in code.consts:
            values[i] = attrs[i]["value"]  # type: ignore[index]
        return values

    def grad_list(self, Ga: np.ndarray) -> list[Any]:
        """Every node's gradient as the generic path gives it: a numpy float64 scalar, None where none is defined."""
        grads: list[Any] = list(Ga)
        for i in self.code.no_grad:
            grads[i] = None
        return grads


class ArrayResult(Result):
    """A fast strategy's :class:`Result`: every node's value and gradient as two float64 arrays,
    :attr:`value_array` and :attr:`grad_array` (0 where no gradient is defined), made from the loop's two lists
    when first read; the per-node lists ``values`` and ``grads`` (numpy float64 scalars, the leaves' given
    arrays, None where no gradient is defined) are made from the arrays when first read. A caller that reads a
    few nodes makes no object per node."""

    plan: ScalarPlan
    unreached: list[int] | None  # the nodes whose gradient is 0 though the loop may have written one; None: all
    raw: tuple[Any, Any]  # the values and the gradients as the strategy left them (lists of floats or arrays)
    value_array_: np.ndarray | None
    grad_array_: np.ndarray | None

    @property
    def value_array(self) -> np.ndarray:
        if self.value_array_ is None:
            self.value_array_ = np.asarray(self.raw[0], dtype=np.float64)
        return self.value_array_

    @property
    def grad_array(self) -> np.ndarray:
        if self.grad_array_ is None:
            Ga = np.array(self.raw[1], dtype=np.float64)
            if self.unreached is None:
                Ga[:] = 0.0
            elif self.unreached:
                Ga[self.unreached] = 0.0
            Ga[self.plan.code.no_grad] = 0.0
            self.grad_array_ = Ga
        return self.grad_array_

    @property  # type: ignore[override]
    def values(self) -> list[Any]:
        if self._values is None:
            self._values = self.plan.value_list(self.value_array, self.inputs)
        return self._values

    @values.setter
    def values(self, v: list[Any] | None) -> None:
        self._values = v

    @property  # type: ignore[override]
    def grads(self) -> list[Any]:
        if self._grads is None:
            self._grads = self.plan.grad_list(self.grad_array)
        return self._grads

    @grads.setter
    def grads(self, v: list[Any] | None) -> None:
        self._grads = v


def _all_finite_many(arrays: list[np.ndarray]) -> bool:
    """Whether every entry of every array is finite (one scan of them all)."""
    if not arrays:
        return True
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.concatenate(arrays, axis=None)).all())


def _picker(ix: list[int]) -> Callable[[list], Any]:
    """The entries ``ix`` of a list, picked in C."""
    if len(ix) > 1:
        return itemgetter(*ix)
    return (lambda x: (x[ix[0]],)) if ix else (lambda x: ())


def _finite_sum(x: Any) -> bool:
    """Whether every term of ``x`` is finite, if the answer is yes: False may mean only that the sum overflowed."""
    if type(x) is list:
        return math.isfinite(sum(x))
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.sum(x)))


def _backward_np(G: list[Any], v: list[Any], i: int, call: OpCall, gi: Any, args, need, shapes) -> None:
    """Pass node ``i``'s gradient ``gi`` to its operands by its record's VJPs on numpy scalars (and arrays, summed
    back to an operand's shape as the generic loop does, when ``shapes`` are given: a mixed graph)."""
    f64 = np.float64
    spec, at, _, _ = call
    gg = f64(gi) if type(gi) is float else gi
    ans = v[i]
    ans = f64(ans) if type(ans) is float else ans
    xs = [f64(y) if type(y) is float else y for y in map(v.__getitem__, args)]
    ks = [k for k, j in enumerate(args) if need[j]]
    for k, d in zip(ks, spec.vjps(ks, gg, ans, xs, at)):
        if d is None:
            continue
        j = args[k]
        scalar = type(v[j]) is float
        if shapes is not None and not (scalar and type(d) is f64):  # (a scalar's gradient, a scalar: as it is)
            d = unbroadcast(d, shapes[j], spec.name)
        if scalar:
            G[j] += float(d)
        else:
            G[j] = G[j] + d


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
    if any(OPS[op].rows is None for op in set(g.ops).difference(LEAF_OPS)):
        return False
    if g.shapes.count(()) == len(g.shapes):  # (in C: the usual case)
        return True
    for s, op, args, at in zip(g.shapes, g.ops, g.args, g.attrs):
        if s != () and s is not None:
            return False
        if s is None and op not in LEAF_OPS and not OPS[op].elementwise:
            try:
                if OPS[op].shape([()] * len(args), **(at or {})) != ():
                    return False
            except ValueError:
                return False
    return True


def _mixed_graph(g: Graph) -> bool:
    """Whether the float loop suits a graph with some tensors: every shape known, at least 3/4 of the nodes
    scalars, and every input a scalar (a tensor node runs through its record on arrays, as the generic loop)."""
    shapes = g.shapes
    if None in shapes or shapes.count(()) * 4 < 3 * len(shapes):
        return False
    return all(shapes[i] == () for i in g.inputs.values())


def scalar_plan(g: Graph, inputs: dict[str, Any] | None = None) -> ScalarPlan | None:
    """The graph's fast-path plan if every node is a float64 scalar (and, given ``inputs``, every input is a
    scalar: see :meth:`ScalarPlan.bind`), else None."""
    if g.dtype is not np.float64 and g.dtype != np.float64:
        return None
    plan = g.derived.get("scalar_plan")
    if plan is None:
        if _scalar_graph(g):
            plan = ScalarPlan(g)
        elif _mixed_graph(g):
            plan = ScalarPlan(g, mixed=True)
        else:
            plan = False
        g.derived["scalar_plan"] = plan
    if plan is False or (inputs is not None and plan.bind(inputs) is None):
        return None
    return plan
