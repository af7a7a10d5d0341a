"""The project's problem format: one JSON object per line (JSONL), read and written here.

Every problem source (the bundled set in `data/problems.jsonl`, CodeContests, HumanEval, MBPP) is converted
into this one format, so the MDP in rlef.py and the judge in execute.py see a single kind of object.
The fields are documented in data/README.md; in short:

    name, description                       the statement the model sees (raw, unformatted)
    public_tests, private_tests             [{"input": str, "output": str | null}]; feedback comes from the
                                            public tests only, the final judgement uses public + private
    generated_tests                         extra tests (CodeContests): evaluation judges the final response
                                            on them too (paper, appendix B.3); training rewards never do
    time_limit (s), memory_limit (bytes)    the problem's own limits or null (execute.py: 10 s, 1 GB, App. A.2)
    solutions                               reference Python 3 solutions
    incorrect_solutions                     Python 3 solutions known to be wrong (CodeContests): the source
                                            of the random-feedback ablation (appendix C.2)
    kind                                    "stdio" (a program: stdin -> stdout) or "function" (a function
                                            checked by assert statements; then "prompt" and "entry_point")
    preamble                                Python the judge runs before the response, as the benchmark's own
                                            harness does (LiveCodeBench's imports); optional

`load_problems` checks every line and fails with one ValueError naming the file, the line and the problem,
because a malformed line found hours into a training run is much more expensive than one found at start-up.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Iterable

from execute import FunctionTest

KINDS = ("stdio", "function")


@dataclass
class Test:
    __test__ = False  # a test case, not a pytest test class (pytest collects classes named Test*)

    input: str  # stdio: the program's stdin; function: the assert as the model sees it (prompt, feedback)
    output: str | None  # stdio: the expected stdout; function: None
    # function: the call the judge makes and how it checks the result, outside the program's reach
    check: FunctionTest | None = None


@dataclass
class Problem:
    name: str
    description: str
    public_tests: list[Test]
    private_tests: list[Test]
    generated_tests: list[Test] = field(default_factory=list)
    time_limit: float | None = None  # seconds, as set by the contest; the judge uses it (x --time-factor)
    memory_limit: int | None = None  # bytes
    solutions: list[str] = field(default_factory=list)
    incorrect_solutions: list[str] = field(default_factory=list)  # Python 3 programs that fail some test
    kind: str = "stdio"
    prompt: str = ""  # function problems: the code every assistant response is prefilled with
    entry_point: str | None = None  # function problems: the function under test, or "Solution.method"
    source: str | None = None
    difficulty: str | int | None = None
    preamble: str = ""  # run by the judge before the response in its namespace (the benchmark harness's imports)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "description": self.description,
            "public_tests": [_test_dict(t) for t in self.public_tests],
            "private_tests": [_test_dict(t) for t in self.private_tests],
            "generated_tests": [_test_dict(t) for t in self.generated_tests],
            "time_limit": self.time_limit,
            "memory_limit": self.memory_limit,
            "solutions": list(self.solutions),
            "kind": self.kind,
        }
        # Fields that mean nothing for a kind, or were never set, are left out so the file stays readable.
        if self.kind == "function":
            d["prompt"] = self.prompt
            d["entry_point"] = self.entry_point
        if self.incorrect_solutions:
            d["incorrect_solutions"] = list(self.incorrect_solutions)
        if self.source is not None:
            d["source"] = self.source
        if self.difficulty is not None:
            d["difficulty"] = self.difficulty
        if self.preamble:
            d["preamble"] = self.preamble
        return d


def _test_dict(t: Test) -> dict:
    d = {"input": t.input, "output": t.output}
    if t.check is not None:
        d["check"] = t.check.to_dict()
    return d


# --- reading -------------------------------------------------------------------------------------------------

REQUIRED = ("name", "description", "public_tests", "private_tests")
OPTIONAL = ("generated_tests", "time_limit", "memory_limit", "solutions", "incorrect_solutions", "kind", "prompt",
            "entry_point", "source", "difficulty", "preamble")


class _Bad(ValueError):
    """What is wrong with one line; load_problems adds the file and line number."""


def problem_from_dict(d: object) -> Problem:
    """Validate one decoded JSON value and build a Problem; raises _Bad with a short reason."""
    if not isinstance(d, dict):
        raise _Bad(f"expected a JSON object, got {type(d).__name__}")
    for key in REQUIRED:
        if key not in d:
            raise _Bad(f'missing required field "{key}"')
    unknown = sorted(set(d) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        # A typo such as "privte_tests" would otherwise silently leave a problem without private tests.
        raise _Bad(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(REQUIRED + OPTIONAL)}")

    name, description = d["name"], d["description"]
    if not isinstance(name, str) or not name.strip():
        raise _Bad('"name" must be a non-empty string')
    if not isinstance(description, str):
        raise _Bad('"description" must be a string')

    kind = d.get("kind", "stdio")
    if kind not in KINDS:
        raise _Bad(f'"kind" must be one of {KINDS}, got {kind!r}')

    tests = {key: _tests(d.get(key, []), key, kind) for key in ("public_tests", "private_tests", "generated_tests")}

    time_limit = d.get("time_limit")
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or time_limit <= 0):
        raise _Bad(f'"time_limit" must be a positive number of seconds or null, got {time_limit!r}')
    memory_limit = d.get("memory_limit")
    if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                     or memory_limit <= 0):
        raise _Bad(f'"memory_limit" must be a positive integer number of bytes or null, got {memory_limit!r}')

    solutions, incorrect = d.get("solutions", []), d.get("incorrect_solutions", [])
    for key, value in (("solutions", solutions), ("incorrect_solutions", incorrect)):
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise _Bad(f'"{key}" must be a list of strings')

    prompt, entry_point, preamble = d.get("prompt", ""), d.get("entry_point"), d.get("preamble", "")
    for key, value in (("prompt", prompt), ("preamble", preamble)):
        if not isinstance(value, str):
            raise _Bad(f'"{key}" must be a string')
    if kind == "function" and (not isinstance(entry_point, str) or entry_point.count(".") > 1
                               or not all(part.isidentifier() for part in entry_point.split("."))):
        raise _Bad(f'a "function" problem needs "entry_point", the name of the function under test (or '
                   f'"Class.method", called on a new instance); got {entry_point!r}')
    if kind == "stdio" and (prompt or entry_point is not None):
        raise _Bad('"prompt" and "entry_point" belong to "function" problems; this one is "stdio"')

    source, difficulty = d.get("source"), d.get("difficulty")
    if source is not None and not isinstance(source, str):
        raise _Bad('"source" must be a string or null')
    if difficulty is not None and (isinstance(difficulty, bool) or not isinstance(difficulty, (str, int))):
        raise _Bad('"difficulty" must be a string, an integer or null')

    return Problem(name=name, description=description, public_tests=tests["public_tests"],
                   private_tests=tests["private_tests"], generated_tests=tests["generated_tests"],
                   time_limit=None if time_limit is None else float(time_limit), memory_limit=memory_limit,
                   solutions=list(solutions), incorrect_solutions=list(incorrect), kind=kind, prompt=prompt,
                   entry_point=entry_point, source=source, difficulty=difficulty, preamble=preamble)


def _tests(value: object, key: str, kind: str) -> list[Test]:
    if not isinstance(value, list):
        raise _Bad(f'"{key}" must be a list of {{"input": ..., "output": ...}} objects')
    out = []
    for i, t in enumerate(value):
        where = f'"{key}"[{i}]'
        keys = {"input", "output", "check"} if kind == "function" else {"input", "output"}
        if not isinstance(t, dict) or set(t) != keys:
            raise _Bad(f'{where} must be an object with exactly the keys {", ".join(sorted(keys))}'
                       + (" (function tests from before the judge's check field: convert the dataset again)"
                          if kind == "function" and isinstance(t, dict) and "check" not in t else ""))
        if not isinstance(t["input"], str):
            raise _Bad(f'{where}["input"] must be a string')
        # A stdio test without an expected output cannot be judged; a function test is judged by its check.
        if kind == "stdio" and not isinstance(t["output"], str):
            raise _Bad(f'{where}["output"] must be a string (the expected stdout) in a "stdio" problem')
        if kind == "function" and t["output"] is not None:
            raise _Bad(f'{where}["output"] must be null in a "function" problem (its check says what is expected)')
        try:
            check = FunctionTest.from_dict(t["check"]) if kind == "function" else None
        except (TypeError, ValueError) as e:
            raise _Bad(f'{where}["check"]: {e}') from None
        out.append(Test(t["input"], t["output"], check))
    return out


def load_problems(path: str | os.PathLike) -> list[Problem]:
    """Read a JSONL problem file. Blank lines are skipped; any other bad line raises ValueError."""
    problems = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise _Bad(f"not valid JSON ({e.msg} at column {e.colno})") from None
                problems.append(problem_from_dict(d))
            except _Bad as e:
                raise ValueError(f"{path}:{lineno}: {e}. Fix or remove this line; the problem format is "
                                 f"described in data/README.md.") from None
    return problems


# --- writing -------------------------------------------------------------------------------------------------

def save_problems(problems: Iterable[Problem], path: str | os.PathLike) -> int:
    """Write problems as JSONL and return how many were written.

    The file is written to a temporary file next to `path` and renamed over it at the end, so a crash or a
    Ctrl-C half way through a long conversion never leaves a truncated file that looks complete.
    `problems` may be a generator (the CodeContests converter streams a 3 GB split through here).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for p in problems:
                d = p.to_dict()
                try:  # the same checks as loading, so a converter bug is caught when writing, not later
                    problem_from_dict(d)
                except _Bad as e:
                    raise ValueError(f"refusing to write problem {p.name!r} to {path}: {e}") from None
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
                n += 1
        os.chmod(tmp, 0o644)  # mkstemp creates the file private (0600); a data file should be readable
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return n


def run_converter(main) -> None:
    """A converter's command line: a missing or malformed input is one line on stderr (exit 1), not a traceback."""
    try:
        main()
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
