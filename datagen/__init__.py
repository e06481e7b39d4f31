"""Seeded, pure-stdlib generators for the datasets shipped under ``slmexp/tasks/data``.

They live outside the ``slmexp`` package because a user of the library needs the data, not the code that made
it: the wheel ships the JSONL files and their data cards, and ``tests/test_*_data.py`` regenerates each data set
from here and compares bytes. Run from the root of a checkout: ``python -m datagen.<name> [--out DIR]``.

Each generator module defines ``generate(seed) -> {split: rows}`` and the dataset's defaults; the pieces they
share (balanced per-category counts, writing the split files, the regeneration CLI) live here so that every
dataset is written and regenerated the same way.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path


def allocate_splits(sizes: dict[str, int], n: int) -> dict[str, list[int]]:
    """Per-split counts for ``n`` categories: in each split equal shares, the remainder spread from an offset.

    The offset rotates from split to split, so the categories that get an extra example in validation are not
    the same ones that get it in test, and per-category totals over all splits differ by at most one.

    Args:
        sizes: Split name -> number of rows, in file order.
        n: Number of categories (labels, layouts, tools, topics).

    Returns:
        Split name -> ``n`` counts summing to that split's size.
    """
    allocation: dict[str, list[int]] = {}
    offset = 0
    for split, total in sizes.items():
        base, rem = divmod(total, n)
        counts = [base] * n
        for i in range(rem):
            counts[(offset + i) % n] += 1
        allocation[split] = counts
        offset = (offset + total % n) % n
    return allocation


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Write each split's rows to ``<out_dir>/<split>.jsonl``, one ``json.dumps(row, ensure_ascii=False)`` a line.

    Files are written as UTF-8 with ``\\n`` line endings whatever the platform, because the shipped files are
    checked byte for byte against a fresh run.

    Args:
        splits: Split name -> rows, in file order.
        out_dir: Directory to write into; created if missing.

    Returns:
        Split name -> path written, in the order of ``splits``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split, rows in splits.items():
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths


def run_cli(
    description: str,
    generate: Callable[[int], dict[str, list[dict]]],
    default_out: Path,
    default_seed: int,
    argv: Sequence[str] | None = None,
) -> dict[str, Path]:
    """The regeneration CLI every generator shares: ``[--out DIR] [--seed N]``, then one line per split written.

    Args:
        description: ``--help`` text.
        generate: The generator's ``generate(seed)``.
        default_out: Directory written when ``--out`` is not given (the shipped data directory).
        default_seed: Seed used when ``--seed`` is not given.
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        Split name -> path written.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out, help="output directory")
    parser.add_argument("--seed", type=int, default=default_seed, help="generation seed")
    args = parser.parse_args(argv)
    paths = write_splits(generate(args.seed), args.out)
    for split, path in paths.items():
        with path.open(encoding="utf-8") as fh:
            n = sum(1 for _ in fh)
        print(f"{split}: {n} rows -> {path}")
    return paths
