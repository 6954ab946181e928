import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CGRAPH = Path(sys.executable).parent / "cgraph"


def run_cli(*args: str, input: str | None = None, env: dict | None = None, cwd=None, timeout: float = 120):
    """Run the real `cgraph` entry point in a subprocess."""
    e = dict(os.environ)
    e.pop("CGRAPH_DEBUG", None)
    if env:
        e.update(env)
    exe = [str(CGRAPH)] if CGRAPH.exists() else [sys.executable, "-m", "cgraph_cli"]
    return subprocess.run(
        exe + list(args), input=input, capture_output=True, text=True, env=e, cwd=cwd, timeout=timeout
    )


@pytest.fixture
def cli():
    return run_cli
