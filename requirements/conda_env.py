"""Write workflow/envs/abcl.yaml from requirements/lock.txt (run by `make lock`).

The conda environment lists every pin itself, so Snakemake's hash of the file changes, and the
environment is rebuilt, whenever a pin does; it refers to no file by a relative path, so it builds
from whatever directory Snakemake copies it to. Two packages cannot go through pip's resolver and
are installed by abcl.post-deploy.sh instead, without dependencies: torchattacks (its stale
``requests~=2.25.1`` conflicts with the lock's requests; it never imports requests) and abcl
itself (from the checkout the workflow runs from).

    python requirements/conda_env.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
ENV = ROOT / "workflow" / "envs" / "abcl.yaml"
POST_DEPLOY = ROOT / "workflow" / "envs" / "abcl.post-deploy.sh"
POST_DEPLOY_ONLY = ("torchattacks",)

HEADER = """\
# Software environment of every rule under `--software-deployment-method conda`; the default
# (`make run`) uses the virtualenv of requirements/lock.txt instead. GENERATED from that lock by
# requirements/conda_env.py (make lock): edit the lock, not this file. abcl.post-deploy.sh
# beside it installs {post} and abcl without dependencies.
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - setuptools
  - pip:
"""


POST_DEPLOY_SCRIPT = """\
#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment (abcl.yaml); GENERATED with it (make lock).
set -euo pipefail
pip install --no-deps {pins}
# abcl from the checkout this workflow runs from (workflow/envs/ -> the repository root), editable:
# a code change needs no rebuild, a pin change (above or in abcl.yaml) does
root="$(cd "$(dirname "$0")/../.." && pwd)"
pip install --no-deps --no-build-isolation -e "$root"
"""


def pins(lock: Path = LOCK) -> list[str]:
    lines = [line.strip() for line in lock.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _is_post_deploy(pin: str) -> bool:
    return pin.split("==")[0].lower() in POST_DEPLOY_ONLY


def render(lock: Path = LOCK) -> dict[Path, str]:
    """The environment file and its post-deploy script, as the lock gives them."""
    pinned = pins(lock)
    env = HEADER.format(post=", ".join(POST_DEPLOY_ONLY))
    env += "".join(f"      - {pin}\n" for pin in pinned if not _is_post_deploy(pin))
    post = POST_DEPLOY_SCRIPT.format(pins=" ".join(p for p in pinned if _is_post_deploy(p)))
    return {ENV: env, POST_DEPLOY: post}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what the lock gives")
    args = parser.parse_args()
    for path, text in render().items():
        if not args.check:
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            print(f"{path.relative_to(ROOT)} is stale: run `make lock`", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
