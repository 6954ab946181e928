"""A cache of compiled graphs (the parsed and lowered IR), keyed by everything that shapes the build.

A large program is parsed and lowered once; a later run of the unchanged program loads its Graph from
``$XDG_CACHE_HOME/cgraph/ir/`` (``~/.cache/cgraph/ir/``; ``$CGRAPH_CACHE_DIR`` overrides the folder).
A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec says.

- The key is a SHA-256 of the program text, the input shapes the build saw, ``--seed``, ``--dtype``,
  cgraph's version and a fingerprint of the modules that build graphs, so any change gives a new entry.
- Entries are ``.npz`` archives of plain arrays plus one JSON document (no pickle anywhere: they are
  loaded with ``allow_pickle=False``), written to a temporary file and renamed into place, so concurrent
  runs never see half an entry.
- Each entry carries a seal (the member :data:`_MARK`): cgraph's magic string, the format, the key it was
  written for and a SHA-256 of all its other members.  An entry is used only if its seal matches the key
  asked for and its contents, and its structure passes :func:`_check` (every index in range, every array
  of the expected dtype and length); anything else -- a copy of another program's entry, an altered or
  truncated one, a file that is no entry at all -- is ignored and the program compiled.
- cgraph deletes or replaces only files that are provably its own: named ``<64 hex digits>.npz``, a
  regular file (not a symlink) and carrying the seal.  A cache folder that is a symbolic link is not used
  at all (nothing is read, written or deleted there).  The folder keeps the newest :data:`MAX_ENTRIES`
  of cgraph's entries; other files in it are left alone.
- Only programs of at least :data:`cgraph_cli.limits.CACHE_MIN_CHARS` characters are cached: below that,
  compiling is faster than reading a file.  ``--no-cache`` (or ``CGRAPH_NO_CACHE=1``) skips the cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from cgraph_cli import gcpause, limits
from cgraph_cli.errors import Source
from cgraph_cli.fsutil import user_cache_home
from cgraph_cli.ir.graph import Frame, Graph, Spans
from cgraph_cli.ops import LEAF_OPS, OPS

MAX_ENTRIES = 32  # older entries (of cgraph's own) are removed
FORMAT = 3
MAGIC = "cgraph-ir-cache"
_MARK = "cgraph_seal"  # the member holding the seal (JSON: magic, format, key, digest)
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.npz\Z")
_MODULES = ("ir", "ops", "lang", "run/cache.py", "errors.py")  # what a stored graph depends on, in the package
# format 2 (cgraph 0.x before seals): recognised by its exact members and JSON keys, so it can be trimmed
_V2_MEMBERS = {"ops", "arity", "args", "ndim", "dims", "spans", "frames_of", "cidx", "cval", "tidx", "tndim"}
_V2_MEMBERS |= {"tdims", "tflat", "meta"}
_V2_META = {"n", "opnames", "names", "attrs", "frames", "inputs", "declared_shapes", "defaults", "outputs"}
_V2_META |= {"bindings", "dtype"}
_OPTIONAL_META = {"data_inputs", "warnings"}  # inputs declared data; warnings of the build (grad() of a constant)


def cache_dir() -> Path:
    """Where the cache lives (whether or not it may be used: see :func:`_folder`)."""
    env = os.environ.get("CGRAPH_CACHE_DIR")
    if env:
        return Path(env)
    return user_cache_home() / "cgraph" / "ir"


def _folder() -> Path | None:
    """The cache folder if cgraph may use it: None when it (or, under XDG, its ``cgraph`` folder) is a
    symbolic link -- a link is the user's, and may lead to a folder of their own files -- or when no
    absolute place is known."""
    folder = cache_dir()
    try:
        if not folder.is_absolute() and not os.environ.get("CGRAPH_CACHE_DIR"):
            return None
        if folder.is_symlink():
            return None
        if not os.environ.get("CGRAPH_CACHE_DIR") and folder.parent.is_symlink():
            return None
    except (OSError, ValueError):
        return None
    return folder


def enabled(source: Source, use_cache: bool = True) -> bool:
    return use_cache and not os.environ.get("CGRAPH_NO_CACHE") and len(source.text) >= limits.CACHE_MIN_CHARS


def _fingerprint() -> str:
    from cgraph_cli.lang.parser import grammar_path
    from cgraph_cli.version import __version__

    package = Path(__file__).resolve().parent.parent
    parts = [__version__, str(FORMAT)]
    files = []
    for m in _MODULES:
        files += sorted((package / m).glob("*.py")) if (package / m).is_dir() else [package / m]
    for p in files + [grammar_path()]:
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


def _jsonable_sub(s: Any) -> Any:
    """One subscript of an index as JSON: an int, or a dict for a slice, ``...``, ``None`` or an integer array."""
    if isinstance(s, slice):
        return {"slice": [s.start, s.stop, s.step]}
    if s is Ellipsis:
        return {"ellipsis": None}
    if s is None:
        return {"newaxis": None}
    if isinstance(s, np.ndarray):
        return {"array": s.tolist(), "shape": list(s.shape)}
    return s


def _jsonable_attr(k: str, v: Any) -> Any:
    if k == "idx":
        return [_jsonable_sub(s) for s in v]
    if isinstance(v, tuple):
        return {"tuple": list(v)}
    return v


def store(k: str, g: Graph) -> None:
    """Write the graph under key ``k``; any failure only means no cache entry."""
    try:
        folder = _folder()
        if folder is None:
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():  # made a link since _folder() looked: leave it
            return
        target = folder / f"{k}.npz"
        if os.path.lexists(target) and not _replaceable(target):
            return
        arrays = _to_arrays(g)
        arrays[_MARK] = _seal(k, arrays)
        import tempfile  # (only to store an entry: 4 ms of a cached run's start-up otherwise)

        fd, tmp = tempfile.mkstemp(prefix=f".{k[:16]}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, target)
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
    """Keep the newest MAX_ENTRIES of cgraph's own entries; nothing else is touched (a concurrent run may
    remove the same file: that is fine)."""
    if folder.is_symlink():
        return
    named = []
    with os.scandir(folder) as it:
        for e in it:
            if _ENTRY_NAME.match(e.name) and e.is_file(follow_symlinks=False):
                named.append(Path(e.path))
    if len(named) <= MAX_ENTRIES:
        return
    ours = []
    for p in named:
        try:
            st = p.lstat()
        except OSError:
            continue
        if _is_ours(p):
            ours.append((st.st_mtime_ns, p.name, p))
    ours.sort()
    for _, _, p in ours[: max(len(ours) - MAX_ENTRIES, 0)]:
        try:
            p.unlink()
        except OSError:
            pass


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every member (the seal excepted): name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == _MARK:
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def _seal(k: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The seal member for an entry of key ``k`` holding ``arrays``."""
    doc = {"magic": MAGIC, "format": FORMAT, "key": k, "digest": _digest(arrays)}
    return np.frombuffer(json.dumps(doc).encode("ascii"), dtype=np.uint8)


