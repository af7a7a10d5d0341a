"""Convert CodeContests (DeepMind) from its Hugging Face parquet shards to the project's problem format.

    python -m data.code_contests PATH... [--out data/code_contests/{split}.jsonl] [--no-generated-tests]

PATH is a shard (`train-00000-of-00039.parquet`, `valid-00000-of-00001.parquet`, `test-00000-of-00001.parquet`)
or a folder searched recursively for `*.parquet`; the split is the part of the file name before the first "-".
What is kept, following the paper (§3.1):
  - problems with at least one public and at least one private test (train 13,328 -> 12,659 in the paper);
  - of the rest, problems that read and write files (non-empty `input_file`/`output_file`) are dropped too,
    because the judge only feeds stdin and reads stdout; both counts are printed;
  - only Python 3 solutions (language 3), correct and incorrect; Python 2 and other languages are left out.
    The incorrect ones are what the random-feedback ablation runs (appendix C.2).
Time limits are the contest's own (null where the dataset has none), used as they are (App. A.2).

Shards are read a few rows at a time, so the 3 GB train split never sits in memory, and each split is written
through save_problems (temporary file, then rename): an interrupted conversion leaves no half-written file.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from data import Problem, Test, run_converter, save_problems

PYTHON3 = 3  # CodeContests' Language enum: 0 unknown, 1 Python 2, 2 C++, 3 Python 3, 4 Java
SOURCES = {0: "unknown", 1: "codechef", 2: "codeforces", 3: "hackerearth", 4: "codejam", 5: "atcoder", 6: "aizu"}
COLUMNS = ["name", "description", "public_tests", "private_tests", "generated_tests", "solutions",
           "incorrect_solutions", "time_limit", "memory_limit_bytes", "difficulty", "source", "input_file",
           "output_file"]
PAPER_COUNTS = {"train": 12659, "valid": 117, "test": 165}   # after dropping those without public/private tests
BATCH_ROWS = 16  # rows with many generated tests can be several MB each


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading CodeContests' parquet shards needs pyarrow: pip install pyarrow") from None
    return pq


@dataclass
class Counts:
    read: int = 0
    no_public_or_private: int = 0  # the paper's filter
    file_based: int = 0
    kept: int = 0
    with_python3_solution: int = 0
    with_python3_incorrect_solution: int = 0


def tests(struct: dict | None) -> list[Test]:
    if not struct:
        return []
    return [Test(i, o) for i, o in zip(struct["input"] or [], struct["output"] or [])]


def python3(struct: dict | None) -> list[str]:
    """The Python 3 programs of a {"language": [...], "solution": [...]} column."""
    if not struct:
        return []
    return [s for lang, s in zip(struct["language"] or [], struct["solution"] or []) if lang == PYTHON3]


def to_problem(row: dict, keep_generated: bool = True) -> Problem:
    """One CodeContests row (as a Python dict) -> Problem. Filtering is done by the caller."""
    limit = row.get("time_limit")
    seconds = (limit.get("seconds") or 0) + (limit.get("nanos") or 0) / 1e9 if limit else 0.0
    source = row.get("source")
    return Problem(
        name=row["name"],
        description=row["description"],
        public_tests=tests(row["public_tests"]),
        private_tests=tests(row["private_tests"]),
        generated_tests=tests(row.get("generated_tests")) if keep_generated else [],
        time_limit=seconds or None,  # 0 means "not given" in the dataset
        memory_limit=row.get("memory_limit_bytes") or None,
        solutions=python3(row.get("solutions")),
        incorrect_solutions=python3(row.get("incorrect_solutions")),
        source=SOURCES.get(source, str(source)) if source is not None else None,
        difficulty=row.get("difficulty"),
    )


def read_rows(path: Path) -> Iterator[dict]:
    pq = _parquet()
    shard = pq.ParquetFile(path)
    missing = [c for c in COLUMNS if c not in shard.schema_arrow.names]
    if missing:
        raise ValueError(f"{path} is not a CodeContests shard: it has no column(s) {', '.join(missing)}")
    for batch in shard.iter_batches(batch_size=BATCH_ROWS, columns=COLUMNS):
        yield from batch.to_pylist()


def convert(shards: list[Path], counts: Counts, keep_generated: bool = True) -> Iterator[Problem]:
    """Yield the kept problems of some shards, counting what is dropped and why."""
    for path in shards:
        start, kept_before = time.time(), counts.kept
        for row in read_rows(path):
            counts.read += 1
            if not row["public_tests"] or not row["public_tests"]["input"] \
                    or not row["private_tests"] or not row["private_tests"]["input"]:
                counts.no_public_or_private += 1
                continue
            if row.get("input_file") or row.get("output_file"):
                counts.file_based += 1
                continue
            problem = to_problem(row, keep_generated)
            counts.kept += 1
            counts.with_python3_solution += bool(problem.solutions)
            counts.with_python3_incorrect_solution += bool(problem.incorrect_solutions)
            yield problem
        print(f"  {path.name}: kept {counts.kept - kept_before} problems ({time.time() - start:.1f} s; "
              f"{counts.kept} kept of {counts.read} read so far)", file=sys.stderr, flush=True)


def find_shards(paths: list[str]) -> dict[str, list[Path]]:
    """Group parquet files by split name (the file name up to the first '-')."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.parquet"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no .parquet files found in {', '.join(paths)}")
    splits: dict[str, list[Path]] = {}
    for f in files:
        splits.setdefault(f.name.split("-")[0].split(".")[0], []).append(f)
    return splits


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="parquet shards, or folders that contain them")
    ap.add_argument("--out", default="data/code_contests/{split}.jsonl",
                    help="output file; {split} is replaced by the split name (default: %(default)s)")
    ap.add_argument("--no-generated-tests", action="store_true",
                    help="leave out generated_tests (only evaluation uses them; they are most of the 3 GB)")
    args = ap.parse_args(argv)

    splits = find_shards(args.paths)
    if len(splits) > 1 and "{split}" not in args.out:
        ap.error(f"the inputs hold several splits ({', '.join(splits)}); put {{split}} in --out")
    for split, shards in splits.items():
        out = args.out.replace("{split}", split)
        print(f"{split}: {len(shards)} shard(s) -> {out}", file=sys.stderr, flush=True)
        counts = Counts()
        save_problems(convert(shards, counts, keep_generated=not args.no_generated_tests), out)
        print(f"{split}: read {counts.read}; dropped {counts.no_public_or_private} without public or private "
              f"tests (the paper's filter) and {counts.file_based} that read/write files instead of "
              f"stdin/stdout; wrote {counts.kept} to {out} ({counts.with_python3_solution} with a Python 3 "
              f"solution, {counts.with_python3_incorrect_solution} with a Python 3 incorrect solution)", flush=True)
        paper = PAPER_COUNTS.get(split)
        if paper is not None and counts.kept != paper:
            print(f"note: the paper's {split} split has {paper} problems after its filter (§3.1); {counts.kept} "
                  f"written here ({counts.file_based} dropped for reading files): its solve rates are not over the "
                  f"paper's problems", file=sys.stderr, flush=True)


if __name__ == "__main__":
    run_converter(main)
