"""Programs per second for a trivial program: the isolated judge vs plain, unisolated subprocess.run.

    python bench/bench_execute.py [--programs 600] [--workers 1 2 4]

The baseline, measured in the same run with the same number of threads, is what a judge without a sandbox
does: `subprocess.run([python, "-c", program])` per test. The judge runs the same program through
execute.Judge: namespaces, a read-only root, rlimits, a fresh forked process and directory per test, and
every leftover process killed afterwards. A ratio >= 1.0 means the isolation costs nothing.
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import execute  # noqa: E402

PROGRAM = "print(int(input()) * 2)"


def baseline(workers: int, n: int) -> float:
    def one(_):
        out = subprocess.run([sys.executable, "-c", PROGRAM], input="21\n", capture_output=True, text=True)
        assert out.stdout == "42\n", out
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(workers)))                   # warm-up
        start = time.perf_counter()
        list(pool.map(one, range(n)))
        return n / (time.perf_counter() - start)


def isolated(workers: int, n: int) -> tuple[float, str]:
    with execute.Judge(workers=workers) as judge:
        judge.map([(PROGRAM, [("21\n", "42")])] * (4 * workers))   # warm-up
        start = time.perf_counter()
        results = judge.map([(PROGRAM, [("21\n", "42")])] * n)
        seconds = time.perf_counter() - start
        assert all(r[0].verdict == "pass" for r in results)
        return n / seconds, judge._sandboxes[0].isolation


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=600, help="programs per isolated measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, program: {PROGRAM!r}")
    rows = []
    for w in args.workers:
        base = baseline(w, max(50, args.programs // 5))        # ~5x slower: fewer programs, similar time
        judged, isolation = isolated(w, args.programs)
        rows.append((w, base, judged))
    print(f"isolation: {isolation}\n")
    print(f"{'workers':>7}  {'subprocess.run  prog/s':>22}  {'isolated judge  prog/s':>22}  {'ratio':>6}")
    for w, base, judged in rows:
        print(f"{w:>7}  {base:>22.0f}  {judged:>22.0f}  {judged / base:>5.1f}x")


if __name__ == "__main__":
    main()
