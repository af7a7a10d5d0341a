"""Judge model-written Python and write RLEF's execution feedback (paper §2.1, App. C).

    extract_code(response)                   the last ```python block (else the last bare ``` block), or None
    Judge(workers=N).map(items)              (problem, code, tests) items in parallel: one TestResult per test;
                                             stdin/stdout or function tests by problem.kind
    describe_failures(problem, results)      the paper's feedback message (App. C); NO_CODE_FEEDBACK
    Sandbox().run_tests / run_function_tests one program on one fork server (run_tests: on a shared one)
    python execute.py SOLUTION.py PROBLEM.json

The reward is the judge's verdict, and PPO optimises exactly that number: any way for a program to pass without
solving the problem is a reward hack the policy will find. So the judge decides from outside the program:
stdout is compared here; a function's results come back as plain data and are compared here (the expected
values never enter the sandbox); a program that exits early, crashes after its answer, or leaves processes
behind gains nothing.

Verdicts: pass, wrong_answer, runtime_error, timeout, memory_limit (a MemoryError), output_limit, syntax_error,
and judge_error: the machinery failed (Judge replaces the server), a failure like any other, never a pass.
A nonzero exit or a signal fails a test even after correct output. Output comparison (our rule): whitespace-
separated tokens, equal counts, each pair equal as strings or case-insensitively; where the *expected* token is
a float literal (a '.' or an exponent) a numeric token within 1e-6 * max(1, |expected|) also matches; integers
compare as strings, so 10^19 and 10^19+1 differ. Limits (App. A.2): the problem's own time limit, else 10 s,
and its memory limit, else 1 GB, per test. Judge(time_factor=3) multiplies a problem's (C++) time limit for
Python: our option, off by default (1.0 is the paper's rule); time_limit_rule() names the rule for reports.

The sandbox (infra/sandbox.py; what it isolates and what it does not: docs/SANDBOX.md). Each test runs in a
fresh process forked from a server that isolated itself once (pid, network, mount and IPC namespaces, a read-only
root without the repository or data, an empty environment, a seccomp filter, rlimits); the server enforces wall
time, output size and the memory of all the test's processes, and leaves nothing behind for the next test.
Where the kernel refuses namespaces or seccomp, one warning says so, and programs run with rlimits only.
"""
import atexit
import dataclasses
import functools
import json
import math
import os
import queue
import re
import sys
import threading
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor

from infra import sandbox
from infra.sandbox import from_plain, to_plain   # the plain-data encoding results travel in

FORMAT_LINE = ("Your code should be enclosed in triple backticks like so: ```python YOUR CODE HERE ```. "
               "Use the backticks for your code only.")
NO_CODE_FEEDBACK = "Could not parse your code.\nGive it another try.\n" + FORMAT_LINE

DEFAULT_TIME_LIMIT = 10.0          # seconds of wall time per test (the paper's default)
DEFAULT_MEMORY_LIMIT = 1 << 30     # bytes (the paper's default)
TIME_FACTOR = 1.0                  # x a problem's own time limit: 1.0 is the paper's rule (App. A.2)
FIELD_LIMIT = 512                  # characters per input / output / traceback in the feedback (our choice)
MESSAGE_LIMIT = 4096               # characters (~1k tokens) per feedback message; later failures are dropped
OUTPUT_KEEP = 64 << 10             # characters of stdout kept in TestResult.output


# ---- Code extraction

# Linear time on any response: the language tag and the blanks after it are possessive (*+, atomic (?>)), so a
# fence that is never closed is scanned once, not once per character of its tag (a backtracking regex spends
# quadratic time on "```" + 10 KB of letters). Where a block is closed, the matches are the same.
_FENCE = re.compile(r"```([\w+-]*+)[ \t]*+(?>\n?)(.*?)```", re.DOTALL)


