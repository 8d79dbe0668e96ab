"""README's code examples run as written."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_losses_example_runs_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", readme_section("ABCL on your own network"), re.S)
    assert len(blocks) == 1
    result = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.fullmatch(r"loss (\d+\.\d+), predictions \[(\d(, \d)*)\]\n", result.stdout)
    assert match, result.stdout
    assert len(match.group(2).split(", ")) == 16
