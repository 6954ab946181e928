"""The public Python API is what ``__all__`` says, every public name and member is documented and typed, and the
examples in the docstrings and in the README's "Using cgraph from Python" section run and print what they show."""

from __future__ import annotations

import doctest
import inspect
import os
import re
import typing

import pytest

import cgraph_cli as cg
from cgraph_cli import api
from tests.conftest import ROOT

EXTRA = {"__version__", "load_ipython_extension"}  # the package's own names beside the API's


def test_all_is_exactly_the_public_surface() -> None:
    assert set(cg.__all__) == set(api.__all__) | EXTRA
    assert len(cg.__all__) == len(set(cg.__all__))
    assert dir(cg) == sorted(cg.__all__)
    for name in cg.__all__:
        assert getattr(cg, name) is getattr(api, name, getattr(cg, name))
    public = {
        n
        for n, v in vars(api).items()
        if not n.startswith("_")
        and getattr(v, "__module__", None) == api.__name__
        and (inspect.isclass(v) or inspect.isfunction(v))
    }
    # every class and function the api module defines is in __all__, or is a helper the CLI uses (documented too)
    assert public - set(api.__all__) <= {"check_picture_options"}, public - set(api.__all__)
    with pytest.raises(AttributeError):
        cg.no_such_name  # noqa: B018


def _members(cls: type) -> list[tuple[str, object]]:
    """A public class's own public members (methods, properties, class methods), with the dunders a user calls."""
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__getitem__", "__len__", "__iter__"):
            continue
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        if inspect.isfunction(member) or isinstance(member, property):
            out.append((name, member))
    return out


def _public_objects() -> list[tuple[str, object]]:
    objs: list[tuple[str, object]] = []
    for name in sorted(cg.__all__):
        if name == "__version__":
            continue
        obj = getattr(cg, name)
        objs.append((name, obj))
        if inspect.isclass(obj):
            objs += [(f"{name}.{m}", member) for m, member in _members(obj)]
    return objs


@pytest.mark.parametrize("name, obj", _public_objects(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_public_name_is_documented(name: str, obj: object) -> None:
    doc = (obj.fget if isinstance(obj, property) else obj).__doc__  # type: ignore[union-attr]
    if name.endswith(".__init__") and not doc:
        pytest.skip("the class's docstring documents it")
    assert doc and doc.strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name, obj", _public_objects(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_public_callable_is_typed(name: str, obj: object) -> None:
    fn = obj.fget if isinstance(obj, property) else obj
    if inspect.isclass(fn):
        return
    assert callable(fn)
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    missing = [p for p in sig.parameters if p not in ("self", "cls") and sig.parameters[p].annotation is sig.empty]
    assert missing == [], f"{name}: parameters without a type: {missing}"
    assert sig.return_annotation is not sig.empty or name.endswith(".__init__"), f"{name} has no return type"
    typing.get_type_hints(fn, _hint_names())  # the hints name real types


def _hint_names() -> dict[str, object]:
    """The api module's names and those it imports for type checkers only."""
    from cgraph_cli.analysis.check import CheckReport as _Report
    from cgraph_cli.analysis.explain import Explanation as _Explanation
    from cgraph_cli.ir.graph import Graph
    from cgraph_cli.present.dot import GraphPicture

    return {**vars(api), "_Report": _Report, "_Explanation": _Explanation, "Graph": Graph, "GraphPicture": GraphPicture}


def test_the_package_is_marked_typed() -> None:
    assert (ROOT / "cgraph_cli" / "py.typed").is_file()


def _run_doctests(obj: object, name: str, text: str | None = None) -> doctest.TestResults:
    globs = {"cg": cg}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    finder = doctest.DocTestFinder()
    if text is not None:
        tests = [parser.get_doctest(text, globs, name, name, 0)]
    else:
        tests = finder.find(obj, name, globs=globs)
    saved = os.getcwd()
    os.chdir(ROOT)  # the examples load examples/lecture.cg
    try:
        for t in tests:
            runner.run(t)
    finally:
        os.chdir(saved)
    return runner.summarize(verbose=False)


@pytest.mark.slow
def test_docstring_examples_run() -> None:
    result = _run_doctests(api, "cgraph_cli.api")
    assert result.attempted >= 20
    assert result.failed == 0
    result = _run_doctests(cg, "cgraph_cli")
    assert result.attempted >= 2 and result.failed == 0


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## Using cgraph from Python\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no 'Using cgraph from Python' section"
    return m.group(1)


@pytest.mark.slow
def test_readme_python_examples_run() -> None:
    section = _readme_section()
    blocks = re.findall(r"```pycon\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    result = _run_doctests(None, "README.md", "\n".join(blocks))
    assert result.attempted >= 10 and result.failed == 0


def test_readme_names_the_api() -> None:
    section = _readme_section()
    for name in ("cg.parse", "cg.load", ".eval(", ".grad", ".nodes", ".to_json()", ".check(", ".explain(", ".render("):
        assert name in section, name
    assert "%%cgraph" in section and "examples/lecture.ipynb" in section
