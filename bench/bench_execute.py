"""Programs per second for a trivial program: the isolated judge vs plain, unisolated subprocess.run.

    python bench/bench_execute.py [--programs 600] [--workers 1 2 4]

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

PROGRAM = "print(int(input()) * 2)"
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
        judge.map([(PROGRAM, [("21\n", "42")])] * (4 * workers))   # warm-up
        start, cpu = time.perf_counter(), cpu_seconds()
        results = judge.map([(PROGRAM, [("21\n", "42")])] * n)
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


if __name__ == "__main__":
    main()