def extract_code(response: str) -> str | None:
    """The last ```python block of a response (else its last bare ``` block); None when it has none."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(response) if body.strip()]
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    bare = [body for lang, body in blocks if lang == ""]
    return (python or bare or [None])[-1]


# ---- Verdicts, and what the feedback says for each

# verdict: the words of its bullet in the feedback (paper App. C.1; the function problems' feedback adds a ".").
# None: the bullet shows the test's output (wrong_answer) or the program's traceback instead.
VERDICT_MESSAGES = {
    "pass": None,
    "wrong_answer": None,
    "runtime_error": None,
    "timeout": "Execution took too long",
    "memory_limit": "Out of memory",                # the server stopped it, or a MemoryError
    "output_limit": "Output limit exceeded",        # this and the next: our choice, in the paper's style
    "syntax_error": None,                           # our choice: its traceback, as a runtime error's
    "judge_error": "The test could not be run: the judge failed (not the program)",   # the machinery failed
}
VERDICTS = tuple(VERDICT_MESSAGES)
JUDGE_ERROR = VERDICT_MESSAGES["judge_error"]


@dataclasses.dataclass
class TestResult:
    __test__ = False               # not a pytest test class
    verdict: str                   # one of VERDICTS
    input: str
    expected: str | None           # None: the test is the program itself exiting 0 (an appended assert)
    output: str = ""               # stdout, first OUTPUT_KEEP characters
    error: str = ""                # traceback / stderr, paths read solution.py, no harness frames
    seconds: float = 0.0           # wall time

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


# ---- Output comparison (the judge's rule for stdin/stdout problems)

# Every regex that reads a program's output is unambiguous and possessive: one pass, no backtracking, so a
# 4 MiB token costs milliseconds (the old "\d+\.?\d*" backtracked quadratically: 40 KB took 41 s).
_INT = re.compile(r"[+-]?+\d++")
_NUMBER = re.compile(r"[+-]?+(?:\d++(?:\.\d*+)?+|\.\d++)(?:[eE][+-]?+\d++)?+")
_TOKEN = re.compile(r"\S++")   # \s is str.isspace(), as str.split() uses


def outputs_match(expected: str, output: str) -> bool:
    """The judge's comparison rule (module docstring): tokens, equal counts, floats only where expected.
    Tokens are read one at a time and the output's are read only as far as the expected ones go: 16 MiB of
    short tokens never become millions of strings (str.split() would hold ~385 MB), and the work is linear."""
    if expected == output:
        return True
    want, got = _TOKEN.finditer(expected), _TOKEN.finditer(output)
    for w in want:
        g = next(got, None)
        if g is None or not _tokens_match(w.group(), g.group()):
            return False
    return next(got, None) is None


def _tokens_match(want: str, got: str) -> bool:
    if want == got or want.lower() == got.lower():
        return True
    if _NUMBER.fullmatch(want) and not _INT.fullmatch(want) and _NUMBER.fullmatch(got):
        b = float(want)
        return abs(float(got) - b) <= 1e-6 * max(1.0, abs(b))    # inf/nan never match: nan <= x is False
    return False


def python_time_limit(contest_seconds: float | None, factor: float = TIME_FACTOR,
                      default: float = DEFAULT_TIME_LIMIT) -> float:
    """A problem's own time limit (x factor: our option for Python); the paper's 10 s where it has none."""
    return default if not contest_seconds else contest_seconds * factor


def time_limit_rule(factor: float = TIME_FACTOR) -> str:
    """The rule in words, for every report: which limits the numbers were measured under."""
    return f"problem's time limit x{factor:g}, else {DEFAULT_TIME_LIMIT:g} s; problem's memory limit, else 1 GB"


# ---- Function problems (HumanEval, MBPP): plain data in, plain data out
#
# A function problem is judged by code the program cannot influence. The sandboxed child loads the solution and
# receives the test calls' arguments; it sends back each result as *plain data* (builtins only). The expected
# values never enter the sandbox, and the comparison happens here, in the judge's process, on values decoded
# from JSON: an object with its own __eq__ cannot survive the trip, and ending the process early leaves tests
# without a result (a runtime error), never a pass.

# Builtins a test may apply to the result before comparing (`assert sorted(f(x)) == ...`, `round(f(x), 2)`).
WRAPPERS = {f.__name__: f for f in (abs, bool, dict, float, frozenset, int, len, list, max, min, round, set, sorted,
                                    str, sum, tuple)}
# The values a wrapper hashes: the elements of set() and frozenset(), the keys of dict() (pairs of anything else).
_HASHING_WRAPPERS = {"set": list, "frozenset": list,
                     "dict": lambda r: list(r) if isinstance(r, dict) else [k for k, _ in r]}
# Float tolerance for "==" where floats are involved (as EvalPlus: relative 1e-7, absolute 1e-6).
FLOAT_REL_TOL, FLOAT_ABS_TOL = 1e-7, 1e-6
COMPARES = ("==", "!=", "is", "truthy", "falsy", "close", "isclose", "predicate")


@dataclasses.dataclass
class FunctionTest:
    """One call of the function under test and how its result is checked, all decided by the dataset:

        assert f(1, 2) == 3                          args [1, 2], expected 3, compare "=="
        assert sorted(f(x)) == [1, 2]                wrap [["sorted"]]
        assert abs(f(x) - 0.5) < 1e-6                compare "close", abs_tol 1e-6 (strict)
        assert math.isclose(f(x), 2.0, rel_tol=1e-3) compare "isclose"
        assert f(x) / assert not f(x)                compare "truthy" / "falsy"
        assert abs(poly(xs, f(xs))) < 1e-4           compare "predicate": a lambda over the result, with setup
    """
    __test__ = False
    args: list = dataclasses.field(default_factory=list)      # positional arguments (decoded plain data)
    kwargs: dict = dataclasses.field(default_factory=dict)
    expected: object = None
    compare: str = "=="
    wrap: list = dataclasses.field(default_factory=list)      # [[name, *extra literal args]], applied in order
    abs_tol: float = FLOAT_ABS_TOL
    rel_tol: float = FLOAT_REL_TOL
    strict: bool = True                                       # "close": < (True) or <= (False)
    message: str | None = None                                # the assert's message, shown as AssertionError: ...
    predicate: str | None = None                              # "lambda result: ..." (dataset code, trusted)
    setup: str = ""                                           # definitions the predicate uses (dataset code)

    def __post_init__(self):
        if self.compare not in COMPARES:
            raise ValueError(f"compare must be one of {COMPARES}, got {self.compare!r}")
        if any(not w or w[0] not in WRAPPERS for w in self.wrap):
            raise ValueError(f"wrap may only use {sorted(WRAPPERS)}, got {self.wrap!r}")
        if (self.compare == "predicate") != (self.predicate is not None):
            raise ValueError('a predicate belongs to compare "predicate", and it needs one')

    def to_dict(self) -> dict:
        """The JSON form (data/README.md): arguments and expected value in to_plain's encoding."""
        d = {"args": to_plain(list(self.args)), "expected": to_plain(self.expected)}
        defaults = FunctionTest()
        for name in ("kwargs", "compare", "wrap", "abs_tol", "rel_tol", "strict", "message", "predicate", "setup"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                d[name] = {k: to_plain(v) for k, v in value.items()} if name == "kwargs" else value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FunctionTest":
        if not isinstance(d, dict) or "args" not in d:
            raise ValueError('a function test\'s "check" must be an object with at least "args" and "expected"')
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} in a function test's check")
        args = from_plain(d["args"])
        if type(args) is not list:
            raise ValueError('"args" must be a list')
        kwargs = d.get("kwargs", {})
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError('"kwargs" must map argument names to values')
        return cls(**{**d, "args": args, "expected": from_plain(d.get("expected")),
                      "kwargs": {k: from_plain(v) for k, v in kwargs.items()}})

    def wrapped(self, result):
        """``result`` with the test's wrappers applied (sorted, set, round, ...); raises where one fails."""
        for name, *extra in self.wrap:
            if name in _HASHING_WRAPPERS:   # set(result) hashes what the program sent: same guard as from_plain
                sandbox.hash_guard(_HASHING_WRAPPERS[name](result))
            result = WRAPPERS[name](result, *extra)
        return result

    def passes(self, result) -> bool:
        """Whether ``result`` (decoded plain data, never the program's own object) satisfies this test."""
        try:
            result = self.wrapped(result)
            if self.compare == "predicate":   # dataset code: it may well build set(result)
                if type(result) in (list, tuple):
                    sandbox.hash_guard(x for x in result if type(x) not in (list, dict, set))
                return bool(_predicate(self.setup, self.predicate)(result))
            return bool(_COMPARE[self.compare](self, result))
        except Exception:   # e.g. sorted() of mixed types, abs() of a string: not the expected value
            return False

    def failure(self, result) -> str:
        """The error a failed check shows: the assert's own message, else unittest's words with both values
        (App. C.4: "AssertionError: 3 != 4", the value compared first, as assertEqual(got, expected) says it)."""
        if self.message:
            return f"AssertionError: {self.message}"
        try:
            result = self.wrapped(result)
        except Exception:
            pass   # the wrapper itself failed on this value: show the value as the function returned it
        got, want = _short_repr(result), _short_repr(self.expected)
        words = {"==": f"{got} != {want}", "!=": f"{got} == {want}", "is": f"{got} is not {want}",
                 "truthy": f"{got} is not true", "falsy": f"{got} is not false",
                 "close": f"{got} != {want} within {self.abs_tol!r} delta",
                 "isclose": f"{got} != {want} within rel_tol={self.rel_tol!r}, abs_tol={self.abs_tol!r}",
                 "predicate": f"{got} does not satisfy {self.predicate}"}
        return f"AssertionError: {words[self.compare]}"


