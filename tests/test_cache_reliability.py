"""The compiled-program cache never deletes what it did not write, never trusts an entry it cannot
verify against the program, and ignores a relative ``XDG_CACHE_HOME`` (issue 9: items 2, 9 and 15)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cgraph_cli import limits
from cgraph_cli.errors import Source
from cgraph_cli.run import cache
from cgraph_cli.run.program import compile_program
from tests.conftest import run_inprocess

PAD = ("# " + "padding " * 9 + "\n") * (limits.CACHE_MIN_CHARS // 70 + 1)  # makes any program big enough to be cached
TAIL = """\
input x = [1.0, 0.5, -1.0], t = [0.0, 1.0]
input W1 = randn(4, 3), b1 = zeros(4)
def f(u) = u * u
h = f(W1 @ x + b1)
v = h[1:3] + t
y = sum(v * [2, 3]) + 6 * max(h) + sum(reshape(W1, 3, 4), 0)[1] + a
"""
PROGRAM = PAD + TAIL
ARGV = ["--at", "a=0.5", "--format", "csv"]


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    """An absolute XDG_CACHE_HOME in the test's folder; returns the cache folder cgraph uses."""
    monkeypatch.delenv("CGRAPH_CACHE_DIR", raising=False)
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "cgraph" / "ir"


def eval_file(path: Path) -> tuple[int, str, str]:
    return run_inprocess(["eval", str(path), *ARGV])


def entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.npz") if len(p.stem) == 64)


