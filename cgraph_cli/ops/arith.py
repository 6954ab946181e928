"""Arithmetic: ``= + - * / ^ @`` and unary minus."""

from __future__ import annotations

import numpy as np

from cgraph_cli.fmt import fmt_number, fmt_shape
from cgraph_cli.ops.core import (
    ALL,
    CARRIES,
    ROWWISE,
    Call,
    Carry,
    Code,
    Derive,
    Kernel,
    Lower,
    Op,
    Rows,
    broadcast_shape,
    same_shape,
)
from cgraph_cli.ops.text import call, paren, transposed

# -- pow ---------------------------------------------------------------------------------


def _pow_vjp_base(g, ans, a, b):
    # PyTorch: d/da a^0 = 0 everywhere, also at a = 0 (where b * a^(b-1) would be 0 * inf)
    return np.where(b == 0, 0.0, g * b * np.power(a, b - 1))


def _pow_vjp_exp(g, ans, a, b):
    # PyTorch: d/db a^b = a^b log(a), taken as 0 where a == 0 and b >= 0
    # written so that it can be traced (ir/trace.py) with no branch whose gradient is 0 · inf: ans · -inf,
    # the value at a == 0 for b < 0, is selected only there
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = a == 0
        d = ans * np.where(zero, -np.inf, np.log(np.where(zero, 1.0, a)))
        return g * np.where(zero, np.where(b >= 0, 0.0, d), d)


def _power_rows(a, b):
    """np.power entry by entry as numpy computes it for one 0-d pair: its scalar loop treats the
    exponents 2, 0.5 and -1 as square, sqrt and reciprocal, which differ in the last bit from its
    vector pow."""
    r = np.power(a, b)
    if np.ndim(b) == 0:
        return r
    a, b = np.broadcast_arrays(a, b)
    r = np.array(r, copy=True) if np.ndim(r) == 0 else r
    for e, f in ((2.0, np.square), (0.5, np.sqrt), (-1.0, np.reciprocal)):
        m = b == e
        if m.any():
            r[m] = f(a[m])
    return r


def _pow_vjp_base_rows(g, ans, a, b):
    return np.where(b == 0, 0.0, g * b * _power_rows(a, b - 1))  # as _pow_vjp_base: 0 for a^0


def _pow_local(k: int, L: list[str], A: str, attrs: dict, shapes) -> str:
    if k == 1:
        return f"{paren(L[0])}^{paren(L[1])} · {call('ln', L[0])}"
    b = L[1]
    try:
        bm1 = float(b) - 1
    except ValueError:
        return f"{paren(b)} · {paren(L[0])}^({b} - 1)"
    if bm1 == 0:
        return b
    if bm1 == 1:
        return f"{paren(b)} · {paren(L[0])}"
    return f"{paren(b)} · {paren(L[0])}^{paren(fmt_number(bm1))}"


def _pow_hint(xs, v):
    a, b = xs
    if np.any((a < 0) & (np.mod(b, 1) != 0)):
        return "a negative base to a non-integer power is not a real number"
    if np.any((a == 0) & (b < 0)):
        return "zero to a negative power is infinite"
    return None


def _pow_grad_hint(k, xs):
    a, b = xs
    if k == 1 and np.any(a <= 0):
        return "the derivative of a^b with respect to b is a^b·log(a), which needs a > 0"
    if k == 0 and np.any((a == 0) & (b < 1)):
        return "the derivative of a^b with respect to a, b·a^(b-1), is infinite at a = 0 when b < 1"
    return None


# -- matmul --------------------------------------------------------------------------------


def matmul_shape(shapes, **_):
    a, b = shapes
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"'@' needs operands with at least one dimension, got {fmt_shape(a)} and {fmt_shape(b)}")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise ValueError(
            f"'@' cannot multiply shapes {fmt_shape(a)} and {fmt_shape(b)}: inner dimensions {ka} and {kb} differ"
        )
    batch_a = a[:-2] if len(a) > 1 else ()
    batch_b = b[:-2] if len(b) > 1 else ()
    try:
        batch = tuple(np.broadcast_shapes(batch_a, batch_b))
    except ValueError:
        raise ValueError(f"'@' cannot broadcast the batch dimensions of {fmt_shape(a)} and {fmt_shape(b)}") from None
    out = batch
    if len(a) > 1:
        out += (a[-2],)
    if len(b) > 1:
        out += (b[-1],)
    return out


