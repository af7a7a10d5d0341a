"""The tiny task family (data/tiny_tasks.py) and the shipped tiny policy (data/tiny/policy/)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data import load_problems
from data.tiny_tasks import HIDDEN, OUT_DIR, build_splits, problem_kind, secret_words
from data.train_tiny import FORMAT_LINE, batch_tensors, encode_example, initial_prompt
from model import Tokenizer, Transformer, byte_tokenizer

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
        kinds = [problem_kind(p) for p in split]
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
        if problem_kind(p) == "shown":
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


def test_warm_start_prompt_is_the_papers_initial_message():
    assert initial_prompt("Print 1") == (
        "Provide a Python solution for the following competitive programming question: Print 1.\n"
        "Your code should be enclosed in triple backticks like so: ```python YOUR CODE HERE ```. "
        "Use the backticks for your code only.")
    execute = pytest.importorskip("execute")
    assert FORMAT_LINE == execute.FORMAT_LINE


def test_warm_start_trains_only_the_assistant_reply_and_its_eot():
    tok = Tokenizer(byte_tokenizer())
    p = build_splits()[0][0]
    ids, start = encode_example(tok, p)
    tokens, targets = batch_tensors([(ids, start)], tok.pad_id)
    trained = targets[0][targets[0] != -100].tolist()
    assert tok.decode(trained) == f"```python\n{p.solutions[0].strip()}\n```"
    assert trained[-1] == tok.eot_id
    assert (tokens[0, start:] == torch.tensor(ids[start:-1])).all()


@pytest.mark.skipif(not (POLICY / "config.json").exists(), reason="run `python -m data.train_tiny` first")
def test_shipped_policy_loads_and_writes_a_code_block():
    model = Transformer.from_pretrained(POLICY).eval()
    tok = Tokenizer.from_pretrained(POLICY)
    assert tok.vocab_size == model.args.vocab_size == 264
    assert sum(f.stat().st_size for f in POLICY.iterdir()) < 5e6
    from model import generate
    p = build_splits()[1][0]
    prompt = tok.encode_chat([{"role": "user", "content": initial_prompt(p.description)}])
    (reply, _), = generate(model, [prompt], 80, temperature=0.0, stop_ids=tok.stop_ids, pad_id=tok.pad_id)
    assert tok.decode(reply).startswith("```python\nprint(")
    assert reply[-1] == tok.eot_id
