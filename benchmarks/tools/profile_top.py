"""Where the operator spent its samples: the top functions of a ``py-spy record --format raw``
file (run.py's --profile), by own time and by inclusive time.

    python -m benchmarks.tools.profile_top .bench/profile/tf-bench-scale-1a2b3c.txt
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def top(lines: list[str], n: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top own, top inclusive) of collapsed-stack lines ``a;b;c count``."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    return total, own.most_common(n), inclusive.most_common(n)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.profile_top", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("-n", type=int, default=15)
    opts = parser.parse_args()
    total, own, inclusive = top(opts.file.read_text().splitlines(), opts.n)
    for title, rows in (("own", own), ("inclusive", inclusive)):
        print(f"\n{title} (% of {total} samples)")
        for frame, count in rows:
            print(f"  {100 * count / max(total, 1):5.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