def _matmul_vjp_a(g, ans, a, b):
    if np.ndim(g) == 0:  # vector @ vector
        return g * b
    if np.ndim(a) == 1:
        g = np.expand_dims(g, -2)
    if np.ndim(b) == 1:  # outer product
        r = np.expand_dims(g, -1) * b
    else:
        r = np.matmul(g, np.swapaxes(b, -1, -2))
    if np.ndim(a) == 1:
        r = r[..., 0, :]
    return r


def _matmul_vjp_b(g, ans, a, b):
    if np.ndim(g) == 0:
        return g * a
    if np.ndim(b) == 1:
        g = np.expand_dims(g, -1)
    if np.ndim(a) == 1:  # outer product
        r = np.expand_dims(a, -1) * np.expand_dims(g, -2)
    else:
        r = np.matmul(np.swapaxes(a, -1, -2), g)
    if np.ndim(b) == 1:
        r = r[..., 0]
    return r


def _matmul_vjp_text(k, U, L, A, at, sh):
    sa, sb, su = sh
    if len(sa) == 1 and len(sb) == 1:  # a dot product: U is a number
        return (f"{U} · {L[1 - k]}", f"() · {fmt_shape(sh[1 - k])} → {fmt_shape(sh[k])}")
    if k == 0:
        return (f"{U} · {transposed(L[1])}", f"{fmt_shape(su)} · {fmt_shape(sb)}ᵀ → {fmt_shape(sa)}")
    return (f"{transposed(L[0])} · {U}", f"{fmt_shape(sa)}ᵀ · {fmt_shape(su)} → {fmt_shape(sb)}")


# -- how other engines write them (cgraph export) --------------------------------------------

JAX_POW = """\
@jax.custom_jvp
def cg_pow(a, b):
    return a**b


@cg_pow.defjvp
def _cg_pow_jvp(primals, tangents):
    # PyTorch's derivatives of a^b, as cgraph takes them: d/da is 0 where b == 0 (also at a == 0),
    # d/db is a^b log(a), taken as 0 where a == 0 and b >= 0 (-inf where a == 0 and b < 0)
    a, b = primals
    ta, tb = tangents
    ans = cg_pow(a, b)
    da = jnp.where(b == 0, 0.0, b * cg_pow(a, jnp.where(b == 0, 1.0, b) - 1))
    db = jnp.where(a == 0, jnp.where(b >= 0, 0.0, -jnp.inf), ans * jnp.log(jnp.where(a == 0, 1.0, a)))
    return ans, da * ta + db * tb
"""


def _matmul_onnx(site) -> str:
    """MatMul of operands made 2-D: onnxruntime's fusion of Transpose into a MatMul with a 1-D operand
    computes wrong numbers (1.32, float64), so a vector is made a one-column or one-row matrix first."""
    a, b = site.xs
    sa, sb = site.shapes
    if len(sa) > 1 and len(sb) > 1:
        return site.node("MatMul", [a, b])
    if len(sa) == 1:
        a = site.node("Unsqueeze", [a, site.ints([0])])
    if len(sb) == 1:
        b = site.node("Unsqueeze", [b, site.ints([1])])
    return site.node("Reshape", [site.node("MatMul", [a, b]), site.ints(list(site.shape))])


def _one(*_):
    return "1"


