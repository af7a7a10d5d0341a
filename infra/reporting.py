"""What a run reports, and how: chrF (how much code changed between turns), the evaluation report from the
episodes' records (its estimators, pass@k, n@k and the intervals, are in measures.py), the report and the
before/after table as text, and the learning curve as a picture.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from infra.measures import bootstrap_interval, multi_turn_measures, n_at_k_rates, pass_at_k


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


def eval_report(records: list[dict], problems, settings) -> dict:
    """The paper's measures from the episode records of rlef's ``eval_episodes`` (paper §3), played with
    ``settings`` (rlef's EvalSettings):

    - multi-turn 1@3: one rollout of up to ``turns`` responses, judged on its final code; n@k for each of
      ``settings.budgets``, every response a sample (measures.py: how n finals are chosen), also at each of
      ``settings.turn_limits``; pass@k over the rollouts' final solutions (Fig. 4a);
    - single-turn 1@3 at equal budget: ``turns`` independent one-turn samples, the first one that passes the
      public tests is submitted; n@k, and pass@k over all single-turn samples (unbiased estimators);
    - a 95% interval for each rate (200 bootstrap resamples over problems, Table 5); per turn: the solve
      rate if the episode stopped there, the verdict mix, how often and how much (chrF) the code changed.

    Records are put in one canonical order first (sample, problem, attempt), so that the sums of floats come
    out the same however the episodes were split over ranks.
    """
    samples, turns, extra_tests = settings.samples, settings.turns, settings.extra_tests
    judged = {p.name: len(p.public_tests) + len(p.private_tests) + (len(p.generated_tests) if extra_tests else 0)
              for p in problems}
    position = {p.name: i for i, p in enumerate(problems)}
    records = sorted(records, key=lambda r: (r["sample"], position[r["problem"]], r.get("attempt", 0)))
    multi = [r for r in records if r["mode"] == "multi"]
    report = {"problems": len(problems), "samples": samples, "turns": turns, "feedback": settings.feedback_mode,
              "feedback_tests": settings.feedback_tests, "tests": tests_used(problems, extra_tests),
              # judged on the tests the policy was shown, nothing else: their solve rate says little
              "public_tests_only": sum(judged[p.name] == len(p.public_tests) for p in problems),
              # verdicts the machinery failed to give (counted as failures): nonzero means a broken judge
              "judge_errors": sum(r.get("judge_errors", 0) for r in records)}
    groups = [{"multi": [], "single": []} for _ in problems]
    for r in records:
        groups[position[r["problem"]]][r["mode"]].append(r)
    # Per problem: multi-turn rollouts and single-turn samples as (public-test verdicts, solved on all tests)
    rollouts = [[(r["verdicts"], r["solved_after"]) for r in g["multi"]] for g in groups]
    singles = [[([r["verdict"]], [r["solved"]]) for r in g["single"]] for g in groups]
    solved = [sum(r["solved"] for r in g["multi"]) / len(g["multi"]) for g in groups]
    report["multi_turn_1@3"] = sum(solved) / len(solved)     # 1@turns: named after the paper's turn limit, 3
    report.update(multi_turn_measures(rollouts, turns, settings.budgets, settings.turn_limits))
    # Single-turn at equal budget: 1@turns at turn limit 1, exact over every order of the problem's samples
    single_1_at_t = n_at_k_rates(singles, 1, [(1, turns)])[f"1@{turns}"]
    report["single_turn_1@3"] = single_1_at_t["rate"]
    report["single_turn_n@k"] = n_at_k_rates(singles, 1, settings.budgets, rollouts_per_sample=turns)
    pass_k = {k: [pass_at_k(len(s), sum(x[1][0] for x in s), k) for s in singles]
              for k in (1, turns, 10) if k <= min(map(len, singles))}
    report["pass@k"] = {f"pass@{k}": sum(v) / len(v) for k, v in pass_k.items()}
    report["intervals"] = {"multi_turn_1@3": bootstrap_interval(solved), "single_turn_1@3": single_1_at_t["interval"],
                           "pass@k": {f"pass@{k}": bootstrap_interval(v) for k, v in pass_k.items()}}
    per_turn = []
    for t in range(turns):
        # An episode that stopped before turn t keeps its last solution.
        solved = [r["solved_after"][min(t, len(r["codes"]) - 1)] for r in multi]
        reached = [r for r in multi if len(r["codes"]) > t]
        changed = [(r["codes"][t - 1] or "", r["codes"][t] or "") for r in reached if t > 0]
        edited = [(a, b) for a, b in changed if a and b]     # chrF compares code with code, not with nothing
        per_turn.append({"turn": t + 1, "solve_rate": sum(solved) / len(multi), "episodes": len(reached),
                         "verdicts": dict(Counter(r["verdicts"][t] for r in reached)),
                         "code_changed": sum(a != b for a, b in changed) / len(changed) if changed else None,
                         "chrF_to_previous": sum(chrf(b, a) for a, b in edited) / len(edited) if edited else None})
    report["per_turn"] = per_turn
    report["mean_turns"] = sum(len(r["codes"]) for r in multi) / len(multi)
    return report


def tests_used(problems: list, extra_tests: bool) -> str:
    """Which tests judged the final responses, in words, for the report."""
    with_generated = sum(bool(p.generated_tests) for p in problems)
    if not extra_tests:
        return "public + private (generated tests left out)"
    if with_generated == 0:
        return "public + private (the data have no generated tests)"
    if with_generated < len(problems):
        return f"public + private + generated ({with_generated} of {len(problems)} problems have generated tests)"
    return "public + private + generated"


def format_report(report: dict) -> str:
    feedback = report["feedback"] + (f" from up to {report['feedback_tests']} tests, private ones among them (App. "
                                      "B.3)" if report.get("feedback_tests") else "")
    if "random_feedback" in report:
        r = report["random_feedback"]
        feedback += (" (incorrect solutions of other problems, appendix C.2)" if r["construction"] ==
                     "incorrect solutions" else f" (messages swapped between problems; {r['kept_real']:.0f} of "
                     f"{r['messages']:.0f} kept their own: no other problem's message yet)")
    lines = [f"{report['problems']} problems x {report['samples']} samples, feedback {feedback}",
             f"  tests: {report['tests']}"
             + (f"; {report['public_tests_only']} problems have no others: judged on public tests only"
                if report.get("public_tests_only") else ""),
             *([f"  time limits: {report['time_limits']}"] if "time_limits" in report else []),
             *([f"  sampled at temperature {report['temperature']:g}, top-p {report['top_p']:g}"]
               if "temperature" in report else []),
             *([f"  JUDGE ERRORS: {report['judge_errors']} verdicts the judge failed to give (counted as failures)"]
               if report.get("judge_errors") else []),
             *headline_lines(report),
             "  turn  solved  episodes  code changed  chrF  verdicts"]
    for t in report["per_turn"]:
        changed = "" if t["code_changed"] is None else f"{100 * t['code_changed']:.0f}%"
        chrf_ = "" if t["chrF_to_previous"] is None else f"{t['chrF_to_previous']:.0f}"
        mix = ", ".join(f"{k} {v}" for k, v in sorted(t["verdicts"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {t['turn']:>4}  {100 * t['solve_rate']:5.1f}%  {t['episodes']:>8}  {changed:>12}  {chrf_:>4}  {mix}")
    return "\n".join(lines)


def percent(rate: float | None, interval: list[float] | None = None) -> str:
    """12.3% [8.1, 16.0]: a rate and its 95% interval, in percent."""
    if rate is None:
        return "-"
    return f"{100 * rate:.1f}%" + (f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else "")


def rates_line(rates: dict) -> str:
    """n@k or pass@k entries ({"rate", "interval"}; or {"rate": None, "needs_samples"}) on one line."""
    return "  ".join(f"{name} {percent(r['rate'], r['interval'])}" if r["rate"] is not None
                     else f"{name} needs --samples >= {r['needs_samples']}" for name, r in rates.items())


def headline_lines(report: dict) -> list[str]:
    """The rates of paper §3 with their intervals (200 bootstrap resamples over problems, Table 5)."""
    turns, ci = int(report["turns"]), report.get("intervals", {})
    noise = report.get("rollout_noise")
    lines = [f"  multi-turn 1@{turns}:  {percent(report['multi_turn_1@3'], ci.get('multi_turn_1@3'))}"
             + (f"   rollout noise +-{100 * noise:.1f} (same problems evaluated again)" if noise is not None else ""),
             f"  single-turn 1@{turns}: {percent(report['single_turn_1@3'], ci.get('single_turn_1@3'))}"
             "   (equal budget)"]
    if "n@k" in report:
        lines += [f"  multi-turn n@k, every response a sample:  {rates_line(report['n@k'])}",
                  f"  single-turn n@k:                          {rates_line(report['single_turn_n@k'])}",
                  f"  pass@k of multi-turn final solutions:     {rates_line(report['multi_turn_pass@k'])}"]
    lines.append("  pass@k of single-turn samples:            " + "  ".join(
        f"{k} {percent(v, ci.get('pass@k', {}).get(k))}" for k, v in report["pass@k"].items()))
    for limit, rates in report.get("turn_limits", {}).items():
        lines.append(f"  turn limit {limit:>2}: {rates_line(rates)}")
    if ci:
        lines.append("  [95% intervals: 200 bootstrap resamples over problems, 2.5 and 97.5 percentiles]")
    return lines


def paper_table(report: dict, title: str) -> str:
    """The n@k of a report as a Markdown table in the layout of the paper's Tables 1 and 2: a column per n@k,
    rows single-turn and multi-turn, each rate with its 95% interval."""
    names = list(report["n@k"])
    rows = [("single-turn", report["single_turn_n@k"]), ("multi-turn", report["n@k"])]
    out = [f"| {title} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, rates in rows:
        out.append(f"| {label} | " + " | ".join(
            percent(rates[n]["rate"], rates[n]["interval"]) if rates[n]["rate"] is not None
            else f"needs --samples >= {rates[n]['needs_samples']}" for n in names) + " |")
    return "\n".join(out)


def format_step(row: dict) -> str:
    """One training batch's line in the log, from its metrics row."""
    errors = row["final_verdicts"].get("judge_error")
    return (f"step {row['step']:>5} | reward {row['reward']:+.3f} | solved {100 * row['solve_rate']:5.1f}% | "
            f"turns {row['mean_turns']:.2f} | code {100 * row['valid_code']:3.0f}% | ref KL {row['ref_kl']:.4f} | "
            f"clip {row['clip_fraction']:.3f} | entropy {row['entropy']:.3f} | {row['tokens_per_s']:.0f} tok/s, "
            f"slots {100 * row['slot_efficiency']:.0f}% | "
            f"sample {row['sample_s']:.1f}s exec {row['exec_s']:.1f}s train {row['train_s']:.1f}s"
            + (f" | JUDGE ERRORS {errors}" if errors else ""))


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
    n = cols[0][1]["turns"]                                  # the keys say 1@3 (the paper's); they are 1@turns
    rows = [(f"{mode.replace('_', '-')} 1@{n}", lambda r, m=mode: percent(r[f"{m}_1@3"], r.get("intervals", {}).get(
        f"{m}_1@3"))) for mode in ("multi_turn", "single_turn")]
    rows += [(f"solved after turn {t + 1}", lambda r, t=t: percent(r["per_turn"][t]["solve_rate"]))
             for t in range(len(cols[0][1]["per_turn"]))]
    out = ["held-out problems".ljust(26) + "".join(name.rjust(24) for name, _ in cols)]
    for label, get in rows:
        out.append(label.ljust(26) + "".join(get(r).rjust(24) for _, r in cols))
    return "\n".join(out)
