"""The tiny task family: greetings whose word is shown in the statement, or revealed only by execution feedback.

    python -m data.tiny_tasks          # writes data/tiny/train.jsonl and data/tiny/heldout.jsonl

The `tiny` demo (`python rlef.py --model tiny`) must show, on a laptop CPU in minutes, the one thing RLEF is
about: a policy learning to *use* execution feedback. So the family mixes two kinds of problem that look alike:

* "shown" — solvable from the statement alone. The statement has a worked example, as CodeContests
  statements do, and the example's output shows the greeting word:

      Read a name and print a greeting word, then the name reversed.
      Example: input `ann` output `Hola, nna`

  Solution: ``print("Hola, "+input()[::-1])``.

* "secret" — the same task, but the example hides the word behind ``???``:

      Read a name and print a secret greeting word, then the name reversed.
      Example: input `ann` output `???, nna`

  Nothing in the statement says which word is wanted, so a single turn can only guess. The example is the
  problem's public test (as in CodeContests), so the first wrong answer makes the paper's feedback message
  (paper §2.1, built by execute.py) show the word:

      - input `ann` failed:
      Expected output `Hola, nna` but got `???, nna`

Why this layout: in earlier designs of this task family, RL discovered feedback-reading only when the
warm start had already taught *copying a value from text into code*, and the revealed value sat where that
copying skill reached it. Here the warm start (data/train_tiny.py) copies the greeting from the text after
"output `" in the statement's example; the feedback puts the real greeting right after "Expected output `",
so the same skill, pointed at the latest "output `" rather than the statement's, solves a secret problem on
the second turn. With constants that were not reachable this way, PPO memorised the training problems'
constants instead (training solve rate 31% -> 95%, held-out 0%). To make memorisation useless every problem
has its own random word, and the HELD-OUT split's words never occur in TRAIN (nor in the warm start's data).

The other parts vary too, so a solution needs the statement: the operation on the name (4 kinds) and the
separator after the word (5 kinds, visible in every example). The judge compares whitespace-separated tokens
case-insensitively (execute.py), so the operations are chosen to differ in letters, not in case.
Reference solutions are one-liners that a byte-level model can write.
"""

from __future__ import annotations

import random
from pathlib import Path

from data import Problem, Test, save_problems

OUT_DIR = Path(__file__).with_name("tiny")
SEED = 0
N_TRAIN, N_HELDOUT = 400, 100       # half "shown", half "secret" in each split
N_PRIVATE = 4                       # private tests per problem (names other than the example's)
HIDDEN = "???"                      # what a secret problem's example shows in place of the word

# operation -> (how the statement says it, the code that does it, what it does)
OPS = {
    "same": ("the name", "input()", lambda s: s),
    "reversed": ("the name reversed", "input()[::-1]", lambda s: s[::-1]),
    "twice": ("the name twice", "input()*2", lambda s: s * 2),
    "first": ("the first letter of the name", "input()[0]", lambda s: s[0]),
}
SEPARATORS = [", ", "! ", " ", ": ", " - "]
KINDS = ("shown", "secret")

_CONSONANTS, _VOWELS = "bcdfghjklmnprstvwz", "aeiou"


def random_word(rng: random.Random) -> str:
    """A pronounceable capitalised nonsense word of 3-6 letters ("Tavo", "Mekiru"): never seen in pretraining
    (there is none) and never a word the model could have memorised from another split."""
    n = rng.randint(3, 6)
    start = rng.randrange(2)
    letters = [rng.choice(_VOWELS if (i + start) % 2 else _CONSONANTS) for i in range(n)]
    return "".join(letters).capitalize()


def random_name(rng: random.Random) -> str:
    """A lowercase test input of 3-5 letters that is not a palindrome (so "reversed" differs from "same")."""
    while True:
        name = random_word(rng).lower()[: rng.randint(3, 5)]
        if name != name[::-1]:
            return name


def secret_words(seed: int = SEED, n_train: int = N_TRAIN, n_heldout: int = N_HELDOUT) -> tuple[list[str], list[str]]:
    """Distinct words for the two splits, disjoint (case-insensitively): the held-out words come first."""
    rng = random.Random(f"words-{seed}")
    seen, words = set(), []
    while len(words) < n_train + n_heldout:
        w = random_word(rng)
        if w.lower() not in seen:
            seen.add(w.lower())
            words.append(w)
    return words[n_heldout:], words[:n_heldout]


def solution(word: str, sep: str, op: str) -> str:
    return f'print("{word}{sep}"+{OPS[op][1]})\n'


def expected_output(word: str, sep: str, op: str, name: str) -> str:
    return f"{word}{sep}{OPS[op][2](name)}\n"


def description(kind: str, word: str, sep: str, op: str, example_name: str) -> str:
    shown = word if kind == "shown" else HIDDEN
    greeting = "a greeting word" if kind == "shown" else "a secret greeting word"
    return (f"Read a name and print {greeting}, then {OPS[op][0]}.\n"
            f"Example: input `{example_name}` output `{expected_output(shown, sep, op, example_name).strip()}`")


def make_problem(name: str, kind: str, word: str, sep: str, op: str, names: list[str]) -> Problem:
    """names[0] is the worked example and the one public test; the rest are private tests."""
    assert kind in KINDS and op in OPS and sep in SEPARATORS
    tests = [Test(n + "\n", expected_output(word, sep, op, n)) for n in names]
    return Problem(name=name, description=description(kind, word, sep, op, names[0]), public_tests=tests[:1],
                   private_tests=tests[1:], solutions=[solution(word, sep, op)], kind="stdio",
                   source="rlef-tiny", difficulty=kind)   # "shown" or "secret": per-kind solve rates


def sample_problem(rng: random.Random, name: str, kind: str, word: str) -> Problem:
    names = []
    while len(names) < 1 + N_PRIVATE:
        n = random_name(rng)
        if n not in names:
            names.append(n)
    return make_problem(name, kind, word, rng.choice(SEPARATORS), rng.choice(list(OPS)), names)


def build_split(split: str, words: list[str], seed: int = SEED) -> list[Problem]:
    rng = random.Random(f"{split}-{seed}")
    return [sample_problem(rng, f"tiny_{split}_{i:04d}_{KINDS[i % 2]}", KINDS[i % 2], w)
            for i, w in enumerate(words)]


def build_splits(seed: int = SEED, n_train: int = N_TRAIN, n_heldout: int = N_HELDOUT):
    """(train, heldout) problem lists; the same seed gives the same problems, byte for byte."""
    train_words, heldout_words = secret_words(seed, n_train, n_heldout)
    return build_split("train", train_words, seed), build_split("heldout", heldout_words, seed)


def warmstart_problems(rng: random.Random, n: int, exclude: set[str]) -> list[Problem]:
    """Fresh "shown" problems for the supervised warm start (data/train_tiny.py), with words drawn anew and
    never one of ``exclude`` (the held-out words, lowercased): an endless supply of copy-the-word practice."""
    out = []
    while len(out) < n:
        w = random_word(rng)
        if w.lower() not in exclude:
            out.append(sample_problem(rng, f"warmstart_{len(out)}", "shown", w))
    return out


def main():
    train, heldout = build_splits()
    for split, problems in (("train", train), ("heldout", heldout)):
        path = OUT_DIR / f"{split}.jsonl"
        save_problems(problems, path)
        print(f"wrote {len(problems)} problems to {path}")


if __name__ == "__main__":
    main()
