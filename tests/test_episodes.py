"""Episodes on disk and the page that shows them (infra/episodes.py): every episode written and shown once,
problems grouped by outcome, model- and program-written text shown as text, the page standing alone."""
import json
from collections import Counter
from html.parser import HTMLParser

import pytest
import torch

import rlef
from data import Problem, Test
from infra import episodes as ep
from test_train import tiny_args

RIGHT = "```python\nprint(2 * int(input()))\n```"
WRONG = "```python\nprint(int(input()) + 2)\n```"
# A response that tries to break out of the page: a script, a closing </pre>, and a program printing them too.
HOSTILE = ("Here: <script>alert(1)</script> </pre><b>bold?</b>\n"
           "```python\nprint('</pre><script>alert(1)</script>')\n```")
PLANS = {"alpha": "turn1", "beta": "feedback", "gamma": "never", "delta": "single"}


def problem(name):
    return Problem(name=name, description=f"Print twice the integer n ({name})",
                   public_tests=[Test("2\n", "4\n"), Test("5\n", "10\n")], private_tests=[Test("0\n", "0\n")])


class Planned:
    """A policy whose answers give each problem the outcome its name is planned for (PLANS): alpha is solved
    at once, beta after one feedback message, gamma never (hostile text), delta only by the single-turn samples:
    right on a first turn unless it is in the first call that shows delta (``eval_episodes`` samples a chunk's
    multi-turn rollouts first, its single-turn attempts in a later call)."""

    def __init__(self, tok):
        self.tok, self.calls, self.first_call = tok, 0, {}

    def answer(self, prompt: str) -> str:
        name = next(n for n in PLANS if f"({n})" in prompt)
        turn = prompt.count("Give it another try")
        if PLANS[name] == "turn1" or (PLANS[name] == "feedback" and turn >= 1):
            return RIGHT
        if PLANS[name] == "single" and turn == 0 and self.first_call.setdefault(name, self.calls) != self.calls:
            return RIGHT
        return HOSTILE if name == "gamma" else WRONG

    def __call__(self, prompts):
        self.calls += 1
        out = []
        for p in prompts:
            ids = self.tok.encode(self.answer(self.tok.decode(p))) + [self.tok.eot_id]
            out.append((ids, [-0.5] * len(ids)))
        return out


class AlwaysWrong(Planned):
    def answer(self, prompt):
        return WRONG


