"""README's code examples run as written."""

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_losses_example_runs_as_written():
    blocks = re.findall(r"```python\n(.*?)```", readme_section("ABCL on your own network"), re.S)
    assert len(blocks) == 1
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # in this interpreter: torch is imported once per suite
        exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__main__"})
    match = re.fullmatch(r"loss (\d+\.\d+), predictions \[(\d(, \d)*)\]\n", printed.getvalue())
    assert match, printed.getvalue()
    assert len(match.group(2).split(", ")) == 16