def _read_seal(a: Any) -> dict:
    if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 1 or len(a) > 4096:
        raise ValueError("not a seal")
    doc = json.loads(a.tobytes().decode("ascii"))
    if not isinstance(doc, dict) or doc.get("magic") != MAGIC:
        raise ValueError("not a seal")
    return doc


def _open_entry(path: Path) -> Any:
    """A binary file object for a regular file at ``path``; never through a symlink, never blocking on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _replaceable(path: Path) -> bool:
    """Whether the file at the key's own path may be replaced by a new entry: a regular file, not a symlink.

    Its name is the SHA-256 of this program's key material, which no file but an entry cgraph wrote for
    this very program can bear (by chance: probability 2**-256), so a damaged entry of the program is
    replaced even when its seal is unreadable.  Replacing swaps the folder entry for a new file: the
    contents of a hard-linked file are never written to."""
    try:
        return _ENTRY_NAME.match(path.name) is not None and stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is provably one of cgraph's entries: its name, a regular file (not a symlink), and
    cgraph's seal inside (or, for entries of format 2, written before seals, exactly that format's members
    and JSON document).  Its contents may otherwise be damaged."""
    if not _ENTRY_NAME.match(path.name):
        return False
    try:
        with _open_entry(path) as f, np.load(f, allow_pickle=False) as z:
            files = set(z.files)
            if _MARK in files:
                _read_seal(z[_MARK])
                return True
            if {n for n in files if not n.startswith("d_")} != _V2_MEMBERS:
                return False
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            return isinstance(meta, dict) and set(meta) == _V2_META
    except Exception:
        return False