def _short_repr(value) -> str:
    """repr() cut to half a feedback field, so that both values of a comparison fit in one."""
    try:
        text = repr(value)
    except ValueError:   # an int past Python's 4,300 digits for str()
        return "<a value too large to show>"
    return text if len(text) <= FIELD_LIMIT // 2 else text[:FIELD_LIMIT // 2 - 3] + "..."


def values_equal(got, want, rel_tol: float = FLOAT_REL_TOL, abs_tol: float = FLOAT_ABS_TOL) -> bool:
    """Python's == on plain data, except that where a float is expected numbers match within the tolerance
    (an expected int is matched exactly, as by EvalPlus: 10**8 + 7.0 is not 10**8)."""
    if got == want:
        return True
    if type(want) is float and type(got) in (int, float):
        return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
    if type(got) is type(want) and type(got) in (list, tuple) and len(got) == len(want):
        return all(values_equal(g, w, rel_tol, abs_tol) for g, w in zip(got, want))
    if type(got) is type(want) is dict and got.keys() == want.keys():
        return all(values_equal(got[k], want[k], rel_tol, abs_tol) for k in got)
    return False


_COMPARE = {
    "==": lambda t, r: values_equal(r, t.expected, t.rel_tol, t.abs_tol),
    "!=": lambda t, r: r != t.expected,
    "is": lambda t, r: r is t.expected,                        # True, False, None: singletons survive decoding
    "truthy": lambda t, r: bool(r),
    "falsy": lambda t, r: not r,
    "close": lambda t, r: abs(r - t.expected) < t.abs_tol if t.strict else abs(r - t.expected) <= t.abs_tol,
    "isclose": lambda t, r: math.isclose(r, t.expected, rel_tol=t.rel_tol, abs_tol=t.abs_tol),
}


