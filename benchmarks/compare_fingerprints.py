"""Side by side, two fingerprint files (``abcl fingerprint`` or the shared probe's): the
computations both list, which agree and which differ.

    python benchmarks/compare_fingerprints.py MINE.txt THEIRS.txt
"""

from __future__ import annotations

import argparse
from pathlib import Path


def lines(path: str) -> dict[str, str]:
    """name -> hash; the name is everything before the last field, spaces squeezed."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            *name, value = line.split()
            out[" ".join(name)] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mine")
    parser.add_argument("theirs")
    args = parser.parse_args()
    mine, theirs = lines(args.mine), lines(args.theirs)
    common = [name for name in mine if name in theirs]
    differ = [name for name in common if mine[name] != theirs[name]]
    print(f"{len(common)} computations in both; {len(common) - len(differ)} agree, {len(differ)} differ"
          + (": " + ", ".join(differ) if differ else ""))


if __name__ == "__main__":
    main()