def _span_columns(g: Graph, n: int) -> np.ndarray:
    """The spans as an (n, 2) array (from the Graph's two columns without making a tuple a node)."""
    sp = g.spans
    if isinstance(sp, Spans):
        out = np.empty((n, 2), dtype=np.int64)
        out[:, 0] = np.frombuffer(sp.starts, dtype=np.int64) if n else 0
        out[:, 1] = np.frombuffer(sp.ends, dtype=np.int64) if n else 0
        return out
    return np.array(list(sp), dtype=np.int64).reshape(n, 2)


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
        "spans": _span_columns(g, n),
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
    if g.data_inputs:  # `input data X`: only then, so other programs' entries stay as they were
        meta["data_inputs"] = sorted(g.data_inputs)
    if g.warnings:  # the build's warnings, shown again by a run from the cache
        meta["warnings"] = [[message, list(span)] for message, span in g.warnings]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    return arrays


# -- reading ---------------------------------------------------------------------------------------------------------


def _sub_from_json(s: Any) -> Any:
    if not isinstance(s, dict):
        return s
    if "slice" in s:
        return slice(*s["slice"])
    if "ellipsis" in s:
        return Ellipsis
    if "newaxis" in s:
        return None
    return np.array(s["array"], dtype=np.intp).reshape(s["shape"])


def _attr_from_json(k: str, v: Any) -> Any:
    if k == "idx":
        return tuple(_sub_from_json(s) for s in v)
    if isinstance(v, dict) and "tuple" in v:
        return tuple(v["tuple"])
    return v