@functools.lru_cache(maxsize=256)
def _predicate(setup: str, predicate: str):
    """Compile a dataset's predicate once. It is the dataset's own code (trusted like its expected values) and
    runs here, on decoded plain data; nothing the program wrote is executed."""
    namespace: dict = {}
    exec(compile(setup, "<test setup>", "exec"), namespace)
    return eval(compile(predicate, "<test>", "eval"), namespace)


# ---- From the sandbox's reports to verdicts

def _result(raw: dict, test_input: str, expected: str | None) -> TestResult:
    """Turn the fork server's raw report of one run into a verdict."""
    if "judge_error" in raw:
        return TestResult("judge_error", test_input, expected, error=f"{JUDGE_ERROR}: {raw['judge_error']}")
    if "syntax_error" in raw:
        return TestResult("syntax_error", test_input, expected, error=raw["syntax_error"])
    out, err = raw["stdout"], raw["stderr"]
    failed = raw["signal"] is not None or raw["exit"] != 0
    if raw.get("stopped") in ("timeout", "memory_limit", "output_limit"):
        verdict = raw["stopped"]   # the server stopped it: out of time, of memory (all its processes), of output
    elif failed and err.rsplit("\n", 1)[-1].startswith("MemoryError"):
        verdict = "memory_limit"
    elif failed:
        verdict = "runtime_error"
        if raw["signal"] is not None:
            err += ("\n" if err else "") + f"Process killed by {sandbox.signal_name(raw['signal'])}"
        elif not err:
            err = f"Process exited with code {raw['exit']}"
    elif expected is None or outputs_match(expected, out):
        verdict = "pass"
    else:
        verdict = "wrong_answer"
    return TestResult(verdict, test_input, expected, out[:OUTPUT_KEEP], err, raw["seconds"])


