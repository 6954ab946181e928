"""A cache of compiled graphs (the parsed and lowered IR), keyed by everything that shapes the build.

A large program is parsed and lowered once; a later run of the unchanged program loads its Graph from
``$XDG_CACHE_HOME/cgraph/ir/`` (``~/.cache/cgraph/ir/``; ``$CGRAPH_CACHE_DIR`` overrides the folder).
A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec says.

- The key is a SHA-256 of the program text, the input shapes the build saw, ``--seed``, ``--dtype``,
  cgraph's version and a fingerprint of the modules that build graphs, so any change gives a new entry.
- Entries are ``.npz`` archives of plain arrays plus one JSON document (no pickle anywhere: they are
  loaded with ``allow_pickle=False``), written to a temporary file and renamed into place, so concurrent
  runs never see half an entry.  A damaged or unreadable entry is ignored and the program compiled.
  The folder keeps the newest :data:`MAX_ENTRIES` entries.
- Only programs of at least :data:`MIN_CHARS` characters are cached: below that, compiling is faster
  than reading a file.  ``--no-cache`` (or ``CGRAPH_NO_CACHE=1``) skips the cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cgraph_cli.errors import Source
from cgraph_cli.ir import Frame, Graph

MIN_CHARS = 20_000
MAX_ENTRIES = 32  # older entries are removed
FORMAT = 2
_MODULES = ("ir.py", "ops.py", "parser.py", "cache.py", "errors.py")


def cache_dir() -> Path:
    env = os.environ.get("CGRAPH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # unset, empty or relative: the XDG spec says to ignore it
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cgraph" / "ir"


def enabled(source: Source, use_cache: bool = True) -> bool:
    return use_cache and not os.environ.get("CGRAPH_NO_CACHE") and len(source.text) >= MIN_CHARS


def _fingerprint() -> str:
    from cgraph_cli import __version__
    from cgraph_cli.parser import grammar_path

    here = Path(__file__).resolve().parent
    parts = [__version__, str(FORMAT)]
    for p in [here / m for m in _MODULES] + [grammar_path()]:
        try:
            st = p.stat()
            parts.append(f"{p.name}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{p.name}:?")
    return "|".join(parts)


def key(source: Source, values: dict[str, Any] | None, seed: int, dtype: str) -> str:
    h = hashlib.sha256()
    shapes = sorted((k, list(np.shape(v))) for k, v in (values or {}).items())
    h.update(json.dumps([_fingerprint(), seed, dtype, shapes]).encode())
    h.update(b"\0")
    h.update(source.text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


# -- writing ---------------------------------------------------------------------------------------------------------


def _jsonable_attr(k: str, v: Any) -> Any:
    if k == "idx":
        return [{"slice": [s.start, s.stop, s.step]} if isinstance(s, slice) else s for s in v]
    if isinstance(v, tuple):
        return {"tuple": list(v)}
    return v


def store(k: str, g: Graph) -> None:
    """Write the graph under key ``k``; any failure only means no cache entry."""
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        arrays = _to_arrays(g)
        fd, tmp = tempfile.mkstemp(prefix=f".{k[:16]}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, folder / f"{k}.npz")
            _trim(folder)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except (OSError, ValueError, TypeError):
        pass


def _trim(folder: Path) -> None:
    """Keep the newest MAX_ENTRIES entries (a concurrent run may remove the same file: that is fine)."""
    entries = list(folder.glob("*.npz"))
    if len(entries) <= MAX_ENTRIES:
        return

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    for p in sorted(entries, key=mtime)[: len(entries) - MAX_ENTRIES]:
        try:
            p.unlink()
        except OSError:
            pass


def _to_arrays(g: Graph) -> dict[str, np.ndarray]:
    n = len(g.ops)
    opnames = sorted(set(g.ops))
    code = {o: i for i, o in enumerate(opnames)}
    arity = np.fromiter(map(len, g.args), dtype=np.int32, count=n)
    flat = np.fromiter((j for t in g.args for j in t), dtype=np.int64, count=int(arity.sum()))
    ndim = np.fromiter((-1 if s is None else len(s) for s in g.shapes), dtype=np.int16, count=n)
    dims = np.fromiter((d for s in g.shapes if s is not None for d in s), dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "ops": np.fromiter((code[o] for o in g.ops), dtype=np.int32, count=n),
        "arity": arity,
        "args": flat,
        "ndim": ndim,
        "dims": dims,
        "spans": np.array(g.spans, dtype=np.int64).reshape(n, 2),
        "frames_of": np.array(g.frames_of, dtype=np.int32),
    }
    scalar_idx, scalar_val, other_attrs = [], [], []
    tidx: list[int] = []
    tshapes: list[tuple[int, ...]] = []
    tvals: list[np.ndarray] = []
    for i, a in enumerate(g.attrs):
        if not a:
            continue
        if g.ops[i] == "const":
            v = a["value"]
            if np.ndim(v) == 0:
                scalar_idx.append(i)
                scalar_val.append(v)
            else:  # tensor constants: one flat array for all, with their shapes
                tidx.append(i)
                tshapes.append(np.shape(v))
                tvals.append(np.asarray(v, dtype=g.dtype).ravel())
        else:
            other_attrs.append([i, {k: _jsonable_attr(k, v) for k, v in a.items()}])
    arrays["cidx"] = np.array(scalar_idx, dtype=np.int64)
    arrays["cval"] = np.array(scalar_val, dtype=g.dtype).reshape(-1)
    arrays["tidx"] = np.array(tidx, dtype=np.int64)
    arrays["tndim"] = np.array([len(s) for s in tshapes], dtype=np.int64)
    arrays["tdims"] = np.array([d for s in tshapes for d in s], dtype=np.int64)
    arrays["tflat"] = np.concatenate(tvals) if tvals else np.zeros(0, dtype=g.dtype)
    for name, v in g.defaults.items():
        arrays[f"d_{name}"] = np.asarray(v)
    meta = {
        "n": n,
        "opnames": opnames,
        "names": g.names,
        "attrs": other_attrs,
        "frames": [[f.name, list(f.span), f.parent] for f in g.frames],
        "inputs": list(g.inputs.items()),
        "declared_shapes": [[k, list(v)] for k, v in g.declared_shapes.items()],
        "defaults": list(g.defaults),
        "outputs": g.outputs,
        "bindings": list(g.bindings.items()),
        "dtype": np.dtype(g.dtype).name,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return arrays


# -- reading ---------------------------------------------------------------------------------------------------------


def _attr_from_json(k: str, v: Any) -> Any:
    if k == "idx":
        return tuple(slice(*s["slice"]) if isinstance(s, dict) else s for s in v)
    if isinstance(v, dict) and "tuple" in v:
        return tuple(v["tuple"])
    return v


def load(k: str, source: Source) -> Graph | None:
    """The cached graph for key ``k`` (with ``source`` attached), or None."""
    path = cache_dir() / f"{k}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return _from_arrays({name: z[name] for name in z.files}, source)
    except Exception:  # missing, truncated or damaged in any way (BadZipFile, numpy's header TokenError...): rebuild
        return None


def _args_from_flat(arity: np.ndarray, flat: np.ndarray) -> list[tuple[int, ...]]:
    """Operand tuples from the flat list: pairs are zipped in C, the other arities patched in."""
    n = len(arity)
    offs = np.cumsum(arity, dtype=np.int64) - arity
    first = np.where(arity >= 1, flat[np.minimum(offs, max(len(flat) - 1, 0))] if len(flat) else 0, 0)
    second = np.where(arity >= 2, flat[np.minimum(offs + 1, max(len(flat) - 1, 0))] if len(flat) else 0, 0)
    args: list[tuple[int, ...]] = list(zip(first.tolist(), second.tolist()))
    empty: tuple[int, ...] = ()
    for i in np.flatnonzero(arity == 0).tolist():
        args[i] = empty
    f = first.tolist()
    for i in np.flatnonzero(arity == 1).tolist():
        args[i] = (f[i],)
    more = np.flatnonzero(arity > 2)
    if len(more):
        fl = flat.tolist()
        o = offs.tolist()
        ar = arity.tolist()
        for i in more.tolist():
            args[i] = tuple(fl[o[i] : o[i] + ar[i]])
    del n
    return args


def _from_arrays(z: dict[str, np.ndarray], source: Source) -> Graph:
    meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    n = meta["n"]
    dtype = np.dtype(meta["dtype"]).type
    opnames = meta["opnames"]
    ops = [opnames[c] for c in z["ops"].tolist()]
    args = _args_from_flat(z["arity"], z["args"])
    ndim = z["ndim"].tolist()
    dims = z["dims"].tolist()
    shapes: list[Any] = []
    p = 0
    for d in ndim:
        if d < 0:
            shapes.append(None)
        else:
            shapes.append(tuple(dims[p : p + d]))
            p += d
    attrs: list[Any] = [None] * n
    for i, v in zip(z["cidx"].tolist(), z["cval"]):
        attrs[i] = {"value": np.asarray(v, dtype=dtype)}
    tflat = z["tflat"].astype(dtype, copy=False)
    tdims = z["tdims"].tolist()
    p = q = 0
    for i, nd in zip(z["tidx"].tolist(), z["tndim"].tolist()):
        shape = tuple(tdims[q : q + nd])
        q += nd
        size = math.prod(shape)
        attrs[i] = {"value": tflat[p : p + size].reshape(shape).copy()}
        p += size
    for i, a in meta["attrs"]:
        attrs[i] = {k: _attr_from_json(k, v) for k, v in a.items()}
    sp = z["spans"].reshape(-1, 2)
    spans = list(zip(sp[:, 0].tolist(), sp[:, 1].tolist()))
    if len(ops) != n or len(spans) != n or len(shapes) != n:
        raise ValueError("inconsistent cache entry")
    g = Graph(
        source,
        ops=ops,
        args=args,
        attrs=attrs,
        shapes=shapes,
        names=meta["names"],
        spans=spans,
        frames_of=z["frames_of"].tolist(),
        frames=[Frame(name, tuple(span), parent) for name, span, parent in meta["frames"]],
        inputs=dict((k, v) for k, v in meta["inputs"]),
        declared_shapes={k: tuple(v) for k, v in meta["declared_shapes"]},
        defaults={name: np.asarray(z[f"d_{name}"], dtype=dtype) for name in meta["defaults"]},
        outputs=list(meta["outputs"]),
        bindings=dict((k, v) for k, v in meta["bindings"]),
        dtype=dtype,
    )
    return g
