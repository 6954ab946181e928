"""cgraph: evaluate, differentiate, explain and draw computation graphs, from the command line or Python.

>>> import cgraph_cli as cg
>>> ev = cg.parse("z = (a + b) * (b + c)").eval(a=-1, b=3, c=4)
>>> ev.value, ev.grad
(14.0, {'a': 7.0, 'b': 9.0, 'c': 2.0})

The names below are the public API (:mod:`cgraph_cli.api`); they are loaded on first use, so that
``import cgraph_cli`` stays cheap and imports neither numpy nor any display library.
``%load_ext cgraph_cli`` in a notebook adds the ``%%cgraph`` cell magic.
"""

from __future__ import annotations

from cgraph_cli import early

early.install()  # first: Ctrl-C while the cgraph program loads is a quiet exit 130 (the program only)

from typing import TYPE_CHECKING, Any  # noqa: E402

from cgraph_cli.version import __version__  # noqa: E402

if TYPE_CHECKING:
    from cgraph_cli.api import (
        CgraphError,
        CheckReport,
        CheckRow,
        Evaluation,
        Explanation,
        Frame,
        Input,
        Node,
        Picture,
        Program,
        Steps,
        load,
        parse,
    )

__all__ = [
    "CgraphError",
    "CheckReport",
    "CheckRow",
    "Evaluation",
    "Explanation",
    "Frame",
    "Input",
    "Node",
    "Picture",
    "Program",
    "Steps",
    "__version__",
    "load",
    "load_ipython_extension",
    "parse",
]


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`cgraph_cli.api` when first asked for."""
    if name in __all__:
        from cgraph_cli import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cgraph_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext cgraph_cli``: adds the ``%%cgraph`` cell magic, which evaluates the cell's program at the
    values of its ``--at`` (as the command line reads them) and shows the table and the annotated graph::

        %%cgraph --at a=-1,b=3,c=4
        z = (a + b) * (b + c)
    """
    from cgraph_cli.api import parse
    from cgraph_cli.notebook import register_magic

    register_magic(ipython, parse)
