"""The code's shape, checked from its source: no import cycles among cgraph's modules (imports inside
functions count: hiding an import in a function does not remove the dependency), and no per-op facts
outside the op records (a comparison of an op name with a string literal, or a dict keyed by op names)."""

from __future__ import annotations

import ast
from pathlib import Path

from cgraph_cli.errors import Source
from cgraph_cli.ops import LEAF_OPS, OPS

PKG = Path(__file__).resolve().parent.parent / "cgraph_cli"
OP_NAMES = frozenset(OPS) - frozenset(LEAF_OPS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The cgraph_cli modules that module ``name`` imports, at any depth of its code."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                if sub in known:  # `from cgraph_cli import cache`: the submodule
                    out.add(sub)
                elif mod in known:
                    out.add(mod)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return sorted(comps)


def test_cycle_finder_sees_function_level_imports(tmp_path):
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    src = "def f():\n    from cgraph_cli.engine import forward\n    return forward\n"
    p = tmp_path / "ir.py"
    p.write_text(src)
    assert _imports("cgraph_cli.ir", p, {"cgraph_cli.ir", "cgraph_cli.engine"}) == {"cgraph_cli.engine"}
    p.write_text("from cgraph_cli import cache\nfrom . import fmt\n")
    got = _imports("cgraph_cli.ir", p, {"cgraph_cli", "cgraph_cli.cache", "cgraph_cli.fmt", "cgraph_cli.ir"})
    assert got == {"cgraph_cli.cache", "cgraph_cli.fmt"}


def test_ir_does_not_import_engine():
    graph = import_graph()
    for ir in ("cgraph_cli.ir.graph", "cgraph_cli.ir.names"):
        assert not any(m.startswith("cgraph_cli.engine") for m in graph[ir])
    assert "cgraph_cli.ir.graph" in graph["cgraph_cli.engine.reference"]


def test_engine_ir_parser_are_in_no_cycle():
    mine = {"cgraph_cli.engine", "cgraph_cli.engine.reference", "cgraph_cli.engine.scalar", "cgraph_cli.ir.graph"}
    mine.add("cgraph_cli.lang.parser")
    stuck = [c for c in find_cycles(import_graph()) if mine & set(c)]
    assert stuck == []


# the folders in the order of the pipeline: a module imports only from its own folder or the ones before it
# (foundation modules first; notebook turns results into notebook displays; api is the typed Python API the CLI is
# built on; the package itself, cgraph_cli/__init__.py, is the public face that re-exports the api: nothing inside
# the package imports it)
LAYERS = [
    "version",
    "errors",
    "fmt",
    "limits",
    "fsutil",
    "gcpause",
    "allocator",
    "progress",
    "ops",
    "lang",
    "ir",
    "engine",
    "analysis",
    "run",
]
LAYERS += ["present", "notebook", "api", "cli", "__main__", "cgraph_cli"]


def test_folders_import_one_way():
    graph = import_graph()
    wrong = []
    for a, targets in graph.items():
        la = LAYERS.index(a.split(".")[1] if "." in a else "cgraph_cli")
        for b in targets:
            lb = LAYERS.index(b.split(".")[1] if "." in b else "cgraph_cli")
            if lb > la:
                wrong.append(f"{a} -> {b}")
    assert wrong == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert cycles == [], f"import cycles among cgraph_cli modules: {cycles}"


# -- op names --------------------------------------------------------------------------------------------------------


def _mentions_op(node: ast.AST) -> bool:
    """Whether an expression reads an op name: a variable or attribute called op/ops/op_name/opname."""
    for sub in ast.walk(node):
        ident = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
        if ident is not None and ident.lower() in ("op", "ops", "op_name", "opname"):
            return True
    return False


def _op_literals(node: ast.AST) -> list[str]:
    """Op names written as string literals in a constant or a tuple/list/set of constants."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [x.value for x in items if isinstance(x, ast.Constant) and x.value in OP_NAMES]


def op_name_tests(source: str, filename: str = "<src>") -> list[str]:
    """Where a module compares an op name with a string literal or keys a dict literal by op names."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_mentions_op(s) for s in sides):
                for s in sides:
                    for name in _op_literals(s):
                        found.append(f"{filename}:{node.lineno}: compares an op with '{name}'")
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in OP_NAMES]
            if len(keys) >= 2:
                found.append(f"{filename}:{node.lineno}: a dict keyed by op names ({', '.join(keys[:3])}, ...)")
        elif isinstance(node, ast.Match):
            if _mentions_op(node.subject):
                for case in node.cases:
                    for sub in ast.walk(case.pattern):
                        if isinstance(sub, ast.MatchValue) and _op_literals(sub.value):
                            found.append(f"{filename}:{sub.lineno}: matches an op against a literal")
    return found


