"""Provenance and atomic files: every result carries what made it, nothing half-written survives."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import abcl

_TRACKED_LIBRARIES = ("torch", "torchvision", "torchattacks", "numpy", "scikit-learn", "pandas")


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def config_hash(config: dict[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the canonical JSON of ``config``."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of Python, abcl (with its git revision) and the libraries behind the numbers."""
    versions = {"python": platform.python_version(), "abcl": code_version()}
    for name in _TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def code_version() -> str:
    """``git describe`` of the checkout when there is one, else the package version."""
    root = Path(abcl.__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"{abcl.__version__}+{described}" if described else abcl.__version__


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A killed or failing writer therefore never leaves a file that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; a result follows the umask like any file
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, record: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def save_torch(obj: Any, path: str | Path) -> None:
    """torch.save, atomically, through a file handle: the archive then holds no file name, so the
    same tensors always give the same bytes (and the same SHA-256)."""
    import torch

    with atomic_path(path) as part:
        with open(part, "wb") as handle:
            torch.save(obj, handle)


def write_csv(frame: Any, path: str | Path) -> None:
    """Write a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as part:
        frame.to_csv(part, index=False)


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise abcl.ABCLError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise abcl.ABCLError(f"{path}: not a readable JSON file ({type(err).__name__})") from None


def read_csv(path: str | Path, columns: tuple[str, ...] = (), what: str = "a CSV",
             text_columns: tuple[str, ...] = ()) -> Any:
    """A CSV as a pandas DataFrame, or one line naming the file: missing, not a CSV, empty, or
    without the ``columns`` that ``what`` (e.g. "an evaluation CSV") has. ``text_columns`` stay
    text (a hash of digits only is no number)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={column: str for column in text_columns} or None)
    except FileNotFoundError:
        raise abcl.ABCLError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise abcl.ABCLError(f"{path}: a folder, not {what}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise abcl.ABCLError(f"{path}: not {what} ({type(err).__name__})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing or frame.empty:
        raise abcl.ABCLError(f"{path}: not {what} (" + (f"no column {', '.join(missing)}" if missing else "no rows")
                             + ")")
    return frame
