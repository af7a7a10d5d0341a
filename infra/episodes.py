"""Episodes on disk, and the pages that show them: what the policy actually wrote, read as a person reads it.

Every number a run reports (reward, solve rate, 1@3) is a mean over episodes; this file keeps the episodes.

- ``rlef.py eval`` writes every episode it played into ``<report>.episodes.jsonl`` beside the report JSON, and
  a page ``<report>.episodes.html``. Training writes, in ``RUN_DIR/episodes/``, a few sampled episodes of
  each batch (``--episodes-per-batch``: ``step_000001_train.jsonl``, with the per-turn KL term and reward
  PPO saw) and every episode of each evaluation (``step_000020_eval.jsonl`` and its page;
  ``step_000060_eval_random.jsonl`` for the random-feedback ablation); the run ends with
  ``before_after.html``, each held-out problem before RL and after it, side by side.
- A file is JSON lines: an evaluation's first line is ``{"report": ...}`` (its measures, for the page's
  table), then one line per episode: the problem, the prompt, each turn's response, extracted code, verdict
  on the public tests and the feedback the environment wrote, the final verdict and the reward.
- The page is one self-contained HTML file (standard library only: no script, no network, no external URL):
  the report's table, then the problems grouped by outcome, each episode a conversation. All text that a
  model or a program wrote is escaped, and a very long field is cut with a marker saying how much.
- ``python rlef.py show FILE [--problem NAME]``: the same in a terminal; ``--html OUT [--before FILE]`` writes
  a page.
"""
from __future__ import annotations

import argparse
import difflib
import html
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data.prompts import initial_prompt, prefill
from infra.inputs import UsageError
from infra.reporting import percent

FIELD_LIMIT = 6000        # characters of one response, code or feedback shown on a page; the rest is cut
TERMINAL_LIMIT = 800      # the same in the terminal view

# A problem's outcome in one evaluation: the best among its multi-turn rollouts (counts are shown beside it),
# then whether any single-turn sample solved it. The paper's question is the second group: did feedback help?
GROUPS = {"turn1": ("solved at turn 1", "a multi-turn rollout passed all tests with its first response"),
          "feedback": ("solved after feedback", "a multi-turn rollout failed first, read the feedback, then passed"),
          "never": ("never solved", "no rollout and no single-turn sample passed all tests"),
          "single": ("solved by single-turn only", "multi-turn rollouts failed; an independent single-turn "
                                                   "sample passed")}


# ---- Writing: one episode's record, an evaluation's file, a training batch's sample

def transcript(d, tok) -> dict:
    """What a person reads of one played episode (an ``rlef.Dialogue``): the prompt, and per turn the response
    as the model wrote it (after the given prefill), its extracted code, its verdict on the public tests, the
    feedback the environment wrote back and the turn's reward; then the final verdict (public + private tests)."""
    turns = []
    for t, code in enumerate(d.codes):
        start = end = d.value_positions[t] + 1            # response t's tokens follow V(c_t)'s position
        while end < len(d.turn_ids) and d.turn_ids[end] == t:
            end += 1
        response = prefill(d.problem) + tok.decode(d.tokens[start:end])
        turns.append({"response": response, "code": code, "verdict": d.verdicts[t],
                      "feedback": d.feedbacks[t] if t < len(d.feedbacks) else None, "reward": d.turn_rewards[t]})
    return {"problem": d.problem.name, "difficulty": d.problem.difficulty, "prompt": initial_prompt(d.problem),
            "turns": turns, "final_verdict": d.final_verdict, "solved": d.solved, "reward": sum(d.turn_rewards)}


def eval_file(run_dir, step: int, feedback_mode: str = "real") -> Path:
    """Where a training run keeps the episodes of its evaluation after batch ``step``."""
    return step_file(run_dir, step, "eval" if feedback_mode == "real" else f"eval_{feedback_mode}")


def step_file(run_dir, step: int, kind: str) -> Path:
    return Path(run_dir) / "episodes" / f"step_{step:06d}_{kind}.jsonl"


def report_episodes_file(report_path) -> Path:
    """``rlef.py eval``'s episodes beside its report: eval_x_real.json -> eval_x_real.episodes.jsonl (one
    name per report, so that the real- and random-feedback evaluations of one folder keep theirs)."""
    return Path(report_path).with_suffix(".episodes.jsonl")


