"""Make the `tiny` policy from nothing: its tokenizer, then a two-stage supervised warm start.

    python -m data.train_tiny          # ~40 min on one core; writes data/tiny/policy/ (shipped, 1 MB)

RLEF starts from an Instruct model that already writes code for a statement; it cannot start from random
weights. The tiny demo's "Instruct model" is made here with the same libraries as Llama 3:

1. A byte-level BPE tokenizer (``tokenizers``, as Llama 3's tiktoken BPE) trained on the task family's own
   text: the paper's prompt and feedback messages, statements and one-line programs, plus the Llama 3 special
   tokens. Byte-level tokens would make an episode ~1,000 tokens (the paper's verbatim prompt alone is 270
   characters); with 1,000 learned tokens it is ~250, which is what lets PPO run in minutes on a CPU.
2. Stage 1 (5,000 steps): next-token loss on the *assistant tokens only* of single-turn dialogues

       user:       the paper's initial prompt (§2.1, verbatim) around a "shown" problem's statement
       assistant:  ```python\n<the reference one-liner>\n``` <|eot_id|>

   on freshly generated "shown" problems (data/tiny_tasks.py) with new random words, never a held-out one,
   so the model learns to *copy* the greeting from the worked example rather than memorise words. The
   statements get random notes before or after the example, so the greeting must be found by what it
   follows (``output `...``), not by where it sits; and half of them get a second example whose word is
   hidden (``???``, as in a "secret" statement) before the real one, so the word is copied from the example
   that shows it.
3. Stage 2 (1,000 steps, from stage 1): the same, plus 30% second turns: a first reply that *crashes*, the
   sandbox's real feedback on it (a traceback), then the correct reply. Without this stage the policy had
   never seen a second turn and answered it with an empty code block (measured: 0% of "secret" problems
   solved at any turn); with it, 20% are solved at the second turn before any RL.

Deliberately absent: "secret" problems (their word cannot be known from the statement) and any wrong
answer's feedback (``Expected output `...` but got `...```). Reading that is what RLEF must teach; the
warm-started policy solves the "shown" problems and mostly fails the "secret" ones: the demo's "before".
Deterministic for a given --seed (seeded data and initialisation, fixed thread count); ``--init`` with a
stage-1 checkpoint runs stage 2 alone, exactly as the full run would.
"""
from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # `python data/train_tiny.py` works too

import execute  # noqa: E402
from data.prompts import initial_prompt  # noqa: E402
from data.tiny_tasks import HIDDEN, OUT_DIR, random_word, secret_words, warmstart_problems  # noqa: E402
from infra.checkpoints import save_model  # noqa: E402
from model import PRESETS, SPECIAL_TOKENS, Tokenizer, Transformer  # noqa: E402

NOTES = ["The name has only lowercase letters.", "Print exactly one line.", "The input is one line.",
         "Names are short.", "Keep the spaces as shown.", "There is exactly one test per input."]


def build_tokenizer(vocab_size: int):
    """BPE on text the demo shows the model (the paper's prompt and feedback around 400 fresh "shown"
    problems); the Llama 3 special tokens are appended after the learned ones."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers
    rng = random.Random(1)

    def corpus():
        for p in warmstart_problems(rng, 400, set()):
            test = p.public_tests[0]
            yield initial_prompt(p)
            yield f"```python\n{p.solutions[0].strip()}\n```"
            wrong = execute.TestResult("wrong_answer", test.input, test.output, "x" + test.output)
            yield execute.describe_failures(p, [wrong])
            yield execute.NO_CODE_FEEDBACK
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def vary(description: str, rng: random.Random) -> str:
    """Add 0-3 notes of random length before or after the example line."""
    lines = description.split("\n")
    notes = [rng.choice(NOTES) + " " + " ".join(random_word(rng).lower() for _ in range(rng.randint(0, 8)))
             for _ in range(rng.randint(0, 3))]
    return "\n".join(lines + notes if rng.random() < 0.5 else lines[:1] + notes + lines[1:])


def add_decoy(p, rng: random.Random, before: float) -> str:
    """A second worked example whose greeting is hidden (``???``), before the real one with probability
    ``before``, else after it: the word must be copied from the example that shows it, whatever its place."""
    test = p.private_tests[0]
    out = test.output.strip()
    word = re.match(r"[A-Za-z]+", out).group()
    decoy = f"Example: input `{test.input.strip()}` output `{HIDDEN}{out[len(word):]}`"
    first, example = p.description.split("\n")
    return "\n".join([first, decoy, example] if rng.random() < before else [first, example, decoy])


# Bugs that crash (the feedback is a traceback, which shows no expected output): (old, new) in the solution.
BUGS = [("print(", "prnt("), ("input()", "int(input())"), ('+', '+ +')]


def first_turn(tok: Tokenizer, p) -> list[int]:
    """The dialogue up to the first reply, tokenised exactly as rlef.rollout does."""
    return tok.encode_chat([{"role": "user", "content": initial_prompt(p)}])


def retry_contexts(tok: Tokenizer, problems, rng: random.Random, judge) -> list[list[int]]:
    """Contexts of a second turn: the prompt, a first reply that crashes, and the paper's feedback on it,
    produced by the sandbox exactly as in a rollout (rlef.rollout). The reply to learn after it is the
    problem's solution: the policy learns the dialogue's form, never what an expected output reveals."""
    replies = [p.solutions[0].strip().replace(*rng.choice(BUGS), 1) for p in problems]
    results = judge.map([(p, r + "\n", p.public_tests) for p, r in zip(problems, replies)])
    return [first_turn(tok, p) + tok.encode(f"```python\n{r}\n```")
            + [tok.eot_id] + tok.encode_message("user", execute.describe_failures(p, res))
            + tok.encode_header("assistant") for p, r, res in zip(problems, replies, results)]


def batch(tok: Tokenizer, problems, rng: random.Random, decoy: float = 0.0, decoy_before: float = 1.0,
          retry: float = 0.0, judge=None):
    """(tokens, targets) (B, T): targets are the next token on the final reply's tokens, -100 elsewhere."""
    for p in problems:
        if rng.random() < decoy:
            p.description = add_decoy(p, rng, decoy_before)
        p.description = vary(p.description, rng)
    second = [retry > 0 and rng.random() < retry for _ in problems]     # (no draws at 0: stage 1 is unchanged)
    retried = iter(retry_contexts(tok, [p for p, s in zip(problems, second) if s], rng, judge) if any(second) else [])
    rows = []
    for p, s in zip(problems, second):
        context = next(retried) if s else first_turn(tok, p)
        rows.append((context + tok.encode(f"```python\n{p.solutions[0].strip()}\n```") + [tok.eot_id], len(context)))
    T = max(len(r) for r, _ in rows)
    tokens, targets = torch.full((len(rows), T), tok.pad_id), torch.full((len(rows), T), -100)
    for i, (r, n) in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
        targets[i, n - 1:len(r) - 1] = torch.tensor(r[n:])        # position j predicts token j + 1
    return tokens, targets


