"""`snakemake ARGS` as the command line runs it, each in its own process, without paying for
Python and Snakemake's start-up each time: a forkserver imports Snakemake once and forks a
fresh child per run (the standard library's ``multiprocessing`` forkserver, preloaded). A dozen
dry runs in the suite cost about two seconds each otherwise, nearly all of it imports."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRELOAD = ["snakemake.cli", "abcl.config", "snakemake_forks"]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _main(args: list[str], cwd: str, out: str, err: str, env: dict[str, str]) -> None:
    """In the forked child: the console script's ``main``, its output in files; exits with its code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_TRUNC), fd)
    sys.argv = ["snakemake", *args]
    from snakemake.cli import main
    try:
        main(args)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run(args: list[str], cwd: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """What ``subprocess.run(["snakemake", *args], cwd=cwd, capture_output=True, text=True)`` returns."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        for path in (out, err):
            open(path, "w").close()
        child = _context.Process(target=_main, args=(list(args), str(cwd), out, err, dict(env or os.environ)))
        child.start()
        child.join()
        with open(out) as stdout, open(err) as stderr:
            return subprocess.CompletedProcess(["snakemake", *args], child.exitcode, stdout.read(), stderr.read())
