"""The tiny task family (data/tiny_tasks.py) and the shipped tiny policy (data/tiny/policy/)."""
import copy
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

import execute
from data import load_problems
from data.prompts import initial_prompt
from data.tiny_tasks import HIDDEN, OUT_DIR, build_splits, secret_words
from data.train_tiny import add_decoy, batch, build_tokenizer, retry_contexts
from model import PRESETS, Sampling, Tokenizer, Transformer, generate

POLICY = OUT_DIR / "policy"


def word_of(problem) -> str:
    """The greeting word: the first token of every expected output."""
    return problem.public_tests[0].output.split()[0].rstrip(",!:")


def test_generator_is_deterministic_and_matches_the_shipped_files():
    train, heldout = build_splits()
    again_train, again_heldout = build_splits()
    assert [p.to_dict() for p in train] == [p.to_dict() for p in again_train]
    assert [p.to_dict() for p in heldout] == [p.to_dict() for p in again_heldout]
    # The committed JSONL files are exactly what `python -m data.tiny_tasks` writes.
    assert [p.to_dict() for p in load_problems(OUT_DIR / "train.jsonl")] == [p.to_dict() for p in train]
    assert [p.to_dict() for p in load_problems(OUT_DIR / "heldout.jsonl")] == [p.to_dict() for p in heldout]


def test_splits_are_400_train_and_100_heldout_half_shown_half_secret():
    train, heldout = build_splits()
    assert (len(train), len(heldout)) == (400, 100)
    for split in (train, heldout):
        kinds = [p.difficulty for p in split]
        assert kinds.count("shown") == kinds.count("secret") == len(split) // 2


def test_heldout_words_never_occur_in_train():
    train, heldout = build_splits()
    train_words = {word_of(p).lower() for p in train}
    heldout_words = {word_of(p).lower() for p in heldout}
    assert len(heldout_words) == 100 and len(train_words) == 400      # one word per problem
    assert not train_words & heldout_words
    assert heldout_words == {w.lower() for w in secret_words()[1]}


def test_secret_statements_hide_the_word_and_shown_statements_show_it():
    train, heldout = build_splits()
    for p in train + heldout:
        word = word_of(p)
        if p.difficulty == "shown":
            assert f"output `{word}" in p.description
        else:
            assert word.lower() not in re.findall(r"\w+", p.description.lower())
            assert f"output `{HIDDEN}" in p.description
        # The worked example is the public test (as in CodeContests), so the feedback shows its expected output.
        assert f"input `{p.public_tests[0].input.strip()}`" in p.description
        assert len(p.private_tests) == 4 and p.generated_tests == []


