"""Convert MBPP and MBPP+ to the project's problem format, as "function" problems.

    python -m data.mbpp mbpp.jsonl [--split test] --out data/mbpp.jsonl
    python -m data.mbpp mbppplus.jsonl --out data/mbppplus.jsonl

Accepted inputs (JSONL, JSONL.gz, a JSON array, or parquet, which needs pyarrow):
  - MBPP as distributed by google-research (`mbpp.jsonl`: task_id, text, code, test_list, test_setup_code,
    challenge_test_list) and its sanitized subset (`sanitized-mbpp.json`: prompt instead of text, test_imports);
  - MBPP+ as on Hugging Face (`evalplus/mbppplus`: task_id, prompt, code, test_imports, test_list, and `test`, a
    self-contained script that checks the function on the base and the EvalPlus inputs with their expected
    outputs). EvalPlus's own release (`MbppPlus.jsonl`, with base_input/plus_input but no expected outputs) is
    refused with a message pointing to data/evalplus.py, which runs the reference solutions in the sandbox.
Each task becomes:
  description     the task text; there is no prefill (prompt = ""), as in the paper's MBPP+ template, which shows
                  the first public test so that the model learns the function's name and signature (App. C.5)
  entry_point     the function the first assert calls (among those the reference solution defines)
  public_tests    test_list, the three asserts every MBPP task ships with, in order, each shown as written
  private_tests   MBPP: challenge_test_list (empty for most tasks); MBPP+: every assert (or EvalPlus
                  `assertion(...)` call) the `test` script executes, the base inputs among them (as EvalPlus
                  scores them: they run twice); MBPP's public and private tests are disjoint.
  solutions       [code]
Every assert becomes a call and an expected value that the judge checks outside the program (data/asserts.py); a
task none of whose public asserts can be converted (its arguments are objects, e.g. a tree) is left out and named;
setup code (test_setup_code, test_imports) runs when the values are computed, here, with the reference solution.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import gzip
import json
from collections import Counter
from pathlib import Path

from data import Problem, Test, run_converter, save_problems
from data.asserts import convert_asserts

# The task_id ranges of Austin et al. (2021), mbpp/README.md.
SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}


def read_rows(path: Path) -> list[dict]:
    name = str(path)
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("reading parquet needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def entry_point(first_assert: str, code: str) -> str:
    """The function under test: the first name called in the assert that the solution defines (not `set` in
    `assert set(similar_elements(a, b)) == set(c)`), else the first called name that is not a builtin."""
    defined = {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)}
    called = [n.func.id for n in ast.walk(ast.parse(first_assert))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    for name in called:
        if name in defined:
            return name
    for name in called:
        if not hasattr(builtins, name):
            return name
    raise ValueError(f"cannot tell which function {first_assert!r} tests")


def to_problem(row: dict, counts: Counter | None = None) -> Problem:
    """One MBPP(+) row as a function problem; ``counts`` collects what the assert conversion left out."""
    if "test_list" not in row and "base_input" in row:
        raise ValueError("this is EvalPlus's own MbppPlus.jsonl, which has test inputs but no expected outputs: "
                         "convert it with `python -m data.evalplus` (it runs the canonical solutions in the "
                         "sandbox), or convert the Hugging Face copy (evalplus/mbppplus) here")
    code = row["code"].replace("\r\n", "\n")  # the original mbpp.jsonl has Windows line endings
    setup = "\n".join(s for s in [row.get("test_setup_code", "")] + list(row.get("test_imports") or []) if s)
    asserts = [t.replace("\r\n", "\n").strip() for t in row["test_list"]]
    fn = entry_point(asserts[0], code)
    reference = code + ("\n" + setup if setup else "")
    # Each shown assert on its own, so that it keeps its own text (the prompt lists them, appendix C.5).
    public = [convert_asserts(a, fn, reference, shown=[a]) for a in asserts]
    challenge = [t.replace("\r\n", "\n").strip() for t in row.get("challenge_test_list") or []]
    private = [convert_asserts(t, fn, reference, shown=[t]) for t in challenge]
    plus = "test" in row and isinstance(row["test"], str)  # MBPP+ (Hugging Face)
    if plus:
        script = row["test"]
        # If the script only defines check(candidate), call it, so that it checks something when run.
        tree = ast.parse(script)
        defines_check = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
        calls_check = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                          and getattr(n.value.func, "id", None) == "check" for n in tree.body)
        if defines_check and not calls_check:
            script += f"\n\ncheck({fn})\n"
        private.append(convert_asserts(script, fn, reference))
    if not any(c.tests for c in public):
        raise ValueError(f"MBPP/{row['task_id']}: none of its asserts could be turned into a test (their "
                         "arguments are not plain data)")
    if counts is not None:
        for c in public + private:
            counts.update(tests=len(c.tests), outside=len(c.outside), no_call=len(c.no_call),
                          reference_failures=c.reference_failures)
    task_id = str(row["task_id"]).split("/")[-1]  # 11 or "Mbpp/11"
    return Problem(
        name=f"MBPP/{task_id}",
        description=(row.get("text") or row.get("prompt") or "").strip(),
        public_tests=[Test(shown, None, check) for c in public for shown, check in c.tests],
        private_tests=[Test(shown, None, check) for c in private for shown, check in c.tests],
        solutions=[code],
        kind="function",
        prompt="",
        entry_point=fn,
        source="mbpp+" if plus else "mbpp",
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="mbpp.jsonl, sanitized-mbpp.json, or MBPP+ (.jsonl/.parquet)")
    ap.add_argument("--split", choices=["all", *SPLITS], default="all",
                    help="keep only these task_ids (test = 11-510, the usual evaluation set; default: all)")
    ap.add_argument("--out", default="data/mbpp.jsonl", help="output file (default: %(default)s)")
    args = ap.parse_args(argv)

    rows = read_rows(args.path)
    if args.split != "all":
        rows = [r for r in rows if int(str(r["task_id"]).split("/")[-1]) in SPLITS[args.split]]
    counts, problems, dropped = Counter(), [], []
    for r in rows:
        try:
            problems.append(to_problem(r, counts))
        except ValueError as e:
            if "could be turned into a test" not in str(e):
                raise
            dropped.append(str(r["task_id"]))
    save_problems(problems, args.out)
    if dropped:
        print(f"left out {len(dropped)} tasks whose asserts pass objects rather than data: {', '.join(dropped)}")
    print(f"wrote {len(problems)} problems ({counts['tests']} tests) from {args.path} to {args.out}; asserts left "
          f"out: {counts['outside']} of another shape, {counts['no_call']} that call nothing; the reference "
          f"solutions fail {counts['reference_failures']} asserts")


if __name__ == "__main__":
    run_converter(main)
