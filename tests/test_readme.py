"""README and docs: the code example runs as written, every link resolves, every quoted command exists."""

import contextlib
import io
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

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


def test_the_losses_extra_installs_what_the_example_imports():
    import tomllib
    block = re.findall(r"```python\n(.*?)```", readme_section("ABCL on your own network"), re.S)[0]
    imported = {name.split(".")[0] for name in re.findall(r"^(?:import|from) (\S+)", block, re.M)} - {"abcl"}
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["losses"]
    assert imported and imported <= {re.split(r"[<>=!~ ]", requirement)[0] for requirement in extra}, imported


# ---------------------------------------------------------------- README and docs: links and commands
DOCUMENTS = [ROOT / "README.md", ROOT / "config" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"[<>…]|\.\.\.")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def quoted_commands(program: str) -> list[tuple[str, str]]:
    """(document, command) for every ``program`` command in a code block or code span."""
    found = []
    for doc in DOCUMENTS:
        text = doc.read_text()
        blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S)
        lines = [line for block in blocks for line in block.splitlines()]
        spans = re.findall(r"(?<!`)`([^`\n]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for candidate in [*lines, *spans]:
            command = candidate.split(" # ")[0].split("  #")[0].strip()
            if command.startswith(f"{program} ") and not PLACEHOLDER.search(command):
                found.append((doc.name, command))
    return sorted(set(found))


def test_readme_is_a_short_front_door():
    # 14,000: the generated block holds three runs' verdicts with their counts for, against and open
    assert len((ROOT / "README.md").read_bytes()) <= 14_000


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name}: {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{doc.name}: {target}"


def test_every_make_command_names_a_target():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    commands = quoted_commands("make")
    assert commands
    for doc, command in commands:
        named = [word for word in shlex.split(command)[1:] if "=" not in word]
        assert named and set(named) <= targets, f"{doc}: {command}"


def test_every_abcl_command_parses():
    from abcl.cli import build_parser
    commands = quoted_commands("abcl")
    assert len(commands) >= 5
    for doc, command in commands:
        words = shlex.split(command)[1:]
        if words in (["--help"], ["--version"]):
            continue
        try:
            build_parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"{doc}: {command} does not parse")


def test_quoted_config_commands_run():
    """The overlay and override examples: abcl validate-config and plan, for real."""
    from abcl.cli import main
    overlay = ROOT / "mine.yaml"
    for doc, command in quoted_commands("abcl"):
        words = shlex.split(command)[1:]
        if words[0] in ("validate-config", "plan") and "mine.yaml" not in words:
            assert main(words) == 0, f"{doc}: {command}"
    assert not overlay.exists()


@pytest.fixture(scope="module")
def snakemake_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("docs")
    for name in ("config", ".test", "profiles"):
        shutil.copytree(ROOT / name, workdir / name)
    (workdir / "mine.yaml").write_text("seeds: [0]\ntag: mine\n")  # the overlay README's example names
    return workdir


def test_every_snakemake_command_dry_runs(snakemake_workdir):
    import snakemake_forks
    commands = quoted_commands("snakemake")
    assert len(commands) >= 8
    seen = set()
    for doc, command in commands:
        words = shlex.split(command)[1:]
        if "--report" in words or "--lint" in words:  # a report needs a finished run; lint has its own test
            continue
        key = tuple(w for w in words if w != "-n")
        if key in seen:
            continue
        seen.add(key)
        args = ["--snakefile", str(ROOT / "workflow" / "Snakefile"), *words, "-n"]
        if "--directory" not in words and "--cores" not in words and "--profile" not in words:
            args += ["--cores", "1"]
        result = snakemake_forks.run(args, snakemake_workdir, dict(os.environ))
        assert result.returncode == 0, f"{doc}: {command}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"


def _minutes(text: str) -> float:
    """'9 min 30 s' -> 9.5."""
    match = re.search(r"(\d+) min (\d+) s", text)
    assert match, text[:200]
    return int(match.group(1)) + int(match.group(2)) / 60


def test_quoted_times_are_the_measured_ones():
    """README and the default config quote the times that docs/benchmarks.md and docs/development.md
    measured, rounded to the minute, instead of numbers typed once and left behind."""
    benchmarks = (ROOT / "docs" / "benchmarks.md").read_text()
    make_run = next(line for line in benchmarks.splitlines() if line.startswith("| `make run`"))
    run_minutes = round(_minutes(make_run.split("**")[1]))
    suite = re.search(r"`make test` took \*\*([^*]+)\*\*", (ROOT / "docs" / "development.md").read_text())
    assert suite, "docs/development.md states the measured suite time"
    readme = (ROOT / "README.md").read_text()
    assert f"portable CPU kernels, in about {run_minutes} minutes on 2\nCPU cores" in readme
    assert f"runs the test suite (about {round(_minutes(suite.group(1)))} minutes)" in readme
    assert f"workflow runs in about {run_minutes} minutes on 2 CPU cores" in (ROOT / "config" / "config.yaml").read_text()
