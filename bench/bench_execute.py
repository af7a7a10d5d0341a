"""Programs per second for a trivial program: the isolated judge vs plain, unisolated subprocess.run.

    python bench/bench_execute.py [--programs 600] [--workers 1 2 4]
    python bench/bench_execute.py --hostile     # judge CPU seconds on hostile outputs (end of this file)

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


# ---- Hostile outputs: judge CPU seconds (python bench/bench_execute.py --hostile)
#
# Every output and reply within the caps must be judged in linear time and bounded memory. Each row times the
# judge's own work (process CPU seconds: comparison, code extraction, decoding a reply) on a hostile input next
# to an ordinary input of the same size, both measured here in the same run.

def _hostile_cases():
    mib, P = 1 << 20, (1 << 61) - 1
    shorts = " ".join(["ab"] * (16 * mib // 3))                               # ~16 MiB of short tokens
    floats = " ".join(["0.5"] * (mib))                                        # 4 MiB of float tokens
    colliding = list(range(1, 20001)) + [k * P for k in range(1, 20001)]      # 20,000 distinct values, hash 0
    ordinary = list(range(40000))
    F = execute.FunctionTest
    return [
        ("one 4 MiB numeric token, float expected",
         lambda: _judged("1" * (4 * mib - 1) + "x", "1.5"),
         lambda: _judged(floats.replace(" ", "\n"), floats)),
        ("16 MiB of short tokens, 2 expected",
         lambda: _judged(shorts, "ab ab"),
         lambda: _judged(shorts.replace(" ", "\n"), shorts)),
        ("unclosed fence + 4 MiB of letters",
         lambda: execute.extract_code("```" + "a" * (4 * mib)),
         lambda: execute.extract_code("```python\n" + "a" * (4 * mib) + "\n```")),
        ("set reply, 40,000 ints, half sharing a hash",
         lambda: F([], expected={1}).passes(_decoded({"set": colliding})),
         lambda: F([], expected={1}).passes(_decoded({"set": ordinary}))),
        ("list reply through wrap set(), same ints",
         lambda: F([], expected={1}, wrap=[["set"]]).passes(execute.from_plain(colliding)),
         lambda: F([], expected={1}, wrap=[["set"]]).passes(execute.from_plain(ordinary))),
    ]


def _judged(stdout: str, expected: str) -> str:
    """The verdict of a run that printed ``stdout`` and exited 0: what the judge does with a test's report."""
    raw = {"stdout": stdout, "stderr": "", "signal": None, "exit": 0, "seconds": 0.0}
    return execute._result(raw, "", expected).verdict


def _decoded(reply):
    try:
        return execute.from_plain(reply)
    except ValueError:   # refused: the judge calls it a wrong answer
        return None


def hostile():
    print(f"judge CPU seconds, Python {sys.version.split()[0]}\n")
    print(f"{'case':<44}  {'hostile s':>9}  {'ordinary s':>10}  {'ratio':>6}")
    for name, bad, good in _hostile_cases():
        times = []
        for f in (bad, good):
            start = time.process_time()
            f()
            times.append(time.process_time() - start)
        print(f"{name:<44}  {times[0]:>9.3f}  {times[1]:>10.3f}  {times[0] / max(times[1], 1e-9):>5.2f}x")


if __name__ == "__main__":
    if sys.argv[1:] == ["--hostile"]:
        hostile()
    else:
        main()
