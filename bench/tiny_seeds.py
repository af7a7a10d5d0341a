"""The tiny demo over several seeds: one seed is not a result.

    python bench/tiny_seeds.py                  # python rlef.py --model tiny --seed S, for S = 0, 1, 2
    python bench/tiny_seeds.py --table-only     # re-print the table from the runs already in --run-dir

Runs the quick-start command once per seed, one after the other (each takes the machine's cores), each in
its own run folder, then prints README's before/after table with, per cell, the mean over seeds and the
range [lowest, highest]. "after RL" is each run's best checkpoint on the held-out problems (rlef.py keeps
it; summary.json names it), and "after, random feedback" is the ablation on that checkpoint; a last row gives
the last checkpoint's multi-turn 1@3, which no selection touched. Any further flags after ``--`` go to every
rlef.py run. On a machine shared with other jobs, OMP_WAIT_POLICY=PASSIVE keeps torch's idle threads from
spinning: the same runs, several times faster.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("multi-turn 1@3", lambda r: r["multi_turn_1@3"]), ("single-turn 1@3", lambda r: r["single_turn_1@3"])]
ROWS += [(f"solved after turn {t + 1}", lambda r, t=t: r["per_turn"][t]["solve_rate"]) for t in range(3)]
COLUMNS = [("before RL", "before"), ("after RL (best)", "after"), ("after, random feedback", "random_feedback")]


def run(seed: int, run_dir: Path, extra: list[str]) -> float:
    """One training run of the tiny demo; returns its wall-clock seconds."""
    cmd = [sys.executable, "rlef.py", "--model", "tiny", "--seed", str(seed), "--run-dir", str(run_dir), *extra]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    with open(run_dir.parent / f"seed{seed}.log", "w") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{100 * mean:.1f}% [{100 * min(values):.0f}–{100 * max(values):.0f}]"


def table(summaries: dict[int, dict]) -> str:
    problems = next(iter(summaries.values()))["after"]["problems"]
    seeds = ", ".join(map(str, summaries))
    lines = [f"| held-out problems ({problems}), seeds {seeds}: mean [range] | "
             + " | ".join(name for name, _ in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for label, get in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell([get(s[key]) for s in summaries.values()])
                                                 for _, key in COLUMNS) + " |")
    # "after" is selected on the problems it is reported on (the tiny demo has one held-out set): the last
    # checkpoint's score, which nothing selected, shows how much that selection adds.
    last = [s["last"]["multi_turn_1@3"] for s in summaries.values()]
    lines.append(f"| multi-turn 1@3, last checkpoint | | {cell(last)} | |")
    return "\n".join(lines)


def read_run(run_dir: Path) -> dict:
    """summary.json of a run, plus the evaluation of its last checkpoint as "last"."""
    summary = json.loads((run_dir / "summary.json").read_text())
    last_step = max(int(p.name.split("_")[1][4:]) for p in run_dir.glob("eval_step*_real.json"))
    return {**summary, "last": json.loads((run_dir / f"eval_step{last_step}_real.json").read_text())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--run-dir", default="runs/tiny_seeds", help="seed S runs in RUN_DIR/seedS")
    p.add_argument("--table-only", action="store_true", help="do not train; tabulate the existing runs")
    p.add_argument("extra", nargs="*", help="after --: flags for every rlef.py run")
    a = p.parse_args(argv)
    base = (ROOT / a.run_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for seed in a.seeds:
        if not a.table_only:
            seconds[seed] = run(seed, base / f"seed{seed}", a.extra)
    summaries = {seed: read_run(base / f"seed{seed}") for seed in a.seeds}
    print(table(summaries))
    for seed, s in summaries.items():
        took = f", {seconds[seed] / 60:.1f} min" if seed in seconds else ""
        print(f"seed {seed}: best checkpoint after batch {s['best']['step']} of the run{took}")


if __name__ == "__main__":
    main()
