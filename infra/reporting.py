"""What a run reports, and how: the two measures of the evaluation that are standard formulas (pass@k, chrF),
the evaluation report and the before/after table as text, and the learning curve as a picture.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def chrf(hyp: str, ref: str, char_order: int = 6, beta: float = 2.0) -> float:
    """Sentence-level chrF (Popović, 2015), 0-100: the paper's measure of how much code changed between turns.

    Written to equal sacrebleu's ``CHRF().sentence_score(hyp, [ref]).score``, the implementation papers report
    (tests/test_rlef.py compares the two): whitespace is removed before counting character n-grams of orders
    1-6, precision and recall are averaged over the orders that occur in both strings (sacrebleu's "effective
    order"; an order with no match counts as 0), and combined as F_beta with beta = 2 (recall weighs 4x).
    """
    hyp, ref = "".join(hyp.split()), "".join(ref.split())
    precisions, recalls = [], []
    for n in range(1, char_order + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        if not h or not r:
            continue                                   # the string is shorter than n: this order is left out
        match = sum((h & r).values())
        precisions.append(match / sum(h.values()))
        recalls.append(match / sum(r.values()))
    if not precisions:
        return 0.0                                     # sacrebleu's value, even for two empty strings
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    return 0.0 if p + r == 0 else 100 * (1 + beta ** 2) * p * r / (beta ** 2 * p + r)


def format_report(report: dict) -> str:
    feedback = report["feedback"]
    if "random_feedback" in report:
        r = report["random_feedback"]
        feedback += (" (incorrect solutions of other problems, appendix C.2)" if r["construction"] ==
                     "incorrect solutions" else f" (messages swapped between problems; {r['kept_real']:.0f} of "
                     f"{r['messages']:.0f} kept their own: no other problem's message yet)")
    turns = int(report["turns"])
    lines = [f"{report['problems']} problems x {report['samples']} samples, feedback {feedback}",
             f"  tests: {report['tests']}"
             + (f"; {report['public_tests_only']} problems have no others: judged on public tests only"
                if report.get("public_tests_only") else ""),
             *([f"  JUDGE ERRORS: {report['judge_errors']} verdicts the judge failed to give (counted as failures)"]
               if report.get("judge_errors") else []),
             f"  multi-turn 1@{turns}:  {100 * report['multi_turn_1@3']:5.1f}%",
             f"  single-turn 1@{turns}: {100 * report['single_turn_1@3']:5.1f}%   (equal budget)",
             "  " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in report["pass@k"].items()),
             "  turn  solved  episodes  code changed  chrF  verdicts"]
    for t in report["per_turn"]:
        changed = "" if t["code_changed"] is None else f"{100 * t['code_changed']:.0f}%"
        chrf_ = "" if t["chrF_to_previous"] is None else f"{t['chrF_to_previous']:.0f}"
        mix = ", ".join(f"{k} {v}" for k, v in sorted(t["verdicts"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {t['turn']:>4}  {100 * t['solve_rate']:5.1f}%  {t['episodes']:>8}  {changed:>12}  {chrf_:>4}  {mix}")
    return "\n".join(lines)


def plot_curves(run_dir: Path):
    """learning_curve.png from metrics.jsonl, when matplotlib is installed (optional dependency)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib for learning_curve.png)")
        return
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot([r["step"] for r in rows], [100 * r["solve_rate"] for r in rows], label="training solve rate", alpha=0.6)
    evals = [r for r in rows if "eval" in r]
    if (run_dir / "eval_step0_real.json").is_file():                     # the "before" point
        evals.insert(0, {"step": 0, "eval": read_json(run_dir / "eval_step0_real.json")})
    for key, label in (("multi_turn_1@3", "held-out multi-turn 1@3"), ("single_turn_1@3", "held-out single-turn 1@3")):
        a.plot([r["step"] for r in evals], [100 * r["eval"][key] for r in evals], "o-", label=label)
    a.set_xlabel("step"), a.set_ylabel("%"), a.legend()
    b.plot([r["step"] for r in rows], [r["ref_kl"] for r in rows], label="KL to reference")
    b.set_xlabel("step"), b.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "learning_curve.png", dpi=100)
    print(f"learning curve: {run_dir / 'learning_curve.png'}")


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def before_after_table(before, after, ablation, best_step: int | None = None) -> str:
    """The summary the main job ends with, in the paper's terms (held-out problems); "after" is the best
    checkpoint on the valid set, from step ``best_step``."""
    after_name = "after RL" if best_step is None else f"after RL (step {best_step})"
    cols = [("before RL", before), (after_name, after), ("after, random feedback", ablation)]
    cols = [(name, r) for name, r in cols if r]
    rows = [("multi-turn 1@3", lambda r: r["multi_turn_1@3"]), ("single-turn 1@3", lambda r: r["single_turn_1@3"])]
    rows += [(f"solved after turn {t + 1}", lambda r, t=t: r["per_turn"][t]["solve_rate"])
             for t in range(len(cols[0][1]["per_turn"]))]
    out = ["held-out problems".ljust(26) + "".join(name.rjust(24) for name, _ in cols)]
    for label, get in rows:
        out.append(label.ljust(26) + "".join(f"{100 * get(r):23.1f}%" for _, r in cols))
    return "\n".join(out)
