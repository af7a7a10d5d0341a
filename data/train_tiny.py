"""Make the `tiny` policy from nothing: its tokenizer, then a short supervised warm start.

    python -m data.train_tiny          # ~8 min on an idle 2-core CPU; writes data/tiny/policy/ (shipped, 1 MB)

RLEF starts from an Instruct model that already writes code for a statement; it cannot start from random
weights. The tiny demo's "Instruct model" is made here, in two steps, with the same libraries as Llama 3:

1. A byte-level BPE tokenizer (``tokenizers``, as Llama 3's tiktoken BPE) trained on the task family's own
   text: the paper's prompt and feedback messages, statements and one-line programs, plus the Llama 3 special
   tokens. Byte-level tokens would make an episode ~1,000 tokens (the paper's verbatim prompt alone is 270
   characters); with 1,000 learned tokens it is ~250, which is what lets PPO run in minutes on a CPU.
2. A warm start: next-token loss on the *assistant tokens only* of single-turn dialogues

       user:       the paper's initial prompt (RLEF.md §1, verbatim) around a "shown" problem's statement
       assistant:  ```python\\n<the reference one-liner>\\n``` <|eot_id|>

   on freshly generated "shown" problems (data/tiny_tasks.py) with new random words, never a held-out one,
   so the model learns to *copy* the greeting from the worked example rather than memorise words. The
   statements get random notes before or after the example, so the greeting must be found by what it
   follows (``output `...``), not by where it sits: that is what lets the skill reach the feedback later.

Deliberately absent: "secret" problems (their word cannot be known from the statement) and any multi-turn
dialogue or feedback message. Using the feedback is what RLEF must teach; the warm-started policy solves the
"shown" problems and fails the "secret" ones, in one turn or three: the demo's "before".
Deterministic for a given --seed (seeded data and initialisation, fixed thread count).
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # `python data/train_tiny.py` works too

import execute  # noqa: E402
from data.tiny_tasks import OUT_DIR, random_word, secret_words, warmstart_problems  # noqa: E402
from model import PRESETS, SPECIAL_TOKENS, Tokenizer, Transformer  # noqa: E402
from rlef import initial_prompt  # noqa: E402

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
            yield execute.feedback([execute.TestResult("wrong_answer", test.input, test.output, "x" + test.output)])
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


def batch(tok: Tokenizer, problems, rng: random.Random):
    """(tokens, targets) (B, T): targets are the next token on assistant tokens, -100 elsewhere."""
    rows = []
    for p in problems:
        p.description = vary(p.description, rng)
        prompt = tok.encode_chat([{"role": "user", "content": initial_prompt(p)}])
        rows.append((prompt + tok.encode(f"```python\n{p.solutions[0].strip()}\n```") + [tok.eot_id], len(prompt)))
    T = max(len(r) for r, _ in rows)
    tokens, targets = torch.full((len(rows), T), tok.pad_id), torch.full((len(rows), T), -100)
    for i, (r, n) in enumerate(rows):
        tokens[i, :len(r)] = torch.tensor(r)
        targets[i, n - 1:len(r) - 1] = torch.tensor(r[n:])        # position j predicts token j + 1
    return tokens, targets


def main(argv=None):
    p = argparse.ArgumentParser(description="Train the tiny policy (tokenizer + supervised warm start).")
    p.add_argument("--steps", type=int, default=3500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (cosine to 10%%)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="the shipped policy was trained with 1")
    p.add_argument("--out", default=str(OUT_DIR / "policy"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    args = PRESETS["tiny"]
    hf_tok = build_tokenizer(args.vocab_size - len(SPECIAL_TOKENS))
    tok = Tokenizer(hf_tok)
    assert tok.vocab_size == args.vocab_size, (tok.vocab_size, args.vocab_size)
    model = Transformer(args).init_weights(std=0.02)
    print(f"tiny policy: {sum(q.numel() for q in model.parameters()) / 1e6:.2f}M parameters, vocabulary {tok.vocab_size}")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    heldout_words = {w.lower() for w in secret_words()[1]}         # never trained on, even as "shown"
    t0 = time.time()
    for step in range(a.steps):
        tokens, targets = batch(tok, warmstart_problems(rng, a.batch_size, heldout_words), rng)
        lr = a.lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 100 == 0:
            print(f"step {step + 1:>5}/{a.steps}  loss {loss.item():.4f}  lr {lr:.2e}  {time.time() - t0:.0f}s", flush=True)
    out = Path(a.out)
    model.save_pretrained(out, bos_token_id=tok.bos_id, eos_token_id=tok.eot_id)
    hf_tok.save(str(out / "tokenizer.json"))
    print(f"saved {out} after {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
