"""Convert LiveCodeBench's code-generation rows to the project's problem format (paper Table 5).

    python -m data.livecodebench test.jsonl [--since 2024-08-01] [--until 2025-01-31] --out data/livecodebench.jsonl

Rows as released (livecodebench/code_generation_lite, JSONL): question_title, question_content, platform,
question_id, contest_date, starter_code, difficulty, public_test_cases (a JSON string), private_test_cases (a
JSON string, or base64 of zlib of a pickle of one), metadata (a JSON string; func_name for functional problems).
Each row becomes
  stdio       tests of testtype "stdin": a program reading stdin (description = the statement)
  function    tests of testtype "functional" (LeetCode): entry point "Solution.<func_name>", the method of a new
              Solution(); each input line is one JSON argument, the output the JSON of the return value; the
              description ends with the starter code
  public / private tests   public_test_cases / private_test_cases
A pickle can name any function for the unpickler to call (os.system, say): the private tests are unpickled by
an Unpickler whose find_class refuses every name, so only plain values (str, bytes, numbers, lists, tuples,
dicts) load and nothing from the file ever runs here. The rows give no time or memory limits: the judge's
defaults apply (the paper's 10 s and 1 GB, App. A.2).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import pickle
import zlib
from collections import Counter
from datetime import date, datetime
from pathlib import Path

from data import Problem, Test, run_converter, save_problems
from data.mbpp import read_rows
from execute import FunctionTest

FIELDS = ("question_title", "question_content", "platform", "question_id", "contest_date", "starter_code",
          "difficulty", "public_test_cases", "private_test_cases", "metadata")
MAX_DECOMPRESSED = 1 << 31   # bytes: the largest private test set a row may unpack to (a zlib bomb stops here)
# LiveCodeBench's harness (lcb_runner/evaluation/testing_util.py) runs these imports before every solution, of
# stdin and functional problems alike, so solutions may use List, Counter, gcd, ... unimported (LeetCode's
# starter code says `nums: List[int]`); the judge runs them too, as each problem's preamble.
_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
            "itertools", "functools", "operator", "io", "sys", "json")
PREAMBLE = "".join(f"from {m} import *\n" for m in _MODULES + ("builtins", "typing")) + \
    "".join(f"import {m}\n" for m in _MODULES) + "sys.setrecursionlimit(50000)\n"


class _DataOnly(pickle.Unpickler):
    """Loads the pickle's values, never its code: every global a pickle names (what REDUCE would call) is
    refused before it is looked up."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"the pickle names {module}.{name}; only plain values (str, bytes, numbers, "
                                     "lists, tuples, dicts) are accepted, so nothing was loaded or run")


def decode_private(text: str, where: str) -> list:
    """private_test_cases as a list of test dicts: a JSON string, or base64(zlib(pickle(JSON string)))."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        unzip = zlib.decompressobj()
        packed = unzip.decompress(base64.b64decode(text.encode("ascii"), validate=True), MAX_DECOMPRESSED)
    except (binascii.Error, UnicodeEncodeError, zlib.error) as e:
        raise ValueError(f"{where}: private_test_cases is neither JSON nor base64 of zlib data ({e})") from None
    if unzip.unconsumed_tail:
        raise ValueError(f"{where}: private_test_cases unpacks to more than {MAX_DECOMPRESSED} bytes; refused")
    try:
        value = _DataOnly(io.BytesIO(packed)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{where}: refusing private_test_cases: {e}") from None
    except Exception as e:   # a truncated or malformed pickle
        raise ValueError(f"{where}: private_test_cases is not a readable pickle ({type(e).__name__}: {e})") from None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"{where}: private_test_cases holds a {type(value).__name__}, not the JSON text of tests")
    return json.loads(value)


def _functional_test(case: dict, method: str) -> Test:
    args = [json.loads(line) for line in case["input"].split("\n") if line.strip()]
    expected = json.loads(case["output"])
    call = f"Solution().{method}({', '.join(map(repr, args))})"
    return Test(f"assert {call} == {expected!r}", None, FunctionTest(args=args, expected=expected))


def to_problem(row: dict) -> Problem:
    """One LiveCodeBench row as a stdio or function problem."""
    where = f"{row.get('question_id', '?')} {row.get('question_title', '')}".strip()
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where}: no field(s) {', '.join(missing)}; this converter reads LiveCodeBench's "
                         f"code-generation rows (fields {', '.join(FIELDS)})")
    public, private = json.loads(row["public_test_cases"]), decode_private(row["private_test_cases"], where)
    kinds = {case.get("testtype") for case in public + private}
    if kinds == {"stdin"}:
        make, kind, entry_point, description = (lambda c: Test(c["input"], c["output"])), "stdio", None, \
            row["question_content"]
    elif kinds == {"functional"}:
        method = json.loads(row["metadata"] or "{}").get("func_name")
        if not method:
            raise ValueError(f"{where}: functional tests but no metadata.func_name (the method under test)")
        make, kind, entry_point = (lambda c: _functional_test(c, method)), "function", f"Solution.{method}"
        description = f"{row['question_content']}\n\nComplete this code:\n{row['starter_code']}"
    else:
        raise ValueError(f"{where}: test types {sorted(map(str, kinds))}; expected all 'stdin' or all 'functional'")
    return Problem(name=where, description=description, public_tests=[make(c) for c in public],
                   private_tests=[make(c) for c in private], kind=kind, entry_point=entry_point,
                   source=row["platform"], difficulty=row["difficulty"], preamble=PREAMBLE)


def released(row: dict) -> date:
    """The row's release date (contest_date, e.g. "2023-08-21T00:00:00")."""
    try:
        return datetime.fromisoformat(str(row["contest_date"])).date()
    except (KeyError, ValueError):
        raise ValueError(f"{row.get('question_id', '?')}: contest_date {row.get('contest_date')!r} is not an ISO "
                         "date; --since/--until need it") from None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="LiveCodeBench code-generation rows (.jsonl, .jsonl.gz or .parquet)")
    ap.add_argument("--since", type=date.fromisoformat, help="keep problems released on or after this date")
    ap.add_argument("--until", type=date.fromisoformat, help="keep problems released on or before this date")
    ap.add_argument("--out", default="data/livecodebench.jsonl", help="output file (default: %(default)s)")
    args = ap.parse_args(argv)
    rows = [r for r in read_rows(args.path) if (args.since is None or released(r) >= args.since)
            and (args.until is None or released(r) <= args.until)]
    problems = [to_problem(r) for r in rows]
    save_problems(problems, args.out)
    kinds = Counter(p.kind for p in problems)
    print(f"wrote {len(problems)} problems ({kinds['stdio']} stdin/stdout, {kinds['function']} functional) from "
          f"{args.path} to {args.out}")


if __name__ == "__main__":
    run_converter(main)
