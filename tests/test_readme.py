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


def test_map_and_executor_example_runs(tmp_path: Path) -> None:
    code = python_block_after("### Many items: `map` and a standard `Executor`")
    script = tmp_path / "example.py"  # a file: the example defines its function at top level
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["[2.0, 12.0, 103.0]", "[10, 20]", "31 True"]


def test_joblib_example_runs(tmp_path: Path) -> None:
    code = python_block_after("### joblib and scikit-learn")
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'C': 1}"


def test_task_stream_example_runs(tmp_path: Path) -> None:
    code = python_block_after("### The task stream")
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    runs = [int(n) for n in re.findall(r"worker \d+: (\d+) runs?", out.stdout)]
    assert out.stdout.startswith("task stream, last 30 s: worker 1: ") and sum(runs) == 28, out.stdout
    svg = (tmp_path / "stream.svg").read_text()
    assert svg.startswith("<svg") and 'data-name="fit"' in svg and 'data-name="load"' in svg