def load(k: str, source: Source) -> Graph | None:
    """The cached graph for key ``k`` (with ``source`` attached), or None.

    None unless the entry is a regular file whose seal was made for key ``k`` and matches its contents,
    and whose structure passes :func:`_check`."""
    folder = _folder()
    if folder is None:
        return None
    try:
        with _open_entry(folder / f"{k}.npz") as f, np.load(f, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        seal = _read_seal(arrays.get(_MARK))
        if seal.get("format") != FORMAT or seal.get("key") != k or seal.get("digest") != _digest(arrays):
            return None
        del arrays[_MARK]
        with gcpause.paused():  # (the graph is acyclic, as when it is built)
            return _from_arrays(arrays, source)
    except Exception:  # missing, truncated or damaged in any way (BadZipFile, numpy's header TokenError...): rebuild
        return None


def _args_from_flat(arity: np.ndarray, flat: np.ndarray) -> list[tuple[int, ...]]:
    """Operand tuples from the flat list: the nodes of each number of operands at once, their tuples zipped and
    put in place in C."""
    offs = np.cumsum(arity, dtype=np.int64) - arity
    args: list[tuple[int, ...]] = [()] * len(arity)
    put = args.__setitem__
    for k in np.flatnonzero(np.bincount(arity)).tolist():  # (the arities present: np.unique imports numpy.ma)
        if k == 0:
            continue
        idx = np.flatnonzero(arity == k)
        start = offs[idx]
        deque(map(put, idx.tolist(), zip(*[flat[start + j].tolist() for j in range(k)])), maxlen=0)
    return args


# the integer members: dtype and number of dimensions, exactly as _to_arrays writes them
_INTS = {
    "ops": (np.int32, 1),
    "arity": (np.int32, 1),
    "args": (np.int64, 1),
    "ndim": (np.int16, 1),
    "dims": (np.int64, 1),
    "spans": (np.int64, 2),
    "frames_of": (np.int32, 1),
    "cidx": (np.int64, 1),
    "tidx": (np.int64, 1),
    "tndim": (np.int64, 1),
    "tdims": (np.int64, 1),
}
_DTYPES = ("float64", "float32")


def _require(ok: Any, what: str) -> None:
    if not ok:
        raise ValueError(f"bad cache entry: {what}")


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_span(v: Any, size: int) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(map(_is_int, v)) and 0 <= v[0] <= v[1] <= size


def _is_int_tuple(v: Any) -> bool:
    return (
        isinstance(v, dict) and list(v) == ["tuple"] and isinstance(v["tuple"], list) and all(map(_is_int, v["tuple"]))
    )


def _check_attr(k: str, v: Any) -> bool:
    """Whether one attribute, as JSON, has the form _jsonable_attr gives it."""
    if k == "axis":  # an int, or a tuple of them (sum(x, axis=(0, 1)))
        return v is None or _is_int(v) or _is_int_tuple(v)
    if k == "dims":
        return _is_int_tuple(v)
    if k == "idx":
        if not isinstance(v, list):
            return False
        for s in v:
            if isinstance(s, dict):
                if list(s) in (["ellipsis"], ["newaxis"]):
                    continue
                if list(s) == ["array", "shape"]:
                    shape = s["shape"]
                    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
                        return False
                    flat = np.asarray(s["array"], dtype=object).ravel().tolist() if s["array"] != [] else []
                    if not all(map(_is_int, flat)) or len(flat) != int(np.prod(shape, dtype=np.int64)):
                        return False
                    continue
                b = s.get("slice")
                if list(s) != ["slice"] or not isinstance(b, list) or len(b) != 3:
                    return False
                if not all(x is None or _is_int(x) for x in b) or b[2] == 0:
                    return False
            elif not _is_int(s):
                return False
        return True
    # a keyword's value (sum(x, keepdims=true), norm(x, p=inf)): a number, a bool or a tuple of ints
    if isinstance(v, dict):
        return _is_int_tuple(v)
    return v is None or type(v) in (int, float, bool)


def _check(z: dict[str, np.ndarray], source: Source) -> dict:
    """The entry's JSON document, once its arrays and document are the shape _to_arrays gives them:
    every member present with its dtype and length, every node, frame and constant index in range, every
    operand an earlier node, every op known and given its number of operands.  Raises ValueError."""
    for name, (dt, nd) in _INTS.items():
        _require(z[name].dtype == dt and z[name].ndim == nd, f"{name} is not {np.dtype(dt).name}[{nd}]")
    m = z["meta"]
    _require(m.dtype == np.uint8 and m.ndim == 1, "meta is not bytes")
    meta = json.loads(m.tobytes().decode("utf-8"))
    _require(isinstance(meta, dict) and _V2_META <= set(meta) <= _V2_META | _OPTIONAL_META, "meta has other keys")
    n = meta["n"]
    _require(_is_int(n) and n > 0, "n")
    _require(meta["dtype"] in _DTYPES, "dtype")
    fdt = np.dtype(meta["dtype"])
    for name in ("cval", "tflat"):
        _require(z[name].dtype == fdt and z[name].ndim == 1, f"{name} is not {fdt.name}[1]")
    defaults = meta["defaults"]
    _require(isinstance(defaults, list) and all(isinstance(d, str) for d in defaults), "defaults")
    _require(len(set(defaults)) == len(defaults), "defaults repeat")
    _require(set(z) == _V2_MEMBERS | {f"d_{d}" for d in defaults}, "members")
    for d in defaults:
        _require(z[f"d_{d}"].dtype == fdt, f"d_{d} is not {fdt.name}")

    ops, arity, args, ndim, dims = z["ops"], z["arity"], z["args"], z["ndim"], z["dims"]
    spans, frames_of = z["spans"], z["frames_of"]
    _require(len(ops) == len(arity) == len(ndim) == len(frames_of) == n and spans.shape == (n, 2), "lengths")
    opnames = meta["opnames"]
    _require(isinstance(opnames, list) and all(isinstance(o, str) for o in opnames), "opnames")
    _require(len(set(opnames)) == len(opnames) and all(o in OPS or o in LEAF_OPS for o in opnames), "opnames")
    _require(((ops >= 0) & (ops < len(opnames))).all(), "op code out of range")
    _require((arity >= 0).all() and len(args) == int(arity.sum(dtype=np.int64)), "arity")
    want = np.array([0 if o in LEAF_OPS else (OPS[o].arity or -1) for o in opnames] or [0], dtype=np.int64)[ops]
    _require(((arity == want) | ((want < 0) & (arity >= 1))).all(), "number of operands")
    owner = np.repeat(np.arange(n, dtype=np.int64), arity)
    _require(((args >= 0) & (args < owner)).all(), "operand out of range")  # operands come before their node
    _require(((ndim >= -1) & (ndim <= 64)).all() and len(dims) == int(ndim[ndim > 0].sum(dtype=np.int64)), "ndim")
    _require((dims >= 0).all(), "dims")
    size = len(source.text)
    _require(((spans[:, 0] >= 0) & (spans[:, 0] <= spans[:, 1]) & (spans[:, 1] <= size)).all(), "spans")

    frames = meta["frames"]
    _require(isinstance(frames, list), "frames")
    for j, f in enumerate(frames):
        _require(isinstance(f, list) and len(f) == 3 and isinstance(f[0], str), "frame")
        _require(_is_span(f[1], size) and _is_int(f[2]) and -1 <= f[2] < j, "frame")
    _require(((frames_of >= -1) & (frames_of < len(frames))).all(), "frame of a node")

    const = np.flatnonzero(ops == opnames.index("const")) if "const" in opnames else np.zeros(0, dtype=np.int64)
    cidx, tidx = z["cidx"], z["tidx"]
    both = np.concatenate([cidx, tidx])
    _require(len(both) == len(const) and np.array_equal(np.sort(both), const), "constants")
    _require(len(z["cval"]) == len(cidx) and (ndim[cidx] == 0).all(), "scalar constants")
    tndim, tdims = z["tndim"], z["tdims"]
    _require(len(tndim) == len(tidx) and (tndim >= 0).all() and len(tdims) == int(tndim.sum()), "tensor constants")
    _require((tdims >= 0).all() and np.array_equal(tndim, ndim[tidx]), "tensor constants")

    names = meta["names"]
    _require(isinstance(names, list) and len(names) == n, "names")
    _require(set(map(type, names)) <= {str, type(None)}, "names")
    attrs = meta["attrs"]
    _require(isinstance(attrs, list), "attrs")
    seen: set[int] = set()
    for item in attrs:
        _require(isinstance(item, list) and len(item) == 2 and _is_int(item[0]) and 0 <= item[0] < n, "attrs")
        i, a = item
        _require(i not in seen and opnames[int(ops[i])] not in LEAF_OPS and isinstance(a, dict), "attrs")
        _require(all(_check_attr(k, v) for k, v in a.items()), "attrs")
        seen.add(i)
    inputs = meta["inputs"]
    _require(isinstance(inputs, list), "inputs")
    for item in inputs:
        _require(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str), "inputs")
        _require(_is_int(item[1]) and 0 <= item[1] < n and opnames[int(ops[item[1]])] == "input", "inputs")
    _require(len({k for k, _ in inputs}) == len(inputs) and set(defaults) <= {k for k, _ in inputs}, "inputs")
    for item in meta["declared_shapes"]:
        _require(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str), "declared shapes")
        _require(isinstance(item[1], list) and all(_is_int(d) and d >= 0 for d in item[1]), "declared shapes")
    warnings = meta.get("warnings", [])
    _require(isinstance(warnings, list), "warnings")
    for item in warnings:
        _require(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str), "warnings")
        _require(_is_span(item[1], size), "warnings")
    data = meta.get("data_inputs", [])
    _require(isinstance(data, list) and set(data) <= {k for k, _ in inputs}, "data inputs")
    outputs = meta["outputs"]
    _require(isinstance(outputs, list) and outputs, "outputs")
    _require(all(_is_int(i) and 0 <= i < n for i in outputs), "outputs")
    bindings = meta["bindings"]
    _require(isinstance(bindings, list), "bindings")
    _require(  # (one expression: a program has a binding per statement)
        all(
            type(b) is list and len(b) == 2 and type(b[0]) is str and type(b[1]) is int and 0 <= b[1] < n
            for b in bindings
        ),
        "bindings",
    )
    return meta