def _call_result(raw: dict, shown: str, test: FunctionTest) -> TestResult:
    """Turn the server's report of one function call into a verdict, comparing the result here."""
    seconds = raw.get("seconds", 0.0)
    if "value" in raw:
        try:
            value = from_plain(raw["value"])
        except Exception:   # the program wrote something that is not plain data (or absurd: OverflowError)
            return TestResult("wrong_answer", shown, None, seconds=seconds,
                              error="AssertionError: the function returned something that is not plain data")
        passed = test.passes(value)
        error = "" if passed else test.failure(value)
        return TestResult("pass" if passed else "wrong_answer", shown, None, error=error, seconds=seconds)
    if "not_plain" in raw and test.compare in ("truthy", "falsy") and not test.wrap:
        passed = raw["truth"] == (test.compare == "truthy")
        return TestResult("pass" if passed else "wrong_answer", shown, None, seconds=seconds,
                          error="" if passed else "AssertionError" + (f": {test.message}" if test.message else ""))
    if "not_plain" in raw:   # e.g. an object with its own __eq__: only the values themselves are compared
        return TestResult("wrong_answer", shown, None, seconds=seconds,
                          error=f"AssertionError: the function returned {raw['not_plain']}")
    verdict = raw["verdict"]
    return TestResult(verdict, shown, None, error=raw.get("error", ""), seconds=seconds)


# ---- The paper's feedback (paper §2.1, App. C)

def _cap(text: str) -> str:
    text = text.rstrip()   # trailing newlines/spaces never decide a verdict; they would only push the backtick
    return text if len(text) <= FIELD_LIMIT else text[:FIELD_LIMIT - len(sandbox.TRUNCATED)] + sandbox.TRUNCATED