RECORDS = [
    Op(
        "id",
        lambda a: a,
        (lambda g, ans, a: g,),
        same_shape,
        1,
        "=",
        jvp=Derive.LINEAR,
        formula=lambda L, at: L[0],
        local=_one,
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.ID,
        complex_step=True,
        carry=CARRIES,
        lower=Lower(array=Code("{0}"), torch=Code("{0}"), onnx="Identity"),
    ),
    Op(
        "add",
        np.add,
        (lambda g, ans, a, b: g, lambda g, ans, a, b: g),
        broadcast_shape,
        2,
        "+",
        jvp=Derive.LINEAR,
        infix="+",
        commutative=True,
        local=_one,
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.ADD,
        test_shapes=((3, 1), (4,)),
        complex_step=True,
        numpy=np.add,
        carry=CARRIES,
        lower=Lower(array=Code("{0} + {1}"), torch=Code("{0} + {1}"), onnx="Add"),
    ),
    Op(
        "sub",
        np.subtract,
        (lambda g, ans, a, b: g, lambda g, ans, a, b: -g),
        broadcast_shape,
        2,
        "−",
        jvp=Derive.LINEAR,
        infix="-",
        ports=("+", "−"),
        paren_second=True,
        local=lambda k, L, A, at, sh: "1" if k == 0 else "-1",
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.SUB,
        test_shapes=((2, 3), (3,)),
        complex_step=True,
        numpy=np.subtract,
        carry=CARRIES,
        lower=Lower(array=Code("{0} - {1}"), torch=Code("{0} - {1}"), onnx="Sub"),
    ),
    Op(
        "mul",
        np.multiply,
        (lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a),
        broadcast_shape,
        2,
        "×",
        jvp=Derive.BILINEAR,
        infix="*",
        commutative=True,
        local=lambda k, L, A, at, sh: L[1 - k],
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.MUL,
        test_shapes=((3,), (2, 1)),
        complex_step=True,
        numpy=np.multiply,
        carry=CARRIES,
        lower=Lower(array=Code("{0} * {1}"), torch=Code("{0} * {1}"), onnx="Mul"),
    ),
    Op(
        "div",
        np.divide,
        (lambda g, ans, a, b: g / b, lambda g, ans, a, b: -g * a / (b * b)),
        broadcast_shape,
        2,
        "/",
        jvp=Derive.ELEMENTWISE,
        infix="/",
        ports=("num", "den"),
        paren_second=True,
        local=lambda k, L, A, at, sh: f"1/{paren(L[1])}" if k == 0 else f"-{paren(L[0])}/{paren(L[1])}^2",
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.DIV,
        hint=lambda xs, v: "division by zero" if np.any(xs[1] == 0) else None,
        # (words, not a / b: the program's own b may be another value)
        grad_hint=lambda k, xs: (
            "the divisor is 0: the derivatives of a quotient divide by it" if np.any(xs[1] == 0) else None
        ),
        domain=(0.5, 2.0),
        test_shapes=((2, 3), (3,)),
        complex_step=True,
        numpy=np.divide,
        carry=Carry(value=(0,), grad=ALL),  # a / inf = 0
        lower=Lower(array=Code("{0} / {1}"), torch=Code("{0} / {1}"), onnx="Div"),
    ),
    Op(
        "pow",
        np.power,
        (_pow_vjp_base, _pow_vjp_exp),
        broadcast_shape,
        2,
        "^",
        jvp=Derive.ELEMENTWISE,
        infix="^",
        calls=(Call("pow", 2, 2, doc="base to the power exp, as base ^ exp"),),
        ports=("base", "exp"),
        formula=lambda L, at: f"{paren(L[0])}^{paren(L[1])}",
        paren_first=True,
        local=_pow_local,
        elementwise=True,
        rows=Rows(_power_rows, (_pow_vjp_base_rows, _pow_vjp_exp)),
        hint=_pow_hint,
        grad_hint=_pow_grad_hint,
        domain=(0.5, 2.0),
        test_shapes=((3,), ()),
        complex_step=True,
        numpy=np.power,
        carry=Carry(grad=(1,)),  # nan^0 = 1^nan = 1; d/da is where-guarded (0 where b = 0)
        lower=Lower(
            numpy=Code("np.power({0}, {1})"),
            jax=Code(
                "cg_pow({0}, {1})",
                (JAX_POW,),
                "jax's own derivative of a^b is nan at a = 0 for b = 0 (0 * 0^-1) where PyTorch takes 0; "
                "cg_pow has a custom JVP with PyTorch's rules",
            ),
            torch=Code("torch.pow({0}, {1})"),
            onnx="Pow",
        ),
    ),
    Op(
        "matmul",
        np.matmul,
        (_matmul_vjp_a, _matmul_vjp_b),
        matmul_shape,
        2,
        "@",
        jvp=Derive.BILINEAR,
        infix="@",
        calls=(Call("dot", 2, 2, scalar_op="mul", doc="A @ B (a scalar operand multiplies)"),),
        ports=("A", "B"),
        local=lambda k, L, A, at, sh: L[1 - k],
        vjp_text=_matmul_vjp_text,
        test_shapes=((2, 3), (3, 4)),
        complex_step=True,
        numpy=np.matmul,
        carry=CARRIES,
        lower=Lower(array=Code("{0} @ {1}"), torch=Code("{0} @ {1}"), onnx=_matmul_onnx),
    ),
    Op(
        "neg",
        np.negative,
        (lambda g, ans, a: -g,),
        same_shape,
        1,
        "−",
        jvp=Derive.LINEAR,
        formula=lambda L, at: f"-{paren(L[0])}",
        paren_first=True,
        local=lambda k, L, A, at, sh: "-1",
        elementwise=True,
        rows=ROWWISE,
        kernel=Kernel.NEG,
        complex_step=True,
        numpy=np.negative,
        carry=CARRIES,
        lower=Lower(array=Code("-{0}"), torch=Code("-{0}"), onnx="Neg"),
    ),
]