class Page(HTMLParser):
    """What the tests read of a page: each episode's key, each problem's group, every text node, and every
    script tag and external address (there must be none)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.episodes, self.groups, self.text, self.scripts, self.external = Counter(), {}, [], 0, []
        self.group, self.group_order = None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.scripts += tag == "script"
        for key in ("src", "href", "action", "data", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            if value.startswith(("http://", "https://", "//")):
                self.external.append(value)
        if tag == "h2" and (attrs.get("id") or "").startswith("g-"):
            self.group = attrs["id"][2:]
            self.group_order.append(self.group)
        if tag == "section" and "problem" in (attrs.get("class") or ""):
            self.groups[attrs["id"][2:]] = self.group
        if "data-episode" in attrs:
            self.episodes[attrs["data-episode"]] += 1

    def handle_data(self, data):
        self.text.append(data)


def evaluate_to(path, policy, tok, judge, samples=2):
    problems = [problem(n) for n in PLANS]
    settings = rlef.EvalSettings(samples=samples, episodes=path)
    return rlef.evaluate(policy, tok, problems, judge, settings, log=lambda *a, **k: None)


def test_an_evaluation_writes_every_episode_and_a_page_showing_each_once_grouped_by_outcome(tmp_path, tok, judge):
    path = tmp_path / "r.episodes.jsonl"
    report = evaluate_to(path, Planned(tok), tok, judge)
    saved_report, episodes = ep.read_episodes(path)
    assert saved_report["multi_turn_1@3"] == report["multi_turn_1@3"] == 0.5     # alpha and beta
    assert len(episodes) == 4 * 2 * (1 + 3)                                     # problems x samples x (1 + 3)
    beta = next(e for e in episodes if e["problem"] == "beta" and e["mode"] == "multi")
    assert [t["verdict"] for t in beta["turns"]] == ["wrong_answer", "pass"] and beta["solved"]
    assert beta["turns"][0]["response"] == WRONG and "print(int(input()) + 2)" in beta["turns"][0]["code"]
    assert "Expected output" in beta["turns"][0]["feedback"] and beta["turns"][1]["feedback"] is None
    assert beta["prompt"].startswith("Provide a Python solution") and beta["reward"] == 1.0
    page = Page(path.with_suffix(".html").read_text())
    assert page.episodes == {ep.episode_key("r.episodes", e): 1 for e in episodes}
    assert page.groups == PLANS


def test_model_and_program_text_is_shown_as_text_and_the_page_stands_alone(tmp_path, tok, judge):
    path = tmp_path / "r.episodes.jsonl"
    evaluate_to(path, Planned(tok), tok, judge, samples=1)
    raw = path.with_suffix(".html").read_text()
    page = Page(raw)
    text = "".join(page.text)
    assert "Here: <script>alert(1)</script> </pre><b>bold?</b>" in text            # the response, as text
    assert "print('</pre><script>alert(1)</script>')" in text                      # its code, as text
    assert "got `</pre><script>alert(1)</script>`" in text                          # the feedback, as text
    assert page.scripts == 0 and page.external == []
    assert "<link" not in raw and "@import" not in raw and "url(" not in raw       # no style from elsewhere


def test_a_long_field_is_cut_with_a_marker_saying_how_much(tmp_path):
    long = "x = 1\n" * 3000                                                        # 18,000 characters
    episode = {"mode": "multi", "sample": 0, "attempt": None, "problem": "p", "difficulty": "", "prompt": "P",
               "turns": [{"response": f"```python\n{long}```", "code": long, "verdict": "timeout",
                          "feedback": "F" * 9000, "reward": -1.0}], "final_verdict": "timeout", "solved": False,
               "reward": -1.0}
    page = ep.render_page([ep.Evaluation("e", [episode])], "t")
    text = "".join(Page(page).text)
    assert f"[… {18_013 - ep.FIELD_LIMIT:,} more characters cut]" in text            # ```python\n + code + ```
    assert f"[… {9000 - ep.FIELD_LIMIT:,} more characters cut]" in text
    assert "x = 1\n" * 3000 not in text and len(page) < 3 * ep.FIELD_LIMIT + 10_000


def test_a_before_after_page_pairs_each_problem(tmp_path, tok, judge):
    run = tmp_path / "run"
    evaluate_to(ep.eval_file(run, 0), AlwaysWrong(tok), tok, judge, samples=1)
    evaluate_to(ep.eval_file(run, 20), Planned(tok), tok, judge, samples=1)
    line = ep.before_after_page(run, 20)
    assert line.endswith(str(run / "episodes" / "before_after.html"))
    page = Page((run / "episodes" / "before_after.html").read_text())
    for label, step in (("before RL (step 0)", 0), ("after RL (step 20)", 20)):
        _, episodes = ep.read_episodes(ep.eval_file(run, step))
        assert {k: n for k, n in page.episodes.items() if k.startswith(label)} == \
            {ep.episode_key(label, e): 1 for e in episodes}
    assert page.groups == PLANS                                                    # grouped by the after outcome
    assert page.group_order == ["turn1", "feedback", "single", "never"]          # what RL changed leads
    assert "before RL (step 0): never solved" in "".join(page.text)


def test_training_writes_a_sample_of_each_batch_and_every_evaluation(tmp_path, tiny_checkpoint, capsys):
    # --eval-before (after tiny_args' --no-eval-before: the last flag wins) gives the page its "before" column
    rlef.main(tiny_args(tmp_path, tiny_checkpoint, **{"batches": 2, "eval-every": 2, "episodes-per-batch": 3,
                                                      "eval-before": None}))
    folder = tmp_path / "run" / "episodes"
    assert sorted(p.name for p in folder.iterdir()) == [
        "before_after.html", "step_000000_eval.html", "step_000000_eval.jsonl", "step_000001_train.jsonl",
        "step_000002_eval.html", "step_000002_eval.jsonl", "step_000002_eval_random.html",
        "step_000002_eval_random.jsonl", "step_000002_train.jsonl"]
    report, sample = ep.read_episodes(folder / "step_000001_train.jsonl")
    assert report is None and len(sample) == 3                                   # of the batch's 4
    assert all(isinstance(t["kl"], float) and isinstance(t["reward_with_kl"], float)
               for e in sample for t in e["turns"])
    _, evaluated = ep.read_episodes(folder / "step_000002_eval.jsonl")
    assert len(evaluated) == 2 * (1 + 3)                                          # --eval-problems 2
    page = Page((folder / "before_after.html").read_text())
    assert sum(page.episodes.values()) == 2 * len(evaluated)                       # before and after
    assert capsys.readouterr().out.rstrip().endswith(str(folder / "before_after.html"))


def test_a_batch_of_1024_writes_only_the_sampled_episodes_with_each_turns_kl(tmp_path, tok, judge):
    dialogues = rlef.rollout(Planned(tok), tok, [problem("beta")] * 4, judge)
    batch = {"old_logprobs": torch.randn(4, len(dialogues[0].tokens)), "ref_logprobs": torch.zeros(4, 1),
             "turn_ids": torch.tensor([d.turn_ids for d in dialogues]), "rewards": torch.tensor([[0.5, 0.7]] * 4)}
    batch["ref_logprobs"] = torch.zeros_like(batch["old_logprobs"])
    e = ep.batch_sample(dialogues, tok, batch, 1, seed=0)[0]
    row, ids = batch["old_logprobs"][e["sample"]], batch["turn_ids"][e["sample"]]
    assert [t["kl"] for t in e["turns"]] == pytest.approx([row[ids == 0].mean().item(), row[ids == 1].mean().item()])
    assert [t["reward_with_kl"] for t in e["turns"]] == pytest.approx([0.5, 0.7])
    path = ep.write_batch_sample(tmp_path, 7, dialogues * 256, tok, None, 8)
    assert path.name == "step_000007_train.jsonl" and len(path.read_text().splitlines()) == 8
    assert ep.write_batch_sample(tmp_path, 8, dialogues, tok, None, 0) is None


def test_show_prints_one_line_per_problem_or_a_problems_episodes(tmp_path, tok, judge, capsys):
    path = tmp_path / "r.episodes.jsonl"
    evaluate_to(path, Planned(tok), tok, judge, samples=1)
    rlef.main(["show", str(path)])
    out = capsys.readouterr().out
    assert "16 episodes of 4 problems" in out and "solved after feedback 1" in out
    assert any(line.startswith("beta") and "wrong_answer > pass" in line for line in out.splitlines())
    rlef.main(["show", str(path), "--problem", "gamma"])
    out = capsys.readouterr().out
    assert "<script>alert(1)</script>" in out and "-- environment:" in out and "beta" not in out
    with pytest.raises(SystemExit):
        rlef.main(["show", str(path), "--problem", "gama"])
    assert "did you mean gamma" in capsys.readouterr().err
    rlef.main(["show", str(path), "--html", str(tmp_path / "one.html"), "--problem", "beta"])
    assert set(Page((tmp_path / "one.html").read_text()).groups) == {"beta"}


def test_eval_cli_writes_its_episodes_beside_the_report(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from data import save_problems
    save_problems([problem("alpha")], tmp_path / "problems.jsonl")
    monkeypatch.setattr(rlef, "policy_sampler", lambda model, tok, *a, **k: Planned(tok))
    rlef.main(["eval", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "problems.jsonl"),
               "--out", str(tmp_path / "r.json")])
    report, episodes = ep.read_episodes(tmp_path / "r.episodes.jsonl")
    assert report["multi_turn_1@3"] == 1.0 and len(episodes) == 4
    assert (tmp_path / "r.episodes.html").is_file() and "r.episodes.jsonl" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["multi_turn_1@3"] == 1.0


def test_a_file_that_is_not_episodes_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "x.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(SystemExit):
        rlef.main(["show", str(tmp_path / "x.jsonl")])
    assert "x.jsonl:1: not an episode" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rlef.main(["show", str(tmp_path / "missing.jsonl")])
    assert "no episodes file" in capsys.readouterr().err