def test_every_reference_solution_passes_all_its_tests():
    # One child process runs every (solution, test) pair with its own stdin/stdout: our own reference code,
    # so no sandbox is needed, and 2,500 runs take a second instead of 30 s of interpreter start-ups.
    train, heldout = build_splits()
    cases = [(p.solutions[0], t.input, t.output) for p in train + heldout
             for t in p.public_tests + p.private_tests]
    harness = (
        "import io, json, sys\n"
        "cases = json.load(sys.stdin)\n"
        "outs = []\n"
        "for code, stdin, _ in cases:\n"
        "    sys.stdin, sys.stdout = io.StringIO(stdin), io.StringIO()\n"
        "    exec(code, {'__name__': '__main__'})\n"
        "    outs.append(sys.stdout.getvalue())\n"
        "sys.stdout = sys.__stdout__\n"
        "print(json.dumps(outs))\n")
    r = subprocess.run([sys.executable, "-I", "-c", harness], input=json.dumps(cases), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    outs = json.loads(r.stdout)
    assert [o for o, (_, _, expected) in zip(outs, cases) if o != expected] == []


def test_reference_solutions_pass_through_the_real_judge():
    execute = pytest.importorskip("execute")
    train, heldout = build_splits()
    for p in train[:4] + heldout[:4]:
        results = execute.run_tests(p.solutions[0], [(t.input, t.output) for t in p.public_tests + p.private_tests])
        assert [r.verdict for r in results] == ["pass"] * 5, p.name


def test_tokenizer_is_rebuilt_identically_and_keeps_the_llama3_special_tokens():
    shipped = Tokenizer.from_pretrained(POLICY)
    rebuilt = build_tokenizer(PRESETS["tiny"].vocab_size - 6)
    assert rebuilt.to_str() == shipped.tok.to_str()
    assert shipped.vocab_size == PRESETS["tiny"].vocab_size
    assert {shipped.tok.id_to_token(i) for i in shipped.stop_ids} == {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"}


def test_readme_states_the_tiny_presets_real_size():
    # README once called the preset "a 0.8M-parameter byte-level Llama"; it has 0.26M and a 1,000-token BPE.
    n = sum(p.numel() for p in Transformer(PRESETS["tiny"]).parameters())
    readme = (OUT_DIR.parents[1] / "README.md").read_text()
    paragraphs = [p for p in re.split(r"\n\s*\n|\n- ", readme) if "tiny" in p.lower()]
    stated = [float(x) for p in paragraphs for x in re.findall(r"(\d+(?:\.\d+)?)M-parameter", p)]
    assert stated and set(stated) == {round(n / 1e6, 2)}
    assert "byte-level Llama" not in readme and PRESETS["tiny"].vocab_size == 1000 + 6


def test_bpe_keeps_the_prompt_short():
    """The point of the learned tokenizer: the paper's verbatim prompt costs ~90 tokens, not ~330 bytes."""
    tok = Tokenizer.from_pretrained(POLICY)
    p = build_splits()[1][1]
    prompt = tok.encode_chat([{"role": "user", "content": initial_prompt(p)}])
    assert len(prompt) < 120 and len(initial_prompt(p)) > 300


def test_warm_start_trains_only_the_assistant_reply_and_its_eot():
    tok = Tokenizer.from_pretrained(POLICY)
    p = copy.deepcopy(build_splits()[0][0])
    tokens, targets = batch(tok, [p], random.Random(0))
    trained = targets[0][targets[0] != -100].tolist()
    assert tok.decode(trained) == f"```python\n{p.solutions[0].strip()}\n```"
    assert trained[-1] == tok.eot_id
    first = int((targets[0] != -100).nonzero()[0])
    assert tokens[0, first + 1:first + 1 + len(trained)].tolist() == trained     # position j predicts j + 1


def test_decoy_example_hides_the_word_and_keeps_the_real_one():
    p = copy.deepcopy(build_splits()[0][0])
    word, real = word_of(p), p.description.split("\n")[1]
    for before in (0.0, 1.0):
        lines = add_decoy(copy.deepcopy(p), random.Random(0), before).split("\n")
        decoy = lines[1] if before else lines[2]
        assert real in lines and f"output `{HIDDEN}" in decoy and word not in decoy
        assert p.private_tests[0].input.strip() in decoy     # the decoy is a real test of the problem, hidden


def test_second_turn_warm_start_shows_a_crash_and_never_an_expected_output():
    """The warm start teaches the form of a second turn with crashes only: what a wrong answer's feedback
    reveals ("Expected output `...`") is left for RL to discover."""
    tok = Tokenizer.from_pretrained(POLICY)
    problems = [p for p in copy.deepcopy(build_splits()[0]) if p.difficulty == "shown"][:6]
    judge = execute.Judge(workers=1)
    try:
        contexts = retry_contexts(tok, problems, random.Random(0), judge)
    finally:
        judge.close()
    for p, ctx in zip(problems, contexts):
        text = tok.decode(ctx)
        assert text.count("Your code failed the following tests") == 1 and "Error" in text
        assert "Expected output" not in text
        assert ctx[-len(tok.encode_header("assistant")):] == tok.encode_header("assistant")
        assert p.solutions[0].strip() not in text.split("assistant")[1]        # the first reply was broken


def test_shipped_policy_loads_and_solves_shown_heldout_problems():
    model = Transformer.from_pretrained(POLICY).eval()
    tok = Tokenizer.from_pretrained(POLICY)
    assert sum(f.stat().st_size for f in POLICY.iterdir()) < 2e6
    shown = [p for p in build_splits()[1] if p.difficulty == "shown"][:16]
    prompts = [tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) for p in shown]
    replies = generate(model, prompts, 40, Sampling(temperature=0.0, stop_ids=tok.stop_ids))
    assert all(tok.decode(r).startswith("```python\nprint(") for r, _ in replies)
    solved = sum(f"```python\n{p.solutions[0].strip()}\n```" == tok.decode(r) for p, (r, _) in zip(shown, replies))
    assert solved >= 14                      # copies a word it never saw from the worked example


@pytest.mark.slow
def test_main_command_runs_end_to_end_shortened(tmp_path):
    """`python rlef.py --model tiny`, shortened to 2 batches and 8 held-out problems."""
    out = subprocess.run([sys.executable, "rlef.py", "--model", "tiny", "--batches", "2", "--eval-problems", "8",
                          "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "multi-turn 1@3" in out.stdout and "after, random feedback" in out.stdout
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "policy" / "model.safetensors").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
