"""Packaging: the built wheel, installed non-editable in a clean venv, runs from outside the repo.

An editable install finds grammars/cgraph.lark in the repository; a wheel must
carry it as cgraph_cli/grammars/cgraph.lark (force-included by pyproject.toml).
This test builds the wheel, installs it into a fresh venv and runs
`cgraph eval lecture.cg` in a folder outside the repository.  It skips, saying
why, only when the build backend cannot be fetched (no network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.slow  # about 30 s (pip fetches the dependencies); runs in the normal suite

NETWORK_HINTS = (
    "Could not find a version",
    "No matching distribution",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectionError",
    "ProxyError",
    "Read timed out",
)


def _run(cmd: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CGRAPH_DEBUG")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _offline(r: subprocess.CompletedProcess) -> bool:
    text = r.stdout + r.stderr
    return any(h in text for h in NETWORK_HINTS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)], cwd=out)
    if r.returncode != 0:
        # no `build` module: pip can build the wheel too
        r2 = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)], cwd=out)
        if r2.returncode != 0:
            if _offline(r) or _offline(r2):
                pytest.skip("cannot build the wheel offline: the build backend (hatchling) is not reachable")
            pytest.fail(f"building the wheel failed:\n{r.stderr[-3000:]}\n{r2.stderr[-3000:]}")
    wheels = sorted(out.glob("cgraph_cli-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_wheel_contains_the_grammar(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "cgraph_cli/grammars/cgraph.lark" in names
    assert "cgraph_cli/cli/entry.py" in names and "cgraph_cli/ops/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
    shipped = sorted(n for n in names if n.startswith("cgraph_cli/examples/"))
    assert shipped == sorted(f"cgraph_cli/examples/{p.name}" for p in EXAMPLES.glob("*.cg"))  # the .cg files only
    meta = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "cgraph = cgraph_cli.cli.entry:console" in zipfile.ZipFile(wheel).read(meta).decode()


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    env_dir = home / "venv"
    r = _run([sys.executable, "-m", "venv", str(env_dir)], cwd=home)
    assert r.returncode == 0, r.stderr
    py = env_dir / "bin" / "python"
    r = _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=home)
    if r.returncode != 0:
        if not _offline(r):
            pytest.fail(f"pip install of the wheel failed:\n{r.stderr[-3000:]}")
        # offline: install the wheel itself, and borrow only its dependencies from this environment
        r = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=home)
        assert r.returncode == 0, r.stderr
        site = next((env_dir / "lib").glob("python3*/site-packages"))
        import numpy

        (site / "zz_deps_from_test_env.pth").write_text(str(Path(numpy.__file__).parent.parent) + "\n")
    return env_dir


def test_installed_wheel_runs_outside_the_repo(venv, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(EXAMPLES / "lecture.cg", work / "lecture.cg")
    cgraph = venv / "bin" / "cgraph"
    assert cgraph.exists()
    r = _run([str(cgraph), "eval", "lecture.cg", "--format", "json"], cwd=work, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["value"] == 14.0 and doc["gradients"] == {"a": 7.0, "b": 9.0, "c": 2.0}
    r = _run([str(cgraph), "eval", "lecture.cg"], cwd=work, timeout=120)
    assert r.returncode == 0 and "14" in r.stdout, r.stderr
    # the code and the grammar come from the venv, not from the repository
    probe = "import cgraph_cli, cgraph_cli.lang.parser as p; print(cgraph_cli.__file__); print(p.grammar_path())"
    r = _run([str(venv / "bin" / "python"), "-c", probe], cwd=work, timeout=120)
    assert r.returncode == 0, r.stderr
    module_file, grammar = r.stdout.split("\n")[:2]
    assert Path(module_file).resolve().is_relative_to(venv.resolve())
    assert Path(grammar).resolve().is_relative_to(venv.resolve())
    assert Path(grammar).name == "cgraph.lark"
    assert not Path(module_file).resolve().is_relative_to(ROOT.resolve())


def test_installed_wheel_ships_the_examples(venv, tmp_path):
    """Issue 15, item 6: outside the repository, in a folder without examples/, the examples are reachable by
    name; `cgraph examples` lists them, and shell completion offers them."""
    cgraph = str(venv / "bin" / "cgraph")
    r = _run([cgraph, "examples"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()] == sorted(p.stem for p in EXAMPLES.glob("*.cg"))
    assert "The lecture's computation graph" in r.stdout
    r = _run([cgraph, "examples", "lecture"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and r.stdout == (EXAMPLES / "lecture.cg").read_text(encoding="utf-8")
    r = _run([cgraph, "eval", "lecture", "--at", "a=-1,b=3,c=4", "--format", "json"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["value"] == 14.0 and doc["gradients"] == {"a": 7.0, "b": 9.0, "c": 2.0}
    r = _run([cgraph, "eval", "examples/lecture.cg"], cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "cgraph ships the example 'lecture'" in r.stderr
    r = _run([str(venv / "bin" / "python"), "-c", "import cgraph_cli as cg; print(cg.load('mlp').outputs)"], tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "['loss']", r.stderr
    env = {"_CGRAPH_COMPLETE": "complete_bash", "COMP_WORDS": "cgraph eval lin", "COMP_CWORD": "2"}
    r = _run([cgraph], cwd=tmp_path, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["linear_regression"], r.stderr
    assert list(tmp_path.iterdir()) == []


def test_installed_wheel_reports_errors_without_traceback(venv, tmp_path):
    r = _run([str(venv / "bin" / "cgraph"), "eval", "-e", "y = sigmod(x)", "--at", "x=1"], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "sigmoid" in r.stderr and "Traceback" not in r.stderr
