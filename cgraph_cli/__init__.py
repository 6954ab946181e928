"""cgraph: a command-line computation-graph evaluator and visualiser."""

import _signal
import sys

__version__ = "0.1.0"


def _interrupted_early(signum, frame) -> None:
    """Ctrl-C while the cgraph program is still loading: a quiet exit 130 (nothing is written yet)."""
    import os

    os._exit(130)


def _is_program() -> bool:
    """Whether this process is the cgraph program (its console script or ``python -m cgraph_cli``)."""
    argv = list(getattr(sys, "orig_argv", ()))  # python -m cgraph_cli: the package loads before its __main__
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "cgraph_cli" or "-mcgraph_cli" in argv:
        return True
    main = sys.modules.get("__main__")
    name = str(getattr(main, "__file__", None) or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name.removesuffix(".exe") == "cgraph"


# Ctrl-C in the first milliseconds, while the program loads (before main() runs), must end as it does later
# (exit 130, no message) and not with Python's traceback: the handler goes in first, before any other import
# of the package. Only for the cgraph program itself, never in a program that imports cgraph_cli; the
# command line (cli/entry.py) hands Ctrl-C back to Python once the command runs.
if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler and _is_program():
    _signal.signal(_signal.SIGINT, _interrupted_early)