def test_op_name_scan_finds_the_patterns():
    assert op_name_tests('if op == "add":\n    pass\n')
    assert op_name_tests('if g.ops[i] in ("sin", "cos"):\n    pass\n')
    assert op_name_tests('if "mul" != spec.op:\n    pass\n')
    assert op_name_tests('T = {"add": 1, "mul": 2}\n')
    assert not op_name_tests('if op == "input" or op in ("const", "input"):\n    pass\n')
    assert not op_name_tests('if kind == "neg":\n    pass\n')  # an AST kind, not an op
    assert not op_name_tests('d = {"value": 1}\n')


def test_no_op_name_literals_outside_the_records():
    found = []
    for mod, path in _modules().items():
        if mod == "cgraph_cli.ops" or mod.startswith("cgraph_cli.ops."):
            continue
        found += op_name_tests(path.read_text(encoding="utf-8"), str(path.relative_to(PKG.parent)))
    assert found == []


# -- the AST's named fields, and input defaults folded without the engine ------------------------------------------


def test_ast_fields_by_name():
    from cgraph_cli.lang import parser as P

    text = "def f(u) = u * 2\ny = f(x)[1:] - -a[0]\n"
    for stmts in (P.parse_fast(text), P.parse_lark(Source(text, "<t>"))):
        d, st = stmts
        assert (d[P.KIND], d[P.DEF_NAME], [p for p, _ in d[P.DEF_PARAMS]]) == ("def", "f", ["u"])
        assert d[P.DEF_BODY][P.BIN_OP] == "mul" and text[d[P.DEF_NAME_SPAN][0] : d[P.DEF_NAME_SPAN][1]] == "f"
        assert (st[P.KIND], st[P.ASSIGN_NAME]) == ("assign", "y")
        e = st[P.ASSIGN_EXPR]
        assert text[e[P.START] : e[P.END]] == "f(x)[1:] - -a[0]"
        assert e[P.BIN_OP] == "sub" and text[e[P.BIN_OP_START]] == "-"
        lhs, rhs = e[P.BIN_LHS], e[P.BIN_RHS]
        assert lhs[P.KIND] == "index" and lhs[P.INDEX_X][P.CALL_FNAME] == "f"
        (sub,) = lhs[P.INDEX_SUBS]
        assert sub[P.SUB_KIND] == "s" and sub[P.SLICE_START][P.NUM_VALUE] == 1.0
        assert sub[P.SLICE_STOP] is None and sub[P.SLICE_STEP] is None
        assert rhs[P.KIND] == "neg" and rhs[P.NEG_X][P.INDEX_SUBS][0][P.SUB_EXPR][P.NUM_VALUE] == 0.0


def test_input_default_is_folded_as_the_engine_computes_it():
    from cgraph_cli.engine.reference import forward
    from cgraph_cli.ir.graph import build_graph
    from cgraph_cli.lang.parser import parse

    defs = "def f(u) = u * sin(u) + max(u, 0.5)\n"
    src = Source(defs + "input a = f([1, -2, 3]) ^ 2 / 3\ny = sum(a)\n", "<t>")
    g = build_graph(parse(src), src)
    ref_src = Source(defs + "y = f([1, -2, 3]) ^ 2 / 3\n", "<t>")
    ref = build_graph(parse(ref_src), ref_src)
    want = forward(ref, {})[ref.output]
    assert g.defaults["a"].dtype == want.dtype and g.defaults["a"].tobytes() == want.tobytes()