def _from_arrays(z: dict[str, np.ndarray], source: Source) -> Graph:
    meta = _check(z, source)
    n = meta["n"]
    dtype = np.dtype(meta["dtype"]).type
    opnames = meta["opnames"]
    ops = [opnames[c] for c in z["ops"].tolist()]
    args = _args_from_flat(z["arity"], z["args"])
    ndim = z["ndim"]
    dims = z["dims"].tolist()
    shapes: list[Any] = [()] * n  # (most nodes are scalars: only the others are visited)
    p = 0
    for i, d in zip(np.flatnonzero(ndim).tolist(), ndim[ndim != 0].tolist()):
        if d < 0:
            shapes[i] = None
        else:
            shapes[i] = tuple(dims[p : p + d])
            p += d
    attrs: list[Any] = [None] * n
    shared: dict[Any, dict] = {}  # equal scalar constants share one read-only array, as the builder's do
    for i, v in zip(z["cidx"].tolist(), z["cval"].tolist()):
        key = v if v else (v, math.copysign(1.0, v))
        a = shared.get(key)
        if a is None:
            arr = np.asarray(v, dtype=dtype)
            arr.flags.writeable = False
            a = shared[key] = {"value": arr}
        attrs[i] = a
    tflat = z["tflat"]
    tdims = z["tdims"].tolist()
    p = q = 0
    for i, nd in zip(z["tidx"].tolist(), z["tndim"].tolist()):
        shape = tuple(tdims[q : q + nd])
        q += nd
        size = math.prod(shape)
        _require(shape == shapes[i] and p + size <= len(tflat), "a tensor constant")
        attrs[i] = {"value": tflat[p : p + size].reshape(shape).copy()}
        p += size
    _require(p == len(tflat), "tensor constants' values")
    # equal attributes share one dict (as equal constants share theirs), and whether they fit an op's operands is
    # checked once per op, attributes and shapes
    made: dict[str, dict] = {}
    fits: set[tuple] = set()
    for i, a in meta["attrs"]:
        text = repr(a)
        at = made.get(text)
        if at is None:
            at = made[text] = {k: _attr_from_json(k, v) for k, v in a.items()}
        attrs[i] = at
        operand_shapes = [shapes[j] for j in args[i]]
        if all(s is not None for s in operand_shapes):  # the attributes fit the operands
            seen = (ops[i], text, tuple(operand_shapes), shapes[i])
            if seen in fits:
                continue
            try:
                ok = OPS[ops[i]].shape(operand_shapes, **attrs[i]) == shapes[i]
            except Exception:
                ok = False
            _require(ok, "attributes")
            fits.add(seen)
    sp = z["spans"]
    spans = Spans.from_columns(*(np.ascontiguousarray(sp[:, k], dtype=np.int64).tobytes() for k in (0, 1)))
    inputs = dict((k, v) for k, v in meta["inputs"])
    defaults = {name: z[f"d_{name}"] for name in meta["defaults"]}
    for name, v in defaults.items():
        want = shapes[inputs[name]]
        _require(want is None or v.shape == want, "a default value")
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
        inputs=inputs,
        declared_shapes={k: tuple(v) for k, v in meta["declared_shapes"]},
        defaults=defaults,
        outputs=list(meta["outputs"]),
        bindings=dict((k, v) for k, v in meta["bindings"]),
        dtype=dtype,
        data_inputs=set(meta.get("data_inputs", ())),
        warnings=[(message, (span[0], span[1])) for message, span in meta.get("warnings", ())],
    )
    return g
