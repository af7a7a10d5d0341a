"""Programs per second for a trivial program: the isolated judge vs plain, unisolated subprocess.run.

    python bench/bench_execute.py [--programs 600] [--workers 1 2 4]
    python bench/bench_execute.py --hostile     # judge CPU seconds on hostile outputs (end of this file)

The baseline, measured in the same run with the same number of threads, is what a judge without a sandbox
does: `subprocess.run([python, "-c", program])` per test. The judge runs the same program through
execute.Judge: namespaces, a read-only root, rlimits, a fresh forked process and directory per test, and
every leftover process killed afterwards. A ratio >= 1.0 means the isolation costs nothing.

CPU per program is the CPU time (user + system) of everything involved, divided by the programs: this process
(the judge's threads) and its children (the programs, or the fork servers and every test they ran). On a
machine shared with other jobs it varies less than programs per second.
"""
import argparse
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import execute  # noqa: E402
from data import Problem, Test  # noqa: E402

PROGRAM = "print(int(input()) * 2)"
JOB = (Problem("double", "", [], []), PROGRAM, [Test("21\n", "42")])   # a Judge.map item: (problem, code, tests)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU time of this process, of its waited-for children, and of its live descendants with what they
    waited for (a fork server's tests count in its cutime/cstime while it runs)."""
    own = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    stats = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            stats[int(p)] = (int(fields[1]), sum(map(int, fields[11:15])) / TICK)   # ppid; utime..cstime
        except (OSError, IndexError, ValueError):
            pass
    total, frontier = 0.0, {os.getpid()}
    while frontier:
        frontier = {p for p, (parent, _) in stats.items() if parent in frontier}
        total += sum(stats[p][1] for p in frontier)
    return own + total


def baseline(workers: int, n: int) -> tuple[float, float]:
    def one(_):
        out = subprocess.run([sys.executable, "-c", PROGRAM], input="21\n", capture_output=True, text=True)
        assert out.stdout == "42\n", out
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(workers)))                   # warm-up
        start, cpu = time.perf_counter(), cpu_seconds()
        list(pool.map(one, range(n)))
        return n / (time.perf_counter() - start), (cpu_seconds() - cpu) / n


def isolated(workers: int, n: int) -> tuple[float, float, str]:
    with execute.Judge(workers=workers) as judge:
        judge.map([JOB] * (4 * workers))   # warm-up
        start, cpu = time.perf_counter(), cpu_seconds()
        results = judge.map([JOB] * n)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        assert all(r[0].verdict == "pass" for r in results)
        return n / seconds, cpu / n, judge._sandboxes[0].isolation


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=600, help="programs per isolated measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, program: {PROGRAM!r}")
    rows = []
    for w in args.workers:
        base, base_cpu = baseline(w, max(50, args.programs // 5))   # ~5x slower: fewer programs, similar time
        judged, judged_cpu, isolation = isolated(w, args.programs)
        rows.append((w, base, base_cpu, judged, judged_cpu))
    print(f"isolation: {isolation}\n")
    print(f"{'':>7}  {'subprocess.run':>21}  {'isolated judge':>21}")
    print(f"{'workers':>7}  {'prog/s':>8}  {'CPU ms/prog':>11}  {'prog/s':>8}  {'CPU ms/prog':>11}  {'ratio':>6}")
    for w, base, base_cpu, judged, judged_cpu in rows:
        print(f"{w:>7}  {base:>8.0f}  {1e3 * base_cpu:>11.2f}  {judged:>8.0f}  {1e3 * judged_cpu:>11.2f}"
              f"  {judged / base:>5.1f}x")


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