def _cap_traceback(text: str) -> str:
    """Keep the first line ("Traceback ...") and the tail, where the exception is."""
    text = text.rstrip()
    if len(text) <= FIELD_LIMIT:
        return text
    first = text.split("\n", 1)[0][:FIELD_LIMIT // 4]
    tail = FIELD_LIMIT - len(first) - len(sandbox.TRUNCATED) - 2
    return f"{first}\n{sandbox.TRUNCATED}\n{text[-tail:]}"


def describe_failures(problem, results: list[TestResult]) -> str:
    """The user message after a failing response, from its public tests' results (paper §2.1). A stdin/stdout
    problem (App. C.1): one bullet per failing test. A function problem (App. C.4 HumanEval+, C.5 MBPP+):
    every assert listed, failures with their assertion error (or traceback, or message), successes plainly;
    MBPP+, whose prompt is not prefilled with code, ends with the format line. Our choices: fields are capped
    at FIELD_LIMIT characters, and a stdin/stdout message leaves out bullets past MESSAGE_LIMIT (the first is
    always kept); it is "" when every test passed. ``problem``: anything with data.Problem's kind and prompt."""
    if problem.kind == "function":
        return _function_feedback(results, format_line=not problem.prompt)
    bullets = []
    for r in results:
        if r.verdict == "pass":
            continue
        if r.verdict == "wrong_answer":
            body = f"Expected output `{_cap(r.expected or '')}` but got `{_cap(r.output)}`"
        else:
            body = VERDICT_MESSAGES[r.verdict] or _cap_traceback(r.error)   # runtime and syntax errors
        bullet = f"- input `{_cap(r.input)}` failed:\n{body}"
        if bullets and sum(map(len, bullets)) + len(bullet) > MESSAGE_LIMIT:
            break
        bullets.append(bullet)
    if not bullets:
        return ""
    return "Your code failed the following tests:\n\n" + "\n".join(bullets) + "\n\nGive it another try.\n" + FORMAT_LINE


def _function_feedback(results: list[TestResult], format_line: bool) -> str:
    """App. C.4/C.5: each assert (a function test's input is the assert as the model sees it) ran on its own,
    so each failure shows its own error."""
    bullets = []
    for r in results:
        if r.verdict == "pass":
            bullets.append(f"- Success: `{_cap(r.input)}`")
            continue
        last = r.error.rstrip().rsplit("\n", 1)[-1]
        message = VERDICT_MESSAGES[r.verdict]
        body = message + "." if message else (
            f"`{_cap(last)}`" if last.startswith("AssertionError") else _cap_traceback(r.error))
        bullets.append(f"- Failure: `{_cap(r.input)}`:\n{body}")
    message = "Your code failed some test cases:\n\n" + "\n".join(bullets) + "\n\nGive it another try."
    return message + ("\n" + FORMAT_LINE if format_line else "")


# ---- The judge: a pool of sandboxes, one call for every problem

class Sandbox(sandbox.ForkServer):
    """One fork server (infra/sandbox.py) whose raw reports become verdicts here; one job at a time."""

    def run_tests(self, code: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
                  memory_limit: int | None = DEFAULT_MEMORY_LIMIT, preamble: str = "") -> list[TestResult]:
        """One TestResult per (input, expected_output) test, in order; None limits mean the defaults;
        expected_output None: the test passes iff the program exits 0. preamble: the problem's (data.Problem)."""
        _check_str("code", code)
        _check_str("preamble", preamble)
        tests = list(tests)
        for test_input, expected in tests:
            _check_str("stdin (a test's input)", test_input)
            if expected is not None:
                _check_str("expected (a test's output)", expected)
        time_limit, memory_limit = _limits(time_limit, memory_limit)
        return [_result(self.run(code, test_input, time_limit, memory_limit, preamble), test_input, expected)
                for test_input, expected in tests]

    def run_function_tests(self, code: str, entry_point: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
                           memory_limit: int | None = DEFAULT_MEMORY_LIMIT, preamble: str = "") -> list[TestResult]:
        """One TestResult per (shown_assert, FunctionTest): the program is loaded once, ``entry_point`` is
        called with each test's arguments, and each result is checked here (FunctionTest.passes). Each call has
        the time limit on its own (ForkServer.run_calls)."""
        _check_str("code", code)
        _check_str("entry_point", entry_point)
        _check_str("preamble", preamble)
        tests = list(tests)
        for shown, test in tests:
            _check_str("a function test's shown text", shown)
            if not isinstance(test, FunctionTest):
                raise TypeError(f"function tests must be FunctionTest objects, got {type(test).__name__}")
        time_limit, memory_limit = _limits(time_limit, memory_limit)
        if not tests:
            return []
        reports = self.run_calls(code, entry_point, [(t.args, t.kwargs) for _, t in tests], time_limit, memory_limit,
                                 preamble)
        if reports is None:
            return [_result(self._server_died(), shown, None) for shown, _ in tests]
        return [_call_result(raw, shown, test) for raw, (shown, test) in zip(reports, tests)]


def _limits(time_limit, memory_limit) -> tuple[float, int]:
    """The defaults in place of None, then checked (ValueError before anything is sent)."""
    return sandbox.check_limits(DEFAULT_TIME_LIMIT if time_limit is None else time_limit,
                                DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit)


def _check_str(name: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


class Judge:
    """A pool of fork servers, one job at a time each. Start it before loading a model (it works after, too:
    nothing is forked).

        with Judge(workers=8) as judge:
            results = judge.map([(problem, code, tests), ...])   # one TestResult per test, in order, per item

    A problem is any object with the fields of data.Problem used here: kind ("stdio" or "function"),
    time_limit, memory_limit, entry_point and preamble; a test has input, output and (function problems) check.
    """

    def __init__(self, workers: int | None = None, isolate: bool = True, time_factor: float = TIME_FACTOR):
        self.workers, self.isolate, self.time_factor = workers or os.cpu_count() or 1, isolate, time_factor
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="judge")
        self._sandboxes = list(self._pool.map(lambda _: Sandbox(isolate), range(self.workers)))
        self._idle = queue.SimpleQueue()
        for server in self._sandboxes:
            self._idle.put(server)

    def map(self, items) -> list[list[TestResult]]:
        return list(self._pool.map(self._judge, items))

    def _judge(self, item) -> list[TestResult]:
        """One (problem, code, tests) on an idle sandbox. A stdin/stdout program runs once per test and its
        stdout is compared here. A function problem's asserts are never run beside the program (it could end
        the process first, or return an object equal to anything): the judge calls the function and checks
        each result itself, so that every failing assert still shows its own error (App. C.4).
        A failure of the machinery while the job runs (after its first request was sent: the arguments were
        fine) is never the caller's nor a pass: every test of the job gets the verdict judge_error, the sandbox
        is replaced, and the next job runs on a fresh server. An argument refused before anything was sent is
        the caller's mistake, and raised."""
        problem, code, tests = item
        tests = list(tests)   # counted before running: one verdict per test, always
        limits = python_time_limit(problem.time_limit, self.time_factor), problem.memory_limit or DEFAULT_MEMORY_LIMIT
        server = self._idle.get()
        sent = server._next_id
        try:
            if problem.kind == "function":
                return server.run_function_tests(code, problem.entry_point, [(t.input, t.check) for t in tests],
                                                 *limits, preamble=problem.preamble)
            return server.run_tests(code, [(t.input, t.output) for t in tests], *limits, preamble=problem.preamble)
        except Exception as e:
            if server._next_id == sent:
                raise
            server = self._replace(server)
            return judge_errors(tests, e)
        finally:
            self._idle.put(server)

    def _replace(self, broken: "Sandbox") -> "Sandbox":
        """A fresh sandbox in place of one that failed; if none starts, the old one (it restarts its server on
        its next request, or fails that job the same way): the run goes on either way."""
        try:
            broken.close()
            fresh = Sandbox(self.isolate)
        except Exception as e:
            warnings.warn(f"execute.py: a test server could not be replaced ({type(e).__name__}: {e})",
                          RuntimeWarning, stacklevel=2)
            return broken
        self._sandboxes[self._sandboxes.index(broken)] = fresh
        return fresh

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for server in self._sandboxes:
            server.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def judge_errors(tests, error: BaseException) -> list[TestResult]:
    """The verdicts of a job the machinery failed on: judge_error for each test (a failure: reward -1 as any
    other, never a pass), the exception in ``error`` for whoever reads the results."""
    warnings.warn(f"execute.py: the judge failed on a job ({type(error).__name__}: {error}); its {len(tests)} "
                  "tests are judge_error", RuntimeWarning, stacklevel=2)
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return [TestResult("judge_error", t.input, t.output, error=f"{JUDGE_ERROR}: {detail}") for t in tests]


_default_sandbox, _default_lock = None, threading.Lock()


def run_tests(code: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
              memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> list[TestResult]:
    """Judge one program on (input, expected_output) tests with a shared fork server (see Sandbox.run_tests)."""
    global _default_sandbox
    with _default_lock:
        if _default_sandbox is None:
            _default_sandbox = Sandbox()
            atexit.register(_default_sandbox.close)
        return _default_sandbox.run_tests(code, tests, time_limit, memory_limit)


# ---- CLI: python execute.py SOLUTION.py PROBLEM.json


def main(argv: list[str]) -> None:
    """Judge SOLUTION.py on PROBLEM.json as training does: each test's verdict, then the policy's feedback."""
    from data import problem_from_dict          # data/ imports this file: imported here, when used
    if len(argv) != 2:
        sys.exit("usage: python execute.py SOLUTION.py PROBLEM.json   (a problem as data/ writes it, stdio or "
                 "function, or a list of {\"input\", \"output\"} tests, all public)")
    with open(argv[0]) as f, open(argv[1]) as g:
        code, fields = f.read(), json.load(g)
    fields = {"public_tests": fields} if isinstance(fields, list) else fields
    try:
        problem = problem_from_dict({"name": argv[1], "description": "", "public_tests": [], "private_tests": [],
                                     **fields})
    except ValueError as e:
        sys.exit(f"{argv[1]}: {e} (the problem format is described in data/README.md)")
    public = problem.public_tests
    with Judge(workers=1) as judge:
        results, = judge.map([(problem, code, public + problem.private_tests)])
    for i, r in enumerate(results):
        kind, n = ("public", i) if i < len(public) else ("private", i - len(public))
        print(f"{kind} test {n}: {r.verdict} ({r.seconds:.3f} s)")
    print("\n" + (describe_failures(problem, results[:len(public)]) or "All public tests pass."))


if __name__ == "__main__":
    import execute            # the module data/ imports, not this second copy named __main__: one FunctionTest
    execute.main(sys.argv[1:])