# -- the engine's plan: named parts, kept in Graph.derived ---------------------------------------------------------


def _wide_program() -> tuple[str, dict]:
    import numpy as np

    lines = [f"y{k} = sin(x{k % 7}) * x{(k + 3) % 7} + tanh(x{k % 5}) - max(x{k % 3}, x1)" for k in range(300)]
    lines.append("out = " + " + ".join(f"y{k}" for k in range(0, 300, 30)))
    return "\n".join(lines) + "\n", {f"x{k}": np.array(0.1 * k - 0.3) for k in range(7)}


def test_evaluate_patches_no_attribute_onto_the_graph():
    from dataclasses import fields

    from cgraph_cli.engine import STRATEGIES, evaluate
    from cgraph_cli.engine.reference import ScanPlan
    from cgraph_cli.engine.scalar import ScalarPlan
    from cgraph_cli.ir.graph import Graph, build_graph
    from cgraph_cli.lang.parser import parse

    text, values = _wide_program()
    src = Source(text, "<t>")
    g = build_graph(parse(src), src, values)
    declared = {f.name for f in fields(Graph)}
    for strategy in STRATEGIES:
        evaluate(g, values, strategy=strategy)
        assert set(vars(g)) == declared
    assert set(g.derived) == {"scalar_plan", "scan_plans"} and isinstance(g.derived["scalar_plan"], ScalarPlan)
    # the generic strategy's non-finite scan plans, one per set of differentiated inputs
    assert all(isinstance(p, ScanPlan) for p in g.derived["scan_plans"].values())


def test_scalar_plan_parts_are_named():
    from cgraph_cli.engine.scalar import (
        FLOAT_VJP,
        BackCode,
        Edges,
        FloatCode,
        LevelGroup,
        LevelPlan,
        OpCall,
        Unary,
        scalar_plan,
    )
    from cgraph_cli.ir.graph import build_graph
    from cgraph_cli.lang.parser import parse

    text, values = _wide_program()
    src = Source(text, "<t>")
    g = build_graph(parse(src), src, values)
    plan = scalar_plan(g, values)
    assert plan is not None and plan.wide(g.output)
    code = plan.code
    assert isinstance(code, FloatCode) and code.nodes == [i for i, op in enumerate(g.ops) if op not in LEAF_OPS]
    assert len(code.kernel) == len(code.a0) == len(code.a1) == len(code.aux) == len(code.nodes)
    i = g.args[g.bindings["y3"]][1]  # y3 = ... - max(x0, x1): an 'NP' kernel, run by the record's functions
    k = code.nodes.index(i)
    assert isinstance(code.aux[k], OpCall) and code.aux[k].op is OPS[g.ops[i]] and k in code.np_at
    kinds = {type(code.aux[k]) for k, j in enumerate(code.nodes) if OPS[g.ops[j]].kernel.name == "NP1"}
    assert kinds == {Unary}  # tanh
    assert {code.kernel[k] for k, j in enumerate(code.nodes) if g.ops[j] == "tanh"} == {FLOAT_VJP}  # tanh' on floats
    back = plan.back(g.output)
    assert isinstance(back, BackCode) and back.nodes == sorted(back.nodes, reverse=True)
    levels = plan.levels()
    assert isinstance(levels, LevelPlan) and isinstance(levels.edges, Edges)
    assert all(isinstance(grp, LevelGroup) for grp in levels.groups)
    assert sorted(levels.groups_at) == sorted({grp.level for grp in levels.groups})
    for grp in levels.groups:
        assert all(g.ops[j] == grp.op and levels.depth[j] == grp.level for j in grp.nodes.tolist())
        assert grp.a0.tolist() == [g.args[j][0] for j in grp.nodes.tolist()]
    e = levels.edges
    assert e.index[e.consumer, e.slot].tolist() == list(range(len(e.consumer)))
    assert all(g.args[c][k] == t for c, k, t in zip(e.consumer.tolist(), e.slot.tolist(), e.target.tolist()))