def eval_episode(record: dict) -> dict:
    """One line of an evaluation's file from an ``rlef.eval_episodes`` record (which carries its transcript)."""
    e = {"mode": record["mode"], "sample": record["sample"], "attempt": record.get("attempt"), **record["episode"]}
    e["turns"] = [dict(t) for t in e["turns"]]
    for turn, solved in zip(e["turns"], record.get("solved_after", [])):
        turn["solved_on_all_tests"] = solved              # multi-turn: had the episode stopped here
    return e


def write_episodes(path, records: list[dict], report: dict | None = None) -> Path:
    """An evaluation's episodes (every one it played) as JSON lines at ``path``, and its page beside them."""
    path = Path(path)
    episodes = sorted((eval_episode(r) for r in records),
                      key=lambda e: (e["problem"], e["mode"], e["sample"], e["attempt"] or 0))
    write_jsonl(path, episodes, report)
    title = f"{path.stem}: {len({e['problem'] for e in episodes})} problems, {len(episodes)} episodes"
    path.with_suffix(".html").write_text(render_page([Evaluation(path.stem, episodes, report)], title))
    return path


def write_jsonl(path: Path, episodes: list[dict], report: dict | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([json.dumps({"report": report})] if report is not None else []) + [json.dumps(e) for e in episodes]
    path.write_text("\n".join(lines) + "\n")


def batch_sample(dialogues: list, tok, batch: dict | None, n: int, seed: int) -> list[dict]:
    """``n`` episodes of a training batch drawn at random (seeded: a resumed run draws the same), each with
    what PPO saw per turn from ``batch`` (``ppo.prepare_batch``'s, rows in ``dialogues``' order): ``kl``, the
    mean log(pi_old / rho) over the turn's tokens, and ``reward_with_kl``, the turn's reward with the penalty
    (paper §2.2). Only the drawn episodes are decoded: the cost does not grow with the batch."""
    picks = sorted(random.Random(seed).sample(range(len(dialogues)), min(n, len(dialogues))))
    out = []
    for b in picks:
        e = {"mode": "train", "sample": b, "attempt": None, **transcript(dialogues[b], tok)}
        if batch is not None:
            log_ratio = (batch["old_logprobs"][b] - batch["ref_logprobs"][b]).float().cpu()     # (T,)
            ids, rewards = batch["turn_ids"][b].cpu(), batch["rewards"][b].float().cpu()       # (T,), (N,)
            for t, turn in enumerate(e["turns"]):
                turn["kl"] = float(log_ratio[ids == t].mean())
                turn["reward_with_kl"] = float(rewards[t])
        out.append(e)
    return out


def write_batch_sample(run_dir, step: int, dialogues: list, tok, batch: dict | None, n: int) -> Path | None:
    """``RUN_DIR/episodes/step_<step>_train.jsonl``: ``n`` sampled episodes of this rank's share of the batch
    (never all: a 1,024-episode batch would write megabytes per step). ``n`` = 0 writes nothing."""
    if n <= 0:
        return None
    path = step_file(run_dir, step, "train")
    write_jsonl(path, batch_sample(dialogues, tok, batch, n, seed=step))
    return path


def before_after_page(run_dir, step: int) -> str:
    """``RUN_DIR/episodes/before_after.html``: the evaluation before training (step 0) and the one after batch
    ``step`` (the best checkpoint), problem by problem. Returns the line the run ends with."""
    after_path, before_path = eval_file(run_dir, step), eval_file(run_dir, 0)
    if not after_path.is_file():
        return f"(no episodes of the evaluation at step {step} in {after_path.parent}: no page written)"
    evals = [Evaluation("before RL (step 0)", *read_episodes(before_path)[::-1])] if before_path.is_file() else []
    evals.append(Evaluation(f"after RL (step {step})", *read_episodes(after_path)[::-1]))
    out = Path(run_dir) / "episodes" / "before_after.html"
    title = "Held-out problems before and after RL" if len(evals) == 2 else f"Held-out problems at step {step}"
    out.write_text(render_page(evals, title))
    return f"episodes, before and after RL, problem by problem (open in a browser): {out}"


def read_episodes(path) -> tuple[dict | None, list[dict]]:
    """(the report, or None for a training sample; the episodes) of a file written here."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no episodes file {path}")
    report, episodes = None, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{n}: not JSON ({e}); is this an episodes file?") from None
        if isinstance(row, dict) and set(row) == {"report"}:
            report = row["report"]
        elif isinstance(row, dict) and "turns" in row and "problem" in row:
            episodes.append(row)
        else:
            raise UsageError(f"{path}:{n}: not an episode (no 'problem' and 'turns'); is this an episodes file?")
    return report, episodes


# ---- Grouping

def outcome(episodes: list[dict]) -> str:
    """A problem's group in one evaluation (GROUPS), from its episodes there."""
    multi = [e for e in episodes if e["mode"] != "single"]
    if any(e["solved"] and len(e["turns"]) == 1 for e in multi):
        return "turn1"
    if any(e["solved"] for e in multi):
        return "feedback"
    return "single" if any(e["solved"] for e in episodes if e["mode"] == "single") else "never"


def by_problem(episodes: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in episodes:
        out.setdefault(e["problem"], []).append(e)
    return out


# ---- The page

@dataclass
class Evaluation:
    """One evaluation as a page shows it: a column label, its episodes, and its report (None: no table)."""
    label: str
    episodes: list[dict]
    report: dict | None = None


def render_page(evals: list[Evaluation], title: str, only: set[str] | None = None) -> str:
    """The page of one evaluation, or of two side by side (before, after: grouped by the after outcome, each
    problem's before outcome beside it). ``only``: show just these problems (the tables stay whole)."""
    if not 1 <= len(evals) <= 2:
        raise ValueError(f"a page shows one or two evaluations, not {len(evals)}")
    per_eval = [by_problem(ev.episodes) for ev in evals]
    last = per_eval[-1]
    everything = sorted(set().union(*per_eval))
    names = [p for p in everything if only is None or p in only]
    groups = {g: [] for g in GROUPS}
    for p in names:
        groups[outcome(last.get(p, []))].append(p)
    outcomes = [{p: outcome(eps) for p, eps in pe.items()} for pe in per_eval]
    changed = lambda p: len(evals) == 2 and outcomes[0].get(p) != outcomes[1].get(p)   # noqa: E731
    # Before/after: what RL changed is what a reader opens the page for, so the groups with most changes lead.
    groups = dict(sorted(groups.items(), key=lambda item: -sum(map(changed, item[1]))))
    body = [f"<h1>{esc(title)}</h1>", LEGEND, report_table(evals)]
    if len(evals) == 2:
        body.append(transition_table(outcomes, everything))
    body.append("<nav>" + " · ".join(f'<a href="#g-{g}">{GROUPS[g][0]} ({len(ps)})</a>' if ps else
                                     f"{GROUPS[g][0]} (0)" for g, ps in groups.items()) + "</nav>")
    for g, ps in ((g, ps) for g, ps in groups.items() if ps):
        body.append(f'<h2 id="g-{g}">{GROUPS[g][0]}: {len(ps)} problem{"s" * (len(ps) != 1)}</h2>'
                    f'<p class="note">{GROUPS[g][1]}'
                    + ("; problems whose outcome RL changed come first, and groups with most of them" if len(evals) == 2
                       else "") + "</p>")
        for p in sorted(ps, key=lambda p: (not changed(p), p)):
            body.append(problem_html(p, evals, per_eval, outcomes))
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def report_table(evals: list[Evaluation]) -> str:
    """The report's headline measures, a column per evaluation (paper §3: multi-turn and single-turn 1@3
    with their 95% intervals, the solve rate after each turn)."""
    reports = [(ev.label, ev.report) for ev in evals if ev.report]
    if not reports:
        return '<p class="note">(no report in this file: a training sample)</p>'
    turns, n = max(len(r["per_turn"]) for _, r in reports), reports[-1][1]["turns"]
    rows = [(f"{m.replace('_', '-')} 1@{n}", lambda r, m=m: percent(r[f"{m}_1@3"], r.get("intervals", {}).get(
             f"{m}_1@3"))) for m in ("multi_turn", "single_turn")]
    rows += [(f"solved if stopped after turn {t + 1}", lambda r, t=t: percent(r["per_turn"][t]["solve_rate"])
              if t < len(r["per_turn"]) else "-") for t in range(turns)]
    rows += [("mean turns", lambda r: f"{r.get('mean_turns', 0):.2f}"),
             ("problems x samples", lambda r: f"{r['problems']} x {r['samples']}"),
             ("feedback", lambda r: str(r["feedback"])), ("tests", lambda r: str(r.get("tests", "")))]
    head = "<tr><th></th>" + "".join(f"<th>{esc(label)}</th>" for label, _ in reports) + "</tr>"
    cells = "".join("<tr><th>" + esc(name) + "</th>" + "".join(f"<td>{esc(get(r))}</td>" for _, r in reports)
                    + "</tr>" for name, get in rows)
    return f'<table class="report">{head}{cells}</table>'


def transition_table(outcomes: list[dict], names: list[str]) -> str:
    """Problems by outcome before (rows) and after (columns): what RL changed, at a glance."""
    count = Counter((outcomes[0].get(p, "-"), outcomes[1].get(p, "-")) for p in names)
    head = "<tr><th>before \\ after</th>" + "".join(f"<th>{GROUPS[g][0]}</th>" for g in GROUPS) + "</tr>"
    rows = "".join(f"<tr><th>{GROUPS[b][0]}</th>" + "".join(f"<td>{count[b, a] or ''}</td>" for a in GROUPS)
                   + "</tr>" for b in GROUPS)
    return f'<table class="report"><caption>problems by outcome, before and after</caption>{head}{rows}</table>'


def problem_html(name: str, evals: list[Evaluation], per_eval: list[dict], outcomes: list[dict]) -> str:
    """One problem: its outcome in each evaluation, and its episodes, a column per evaluation."""
    eps = next(pe[name] for pe in per_eval if name in pe)
    kind = eps[0].get("difficulty")
    badges = (f'<span class="badge kind-{esc(kind)}">{esc(kind)}</span>' if kind else "") + " → ".join(
        f'<span class="badge o-{o}">{esc(ev.label) + ": " if len(evals) == 2 else ""}{GROUPS[o][0]}</span>'
        for ev, out in zip(evals, outcomes) for o in [out.get(name)] if o)
    cols = "".join(f'<div class="col">{f"<h4>{esc(ev.label)}</h4>" if len(evals) == 2 else ""}'
                   f'{column_html(ev.label, pe.get(name, []))}</div>' for ev, pe in zip(evals, per_eval))
    return (f'<section class="problem" id="p-{esc(name)}"><h3>{esc(name)} {badges}</h3>'
            f'<details class="prompt"><summary>prompt</summary><pre>{clip(eps[0]["prompt"])}</pre></details>'
            f'<div class="cols n{len(evals)}">{cols}</div></section>')


def column_html(label: str, episodes: list[dict]) -> str:
    """A problem's episodes in one evaluation: the multi-turn rollouts (or training episodes) in full, the
    single-turn samples folded."""
    if not episodes:
        return '<p class="note">(not in this evaluation)</p>'
    multi = [e for e in episodes if e["mode"] != "single"]
    single = [e for e in episodes if e["mode"] == "single"]
    out = [episode_html(label, e) for e in multi]
    if single:
        out.append(f'<details class="singles"><summary>single-turn samples: {sum(e["solved"] for e in single)} of '
                   f'{len(single)} solved</summary>' + "".join(episode_html(label, e) for e in single) + "</details>")
    return "".join(out)


def episode_key(label: str, e: dict) -> str:
    return f"{label}|{e['mode']}|{e['problem']}|{e['sample']}|{e.get('attempt')}"


def episode_html(label: str, e: dict) -> str:
    """One episode as a conversation: each response with its code coloured by its verdict, each feedback
    message as the environment's turn, rewards (and the KL term, where training wrote it)."""
    what = {"multi": f"multi-turn rollout {e['sample']}", "train": f"training episode {e['sample']}",
            "single": f"single-turn sample {e['sample']}.{e.get('attempt')}"}.get(e["mode"], e["mode"])
    head = (f'{what} · {len(e["turns"])} response{"s" * (len(e["turns"]) != 1)} · final '
            f'{verdict_html(e["final_verdict"])} · reward {e["reward"]:+.2f}')
    parts = [f'<article class="episode" data-episode="{esc(episode_key(label, e))}"><header>{head}</header>']
    for t, turn in enumerate(e["turns"]):
        extra = "".join(f" · {name} {turn[key]:+.4f}" for key, name in (("kl", "KL"), ("reward_with_kl",
                        "reward with KL")) if turn.get(key) is not None)
        parts.append(f'<div class="msg model"><div class="who">model · response {t + 1} · public tests '
                     f'{verdict_html(turn["verdict"])} · reward {turn["reward"]:+.2f}{extra}</div>'
                     f'<pre>{response_html(turn["response"], turn["code"], turn["verdict"])}</pre></div>')
        if turn.get("feedback") is not None:
            shown = t + 1 < len(e["turns"])
            parts.append(f'<div class="msg env"><div class="who">environment · execution feedback'
                         f'{"" if shown else " (not shown: no room left for another turn)"}</div>'
                         f'<pre>{clip(turn["feedback"])}</pre></div>')
    return "".join(parts) + "</article>"


def verdict_html(verdict: str) -> str:
    return f'<span class="verdict v-{esc(verdict or "none")}">{esc(verdict or "-")}</span>'


def response_html(text: str, code: str | None, verdict: str, limit: int = FIELD_LIMIT) -> str:
    """The response, escaped, its extracted code marked in the verdict's colour; cut after ``limit``
    characters with a marker."""
    i = text.rfind(code) if code else -1        # extract_code takes the last block
    if i < 0:
        segments = [(text, None)] + ([("\n[extracted code]\n", None), (code, verdict)] if code else [])
    else:
        segments = [(text[:i], None), (code, verdict), (text[i + len(code):], None)]
    out, left = [], limit
    for s, v in segments:
        shown = esc(s[:max(left, 0)])
        out.append(f'<span class="code v-{esc(v)}">{shown}</span>' if v and shown else shown)
        left -= len(s)
    return "".join(out) + (cut_marker(-left) if left < 0 else "")


def clip(text: str | None, limit: int = FIELD_LIMIT) -> str:
    """Escaped text, cut after ``limit`` characters with a marker saying how much was cut."""
    text = text or ""
    return esc(text[:limit]) + (cut_marker(len(text) - limit) if len(text) > limit else "")


def cut_marker(n: int) -> str:
    return f'<span class="cut">[… {n:,} more characters cut]</span>'


def esc(s) -> str:
    return html.escape(str(s), quote=True)


LEGEND = ('<p class="note">Each response\'s code is coloured by its verdict on the public tests: '
          + " ".join(verdict_html(v) for v in ("pass", "wrong_answer", "runtime_error", "syntax_error", "timeout",
                                               "no_code")) + '. Blue: the environment\'s feedback (paper §2.1). '
          'The final verdict is on the public and private tests.</p>')

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#1a1a1a}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccc;margin-top:2em}h3{margin:.2em 0;font-size:1.05em}
h4{margin:.3em 0;color:#555}
table.report{border-collapse:collapse;margin:.6em 0}table.report td,table.report th{border:1px solid #ccc;
padding:.2em .6em;text-align:left}table.report caption{text-align:left;color:#555}
.note{color:#555}nav a{margin-right:.4em}
section.problem{border:1px solid #ddd;border-radius:6px;padding:.6em;margin:.8em 0;background:#fcfcfc}
.cols.n2{display:grid;grid-template-columns:1fr 1fr;gap:1em}.col{min-width:0}
article.episode{border-left:3px solid #bbb;padding-left:.6em;margin:.5em 0}
article.episode header{font-weight:600;margin-bottom:.3em}
pre{white-space:pre-wrap;word-break:break-word;margin:.2em 0;font:12.5px/1.4 ui-monospace,monospace}
.msg{border-radius:6px;padding:.3em .6em;margin:.3em 0}.msg .who{font-size:.85em;color:#444}
.msg.model{background:#f6f6f6}.msg.env{background:#e8f0fe;margin-left:2em}
.badge{font-size:.8em;font-weight:normal;border-radius:4px;padding:.05em .4em;margin-left:.3em;background:#eee}
.kind-secret{background:#fde2b4}.o-turn1{background:#d7f0d9}.o-feedback{background:#bfe8c4}
.o-never{background:#f6d5d5}.o-single{background:#f3e3c3}
.verdict{border-radius:3px;padding:0 .3em}.code{display:inline-block;width:100%;border-radius:3px}
.v-pass{background:#d7f0d9}.v-wrong_answer{background:#f9d6d6}.v-runtime_error,.v-syntax_error{background:#fde2c4}
.v-timeout,.v-memory_limit,.v-output_limit{background:#e8dcf5}.v-no_code{background:#e2e2e2}
.v-judge_error{background:#fff3a0}.cut{color:#a00;font-weight:600}
details.prompt summary,details.singles summary{cursor:pointer;color:#333}
"""


# ---- The terminal view and its command: `python rlef.py show FILE [--problem NAME]`

def show_text(report: dict | None, episodes: list[dict], problem: str | None = None,
              limit: int = TERMINAL_LIMIT) -> str:
    """A file's episodes in a terminal: one line per problem, or every episode of ``problem`` in full."""
    problems = by_problem(episodes)
    if problem is None:
        lines = [f"{len(episodes)} episodes of {len(problems)} problems"
                 + (f"; multi-turn 1@{report['turns']} {percent(report['multi_turn_1@3'])}, single-turn "
                    f"1@{report['turns']} {percent(report['single_turn_1@3'])}" if report else "")]
        counts = Counter(outcome(eps) for eps in problems.values())
        lines.append(", ".join(f"{GROUPS[g][0]} {counts[g]}" for g in GROUPS))
        lines.append(f"{'problem':<34} {'outcome':<26} first rollout's verdicts (public tests)")
        for name, eps in sorted(problems.items()):
            first = next((e for e in eps if e["mode"] != "single"), eps[0])
            lines.append(f"{name:<34} {GROUPS[outcome(eps)][0]:<26} "
                         + " > ".join(t["verdict"] for t in first["turns"]) + f" (final {first['final_verdict']})")
        return "\n".join(lines)
    if problem not in problems:
        close = difflib.get_close_matches(problem, list(problems), n=3)
        raise UsageError(f"no problem {problem!r} in this file" + (f"; did you mean {', '.join(close)}?" if close
                                                                    else ""))
    lines = [f"{problem}: {GROUPS[outcome(problems[problem])][0]}", "[prompt] " + cut_text(problems[problem][0]
                                                                                         ["prompt"], limit)]
    for e in problems[problem]:
        lines.append(f"\n== {e['mode']} {e['sample']}{'' if e.get('attempt') is None else '.' + str(e['attempt'])}"
                     f": final {e['final_verdict']}, reward {e['reward']:+.2f}")
        for t, turn in enumerate(e["turns"]):
            kl = f", KL {turn['kl']:+.4f}" if turn.get("kl") is not None else ""
            lines.append(f"-- model, response {t + 1} ({turn['verdict']}{kl}):\n{cut_text(turn['response'], limit)}")
            if turn.get("feedback") is not None:
                lines.append(f"-- environment:\n{cut_text(turn['feedback'], limit)}")
    return "\n".join(lines)


def cut_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"[... {len(text) - limit:,} more characters cut]"


def show_main(argv: list[str]):
    """``python rlef.py show FILE [--problem NAME] [--html OUT [--before FILE]]``."""
    parser = argparse.ArgumentParser(prog="rlef.py show", description="Show the episodes of an episodes file "
                                     "(rlef.py eval's *.episodes.jsonl, or RUN_DIR/episodes/*.jsonl).")
    parser.add_argument("file")
    parser.add_argument("--problem", help="every episode of this problem in full")
    parser.add_argument("--html", help="write a page here instead (self-contained HTML)")
    parser.add_argument("--before", help="with --html: an earlier evaluation's file, shown beside FILE")
    a = parser.parse_args(argv)
    report, episodes = read_episodes(a.file)
    if a.html:
        evals = ([Evaluation(Path(a.before).stem, *read_episodes(a.before)[::-1])] if a.before else [])
        evals.append(Evaluation(Path(a.file).stem, episodes, report))
        Path(a.html).write_text(render_page(evals, " vs ".join(ev.label for ev in evals),
                                            {a.problem} if a.problem else None))
        print(f"page: {a.html}")
        return
    try:
        print(show_text(report, episodes, a.problem), flush=True)
    except BrokenPipeError:                   # `rlef.py show FILE | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
