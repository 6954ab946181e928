#!/usr/bin/env python3
"""Regenerate the README's pictures (docs/images/) and the golden DOT files (tests/golden/).

Also the golden data block of the interactive lecture page (tests/golden/lecture-page.json) and, where
headless Chromium is installed (see tests/browser.py), the page's screenshots in the light and dark theme.

Run through `make images`, or directly: `.venv/bin/python scripts/make_images.py [--golden-only]`.
Everything goes through the real `cgraph` command, so the files show exactly what users get.
The tests compare against tests/golden/*.dot and never rewrite them: after an intended change
to the pictures, run this script and review the diff.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
IMAGES = ROOT / "docs" / "images"

# golden DOT files: (file name, cgraph render arguments); values are the examples' defaults
GOLDEN_CASES = [(f"{p.stem}.dot", [str(p.relative_to(ROOT))]) for p in sorted(EXAMPLES.glob("*.cg"))] + [
    ("lecture-at.dot", ["examples/lecture.cg", "--at", "a=-1,b=3,c=4"]),
    ("lecture-structure.dot", ["examples/lecture.cg", "--no-values"]),
    ("lecture-tb-nolabels.dot", ["examples/lecture.cg", "--rankdir", "TB", "--edge-labels", "none"]),
    ("lecture-dark.dot", ["examples/lecture.cg", "--theme", "dark"]),  # the dark theme's palette
    ("lecture-font16.dot", ["examples/lecture.cg", "--font-size", "16"]),  # every text size scaled by 16/12
]

PICTURES = [
    ("lecture.png", ["examples/lecture.cg", "--at", "a=-1,b=3,c=4"]),
    ("lecture.svg", ["examples/lecture.cg", "--at", "a=-1,b=3,c=4"]),
    ("functions.png", ["examples/functions.cg"]),
    ("mlp.png", ["examples/mlp.cg", "--size", "16:9"]),  # a slide: 1920 × 1080, the layout chosen to fill it
    ("lecture-dark.png", ["examples/lecture.cg", "--at", "a=-1,b=3,c=4", "--size", "16:9", "--theme", "dark"]),
]

STEPS = [("lecture-steps.gif", ["examples/lecture.cg", "--at", "a=-1,b=3,c=4"])]

PAGE = ["examples/lecture.cg", "--at", "a=-1,b=3,c=4"]  # the interactive page: its data block and screenshots
PAGE_SHOTS = [("lecture-page.png", "light", 0, None), ("lecture-page-dark.png", "dark", 11, None)]


def cgraph(*args: str) -> None:
    exe = Path(sys.executable).parent / "cgraph"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cgraph_cli"]
    proc = subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"cgraph {' '.join(args)} failed:\n{proc.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden-only", action="store_true", help="only the golden DOT files")
    opts = ap.parse_args()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, args in GOLDEN_CASES:
        cgraph("render", *args, "--format", "dot", "-o", str(GOLDEN / name))
        print(f"tests/golden/{name}")
    page_golden()
    if opts.golden_only:
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    for name, args in PICTURES:
        cgraph("render", *args, "-o", str(IMAGES / name))
        print(f"docs/images/{name}")
    for name, args in STEPS:
        cgraph("render", *args, "--steps", str(IMAGES / name))
        print(f"docs/images/{name}")
    page_screenshots()


def page_golden() -> None:
    """tests/golden/lecture-page.json: the lecture page's data block, as indented JSON."""
    import json
    import re
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "lecture.html"
        cgraph("render", *PAGE, "-o", str(page))
        text = page.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="cgraph-data">(.*?)</script>', text, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    (GOLDEN / "lecture-page.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("tests/golden/lecture-page.json")


def page_screenshots() -> None:
    """docs/images/lecture-page*.png: the interactive page in headless Chromium (skipped without one)."""
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.browser import screenshot, why_not

    why = why_not()
    if why:
        print(f"skipped the page's screenshots: {why}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "lecture.html"
        cgraph("render", *PAGE, "-o", str(page))
        for name, theme, steps, node in PAGE_SHOTS:
            screenshot(page, IMAGES / name, theme, steps, node)
            print(f"docs/images/{name}")


if __name__ == "__main__":
    main()