def train(model, tok: Tokenizer, steps: int, lr: float, opts, retry: float = 0.0):
    """One stage of next-token training on fresh problems (``opts``: the command line's seed, batch size and
    decoy settings). Each stage re-seeds its data stream, so stage 2 after ``--init`` is stage 2 of a full run."""
    rng = random.Random(opts.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    heldout_words = {w.lower() for w in secret_words()[1]}         # never trained on, even as "shown"
    judge = execute.Judge(workers=1)
    t0 = time.time()
    for step in range(steps):
        tokens, targets = batch(tok, warmstart_problems(rng, opts.batch_size, heldout_words), rng, opts.decoy,
                                opts.decoy_before, retry, judge)
        step_lr = lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = step_lr
        loss = F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1:>5}/{steps}  loss {loss.item():.4f}  lr {step_lr:.2e}  {time.time() - t0:.0f}s", flush=True)
    judge.close()
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description="Train the tiny policy: tokenizer, then a two-stage supervised warm "
                                            "start (defaults: the shipped data/tiny/policy, ~40 min on one core).")
    p.add_argument("--steps", type=int, default=5000, help="stage 1: single-turn dialogues")
    p.add_argument("--lr", type=float, default=3e-3, help="stage 1 peak AdamW learning rate (cosine to 10%%)")
    p.add_argument("--retry-steps", type=int, default=1000, help="stage 2: also second turns after a crash")
    p.add_argument("--retry-lr", type=float, default=1e-3, help="stage 2 peak learning rate")
    p.add_argument("--retry", type=float, default=0.3, help="stage 2: fraction of second-turn dialogues")
    p.add_argument("--decoy", type=float, default=0.5, help="fraction of statements with a hidden-word example")
    p.add_argument("--decoy-before", type=float, default=1.0, help="how often the hidden example comes first")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="the shipped policy was trained with 1")
    p.add_argument("--init", help="start stage 2 from this checkpoint (skips stage 1)")
    p.add_argument("--out", default=str(OUT_DIR / "policy"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    args = PRESETS["tiny"]
    hf_tok = build_tokenizer(args.vocab_size - len(SPECIAL_TOKENS))
    tok = Tokenizer(hf_tok)
    assert tok.vocab_size == args.vocab_size, (tok.vocab_size, args.vocab_size)
    t0 = time.time()
    if a.init:
        model = Transformer.from_pretrained(a.init)
    else:
        model = Transformer(args).init_weights(std=0.02)
        print(f"tiny policy: {sum(q.numel() for q in model.parameters()) / 1e6:.2f}M parameters, "
              f"vocabulary {tok.vocab_size}; stage 1: {a.steps} steps of single-turn dialogues")
        train(model, tok, a.steps, a.lr, a)
    print(f"stage 2: {a.retry_steps} steps, {a.retry:.0%} of them second turns after a crash")
    train(model, tok, a.retry_steps, a.retry_lr, a, a.retry)
    out = Path(a.out)
    save_model(model, out, bos_token_id=tok.bos_id, eos_token_id=tok.eot_id)
    hf_tok.save(str(out / "tokenizer.json"))
    print(f"saved {out} after {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
