"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


def test_quick_start_runs() -> None:
    code = python_block_after("## Quick start")
    code += "\nprint('quick start ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "quick start ok" in out.stdout


def test_readme_opens_with_the_two_commands() -> None:
    head = README.read_text().split("\n## ", 1)[0]
    assert "bash .ci/run" in head
    assert "notebooks/01-quickstart.ipynb" in head