def read_entry(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def write_entry(path: Path, arrays: dict[str, np.ndarray], reseal: bool) -> None:
    """Re-zip an entry; with ``reseal`` its marker is made to match the new contents (a forged entry that
    only structural checks can refuse)."""
    arrays = dict(arrays)
    seal = getattr(cache, "_seal", None)
    if reseal and seal is not None:
        arrays.pop(cache._MARK, None)
        arrays[cache._MARK] = seal(path.stem, arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# -- item 9: an entry is verified against the program ----------------------------------------------------------------


def test_entry_of_another_program_copied_under_this_key_is_not_used(tmp_path, xdg) -> None:
    a, b = tmp_path / "a.cg", tmp_path / "b.cg"
    a.write_text(PAD + "y = a * 6 + 10504\n")
    b.write_text(PAD + "y = a * 4 + 12006\n")
    ra, rb = eval_file(a), eval_file(b)
    assert ra[0] == rb[0] == 0 and "10507" in ra[1] and "12008" in rb[1]
    (ea,) = [e for e in entries(xdg) if e.stat().st_mtime_ns == min(p.stat().st_mtime_ns for p in entries(xdg))]
    (eb,) = [e for e in entries(xdg) if e != ea]
    shutil.copyfile(ea, eb)
    again = eval_file(b)
    assert again == rb
    assert "a * 6" not in again[1]


@pytest.mark.parametrize("member", ["cval", "meta", "args", "spans"])
def test_rezipped_entry_with_one_array_altered_is_not_used(tmp_path, xdg, member) -> None:
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    reference = eval_file(prog)
    assert reference[0] == 0, reference[2]
    (entry,) = entries(xdg)
    arrays = read_entry(entry)
    a = arrays[member].copy()
    if member == "meta":
        meta = json.loads(a.tobytes())
        meta["outputs"] = meta["outputs"][::-1] if len(meta["outputs"]) > 1 else [meta["outputs"][0] - 1]
        meta["bindings"] = [[name, max(i - 1, 0)] for name, i in meta["bindings"]]
        a = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    elif member == "cval":
        a[a == 6] = 4
        a[a == 2] = 5
    elif member == "args":
        a = a[::-1].copy()
        a = np.minimum(a, np.arange(len(a)) % 3)
    else:
        a = a[::-1].copy()
    arrays[member] = a
    write_entry(entry, arrays, reseal=False)
    assert eval_file(prog) == reference
    assert eval_file(prog) == reference


def _bad(name: str):
    """Mutations that make an entry structurally wrong (each given a matching seal, so only the checks of
    the structure can catch it)."""

    def meta_edit(fn):
        def f(z):
            meta = json.loads(z["meta"].tobytes())
            fn(meta)
            z["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

        return f

    def setitem(key, fn):
        def f(z):
            z[key] = fn(z[key])

        return f

    return {
        "missing spans": lambda z: z.pop("spans"),
        "missing meta": lambda z: z.pop("meta"),
        "missing a default": lambda z: z.pop(next(k for k in z if k.startswith("d_"))),
        "ops as float": setitem("ops", lambda a: a.astype(np.float64)),
        "args as float": setitem("args", lambda a: a.astype(np.float64) + 0.5),
        "cval as int": setitem("cval", lambda a: a.astype(np.int64)),
        "meta as int32": setitem("meta", lambda a: a.astype(np.int32)),
        "meta not json": setitem("meta", lambda a: np.frombuffer(b"{not json", dtype=np.uint8)),
        "meta a list": setitem("meta", lambda a: np.frombuffer(b"[1, 2]", dtype=np.uint8)),
        "ops one short": setitem("ops", lambda a: a[:-1]),
        "arity one short": setitem("arity", lambda a: a[:-1]),
        "args one long": setitem("args", lambda a: np.append(a, 0)),
        "dims one long": setitem("dims", lambda a: np.append(a, 3)),
        "spans one short": setitem("spans", lambda a: a[:-1]),
        "tflat one short": setitem("tflat", lambda a: a[:-1]),
        "tflat one long": setitem("tflat", lambda a: np.append(a, 1.0)),
        "arity too big": setitem("arity", lambda a: np.where(a == 1, 2, a).astype(a.dtype)),
        "arg out of range": setitem("args", lambda a: np.append(a[:-1], 10**6)),
        "arg negative": setitem("args", lambda a: np.append(a[:-1], -1)),
        "arg to itself": lambda z: z.__setitem__("args", np.append(z["args"][:-1], len(z["ops"]) - 1)),
        "op code out of range": setitem("ops", lambda a: np.append(a[:-1], 999).astype(a.dtype)),
        "negative dim": setitem("dims", lambda a: -a),
        "span past the text": setitem("spans", lambda a: a + 10**7),
        "frame out of range": setitem("frames_of", lambda a: a + 50),
        "cidx out of range": setitem("cidx", lambda a: a + 10**6),
        "tidx on a non-constant": setitem("tidx", lambda a: a + 1),
        "unknown op name": meta_edit(lambda m: m["opnames"].__setitem__(0, "system")),
        "output out of range": meta_edit(lambda m: m.__setitem__("outputs", [m["n"] + 5])),
        "no output": meta_edit(lambda m: m.__setitem__("outputs", [])),
        "binding out of range": meta_edit(lambda m: m.__setitem__("bindings", [["y", -7]])),
        "input on a non-input": meta_edit(lambda m: m.__setitem__("inputs", [[k, v + 1] for k, v in m["inputs"]])),
        "n too big": meta_edit(lambda m: m.__setitem__("n", m["n"] + 1)),
        "names too short": meta_edit(lambda m: m.__setitem__("names", m["names"][:-1])),
        "attr on a constant": meta_edit(lambda m: m["attrs"].append([0, {"axis": 0}])),
        "slice step zero": meta_edit(
            lambda m: [a.__setitem__("idx", [{"slice": [0, 2, 0]}]) for _, a in m["attrs"] if "idx" in a]
        ),
        "index out of the shape": meta_edit(
            lambda m: [a.__setitem__("idx", [{"slice": [1, 3, None]}, 99]) for _, a in m["attrs"] if "idx" in a]
        ),
        # equal attributes are checked once per op and shapes: the same index on another node is checked there
        "an index copied to another": meta_edit(
            lambda m: (lambda idx: idx[-1].__setitem__("idx", idx[0]["idx"]))([a for _, a in m["attrs"] if "idx" in a])
        ),
        "bad dtype name": meta_edit(lambda m: m.__setitem__("dtype", "object")),
        "frame parent out of range": meta_edit(lambda m: m["frames"].append(["g", [0, 1], 40])),
    }[name]


BAD = [
    "missing spans",
    "missing meta",
    "missing a default",
    "ops as float",
    "args as float",
    "cval as int",
    "meta as int32",
    "meta not json",
    "meta a list",
    "ops one short",
    "arity one short",
    "args one long",
    "dims one long",
    "spans one short",
    "tflat one short",
    "tflat one long",
    "arity too big",
    "arg out of range",
    "arg negative",
    "arg to itself",
    "op code out of range",
    "negative dim",
    "span past the text",
    "frame out of range",
    "cidx out of range",
    "tidx on a non-constant",
    "unknown op name",
    "output out of range",
    "no output",
    "binding out of range",
    "input on a non-input",
    "n too big",
    "names too short",
    "attr on a constant",
    "slice step zero",
    "index out of the shape",
    "an index copied to another",
    "bad dtype name",
    "frame parent out of range",
]


@pytest.mark.parametrize("reseal", [True, False], ids=["resealed", "as-is"])
@pytest.mark.parametrize("how", BAD)
def test_structurally_bad_entry_is_rebuilt_and_the_next_run_works(tmp_path, xdg, how, reseal) -> None:
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    reference = eval_file(prog)
    assert reference[0] == 0, reference[2]
    (entry,) = entries(xdg)
    arrays = read_entry(entry)
    _bad(how)(arrays)
    write_entry(entry, arrays, reseal=reseal)
    assert eval_file(prog) == reference
    assert eval_file(prog) == reference


@pytest.mark.parametrize("how", ["empty", "half", "garbage", "zip of nothing", "a folder"])
def test_truncated_or_garbage_entry_is_rebuilt_and_the_next_run_works(tmp_path, xdg, how) -> None:
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    reference = eval_file(prog)
    (entry,) = entries(xdg)
    good = entry.read_bytes()
    if how == "a folder":
        entry.unlink()
        entry.mkdir()
    elif how == "zip of nothing":
        with open(entry, "wb") as f:
            np.savez(f)
    else:
        entry.write_bytes({"empty": b"", "half": good[: len(good) // 2], "garbage": os.urandom(3000)}[how])
    assert eval_file(prog) == reference
    assert eval_file(prog) == reference


def test_an_entry_refused_by_the_checks_is_replaced_when_it_is_ours(tmp_path, xdg) -> None:
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    reference = eval_file(prog)
    (entry,) = entries(xdg)
    good = entry.read_bytes()
    arrays = read_entry(entry)
    arrays["cval"] = arrays["cval"] + 1
    write_entry(entry, arrays, reseal=False)  # still carries cgraph's marker: provably ours
    assert eval_file(prog) == reference
    assert read_entry(entry).keys() == read_entry_bytes(good).keys()
    assert np.array_equal(read_entry(entry)["cval"], read_entry_bytes(good)["cval"])


def read_entry_bytes(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


# -- item 2: only cgraph's own entries are ever deleted --------------------------------------------------------------


def _foreign_files(folder: Path) -> dict[str, bytes]:
    """A user's data: npz files, some named like cache entries (64 hex digits), none carrying cgraph's marker."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(6):
        with open(folder / f"sample{k}.npz", "wb") as f:
            np.savez(f, x=rng.normal(size=10))
    for k in range(6):  # named like entries
        with open(folder / f"{k:064x}.npz", "wb") as f:
            np.savez(f, meta=np.frombuffer(b'{"n": 1}', dtype=np.uint8), ops=np.zeros(1, dtype=np.int32))
    (folder / f"{'ab' * 32}.npz").write_bytes(b"not an npz at all")
    old = 1_000_000_000  # 2001: older than anything cgraph writes
    for k, p in enumerate(sorted(folder.iterdir())):
        os.utime(p, (old + k, old + k))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _program(k: int) -> Source:
    return Source(f"y = a * {k} + b\n", "p.cg")


def _fill(ks: range, folder: Path | None = None) -> list[str]:
    """Compile programs number ``ks`` (cached); returns their keys.  With ``folder``, entries get
    distinct increasing times in the order written."""
    keys = []
    for k in ks:
        compile_program(_program(k), {})
        key = cache.key(_program(k), {}, 0, "float64|None")
        keys.append(key)
        if folder is not None and (folder / f"{key}.npz").exists():
            os.utime(folder / f"{key}.npz", (1_500_000_000 + k, 1_500_000_000 + k))
    return keys


def test_trimming_keeps_foreign_files_and_the_newest_32_entries(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setattr(limits, "CACHE_MIN_CHARS", 0)
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(elsewhere))
    (kept,) = _fill(range(1000, 1001))  # a real cgraph entry outside the cache folder
    folder = tmp_path / "cache"
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(folder))
    foreign = _foreign_files(folder)
    link = folder / f"{'cd' * 32}.npz"  # a symlink named like an entry, to a cgraph entry: neither is deleted
    link.symlink_to(elsewhere / f"{kept}.npz")
    os.utime(link, (1, 1), follow_symlinks=False)
    keys = _fill(range(40), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in foreign} == foreign
    assert link.is_symlink() and (elsewhere / f"{kept}.npz").exists()
    ours = {p.stem for p in folder.glob("*.npz")} - {Path(n).stem for n in foreign} - {link.stem}
    assert cache.MAX_ENTRIES == 32
    assert ours == set(keys[-32:])


@pytest.mark.parametrize("where", ["ir", "cgraph", "CGRAPH_CACHE_DIR"])
def test_a_symlinked_cache_folder_is_not_used(tmp_path, monkeypatch, where) -> None:
    data = tmp_path / "data"
    foreign = _foreign_files(data)
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setattr(limits, "CACHE_MIN_CHARS", 0)
    xdg = tmp_path / "xdg"
    if where == "CGRAPH_CACHE_DIR":
        (tmp_path / "link").symlink_to(data)
        monkeypatch.setenv("CGRAPH_CACHE_DIR", str(tmp_path / "link"))
    else:
        monkeypatch.delenv("CGRAPH_CACHE_DIR", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
        if where == "ir":
            (xdg / "cgraph").mkdir(parents=True)
            (xdg / "cgraph" / "ir").symlink_to(data)
        else:
            xdg.mkdir()
            (data / "ir").mkdir()
            (xdg / "cgraph").symlink_to(data)
    _fill(range(40))
    after = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    assert after == foreign  # nothing deleted, nothing written
    if where == "cgraph":
        assert not list((data / "ir").iterdir())


def test_cli_with_a_symlinked_cache_folder_gives_the_right_answer(tmp_path, xdg) -> None:
    data = tmp_path / "data"
    foreign = _foreign_files(data)
    xdg.parent.mkdir(parents=True)
    xdg.symlink_to(data)
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    first, second = eval_file(prog), eval_file(prog)
    assert first == second and first[0] == 0
    assert {p.name: p.read_bytes() for p in data.iterdir()} == foreign


# -- item 15: a relative XDG_CACHE_HOME is ignored -------------------------------------------------------------------


def test_relative_xdg_cache_home_is_ignored(tmp_path, monkeypatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.delenv("CGRAPH_CACHE_DIR", raising=False)
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", "relcache")
    monkeypatch.chdir(work)
    assert cache.cache_dir() == home / ".cache" / "cgraph" / "ir"
    prog = tmp_path / "p.cg"
    prog.write_text(PROGRAM)
    reference = eval_file(prog)
    assert reference[0] == 0
    assert not (work / "relcache" / "cgraph" / "ir").exists()
    from cgraph_cli.lang import parser  # the grammar's table cache follows the same rule

    assert Path(parser._cache_file()).parent == home / ".cache" / "cgraph"
    assert not (work / "relcache").exists()
    assert len(entries(home / ".cache" / "cgraph" / "ir")) == 1
    assert eval_file(prog) == reference


def test_entries_of_the_format_before_seals_are_trimmed_too(tmp_path, monkeypatch) -> None:
    """An upgrade leaves entries of format 2 (no seal) behind: their exact members and JSON keys mark
    them as cgraph's, so they are trimmed like the others (oldest first) while foreign files stay."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CGRAPH_CACHE_DIR", str(folder))
    monkeypatch.delenv("CGRAPH_NO_CACHE", raising=False)
    monkeypatch.setattr(limits, "CACHE_MIN_CHARS", 0)
    foreign = _foreign_files(folder)
    old = _fill(range(100, 110))
    for k, key in enumerate(old):  # strip the seal: what cgraph wrote before
        p = folder / f"{key}.npz"
        arrays = read_entry(p)
        del arrays[cache._MARK]
        write_entry(p, arrays, reseal=False)
        os.utime(p, (1_100_000_000 + k, 1_100_000_000 + k))
    keys = _fill(range(32), folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in foreign} == foreign
    left = {p.stem for p in folder.glob("*.npz")} - {Path(n).stem for n in foreign}
    assert left == set(keys)
