"""Judge model-written Python and write RLEF's execution feedback (paper §2.1, App. C), in a sandbox.

    extract_code(response)               the last ```python block (else the last bare ``` block), or None
    run_tests(code, tests, ...)          one TestResult per (input, expected_output) test of a stdin/stdout program
    feedback(results), NO_CODE_FEEDBACK  the paper's user messages (function_feedback: HumanEval+ / MBPP+)
    Judge(workers=N).map(jobs)           many programs in parallel; run_judge / describe_failures: per problem
    Sandbox().run_function_tests(...)    one TestResult per call of a function (HumanEval, MBPP): FunctionTest
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
compare as strings, so 10^19 and 10^19+1 differ. Time: a contest's (C++) limit x PYTHON_TIME_FACTOR = 3 (our
choice), else the paper's 10 s; memory: the problem's limit, else the paper's 1 GB.

The sandbox. Each Sandbox is a *fork server*: a fresh interpreter (`python -I execute.py --serve`, started with
subprocess, so a trainer holding GBs of weights is never forked) that isolates itself once, then forks one child
per test that runs the code as `solution.py` (a stdin/stdout program as `__main__`; a function problem's code as
module `solution`, then each call). Forking an interpreter that is already started and isolated costs less than
starting `python -c` (bench/bench_execute.py). Requests and replies carry an id; if anything goes wrong between
a request and its reply, the server is replaced, so a reply is never taken for another's. Since every test
process is a fork of the server, the server never holds a program's code, input or output in its own memory
(they pass through memfds and a wiped-on-fork arena, see _Arena): a program cannot copy a sibling's answer.

Isolated, where the kernel allows namespaces (checked at start-up):
  - processes: the server is init of its own pid namespace and kills every other process in it after each test
    (kill(-1) from init), so forks, double forks, setsid daemons and threads never outlive their test.
  - the server itself: each test runs in a pid namespace of its own, as pid 2 (pid 1 is an init that runs no
    code: a clone sharing the server's memory; the program is not init, whose own signals the kernel ignores,
    and its parent, the server, is outside: getppid() is 0). The server, the harness and every other test are
    outside it: prlimit, setpriority, sched_setaffinity/setscheduler, ioprio_set and kill take a pid, a group
    or a uid *in the caller's namespace*, so the program has nothing to name (chosen over resetting the
    server's state before each fork: an unprivileged server could not undo a lowered hard limit or a raised
    nice value, and the program could still disturb the test it is in). Pids start from 1 in every test. As
    root, tests also run under another uid than the server's. A test process holds only the descriptors it is
    given (stdin, stdout, stderr, its results and inputs): not the server's request and reply pipes. The
    harness reads every reply as untrusted: straight from the pipe (no buffer that select() cannot see), a
    JSON object for header, bounded sizes, one deadline for all of it; anything else replaces the server. The
    server's own stderr reaches ours labelled.
  - network: a new net namespace whose loopback is down: no connection to anything, 127.0.0.1 included.
  - files: a new root of read-only bind mounts of /usr, /bin, /lib* and the interpreter's prefixes, plus
    /dev/{null,zero,full,random,urandom}, a private /proc, and private size-capped /tmp and /dev/shm (tmpfs)
    that are emptied after each test (the test's working directory is in /tmp). The repository, the data
    (private tests!), home directories, /etc and the host's /tmp are not visible; nothing written reaches the
    host.
  - identity: as root, tests run as an unprivileged uid of the server's own (1<<20 + its pid); otherwise a user
    namespace maps the caller to root and every test drops every capability (the server keeps its own, to
    make each test's pid namespace). no_new_privs: setuid binaries gain nothing. The environment is empty (no
    secrets, no PYTHON* variables).
  - limits, soft = hard: CPU time (ceil(wall limit) + 1 s), address space (the memory limit on top of what the
    server maps when it forks, so neither the interpreter nor a large stdin is charged), file size (16 MiB),
    256 open files, 64 processes + threads, no core dumps; the address space also has room for 64 thread
    stacks, and glibc keeps one malloc arena (not 64 MiB more per thread), so threads are not refused. The
    server enforces wall time, drains stdout and stderr while the test runs (stdout past 16 MiB is
    output_limit; stderr keeps its head and tail), and every 50 ms counts the test's memory: the proportional
    set size of all its processes plus the bytes queued in unix sockets (kernel memory: a sock_diag dump of
    the sandbox's network namespace): past the limit, memory_limit. /tmp and /dev/shm hold at most 64 MiB
    and 8192 files each (inodes are kernel memory, and each costs cleaning time). Ints convert to and from
    str without Python 3.11's 4,300-digit limit (the paper ran 3.10), in the test and where the harness
    decodes a function's result (up to INT_DIGITS_LIMIT digits: parsing costs digits squared).
  - state: after each test /tmp, /dev/shm, SysV IPC objects and POSIX message queues are emptied (the server
    has its own IPC namespace) and, as the tests' own uid, the user keyrings; each test has a fresh session keyring;
    unix sockets kept alive "in flight" (SCM_RIGHTS to themselves) are collected before the next test.
  - system calls, by a seccomp filter installed in each test child just before the program (also without
    namespaces): new namespaces (unshare, setns, clone with CLONE_NEW*; clone3 answers ENOSYS, so the C library
    uses clone), memfd_create (memory outside RLIMIT_AS), io_uring, bpf, perf_event_open, userfaultfd, inotify
    and fanotify (they watch other programs' file opens), keyrings,
    SysV IPC and POSIX message queues (state that would outlive the test), mounts and chroot, ptrace and
    process_vm_*, modules, kexec, reboot, swap and the clock fail with EPERM, and so do sockets other than Unix,
    TCP and UDP (netlink, raw, packet, ...). The list and the reason for each entry: _SECCOMP_*. Where the
    kernel refuses the filter, or on machines other than x86_64 and aarch64, one warning says so.
NOT isolated: the rest of the kernel (the filter is a deny list: the system calls ordinary programs make, and
any kernel bug behind them, stay reachable); the interpreter and site-packages are readable; memory between two
50 ms checks; kernel memory other than socket buffers (counted) and tmpfs files (capped): no cgroup, so page
tables, pipe buffers (which the kernel bounds per uid) and other slabs are not counted; CPU time is not reserved (other load slows tests down); str
hashes are randomised per server, not per test. Side channels left open: flock/fcntl locks on the read-only
system files are seen by concurrent sandboxes (denying locks would break programs that lock their own files,
sqlite for one); the test's /proc is the server's, so it lists the server's pid and reads what /proc shows of
other processes to anyone (not their memory or descriptors: the server is not dumpable). inotify and fanotify
are denied. As root without CAP_SYS_ADMIN (a container), the user namespace keeps uid 0, which the kernel
exempts from the process limit. Without namespaces the fallback is rlimits, the seccomp filter, a temp dir and
a subreaper that kills every descendant; programs then run as you, can read your files, use the network and
reach the server (prlimit, kill): one warning says so.
Where the kernel refuses a pid namespace per test, or the socket dump, the isolation string says so.
Needs Linux >= 5.3 (pidfd); the per-sandbox process limit in a user namespace needs >= 5.14.
"""
import atexit
import builtins
import ctypes
import dataclasses
import errno
import faulthandler
import functools
import gc
import io
import itertools
import json
import math
import mmap
import os
import queue
import re
import resource
import select
import stat
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from concurrent.futures import ThreadPoolExecutor

FORMAT_LINE = ("Your code should be enclosed in triple backticks like so: ```python YOUR CODE HERE ```. "
               "Use the backticks for your code only.")
NO_CODE_FEEDBACK = "Could not parse your code.\nGive it another try.\n" + FORMAT_LINE

DEFAULT_TIME_LIMIT = 10.0          # seconds of wall time per test (the paper's default)
DEFAULT_MEMORY_LIMIT = 1 << 30     # bytes (the paper's default)
PYTHON_TIME_FACTOR = 3.0           # C++ contest limit -> Python (our choice)
OUTPUT_LIMIT = 16 << 20            # bytes of stdout (and of any file the program writes)
FIELD_LIMIT = 512                  # characters per input / output / traceback in the feedback (our choice)
MESSAGE_LIMIT = 4096               # characters (~1k tokens) per feedback message; later failures are dropped
ERROR_KEEP = 64 << 10              # characters of stderr kept in TestResult.error (head and tail)
OUTPUT_KEEP = 64 << 10             # characters of stdout kept in TestResult.output


# ---- Code extraction, verdicts and output comparison

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


VERDICTS = ("pass", "wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit", "syntax_error",
            "judge_error")


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


_HARNESS_FRAME = f'File "{os.path.abspath(__file__)}"'


def _result(raw: dict, test_input: str, expected: str | None) -> TestResult:
    """Turn the fork server's raw report of one run into a verdict."""
    if "judge_error" in raw:
        return TestResult("judge_error", test_input, expected, error=f"{JUDGE_ERROR}: {raw['judge_error']}")
    if "syntax_error" in raw:
        return TestResult("syntax_error", test_input, expected, error=raw["syntax_error"])
    out = raw["stdout"]
    # A segfault's faulthandler dump lists the harness frames below the program's: drop them.
    err = "\n".join(line for line in raw["stderr"].rstrip().split("\n") if _HARNESS_FRAME not in line)
    failed = raw["signal"] is not None or raw["exit"] != 0
    if raw.get("stopped") in ("timeout", "memory_limit", "output_limit"):
        verdict = raw["stopped"]   # the server stopped it: out of time, of memory (all its processes), of output
    elif failed and err.rsplit("\n", 1)[-1].startswith("MemoryError"):
        verdict = "memory_limit"
    elif failed:
        verdict = "runtime_error"
        if raw["signal"] is not None:
            err += ("\n" if err else "") + f"Process killed by {_signal_name(raw['signal'])}"
        elif not err:
            err = f"Process exited with code {raw['exit']}"
    elif expected is None or outputs_match(expected, out):
        verdict = "pass"
    else:
        verdict = "wrong_answer"
    return TestResult(verdict, test_input, expected, out[:OUTPUT_KEEP], err, raw["seconds"])


def python_time_limit(contest_seconds: float | None, factor: float = PYTHON_TIME_FACTOR,
                      default: float = DEFAULT_TIME_LIMIT) -> float:
    """A contest's (C++) time limit scaled for Python; the paper's 10 s where the problem has none."""
    return default if not contest_seconds else contest_seconds * factor



# ---- The paper's feedback messages (paper §2.1, App. C)

_TRUNCATED = "... <<truncated>>"
_MESSAGES = {"timeout": "Execution took too long", "memory_limit": "Out of memory",
             "output_limit": "Output limit exceeded",   # this and the next: our choice, in the paper's style
             "judge_error": "The test could not be run: the judge failed (not the program)"}


def _cap(text: str) -> str:
    text = text.rstrip()   # trailing newlines/spaces never decide a verdict; they would only push the backtick
    return text if len(text) <= FIELD_LIMIT else text[:FIELD_LIMIT - len(_TRUNCATED)] + _TRUNCATED


def _cap_traceback(text: str) -> str:
    """Keep the first line ("Traceback ...") and the tail, where the exception is."""
    text = text.rstrip()
    if len(text) <= FIELD_LIMIT:
        return text
    first = text.split("\n", 1)[0][:FIELD_LIMIT // 4]
    tail = FIELD_LIMIT - len(first) - len(_TRUNCATED) - 2
    return f"{first}\n{_TRUNCATED}\n{text[-tail:]}"


def feedback(results: list[TestResult]) -> str:
    """The user message after a failing response: one bullet per failing (public) test, as in the paper.
    Our choices: output_limit says "Output limit exceeded"; a syntax error shows its traceback like a runtime
    error; fields are capped at FIELD_LIMIT characters and bullets past MESSAGE_LIMIT are left out (the first
    is always kept). Returns "" when every test passed."""
    bullets = []
    for r in results:
        if r.verdict == "pass":
            continue
        if r.verdict == "wrong_answer":
            body = f"Expected output `{_cap(r.expected or '')}` but got `{_cap(r.output)}`"
        else:
            body = _MESSAGES.get(r.verdict) or _cap_traceback(r.error)   # runtime and syntax errors
        bullet = f"- input `{_cap(r.input)}` failed:\n{body}"
        if bullets and sum(map(len, bullets)) + len(bullet) > MESSAGE_LIMIT:
            break
        bullets.append(bullet)
    if not bullets:
        return ""
    return "Your code failed the following tests:\n\n" + "\n".join(bullets) + "\n\nGive it another try.\n" + FORMAT_LINE


def function_feedback(tests: list[str], results: list[TestResult], format_line: bool = False) -> str:
    """The feedback for function-completion problems (App. C.4/C.5, HumanEval+ / MBPP+): every
    assert of the public tests is listed, failures with their assertion error (or traceback, or the time-out
    message), successes plainly; MBPP+ appends the format line. Each test ran on its own, so each failure
    shows its own error. Our choices, in the same style: "Out of memory." and "Output limit exceeded."."""
    bullets = []
    for test, r in zip(tests, results):
        if r.verdict == "pass":
            bullets.append(f"- Success: `{_cap(test)}`")
            continue
        last = r.error.rstrip().rsplit("\n", 1)[-1]
        body = {"timeout": "Execution took too long.", "memory_limit": "Out of memory.",
                "output_limit": "Output limit exceeded.", "judge_error": JUDGE_ERROR + "."}.get(r.verdict) or (
            f"`{_cap(last)}`" if last.startswith("AssertionError") else _cap_traceback(r.error))
        bullets.append(f"- Failure: `{_cap(test)}`:\n{body}")
    message = "Your code failed some test cases:\n\n" + "\n".join(bullets) + "\n\nGive it another try."
    return message + ("\n" + FORMAT_LINE if format_line else "")


# ---- The judge: one program, many in parallel, and a problem's tests with their feedback message

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


class Judge:
    """A pool of fork servers. Start it before loading a model (it works after, too: nothing is forked).

        with Judge(workers=8) as judge:
            results = judge.map([(code, tests), (code2, tests2, time_limit, memory_limit), ...])

    A job is a tuple of run_tests' arguments or a dict of them; a dict with "entry_point" is a function job
    (Sandbox.run_function_tests). map returns one result list per job, in order.
    """

    def __init__(self, workers: int | None = None, isolate: bool = True):
        self.workers, self.isolate = workers or os.cpu_count() or 1, isolate
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="judge")
        self._sandboxes = list(self._pool.map(lambda _: Sandbox(isolate), range(self.workers)))
        self._idle = queue.SimpleQueue()
        for sandbox in self._sandboxes:
            self._idle.put(sandbox)

    def _run(self, job) -> list[TestResult]:
        """One job on an idle sandbox. A failure of the machinery while the job runs (after its first request
        was sent: the arguments were fine) is never the caller's nor a pass: every test of the job gets the
        verdict judge_error, the sandbox is replaced, and the next job runs on a fresh server. An argument
        refused before anything was sent is the caller's mistake, and raised."""
        job = ({**job, "tests": list(job["tests"])} if isinstance(job, dict)
               else (job[0], list(job[1]), *job[2:]))   # counted before running: one verdict per test, always
        sandbox = self._idle.get()
        sent = sandbox._next_id
        try:
            if isinstance(job, dict):
                run = sandbox.run_function_tests if "entry_point" in job else sandbox.run_tests
                return run(**job)
            return sandbox.run_tests(*job)
        except Exception as e:
            if sandbox._next_id == sent:
                raise
            sandbox = self._replace(sandbox)
            return judge_errors(job["tests"] if isinstance(job, dict) else job[1], e)
        finally:
            self._idle.put(sandbox)

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

    def map(self, jobs) -> list[list[TestResult]]:
        return list(self._pool.map(self._run, jobs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for sandbox in self._sandboxes:
            sandbox.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


JUDGE_ERROR = _MESSAGES["judge_error"]


def judge_errors(tests, error: BaseException) -> list[TestResult]:
    """The verdicts of a job the machinery failed on: judge_error for each test (a failure: reward -1 as any
    other, never a pass), the exception in ``error`` for whoever reads the results."""
    warnings.warn(f"execute.py: the judge failed on a job ({type(error).__name__}: {error}); its {len(tests)} "
                  "tests are judge_error", RuntimeWarning, stacklevel=2)
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return [TestResult("judge_error", shown, expected if isinstance(expected, (str, type(None))) else None,
                       error=f"{JUDGE_ERROR}: {detail}") for shown, expected in tests]


# A problem, below, is any object with the fields of data.Problem used here: kind ("stdio" or "function"),
# time_limit, memory_limit, entry_point and prompt; a test has input, output and (function problems) check.

def judge_job(problem, code: str, tests):
    """The job for Judge.map that runs ``code`` on ``tests``; its result list has one result per test, in order.
    A function problem's asserts are never run beside the program (it could end the process first, or return
    an object equal to anything): the judge calls the function and checks each result itself, so that every
    failing assert still shows its own error (App. C.4)."""
    time_limit = python_time_limit(problem.time_limit)
    memory = problem.memory_limit or DEFAULT_MEMORY_LIMIT
    if problem.kind == "function":
        return {"code": code, "entry_point": problem.entry_point, "tests": [(t.input, t.check) for t in tests],
                "time_limit": time_limit, "memory_limit": memory}
    return (code, [(t.input, t.output) for t in tests], time_limit, memory)


def run_judge(judge, items) -> list[list[TestResult]]:
    """Judge (problem, code, tests) items in parallel; one result list (one result per test) per item."""
    jobs = [judge_job(problem, code, tests) for problem, code, tests in items]
    return judge.map(jobs) if jobs else []


def describe_failures(problem, tests, results: list[TestResult]) -> str:
    """The feedback message for the public-test results of one response (paper §2.1, App. C.4/C.5)."""
    if problem.kind == "function":
        return function_feedback([t.input for t in tests], results, format_line=not problem.prompt)
    return feedback(results)


# ---- Function problems (HumanEval, MBPP): plain data in, plain data out
#
# A function problem is judged by code the program cannot influence. The sandboxed child loads the solution and
# receives the test calls' arguments; it sends back each result as *plain data* (builtins only). The expected
# values never enter the sandbox, and the comparison happens here, in the judge's process, on values decoded
# from JSON: an object with its own __eq__ cannot survive the trip, and ending the process early leaves tests
# without a result (a runtime error), never a pass.

_BASES = (int, float, str, list, tuple, dict, set, frozenset, bytes, complex)


def to_plain(value, _depth: int = 0, copy_subclasses: bool = False):
    """Encode a value made only of builtin data types (exact types) as JSON-able data. JSON objects are tags:
    {"tuple": [...]}, {"set": [...]}, {"frozenset": [...]}, {"dict": [[k, v], ...]}, {"bytes": hex},
    {"complex": [re, im]}, {"float": "inf" | "-inf" | "nan"}. TypeError for anything else. With
    copy_subclasses (a function's result), an instance of a subclass (Counter, defaultdict, a namedtuple, an
    IntEnum, ...) is first copied into its builtin base: only its values travel, never its own __eq__."""
    if _depth > 100:
        raise TypeError("nested more than 100 levels deep")
    kind = type(value)
    if copy_subclasses and kind not in _BASES and value is not None and kind is not bool:
        base = next((b for b in _BASES if isinstance(value, b)), None)
        if base is not None:
            value, kind = base(value), base
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is list:
        return [to_plain(v, _depth + 1, copy_subclasses) for v in value]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [to_plain(v, _depth + 1, copy_subclasses) for v in value]}
    if kind is dict:
        return {"dict": [[to_plain(k, _depth + 1, copy_subclasses), to_plain(v, _depth + 1, copy_subclasses)]
                         for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [to_plain(value.real), to_plain(value.imag)]}
    raise TypeError(f"a {kind.__name__} is not plain data")


_FROM_TAG = {"tuple": tuple, "set": set, "frozenset": frozenset}


def from_plain(data, _depth: int = 0):
    """The inverse of to_plain; ValueError for anything to_plain cannot have written."""
    if _depth > 101:
        raise ValueError("nested more than 100 levels deep")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [from_plain(v, _depth + 1) for v in data]
    if type(data) is not dict or len(data) != 1:
        raise ValueError(f"not an encoding of plain data: {str(data)[:80]}")
    (tag, body), = data.items()
    if tag in _FROM_TAG and type(body) is list:
        return _FROM_TAG[tag](_hashable(from_plain(v, _depth + 1) for v in body))
    if tag == "dict" and type(body) is list and all(type(kv) is list and len(kv) == 2 for kv in body):
        keys = _hashable(from_plain(k, _depth + 1) for k, _ in body)
        return dict(zip(keys, (from_plain(v, _depth + 1) for _, v in body)))
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        return complex(from_plain(body[0]), from_plain(body[1]))
    if tag == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    raise ValueError(f"not an encoding of plain data: {str(data)[:80]}")


EQUAL_HASH_LIMIT = 8   # distinct values that may share one hash in a set or dict built from a program's reply


def _hashable(items) -> list:
    """Elements for a set or dict keys, refused when more than EQUAL_HASH_LIMIT *distinct* values share a hash.
    Numbers hash predictably (k * (2**61 - 1) all hash to 0; tuples and frozensets of numbers follow), and a set
    of m distinct values with one hash takes m**2 / 2 comparisons to build: 20,000 of them hide among any number
    of ordinary values and cost the judge seconds for a program that ran in none. Equal values are harmless
    (each finds its twin at once), so only distinct ones count. Linear: each hash's group holds at most
    EQUAL_HASH_LIMIT values, and distinct hashes collide in a table only briefly (CPython perturbs its probes
    with every bit of the hash); str and bytes hashes are salted per process, which a program cannot know."""
    items = list(items)
    by_hash: dict[int, list] = {}
    for x in items:
        group = by_hash.setdefault(hash(x), [])
        if x not in group:   # `in` on a list: == only, never a hash, so each test costs at most the limit
            if len(group) == EQUAL_HASH_LIMIT:
                raise ValueError(f"more than {EQUAL_HASH_LIMIT} distinct values share a hash")
            group.append(x)
    return items


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

    def passes(self, result) -> bool:
        """Whether ``result`` (decoded plain data, never the program's own object) satisfies this test."""
        try:
            for name, *extra in self.wrap:
                if name in _HASHING_WRAPPERS:   # set(result) hashes what the program sent: same guard as from_plain
                    _hashable(_HASHING_WRAPPERS[name](result))
                result = WRAPPERS[name](result, *extra)
            if self.compare == "predicate":   # dataset code: it may well build set(result)
                if type(result) in (list, tuple):
                    _hashable(x for x in result if type(x) not in (list, dict, set))
                return bool(_predicate(self.setup, self.predicate)(result))
            return bool(_COMPARE[self.compare](self, result))
        except Exception:   # e.g. sorted() of mixed types, abs() of a string: not the expected value
            return False


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



# ---- Harness side: a fork server per Sandbox (Judge keeps a pool of them)

RESULT_LIMIT = 4 << 20             # bytes of a function job's results (JSON lines), per process
HEADER_LIMIT = 1 << 20             # bytes of a reply frame's JSON header (a few hundred in practice)
INT_DIGITS_LIMIT = 20_000          # digits of an int in a function's result (parsing costs digits squared)
MAX_PROCESSES = 64                 # processes + threads of one test
MAX_OPEN_FILES = 256
THREAD_STACKS = MAX_PROCESSES * (8 << 20)   # address space for the stacks of that many threads (8 MiB each, as
#                                            glibc reserves them): reserved, not used, so not charged as memory
TMPFS_SIZE = "64m"                 # each of the sandbox's /tmp and /dev/shm (RAM), emptied after every test
TMPFS_INODES = 8192                # files each: their inodes are kernel memory, and cleaning up costs per file
TMP_PREFIX = "rlef-sandbox-"
SANDBOX_UID_BASE = 1 << 20         # as root, a server runs its tests as uid SANDBOX_UID_BASE + its pid
# Modules competitive programs import, loaded once by the fork server so a test pays nothing for them.
PRELOAD = ("array", "bisect", "collections", "copy", "decimal", "fractions", "functools", "heapq", "itertools",
           "math", "operator", "random", "re", "string", "threading", "typing")

_warned = False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _forward_stderr(pipe, pid: int) -> None:
    """The fork server's own stderr (its crashes, warnings), labelled, into ours; never a program's output."""
    for line in pipe:
        sys.stderr.write(f"[execute.py fork server {pid}] {line.decode('utf-8', 'replace').rstrip()}\n")
    pipe.close()


_digits_lock, _digits_users, _digits_saved = threading.Lock(), 0, 0


class _AnyIntDigits:
    """Lift Python's limit on int <-> str conversion (4,300 digits since 3.11) while the judge encodes or
    decodes plain data: a program's big int answer is right, not wrong_answer. The limit is per interpreter,
    so the first thread in lifts it and the last out restores it; sizes are bounded by the caller."""

    def __enter__(self):
        global _digits_users, _digits_saved
        with _digits_lock:
            if _digits_users == 0:
                _digits_saved = sys.get_int_max_str_digits()
                sys.set_int_max_str_digits(0)
            _digits_users += 1

    def __exit__(self, *exc):
        global _digits_users
        with _digits_lock:
            _digits_users -= 1
            if _digits_users == 0:
                sys.set_int_max_str_digits(_digits_saved)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS_LIMIT:
        raise ValueError(f"an int of more than {INT_DIGITS_LIMIT} digits")
    return int(text)


def _parse_json(data: bytes):
    """JSON from a process we do not trust: None for anything malformed (deep nesting included); ints of up to
    INT_DIGITS_LIMIT digits, past Python's default limit (the fast path first, then the one that allows them)."""
    try:
        return json.loads(data)
    except RecursionError:
        return None
    except ValueError:
        pass
    try:
        with _AnyIntDigits():
            return json.loads(data, parse_int=_bounded_int)
    except (ValueError, RecursionError):   # not JSON, not UTF-8, an int past INT_DIGITS_LIMIT
        return None


def _check_limits(time_limit, memory_limit) -> tuple[float, int]:
    """The limits as the server takes them; None means the default. Refused here, before anything is sent."""
    time_limit = DEFAULT_TIME_LIMIT if time_limit is None else time_limit
    memory_limit = DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit <= 86400:
        raise ValueError(f"time_limit must be a number of seconds > 0 and <= 86400 (or None), got {time_limit!r}")
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or not 0 < memory_limit <= 1 << 48:
        raise ValueError(f"memory_limit must be an int number of bytes > 0 and <= 2**48 (or None), "
                         f"got {memory_limit!r}")
    return float(time_limit), memory_limit


def _check_str(name: str, value) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")



class Sandbox:
    """One fork server; runs one job at a time (Judge runs several)."""

    def __init__(self, isolate: bool = True):
        self.isolate, self.proc, self._tmp, self._next_id = isolate, None, None, 0
        self.namespaced, self._lock = False, threading.RLock()
        self._start()

    def _start(self) -> None:
        # A fresh interpreter, empty environment, own session (a Ctrl-C meant for the trainer does not reach
        # it); it exits when its stdin closes, so it never outlives us.
        cmd = [sys.executable, "-I", os.path.abspath(__file__), "--serve"]
        if not self.isolate:   # test directories go in a host directory of ours, removed even if the server dies
            self._tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
            cmd += ["--plain", self._tmp]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={}, close_fds=True, start_new_session=True, bufsize=0)
        threading.Thread(target=_forward_stderr, args=(self.proc.stderr, self.proc.pid), daemon=True).start()
        hello = self._receive(60.0)
        if hello is None or "error" in hello:
            reason = hello["error"] if hello else "the fork server did not start"
            self.close()
            if not self.isolate or self.namespaced:   # never fall back silently once isolation worked
                raise RuntimeError(f"execute.py: {reason}")
            self.isolate = False
            _warn_once(f"execute.py: namespace isolation failed ({reason})")
            return self._start()
        self.isolation, self.namespaced, self.seccomp = hello["isolation"], hello["namespaced"], hello["seccomp"]
        if not self.namespaced:
            _warn_once(f"execute.py: programs run WITHOUT namespace isolation ({self.isolation}): they can "
                       "read your files and use the network; only rlimits and a temp dir apply")
        if not self.seccomp:   # (one warning in all: after the one above, this says nothing)
            _warn_once(f"execute.py: programs run WITHOUT a seccomp filter ({self.isolation}): every system "
                       "call is open to them (user namespaces, io_uring, memory outside the limit in memfds)")

    def _receive(self, timeout: float) -> dict | None:
        """The hello line after start-up (nothing else is sent before the first request)."""
        deadline, line = time.monotonic() + timeout, b""
        while not line.endswith(b"\n") and len(line) < HEADER_LIMIT:
            chunk = self._read(1, deadline, at_most=HEADER_LIMIT)
            if chunk is None:
                return None
            line += chunk
        hello = _parse_json(line)
        return hello if isinstance(hello, dict) else None

    def _read(self, n: int, deadline: float, at_most: int = 0) -> bytes | None:
        """Exactly ``n`` bytes of the reply pipe (with at_most, whatever is there, up to that) before the
        deadline, else None. Straight from the pipe's descriptor: a buffered reader would hold bytes that
        select() cannot see, and frames already read ahead would wait for the timeout."""
        fd, chunks, got = self.proc.stdout.fileno(), [], 0
        while got < n:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, max(at_most, n) - got)
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _frame(self, deadline: float) -> tuple[dict, list[bytes]] | None:
        """One reply frame, read as untrusted input: a JSON object for header, bounded sizes, the caller's
        deadline for all of it; None for anything else (the caller then replaces the server)."""
        size = self._read(8, deadline)
        if size is None or int.from_bytes(size, "little") > HEADER_LIMIT:
            return None
        header = _parse_json(self._read(int.from_bytes(size, "little"), deadline) or b"")
        blobs = header.get("blobs") if isinstance(header, dict) else None
        if not isinstance(blobs, list) or not all(type(n) is int and 0 <= n <= _Arena.SIZE for n in blobs) \
                or sum(blobs) > _Arena.SIZE:
            return None
        data = [self._read(n, deadline) for n in blobs]
        return None if None in data else (header, data)

    def _call(self, header: dict, payload: list[bytes], timeout: float) -> list[tuple[dict, list[bytes]]] | None:
        """Send one request (a JSON header, then the payload bytes) and return the frames of the reply to *it*,
        or None if the server died. Every reply frame echoes the request's id; if anything goes wrong between
        writing a request and reading its last frame (a dead server, a wrong id, an exception, Ctrl-C), the
        server is replaced, so that a late reply can never be taken for the answer to a later request. One
        request at a time: concurrent callers wait for the lock."""
        with self._lock:
            self._next_id += 1
            header = {**header, "id": self._next_id, "sizes": [len(p) for p in payload]}
            data = json.dumps(header).encode()
            frames, ok, deadline = [], False, time.monotonic() + timeout
            try:
                self.proc.stdin.write(len(data).to_bytes(8, "little") + data + b"".join(payload))
                self.proc.stdin.flush()
                while True:
                    frame = self._frame(deadline)
                    if frame is None or frame[0].get("id") != header["id"]:
                        break
                    frames.append(frame)
                    if frame[0].get("last"):
                        ok = True
                        break
            except (OSError, ValueError, EOFError):
                pass
            finally:
                if not ok:
                    self.close()
                    self._start()
            if ok and "server_error" in frames[-1][0]:
                raise RuntimeError(f"execute.py: the fork server failed on a request:\n{frames[-1][0]['server_error']}")
            return frames if ok else None

    def run(self, code: str, stdin: str, time_limit: float, memory_limit: int) -> dict:
        """Run code once on stdin; the raw report _result turns into a verdict."""
        time_limit, memory_limit = _check_limits(time_limit, memory_limit)
        request = {"kind": "program", "time_limit": time_limit, "memory_limit": memory_limit}
        # The server enforces the time limit; this timeout only guards against a server that died.
        frames = self._call(request, [code.encode(errors="replace"), stdin.encode(errors="replace")], time_limit + 60)
        if frames is None:
            return self._server_died()
        (run, (stdout, stderr, results)), = frames
        raw = {**run, "stdout": stdout.decode("utf-8", "replace"), "stderr": _stderr_text(run, stderr)}
        if results.startswith(b'{"syntax_error"'):
            raw["syntax_error"] = json.loads(results)["syntax_error"]
        return raw

    def run_tests(self, code: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
                  memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> list[TestResult]:
        """One TestResult per (input, expected_output) test, in order; None limits mean the defaults;
        expected_output None: the test passes iff the program exits 0."""
        _check_str("code", code)
        tests = list(tests)
        for test_input, expected in tests:
            _check_str("stdin (a test's input)", test_input)
            if expected is not None:
                _check_str("expected (a test's output)", expected)
        time_limit, memory_limit = _check_limits(time_limit, memory_limit)
        return [_result(self.run(code, test_input, time_limit, memory_limit), test_input, expected)
                for test_input, expected in tests]

    def run_function_tests(self, code: str, entry_point: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
                           memory_limit: int | None = DEFAULT_MEMORY_LIMIT) -> list[TestResult]:
        """One TestResult per (shown_assert, FunctionTest): the program is loaded once, ``entry_point`` is
        called with each test's arguments, and each result is checked here (see FunctionTest.passes). Each
        call has the time limit, from the moment its arguments are handed to the program (never earlier: see
        _CallFeeder) to its result; a call that times out or ends the process is charged alone, and the next
        call runs in a fresh process. A result's seconds are the server's measure of that span."""
        _check_str("code", code)
        _check_str("entry_point", entry_point)
        tests = list(tests)
        for shown, test in tests:
            _check_str("a function test's shown text", shown)
            if not isinstance(test, FunctionTest):
                raise TypeError(f"function tests must be FunctionTest objects, got {type(test).__name__}")
        time_limit, memory_limit = _check_limits(time_limit, memory_limit)
        if not tests:
            return []
        # One JSON line per call; the server hands them to the program one at a time (see _CallFeeder).
        with _AnyIntDigits():   # an argument may be an int of more than 4,300 digits
            calls = [json.dumps([to_plain(list(t.args)), {k: to_plain(v) for k, v in t.kwargs.items()}]).encode()
                     + b"\n" for _, t in tests]
        request = {"kind": "calls", "entry_point": entry_point, "time_limit": time_limit,
                   "memory_limit": memory_limit, "calls": len(tests), "call_sizes": [len(c) for c in calls]}
        frames = self._call(request, [code.encode(errors="replace"), b"".join(calls)],
                            (time_limit + 5.0) * (len(tests) + 1) + 60.0)
        if frames is None:
            return [_result(self._server_died(), shown, None) for shown, _ in tests]
        reports = _call_reports(frames, len(tests))
        return [_call_result(raw, shown, test) for raw, (shown, test) in zip(reports, tests)]

    def _server_died(self) -> dict:
        """The raw report of a test whose server died. In namespaces no program can kill it (it is init of its
        pid namespace), so the machinery failed: judge_error. Without them a program can: runtime_error."""
        return {**_SERVER_DIED, "judge_error": "the test server died"} if self.namespaced else _SERVER_DIED

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()   # EOF: the server exits, and its pid namespace with it
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        if self._tmp is not None:
            _remove(self._tmp)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_SERVER_DIED = {"exit": None, "signal": int(signal.SIGKILL), "timed_out": False, "stdout": "", "stdout_bytes": 0,
                "stderr": "The sandbox was killed", "seconds": 0.0}


def _stderr_text(run: dict, stderr: bytes) -> str:
    """The kept stderr (head, then tail), with a marker where the middle was dropped."""
    text = stderr.decode("utf-8", "replace")
    if run["stderr_bytes"] > len(stderr):
        head = _Arena.STDERR_HEAD
        text = f"{stderr[:head].decode('utf-8', 'replace')}\n{_TRUNCATED}\n{stderr[head:].decode('utf-8', 'replace')}"
    return text


def _call_reports(frames, n: int) -> list[dict]:
    """One report per call from the server's frames (one frame per test process). The result lines were
    written by the program's own process, so each is checked as untrusted input here."""
    reports: list[dict] = [{"verdict": "runtime_error", "error": "The test did not run"}] * n
    for run, (stderr, results) in frames:
        stderr_text = "\n".join(line for line in stderr.decode("utf-8", "replace").rstrip().split("\n")
                                if _HARNESS_FRAME not in line)
        lines = [_parse_json(line) for line in results.split(b"\n")[:-1]]
        first = run["first"]
        if not run["loaded"]:   # the program did not load: every call from here fails alike
            failure = _load_failure(lines[0] if lines else None, run, stderr_text)
            reports[first:] = [failure] * (n - first)
            break
        # Each call's seconds are the server's (from its release to its line), never the program's word.
        seconds = [_seconds(t) for t in run.get("call_seconds", [])]
        done = [{**_call_report(line), "seconds": t} for line, t in zip(lines[1:n - first + 1], seconds + [0.0] * n)]
        reports[first:first + len(done)] = done
        if first + len(done) < n:   # the call in progress was stopped, or the process ended during it
            stopped = _stopped_report(run, stderr_text, "before this test finished")
            if len(seconds) > len(done):
                stopped["seconds"] = seconds[len(done)]
            reports[first + len(done)] = stopped
    return reports


def _seconds(value) -> float:
    return float(value) if type(value) is float and 0.0 <= value < 1e6 else 0.0


def _call_report(line) -> dict:
    """Check the shape of one line the test process wrote (it is the program's process: trust nothing)."""
    if isinstance(line, dict):
        seconds = _seconds(line.get("seconds"))
        if set(line) <= {"value", "seconds"} and "value" in line:
            return {"value": line["value"], "seconds": seconds}
        if set(line) <= {"not_plain", "truth", "seconds"} and isinstance(line.get("not_plain"), str):
            return {"not_plain": line["not_plain"][:200], "truth": line.get("truth") is True, "seconds": seconds}
        if set(line) <= {"error", "exception", "seconds"} and isinstance(line.get("error"), str):
            verdict = "memory_limit" if line.get("exception") == "MemoryError" else "runtime_error"
            return {"verdict": verdict, "error": line["error"][-ERROR_KEEP:], "seconds": seconds}
    return {"verdict": "runtime_error", "error": "The test's report was overwritten by the program"}


def _stopped_report(run: dict, stderr: str, when: str) -> dict:
    if run["stopped"]:
        return {"verdict": run["stopped"], "seconds": run["seconds"]}
    how = f"exit code {run['exit']}" if run["signal"] is None else f"killed by {_signal_name(run['signal'])}"
    message = f"The program ended the process ({how}) {when}"
    return {"verdict": "runtime_error", "error": f"{stderr}\n{message}" if stderr else message, "seconds": run["seconds"]}


def _load_failure(line, run: dict, stderr: str) -> dict:
    if isinstance(line, dict) and set(line) == {"syntax_error"} and isinstance(line["syntax_error"], str):
        return {"verdict": "syntax_error", "error": line["syntax_error"]}
    if isinstance(line, dict) and set(line) == {"load_error", "exception"} and isinstance(line["load_error"], str):
        verdict = "memory_limit" if line["exception"] == "MemoryError" else "runtime_error"
        return {"verdict": verdict, "error": line["load_error"][-ERROR_KEEP:]}
    return _stopped_report(run, stderr, "before the tests ran")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:   # real-time signals have no name
        return f"signal {number}"


def _call_result(raw: dict, shown: str, test: FunctionTest) -> TestResult:
    """Turn the server's report of one function call into a verdict, comparing the result here."""
    seconds = raw.get("seconds", 0.0)
    if "value" in raw:
        try:
            passed = test.passes(from_plain(raw["value"]))
        except Exception:   # the program wrote something that is not plain data (or absurd: OverflowError)
            passed = False
        error = "" if passed else "AssertionError" + (f": {test.message}" if test.message else "")
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



# ---- Server side: isolation (once), then fork a child per test

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_VM, CLONE_FILES = 0x100, 0x400
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 8192, 16384, 1 << 18)
M_ARENA_MAX = -8
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38


def _c(name: str, *args) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if s is not None else None
    _c("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def _prctl(option: int, arg: int) -> None:
    _c("prctl", option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


_SCRATCH_KEEP: set[str] = set()   # entries of the sandbox's /tmp that hold read-only binds (a venv under /tmp)


def _isolate() -> tuple[bool, str]:
    """Enter new namespaces and a read-only root; return (namespaced, description). Only pid 1 of the new pid
    namespace returns: the process that created the namespaces waits outside and exits with it."""
    uid, gid = os.getuid(), os.getgid()   # read first: in a new user namespace they are unmapped until mapped
    try:
        userns = _unshare()
    except OSError as e:
        return False, f"no namespaces: {e}"
    if userns:
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    sandbox_uid = SANDBOX_UID_BASE + os.getpid()   # unique among live servers, as the pid is
    if pid := os.fork():
        os.closerange(0, 1 << 16)
        os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # if our waiting parent is killed, the whole namespace goes
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates to the host
    notes = _build_root("/tmp")
    _enter_root("/tmp")
    global _SANDBOX_UID, _USERNS
    _SANDBOX_UID, _USERNS = (None if userns else sandbox_uid), userns
    if not userns:
        os.setgroups([])   # once here (it costs a test ~0.5 ms): tests inherit no supplementary groups
    who = "user namespace, no capabilities" if userns else f"uid {sandbox_uid}"
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)   # a test cannot ptrace its server, nor open its descriptors through /proc
    return True, f"pid/net/mount/ipc/uts namespaces, read-only root, tests as {who}{notes}{_nested_pid_start()}"


def _nested_pid_start() -> str:
    """Check that the server can give each test a pid namespace of its own, with a test init as its pid 1
    (unshare, _start_test_init, then setns back to ours so that the next unshare is allowed); notes if not."""
    global _OWN_PID_NS, _INIT_STACK, _ALL_SIGNALS
    _INIT_STACK = ctypes.create_string_buffer(1 << 16)   # the init's C stack: it never runs Python
    _ALL_SIGNALS = ctypes.create_string_buffer(b"\xff" * 128)   # a sigset_t with every signal in it
    own = os.open("/proc/self/ns/pid", os.O_RDONLY)
    try:
        _c("unshare", CLONE_NEWPID)
        try:
            init = _start_test_init()
            os.kill(init, signal.SIGKILL)
            os.waitpid(init, 0)
        finally:
            _c("setns", own, CLONE_NEWPID)
    except OSError as e:
        os.close(own)
        return f", tests share the server's pid namespace ({e.strerror}): they can reach it"
    _OWN_PID_NS = own
    return ", a pid namespace per test"


def _unshare() -> bool:
    """Leave the caller's pid, net, mount, ipc, uts and cgroup namespaces; return whether that took a user
    namespace too. OSError when the kernel allows neither."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    try:
        _c("unshare", flags)   # root: no user namespace needed, and we can switch to a uid of our own later
        return False
    except OSError:            # not root, or root without CAP_SYS_ADMIN (a container)
        _c("unshare", flags | CLONE_NEWUSER)
        return True


def _build_root(new: str) -> str:
    """Build the sandbox's file tree on a tmpfs mounted over ``new``: its scratch dirs, read-only binds of the
    system and the interpreter, a few devices, /proc and /dev/mqueue. Returns notes on what is missing."""
    dirs = sorted(p for p in {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", sys.prefix,
                              sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix} if os.path.lexists(p))
    devices = [d for d in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom") if os.path.exists(d)]
    # Every source is opened before the tmpfs hides it (a venv may live under /tmp) and bound through
    # /proc/self/fd.
    sources = {p: os.open(p, os.O_PATH) for p in dirs + devices if not os.path.islink(p)}
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    # The scratch dirs come first, so that a venv or repository under /tmp is bound *inside* the sandbox's
    # /tmp instead of being hidden by it; per-test cleaning leaves the entries that hold those binds alone.
    for scratch in ("/tmp", "/dev/shm"):   # /dev/shm: multiprocessing's semaphores
        os.makedirs(new + scratch)
        _mount("tmpfs", new + scratch, "tmpfs", MS_NOSUID | MS_NODEV,
               f"mode=1777,size={TMPFS_SIZE},nr_inodes={TMPFS_INODES}")
        _SCRATCH_KEEP.update(scratch + "/" + p[len(scratch) + 1:].split("/")[0] for p in dirs
                             if p.startswith(scratch + "/"))
    _bind_read_only(new, dirs, devices, sources)
    for fd in sources.values():
        os.close(fd)
    for name, fd in (("fd", ""), ("stdin", "/0"), ("stdout", "/1"), ("stderr", "/2")):
        os.symlink("/proc/self/fd" + fd, f"{new}/dev/{name}")
    return _mount_proc_and_mqueue(new)


def _bind_read_only(new: str, dirs: list[str], devices: list[str], sources: dict[str, int]) -> None:
    """Bind each directory and device at the same path under ``new``, read-only (a bind mount takes a second,
    remounting call to become read-only); a symlink is copied as a symlink."""
    bound = []
    for path in dirs + devices:
        target = new + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(path):   # merged /usr: /bin -> usr/bin stays a link
            os.symlink(os.readlink(path), target)
        elif not any(path.startswith(b + "/") for b in bound):
            if path in devices:
                open(target, "w").close()
            else:
                os.makedirs(target, exist_ok=True)
                bound.append(path)
            _mount(f"/proc/self/fd/{sources[path]}", target, None, MS_BIND)
            keep = MS_NOEXEC if os.statvfs(target).f_flag & os.ST_NOEXEC else 0   # locked in a user namespace
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | keep
                   | (0 if path in devices else MS_NODEV))


def _mount_proc_and_mqueue(new: str) -> str:
    """A private /proc and /dev/mqueue under ``new``, where the kernel allows them; notes on what is missing."""
    os.makedirs(new + "/proc")
    notes = ""
    try:
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        with open(new + "/proc/sys/kernel/shm_rmid_forced", "w") as f:
            f.write("1")   # SysV shared memory dies with its processes instead of piling up across tests
    except OSError as e:   # e.g. a container that masks parts of /proc: programs get no /proc
        notes = f", no /proc ({e.strerror})"
    return notes + _mount_mqueue(new)


def _mount_mqueue(new: str) -> str:
    """POSIX message queues of our IPC namespace, visible so that they can be removed after each test."""
    try:
        os.makedirs(new + "/dev/mqueue")
        _mount("mqueue", new + "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        return ""
    except OSError as e:
        return f", no /dev/mqueue ({e.strerror})"


def _enter_root(new: str) -> None:
    """Make ``new`` the root of this mount namespace, and the root read-only."""
    os.chdir(new)
    _mount(new, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _drop_privileges() -> None:
    """In a test's process (the server keeps its privileges: it makes a pid namespace per test). In a
    user namespace we are its uid 0: drop every capability, and what exec could regain. As real root, become
    the server's sandbox uid, a uid of its own, after emptying that uid's keyrings (the last test's state)."""
    if _USERNS:
        for cap in range(64):
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                break
        _c("capset", (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())   # v3 header: none left
        return
    os.setgid(_SANDBOX_UID)
    os.setuid(_SANDBOX_UID)
    for keyring in (-4, -5):   # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING: they belong to the uid
        _libc.syscall(_SYS_KEYCTL, 7, keyring)   # KEYCTL_CLEAR (never the caller's: user-namespace mode)


# ---- Seccomp: the system calls no test may make (a filter installed in each test child, before the program)

# Denied calls fail with EPERM (clone3: ENOSYS), so Python raises a plain OSError. The reason for each group is
# above it. Nothing here is used by ordinary programs: threads, fork and exec, pipes, files, Unix/TCP/UDP
# sockets and multiprocessing (its locks are POSIX semaphores, i.e. files in /dev/shm) all stay available.
_SECCOMP_DENIED = {   # name: (x86_64 number, aarch64 number), None where the architecture has no such call
    # Namespaces: a new user namespace hands its creator every capability inside it, and with them kernel code
    # written for root (mounts, netfilter, raw and netlink sockets in a nested network namespace). clone with a
    # CLONE_NEW* flag is denied below; clone3 keeps its flags in memory, which a filter cannot read, so it
    # answers ENOSYS and the C library falls back to clone (as under Docker's default profile).
    "unshare": (272, 97), "setns": (308, 268), "clone3": (435, 435),
    # Memory that RLIMIT_AS does not count: a memfd's pages belong to a file, not to an address space.
    "memfd_create": (319, 279), "memfd_secret": (447, 447),
    # Large kernel interfaces with a long record of privilege escalations that no Python program needs:
    # io_uring, eBPF, perf events, userfaultfd (it stalls the kernel mid-copy: how exploits win races), x86's LDT.
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282), "modify_ldt": (154, None),
    # Watching files: inotify on the read-only system files reports when another sandbox, or the trainer,
    # opens them (a side channel between programs); fanotify likewise.
    "inotify_init": (253, None), "inotify_init1": (294, 26), "inotify_add_watch": (254, 27),
    "fanotify_init": (300, 262),
    # State that outlives a test: keyrings belong to the uid; SysV IPC objects and POSIX message queues to the
    # server's IPC namespace, not to one test. (The multiplexed `ipc` call exists on neither architecture.)
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218),
    "msgget": (68, 186), "msgsnd": (69, 189), "msgrcv": (70, 188), "msgctl": (71, 187),
    "semget": (64, 190), "semop": (65, 193), "semtimedop": (220, 192), "semctl": (66, 191),
    "shmget": (29, 194), "shmat": (30, 196), "shmdt": (67, 197), "shmctl": (31, 195),
    "mq_open": (240, 180), "mq_unlink": (241, 181), "mq_timedsend": (242, 182), "mq_timedreceive": (243, 183),
    "mq_notify": (244, 184), "mq_getsetattr": (245, 185),
    # The file tree: mounts (old and new API), a new root, and file handles, which open a file by number, past
    # the directories that hide it (the "shocker" container escape).
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "move_mount": (429, 429), "open_tree": (428, 428), "mount_setattr": (442, 442),
    "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    # Other processes' memory and files (even the test's own: nothing needs it).
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "process_madvise": (440, 440), "pidfd_getfd": (438, 438),
    # The machine: modules, kexec, reboot, swap, process accounting, the clock, x86 port I/O. Each needs a
    # capability the sandbox's uid lacks, but in the fallback without namespaces a root caller's programs have it.
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "reboot": (169, 142),
    "swapon": (167, 224), "swapoff": (168, 225), "acct": (163, 89), "settimeofday": (164, 170),
    "clock_settime": (227, 112), "clock_adjtime": (305, 266), "adjtimex": (159, 171),
    "iopl": (172, None), "ioperm": (173, None),
    # The kernel log: kernel addresses help an exploit, and anyone may read it where dmesg_restrict is 0.
    "syslog": (103, 116),
}
_SECCOMP_ERRNO = {"clone3": errno.ENOSYS}   # the rest: EPERM
AF_UNIX, AF_INET, AF_INET6, SOCK_STREAM, SOCK_DGRAM, IPPROTO_TCP, IPPROTO_UDP = 1, 2, 10, 1, 2, 6, 17
_SOCKET_CONDITIONS = [(0, 0xFFFFFFFF, (AF_UNIX, AF_INET, AF_INET6)), (1, 0xF, (SOCK_STREAM, SOCK_DGRAM)),
                (2, 0xFFFFFFFF, (0, IPPROTO_TCP, IPPROTO_UDP))]   # type & 0xF: without SOCK_NONBLOCK/CLOEXEC
# Calls allowed with some arguments only. name: (numbers, conditions that must all hold), a condition being
# (argument index, mask, the allowed values of argument & mask).
_SECCOMP_CONDITIONAL = {
    # fork, threads and subprocess are clone without CLONE_NEW* flags; with one, it is unshare (above).
    "clone": ((56, 220), [(0, CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                           | CLONE_NEWPID | CLONE_NEWNET, (0,))]),
    # Unix, TCP and UDP sockets only (inside the sandbox's network namespace TCP and UDP reach nothing). Netlink
    # configures the kernel, raw and packet sockets forge any packet, and the rarer families and protocols
    # (AF_ALG, AF_VSOCK, SCTP, DCCP, ...) are where socket exploits are found; asking for one loads its module.
    "socket": ((41, 198), _SOCKET_CONDITIONS), "socketpair": ((53, 199), _SOCKET_CONDITIONS),
    # Personas other than plain Linux change how the kernel treats the process: READ_IMPLIES_EXEC makes memory
    # executable, ADDR_NO_RANDOMIZE turns off address randomisation, MMAP_PAGE_ZERO maps page 0 (how NULL-pointer
    # bugs in the kernel used to be exploited). 0xFFFFFFFF only asks which persona is in force.
    "personality": ((135, 92), [(0, 0xFFFFFFFF, (0, 0xFFFFFFFF))]),
}
# machine: (column of the numbers above, AUDIT_ARCH_* of its native calls, the number of seccomp itself)
_SECCOMP_ARCH = {"x86_64": (0, 0xC000003E, 317), "aarch64": (1, 0xC00000B7, 277)}
X32_SYSCALL_BIT = 0x40000000
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x50000   # RET_ERRNO | errno: the call fails with errno
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1, 4
BPF_LD_W_ABS, BPF_AND_K, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x54, 0x15, 0x35, 0x06   # classic BPF opcodes
_seccomp_call: tuple | None = None   # seccomp()'s ctypes arguments, once the kernel has taken the filter


def _seccomp_filter(machine: str) -> bytes:
    """The classic BPF program the kernel runs on each system call, as struct sock_filter[] (u16 code, u8 jt,
    u8 jf, u32 k). It reads struct seccomp_data: nr at offset 0, arch at 4, argument i at 16 + 8i (its low 32
    bits first on these little-endian machines; the arguments checked are 32-bit ints and flags)."""
    column, audit_arch, _ = _SECCOMP_ARCH[machine]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    rules = {numbers[column]: [(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | _SECCOMP_ERRNO.get(name, errno.EPERM))]
             for name, numbers in _SECCOMP_DENIED.items() if numbers[column] is not None}
    for numbers, conditions in _SECCOMP_CONDITIONAL.values():
        body = []
        for arg, mask, allowed in conditions:   # load the argument; a match jumps past the remaining ones and deny
            body += [(BPF_LD_W_ABS, 0, 0, 16 + 8 * arg), (BPF_AND_K, 0, 0, mask)]
            body += [(BPF_JEQ_K, len(allowed) - i, 0, value) for i, value in enumerate(allowed)]
            body += [(BPF_RET_K, 0, 0, deny)]
        rules[numbers[column]] = body + [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    # Calls of another ABI (i386 through int 0x80) have other numbers: deny them all. Then load nr.
    code = [(BPF_LD_W_ABS, 0, 0, 4), (BPF_JEQ_K, 1, 0, audit_arch), (BPF_RET_K, 0, 0, deny), (BPF_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":   # the x32 ABI: the x86_64 kernel's calls again, numbered from bit 30
        code += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), (BPF_RET_K, 0, 0, deny)]
    code += _bpf_search(sorted(rules.items()))
    return b"".join(struct.pack("=HBBI", *insn) for insn in code)


def _bpf_search(rules: list[tuple[int, list]]) -> list[tuple]:
    """Code that runs the rule for the call number in A (its body ends in a return), or allows the call. A
    binary search, not a list: installing a filter, the kernel runs it for every call number (to find the calls
    it may allow without running it again), so a short path makes each test's installation cheap."""
    if len(rules) <= 2:
        code = []
        for nr, body in rules:
            code += [(BPF_JEQ_K, 0, len(body), nr)] + body
        return code + [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    middle = len(rules) // 2
    below = _bpf_search(rules[:middle])
    return [(BPF_JGE_K, len(below), 0, rules[middle][0])] + below + _bpf_search(rules[middle:])


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _install_seccomp(call: tuple) -> None:
    """Filter this process's system calls, and those of everything it starts, for good. call: the C library's
    syscall() and seccomp()'s arguments, made by _seccomp_start."""
    syscall, *arguments = call
    if syscall(*arguments) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {os.strerror(err)}")


def _seccomp_start() -> str:
    """Build the filter and try it in a throwaway child; from now on each test child installs it; describe."""
    global _seccomp_call
    machine = os.uname().machine
    if machine not in _SECCOMP_ARCH:
        return f"no seccomp (no system call table for {machine})"
    _prctl(PR_SET_NO_NEW_PRIVS, 1)   # the kernel's condition for an unprivileged filter; children inherit it
    program = _seccomp_filter(machine)
    # The call's arguments are made here, once: each object a test child made would cost it copy-on-write faults.
    # SPEC_ALLOW: no speculative-store-bypass mitigation forced on the program (kernels before 5.16 force it
    # on filtered processes); it would only guard the program against itself, and costs it speed.
    call = (_libc.syscall, ctypes.c_long(_SECCOMP_ARCH[machine][2]), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
            ctypes.c_long(SECCOMP_FILTER_FLAG_SPEC_ALLOW), ctypes.byref(_SockFprog(len(program) // 8, program)))
    if (pid := os.fork()) == 0:
        status = 1
        try:
            _install_seccomp(call)
            status = 0
        except OSError as e:
            status = e.errno
        finally:
            os._exit(status)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != 0:
        return f"no seccomp ({os.strerror(status) if status > 0 else 'the probe crashed'})"
    _seccomp_call = call
    column = _SECCOMP_ARCH[machine][0]
    denied = sum(numbers[column] is not None for numbers in _SECCOMP_DENIED.values())
    return f"seccomp: {denied} system calls denied, {len(_SECCOMP_CONDITIONAL)} restricted"


def _kill_descendants(namespaced: bool) -> None:
    """Kill and reap everything a test left behind (daemons, double forks, stopped processes)."""
    while True:
        if namespaced:   # from a pid namespace's init, kill(-1) reaches every other process in it
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:            # we are a subreaper: orphans of killed processes become our children, next round
            for pid in _descendants():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _descendants() -> list[int]:
    """Every process below the server (without namespaces, found through /proc's parent links)."""
    parents = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                parents[int(p)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            pass
    found, frontier = [], [os.getpid()]
    while frontier:
        kids = [pid for pid, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, UDIAG_SHOW_MEMINFO, UNIX_DIAG_MEMINFO = 4, 20, 0x20, 5
NLM_F_REQUEST_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x301, 2, 3
_count_sockets = False   # set once the kernel has answered a dump of our network namespace's unix sockets


def _socket_memory() -> int:
    """Bytes queued in the unix sockets of our network namespace (all of them are the test's): socket buffers
    are kernel memory that no address space counts, and a few hundred sockets hold hundreds of MiB. Read with
    a sock_diag dump (the kernel's `ss`): each socket's rmem_alloc + wmem_alloc. OSError if it cannot."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
        # struct nlmsghdr, then struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
        s.send(struct.pack("=IHHII", 16 + 24, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST_DUMP, 1, 0)
               + struct.pack("=BBHIIIII", AF_UNIX, 0, 0, 0xFFFFFFFF, 0, UDIAG_SHOW_MEMINFO, 0xFFFFFFFF, 0xFFFFFFFF))
        total = 0
        while True:
            data, at = s.recv(1 << 16), 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == NLMSG_DONE:
                    return total
                if kind == NLMSG_ERROR or length < 16:
                    raise OSError(errno.EIO, "sock_diag refused the dump")
                attr = at + 16 + 16   # past struct unix_diag_msg: its attributes (u16 length, u16 type, data)
                while attr + 4 <= at + length:
                    attr_length, attr_type = struct.unpack_from("=HH", data, attr)
                    if attr_type == UNIX_DIAG_MEMINFO and attr_length >= 16:
                        rmem_alloc, _, wmem_alloc = struct.unpack_from("=III", data, attr + 4)
                        total += rmem_alloc + wmem_alloc
                    attr += max(4, (attr_length + 3) & ~3)
                at += (length + 3) & ~3


def _test_memory(namespaced: bool, init: int | None) -> int:
    """Bytes of memory the test's processes hold together: the sum of their proportional set sizes (PSS), so a
    page shared by several processes counts once. RLIMIT_AS bounds each process; this bounds them all. The
    test's ``init`` shares the server's memory: it is not the test's."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (os.getpid(), init)] \
        if namespaced else _descendants()
    total, page = 0, os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except PermissionError:   # it made itself not dumpable: count its whole resident size instead
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * page
            except (OSError, ValueError):
                pass
        except (OSError, StopIteration, ValueError):
            pass   # exited meanwhile
    return total + (_socket_memory() if _count_sockets else 0)


class _Arena:
    """Where the server keeps a test's output while it runs: one anonymous mapping, never Python objects.
    Every test process is forked from this server, so anything the server ever held in its heap (a sibling
    sample's output, its code) would be readable by the next program through /proc/self/mem or a frame's
    locals. The arena is wiped in the children (MADV_WIPEONFORK) and dropped after every job; the programs'
    code and stdin travel from the harness to the test process by splice() into a memfd, never through here."""
    STDOUT, STDERR_HEAD, STDERR_TAIL, SINK = OUTPUT_LIMIT, 4 << 10, 60 << 10, 64 << 10
    SIZE = STDOUT + STDERR_HEAD + STDERR_TAIL + RESULT_LIMIT + SINK

    def __init__(self):
        self.map = mmap.mmap(-1, self.SIZE)
        try:
            self.map.madvise(18)                    # MADV_WIPEONFORK (Linux >= 4.14): zeros in every child
        except OSError:
            self.map.madvise(mmap.MADV_DONTFORK)    # older kernels: not mapped in children at all
        offsets = [self.STDOUT, self.STDERR_HEAD + self.STDERR_TAIL, RESULT_LIMIT, self.SINK]
        starts = [sum(offsets[:i]) for i in range(4)]
        self.stdout, self.stderr, self.results, self.sink = (
            (start, size) for start, size in zip(starts, offsets))

    def wipe(self) -> None:
        self.map.madvise(mmap.MADV_DONTNEED)        # the pages are gone; they read as zeros next time


class _Capture:
    """A pipe the server drains while the test runs (a program never blocks on a full pipe) into its region of
    the arena: the first ``head`` bytes and, with ``tail``, the last ``tail`` bytes (a ring); the rest is
    counted and dropped. ``lines`` counts newlines in the head, up to ``max_lines``."""

    def __init__(self, arena: _Arena, region: tuple[int, int], head: int, tail: int = 0, max_lines: int = 0):
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.arena, self.start, self.head, self.tail, self.max_lines = arena, region[0], head, tail, max_lines
        self.size = self.lines = self._scanned = 0

    def drain(self) -> bool:
        """Read what is there; False at end of file."""
        view = memoryview(self.arena.map)
        while True:
            if self.size < self.head:
                target = view[self.start + self.size:self.start + self.head]
            elif self.tail:
                at = self.start + self.head + (self.size - self.head) % self.tail
                target = view[at:self.start + self.head + self.tail]
            else:
                target = view[self.arena.sink[0]:self.arena.sink[0] + self.arena.sink[1]]
            try:
                n = os.readv(self.read_fd, [target])
            except BlockingIOError:
                return True
            finally:
                target.release()
            if n == 0:
                return False
            self.size += n
            while self.lines < self.max_lines:   # count complete lines without copying them out
                end = min(self.size, self.head)
                found = self.arena.map.find(b"\n", self.start + self._scanned, self.start + end)
                if found < 0:
                    self._scanned = end
                    break
                self._scanned, self.lines = found - self.start + 1, self.lines + 1

    def parts(self, complete_lines: bool = False) -> list[tuple[int, int]]:
        """(offset, length) in the arena of what is kept, in order: the head, then the ring's tail."""
        if complete_lines:
            return [(self.start, self._scanned)]
        if self.size <= self.head or not self.tail:
            return [(self.start, min(self.size, self.head))]
        kept = min(self.size - self.head, self.tail)
        ring_end = (self.size - self.head) % self.tail
        ring = self.start + self.head
        if kept < self.tail:
            return [(self.start, self.head), (ring, kept)]
        return [(self.start, self.head), (ring + ring_end, self.tail - ring_end), (ring, ring_end)]


def _supervise(pid: int, init: int | None, captures: dict, limits: dict,
               feeder: "_CallFeeder | None" = None) -> str | None:
    """Wait for the test's process while draining its pipes. Returns why it was stopped ("timeout",
    "memory_limit", "output_limit") or None if it ended by itself. The deadline is limits["time"] seconds after
    the start and, for function jobs, after each of the lines the results pipe may deliver (one per call), when
    ``feeder`` hands the program the next call's arguments. ``init``: the test's init, whose memory (the
    server's) is not the test's."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    by_fd = {c.read_fd: name for name, c in captures.items()}
    for fd in [pidfd, *by_fd]:
        poller.register(fd, select.POLLIN)
    poller.register(_REQUESTS_FD, 0)             # POLLHUP is always reported: the harness went away, so do we
    deadline = time.monotonic() + limits["time"]
    next_memory_check, stopped, lines_seen = time.monotonic() + 0.05, None, 0
    while stopped is None:
        timeout = max(0.0, min(deadline, next_memory_check) - time.monotonic())
        events = dict(poller.poll(timeout * 1000))
        if events.get(_REQUESTS_FD, 0) & (select.POLLHUP | select.POLLERR):
            _kill_descendants(_NAMESPACED)
            os._exit(0)
        for fd, name in by_fd.items():
            if fd in events and not captures[name].drain():
                poller.unregister(fd)
        if captures["stdout"].size > OUTPUT_LIMIT or captures["results"].size > RESULT_LIMIT:
            stopped = "output_limit"
        if captures["results"].lines > lines_seen:   # at most one per call (max_lines): no heartbeats
            lines_seen = captures["results"].lines
            deadline = time.monotonic() + limits["time"]
            if feeder is not None:
                feeder.release(lines_seen)
        if feeder is not None:   # wake up when the pipe has room for the rest of a released call
            poller.register(feeder.write_fd, select.POLLOUT if feeder.pump() else 0)
        if pidfd in events:
            break
        now = time.monotonic()
        if stopped is None and now >= deadline:
            stopped = "timeout"
        elif stopped is None and now >= next_memory_check:
            next_memory_check = now + 0.05
            if _test_memory(_NAMESPACED, init) > limits["memory"] + limits["base_rss"]:
                stopped = "memory_limit"
    os.close(pidfd)
    return stopped


def _fork_test(child_main, request: dict, captures: dict, inputs: dict[int, int], cpu_limit: int,
               feeder: "_CallFeeder | None" = None) -> dict:
    """Fork one test process that runs ``child_main()`` with ``inputs`` ({child fd: our fd}) and the captures'
    pipes as stdout, stderr and fd 3 (results); supervise it; kill everything it left; clean up; report."""
    workdir = tempfile.mkdtemp(prefix=TMP_PREFIX)
    with open("/proc/self/statm") as f:   # what we map now is the program's starting point, not its usage
        vm_pages, rss_pages = map(int, f.read().split()[:2])
    page = os.sysconf("SC_PAGE_SIZE")
    limits = {"time": request["time_limit"], "memory": request["memory_limit"], "base_rss": rss_pages * page}
    fds = {**inputs, 1: captures["stdout"].write_fd, 2: captures["stderr"].write_fd, 3: captures["results"].write_fd}
    if _SANDBOX_UID is not None:
        os.chown(workdir, _SANDBOX_UID, _SANDBOX_UID)
    start = time.monotonic()
    pid, init = _fork_in_own_pid_namespace()
    if pid == 0:
        _child(child_main, workdir, fds, cpu_limit, request["memory_limit"] + vm_pages * page + THREAD_STACKS)
    for capture in captures.values():
        os.close(capture.write_fd)
    stopped = _supervise(pid, init, captures, limits, feeder)
    if stopped:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)   # usage: the program's process and the children it waited for
    seconds = time.monotonic() - start
    _kill_descendants(_NAMESPACED)   # the init too: the test's namespace ends with it
    for capture in captures.values():   # every writer is gone: read to the end, then close
        os.set_blocking(capture.read_fd, True)
        while capture.drain():
            pass
        os.close(capture.read_fd)
    for fd in inputs.values():
        os.close(fd)
    _clean_up(workdir)
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    # RLIMIT_CPU with soft = hard sends SIGKILL: that too is a timeout.
    if stopped is None and killed in (signal.SIGKILL, signal.SIGXCPU) and \
            usage.ru_utime + usage.ru_stime >= cpu_limit - 0.1:
        stopped = "timeout"
    return {"exit": None if killed else os.WEXITSTATUS(status), "signal": None if stopped else killed,
            "stopped": stopped, "seconds": seconds}


def _captures(arena: _Arena, max_lines: int = 0) -> dict:
    return {"stdout": _Capture(arena, arena.stdout, arena.STDOUT),
            "stderr": _Capture(arena, arena.stderr, arena.STDERR_HEAD, arena.STDERR_TAIL),
            "results": _Capture(arena, arena.results, RESULT_LIMIT, max_lines=max_lines)}


def _run_program(arena: _Arena, request: dict, code: int, stdin: int, reply) -> None:
    """A stdin/stdout program, once on one input: one frame (run, stdout, stderr, results: a syntax error)."""
    captures = _captures(arena)
    run = _fork_test(_program_child, request, captures, {0: stdin, 5: code}, math.ceil(request["time_limit"]) + 1)
    reply({**run, "stdout_bytes": captures["stdout"].size, "stderr_bytes": captures["stderr"].size, "last": True},
          [captures["stdout"].parts(), captures["stderr"].parts(), captures["results"].parts()])


_LOADED = b'{"loaded": true}\n'


def _run_calls(arena: _Arena, request: dict, code: int, calls: int, reply) -> None:
    """A function job: load the program, call the function once per test, one line per call. A call that times
    out, runs out of memory or ends the process is charged alone, and the next calls get a fresh process: one
    frame per process (the run, the seconds of each call begun, its stderr, its complete result lines). The
    lines are checked by the harness."""
    n, first, sizes = request["calls"], 0, request["call_sizes"]
    offsets = [0, *itertools.accumulate(sizes)]
    while first < n:
        captures = _captures(arena, max_lines=n - first + 1)
        os.lseek(code, 0, os.SEEK_SET)   # the previous process read it to the end (the offset is shared)
        feeder = _CallFeeder(calls, offsets, first)
        inputs = {0: _memfd("stdin", b""), 4: feeder.read_fd, 5: os.dup(code)}
        cpu_limit = math.ceil(request["time_limit"]) * (n - first + 1) + 1
        run = _fork_test(lambda: _calls_child(request["entry_point"], n - first), request, captures, inputs,
                         cpu_limit, feeder)
        os.close(feeder.write_fd)
        run["call_seconds"] = feeder.seconds(time.monotonic())
        results = captures["results"]
        loaded = results.lines >= 1 and arena.map.find(_LOADED, results.start, results.start + len(_LOADED)) == results.start
        reported = results.lines - 1 if loaded else 0
        following = n if not loaded or first + reported >= n else first + reported + 1
        if following >= n:   # done with them before the last frame: the harness may count our descriptors
            os.close(code)
            os.close(calls)
        reply({**run, "first": first, "loaded": loaded, "last": following >= n},
              [captures["stderr"].parts(), results.parts(complete_lines=True)])
        first = following


class _CallFeeder:
    """Sequential release: a function job's calls reach the test process one at a time, each only once the
    result line of the one before (or the "loaded" line) has arrived, and the call's time limit runs from that
    moment. With every argument at hand from the start, a program could compute a slow call in a background
    thread while earlier calls are being timed (time banking: a 2 s call passing a 1 s limit). Now the
    arguments do not exist in the process before the call's clock starts, so whatever works on them, in any
    thread or process, works inside that call's limit; the work a thread can do earlier needs no argument,
    the same as what the module could compute while loading. And since each call's clock starts when the
    previous one stops, the process's whole life is bounded by the sum of the calls' limits (and the load's).
    The calls stay in the memfd the harness's request was spliced into and move to the pipe by splice(): never
    through this server's heap (see _Arena)."""

    def __init__(self, calls_fd: int, offsets: list[int], first: int):
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)   # a program that does not read must not stall the server
        self.calls_fd, self.offsets, self.first = calls_fd, offsets, first
        self.released, self.sent_to = first, offsets[first]   # calls handed out; bytes written so far
        self.times: list[float] = []                          # when each line arrived (monotonic)

    def release(self, lines: int) -> None:
        """``lines`` result lines have arrived: the first is "loaded", each later one ends a call; hand out one
        call per line (never more than there are)."""
        now = time.monotonic()
        self.times += [now] * (lines - len(self.times))
        self.released = min(self.first + lines, len(self.offsets) - 1)

    def pump(self) -> bool:
        """Move what is released into the pipe, as far as it has room; True while some is left."""
        end = self.offsets[self.released]
        while self.sent_to < end:
            try:
                moved = os.splice(self.calls_fd, self.write_fd, end - self.sent_to, offset_src=self.sent_to,
                                  flags=os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return True
            if not moved:
                return False
            self.sent_to += moved
        return False

    def seconds(self, end: float) -> list[float]:
        """Each begun call's time, from its release to its result line (the one in progress: to ``end``)."""
        ends = self.times[1:] + [end]
        return [b - a for a, b in zip(self.times, ends)][:self.released - self.first]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _splice_into_memfd(source: int, name: str, size: int) -> int:
    """Move ``size`` bytes of the request pipe into a new memfd inside the kernel (splice), so that a program's
    code or stdin never becomes a Python object in this server (see _Arena)."""
    fd = os.memfd_create(name)
    while size:
        moved = os.splice(source, fd, size)
        if not moved:
            raise EOFError
        size -= moved
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_frame(out: int, header: dict, blobs: list[list[tuple[int, int]]], arena: _Arena) -> None:
    """One reply frame: 8 bytes of header length, the JSON header, then each blob (its arena parts in order)."""
    header = {**header, "blobs": [sum(length for _, length in parts) for parts in blobs]}
    data = json.dumps(header).encode()
    os.write(out, len(data).to_bytes(8, "little") + data)
    view = memoryview(arena.map)
    for start, length in (part for parts in blobs for part in parts):
        while length:
            written = os.write(out, view[start:start + length])
            start, length = start + written, length - written
    view.release()
    arena.wipe()


def _clean_up(workdir: str) -> None:
    """Empty the sandbox's /tmp and /dev/shm (a program may litter outside its directory; else just ours) and,
    in our own IPC namespace, remove SysV IPC objects and POSIX message queues, so nothing reaches the next test."""
    # Sockets sent over a unix socket to themselves (SCM_RIGHTS) stay "in flight" after every process died,
    # holding what they carry (an abstract name, a file lock) until the kernel's unix garbage collector runs;
    # releasing a unix socket schedules it. Every process of the test is dead, so any unix socket left in our
    # network namespace is such a leftover: wait (up to a second) until the collector has taken them.
    if not _NAMESPACED:
        return _remove(workdir)
    for _ in range(200):
        for s in socket.socketpair():
            s.close()
        with open("/proc/net/unix") as f:
            if len(f.readlines()) <= 1:
                break
        time.sleep(0.005)
    for scratch in ("/tmp", "/dev/shm", "/dev/mqueue"):
        if os.path.isdir(scratch):
            for name in os.listdir(scratch):
                if os.path.join(scratch, name) not in _SCRATCH_KEEP:
                    _remove(os.path.join(scratch, name))
    for kind, remove in (("msg", lambda i: _libc.msgctl(i, 0, None)), ("sem", lambda i: _libc.semctl(i, 0, 0)),
                         ("shm", lambda i: _libc.shmctl(i, 0, None))):   # 0: IPC_RMID
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.readlines()[1:] if line.strip()]
        except OSError:
            continue
        for ipc_id in ids:
            remove(ipc_id)


def _remove(path: str) -> None:
    """Remove what a test left, whatever it is: deep trees (no recursion: every directory is moved up to the
    top before it is emptied, so depth costs neither stack nor path length), unreadable modes, fifos, sockets."""
    parent, name = os.path.split(path.rstrip("/"))
    try:
        top = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    todo, serial = [name], 0
    try:
        while todo:
            name = todo.pop()
            try:
                if not stat.S_ISDIR(os.stat(name, dir_fd=top, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=top)
                    continue
                os.chmod(name, 0o700, dir_fd=top)
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
            except OSError:
                continue
            with os.scandir(fd) as entries:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for child, is_dir in children:
                try:
                    if is_dir:   # flatten: move it next to the top, then it is one more item of the list
                        serial += 1
                        moved = f".rlef-rm-{os.getpid()}-{serial}"
                        os.chmod(child, 0o700, dir_fd=fd)
                        os.rename(child, moved, src_dir_fd=fd, dst_dir_fd=top)
                        todo.append(moved)
                    else:
                        os.unlink(child, dir_fd=fd)
                except OSError:
                    pass
            os.close(fd)
            try:
                os.rmdir(name, dir_fd=top)
            except OSError:
                pass
    finally:
        os.close(top)


def _fork_in_own_pid_namespace() -> tuple[int, int | None]:
    """os.fork() into a new pid namespace whose pid 1 is a test init (_start_test_init), where the kernel allows
    it (_nested_pid_start). Returns (the child's pid, the init's pid or None); the child gets (0, None).

    The program's process is the namespace's pid 2, not its init: the kernel ignores the signals init sends
    itself. Its parent, the server, is outside the namespace, so the program has no pid to name it by (getppid()
    is 0), nor the harness or any other test: prlimit, setpriority, sched_setaffinity/setscheduler, ioprio_set
    and kill take pids in the caller's namespace. Pids start from 1 in every test."""
    if _OWN_PID_NS is None:
        return os.fork(), None
    _c("unshare", CLONE_NEWPID)   # our next children enter it: the first one is its pid 1
    pid = init = None
    try:
        init = _start_test_init()
        pid = os.fork()
    except BaseException:
        if init is not None:
            os.kill(init, signal.SIGKILL)
            os.waitpid(init, 0)
        raise
    finally:
        if pid != 0:   # the server: back to our own namespace, so that the next test may unshare again
            _c("setns", _OWN_PID_NS, CLONE_NEWPID)
    return pid, init


def _start_test_init() -> int:
    """Start pid 1 of the pid namespace just unshared; return its pid. A namespace needs an init for as long as it
    lives, to adopt orphans, but this one runs nothing: a second fork of the server per test (its page tables,
    Python's fork hooks, an exit that unmaps it all) would cost about as much as the program's own fork. So the
    init is a clone that shares the server's memory and descriptor table (nothing is copied, and it keeps no
    pipe open that the server closes) and makes one C call on a stack of its own: sigsuspend with every signal
    blocked, so that nothing a program sends it ever runs (and the kernel drops what an init has no handler for).
    SIGCHLD is ignored in it, so the kernel itself reaps whatever dies under it. The program, which drops its
    privileges (_child), cannot trace it (it is not dumpable) nor reach the server through it: limits,
    priority and affinity are per process, not per memory. The server kills it after the test, and the
    namespace with it (_kill_descendants)."""
    top = (ctypes.addressof(_INIT_STACK) + len(_INIT_STACK)) & ~0xF
    # The init copies our signal dispositions when it is cloned. Ours are back to normal before the program is
    # forked; meanwhile a child of ours that ends would be reaped by the kernel (the last test's are all reaped).
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        pid = _libc.clone(ctypes.cast(_libc.sigsuspend, ctypes.c_void_p), ctypes.c_void_p(top),
                          CLONE_VM | CLONE_FILES | signal.SIGCHLD, _ALL_SIGNALS)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    if pid == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def _child(child_main, workdir: str, fds: dict[int, int], cpu_limit: int, as_limit: int):
    """The forked test process: the tests' identity, its descriptors, limits, fresh stdio; then child_main().
    Never returns."""
    status = 1
    try:
        if _NAMESPACED:
            _drop_privileges()
        os.setsid()
        os.chdir(workdir)
        for target, fd in sorted(fds.items()):
            os.dup2(fd, target + 64)   # two steps, so that no target overwrites a source still to be copied
        for target in fds:
            os.dup2(target + 64, target)
        kept = sorted(fds)   # close every other descriptor: the server's reply pipe above all
        for low, high in zip([-1] + kept, kept + [_MAX_FD]):
            if low + 1 < high:   # (closerange(n, n) closes everything from n on)
                os.closerange(low + 1, high)
        for res, value in ((resource.RLIMIT_CPU, cpu_limit), (resource.RLIMIT_AS, as_limit),
                           (resource.RLIMIT_FSIZE, OUTPUT_LIMIT), (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
                           (resource.RLIMIT_NPROC, MAX_PROCESSES), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(res, (value, value))   # soft = hard: the program cannot raise them again
        signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a fresh interpreter
        sys.set_int_max_str_digits(0)   # Python 3.10's ints, the paper's: printing 2**20000 is no error
        _libc.mallopt(M_ARENA_MAX, 1)   # glibc reserves 64 MiB of address space per thread's arena: one for all
        os.environ.clear()
        # Python's own stdio on a POSIX system: utf-8, "\n" newlines untranslated, block-buffered (not a tty).
        sys.stdin = sys.__stdin__ = io.open(0, "r", encoding="utf-8", newline="\n", closefd=False)
        sys.stdout = sys.__stdout__ = io.open(1, "w", encoding="utf-8", newline="\n", closefd=False)
        sys.stderr = sys.__stderr__ = io.open(2, "w", encoding="utf-8", errors="backslashreplace",
                                              newline="\n", closefd=False)
        faulthandler.enable()   # a segfault (deep recursion) prints where it happened
        if "random" in sys.modules:
            sys.modules["random"].seed()   # not the server's state: a fresh interpreter seeds from urandom
        _libc.syscall(_SYS_KEYCTL, 1, None)   # KEYCTL_JOIN_SESSION_KEYRING: a fresh, empty session keyring
        _prctl(PR_SET_DUMPABLE, 1)   # the server (not dumpable itself) may read this test's memory use in /proc
        if _seccomp_call is not None:
            _install_seccomp(_seccomp_call)   # last: what follows is the program (and the calls of its function)
        status = child_main()
    finally:
        os._exit(status)


def _new_main(name: str) -> types.ModuleType:
    main = types.ModuleType(name)
    main.__file__, main.__builtins__ = "solution.py", builtins
    sys.modules[name], sys.argv = main, ["solution.py"]
    return main


def _compile_solution() -> object:
    """Read the program from fd 5 and compile it as solution.py; on a syntax error, report it on fd 3 and
    return None. Compiling here, in the test process, keeps the code out of the server (see _Arena)."""
    with open(5, "rb") as f:
        source = f.read()
    with open("solution.py", "wb") as f:
        f.write(source)   # tracebacks print the program's source lines from this file
    try:
        return compile(source, "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:   # ValueError: NUL bytes
        error = "".join(traceback.format_exception_only(type(e), e))
        os.write(3, json.dumps({"syntax_error": error}).encode() + b"\n")
        return None


def _program_child() -> int:
    """Run a stdin/stdout program as a fresh interpreter would run solution.py; return its exit status."""
    compiled = _compile_solution()
    if compiled is None:
        return 0
    os.close(3)   # the results pipe is for function jobs; a program has only stdout to answer with
    main, status = _new_main("__main__"), 1
    try:
        exec(compiled, main.__dict__)
        status = 0
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:
        e.__traceback__ = e.__traceback__.tb_next   # drop this frame: the harness is not the program's
        sys.excepthook(type(e), e, e.__traceback__)
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()   # wait for non-daemon threads, as interpreter exit does
        atexit._run_exitfuncs()
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:
        sys.excepthook(type(e), e, e.__traceback__)
        status = status or 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120   # what Python exits with when the final flush fails
    return status


def _calls_child(entry_point: str, count: int) -> int:
    """Load a function problem's solution (as module `solution`: its `if __name__ == "__main__"` part does not
    run), then, ``count`` times, read the next call's arguments from fd 4 (the server writes them only after the
    previous line) and write one line to fd 3: the result as plain data, or the exception. The expected values
    are not here: only arguments ever were, and only those of calls already begun."""
    compiled = _compile_solution()
    if compiled is None:
        return 0
    calls = open(4, "rb")
    results = open(3, "wb", buffering=0)

    def send(report: dict) -> None:
        results.write(json.dumps(report).encode() + b"\n")

    main = _new_main("solution")
    try:
        exec(compiled, main.__dict__)
        function = main.__dict__[entry_point] if entry_point in main.__dict__ else _missing(entry_point)
        if not callable(function):
            raise TypeError(f"{entry_point} is a {type(function).__name__}, not a function")
    except BaseException as e:
        send({"load_error": _describe(e, "while it was loaded, before the tests ran"), "exception": type(e).__name__})
        return 0
    results.write(_LOADED)
    for _ in range(count):
        line = calls.readline()
        if not line:
            break
        args, kwargs = json.loads(line)
        try:
            value = function(*from_plain(args), **{k: from_plain(v) for k, v in kwargs.items()})
        except BaseException as e:
            send({"error": _describe(e, "during the test"), "exception": type(e).__name__})
            continue
        try:
            send({"value": to_plain(value, copy_subclasses=True)})
        except BaseException:
            try:   # `assert f(x)` asks only for truth, as Python's own assert would (a re.Match, say)
                truth = bool(value)
            except BaseException:
                truth = None
            send({"not_plain": f"an object of type {type(value).__name__}, not plain data", "truth": truth})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return 0


def _missing(name: str):
    raise NameError(f"name '{name}' is not defined: the program must define the function {name}")


def _describe(e: BaseException, when: str) -> str:
    """The exception as Python would print it, without the harness's frames (paths read solution.py)."""
    if isinstance(e, SystemExit):
        return f"SystemExit: the program exited (code {e.code!r}) {when}"
    tb = e.__traceback__.tb_next if e.__traceback__ is not None else None   # drop the harness frame
    return "".join(traceback.format_exception(type(e), e, tb)).rstrip()


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


_REQUESTS_FD, _NAMESPACED, _SANDBOX_UID, _USERNS, _OWN_PID_NS = 0, False, None, False, None
_INIT_STACK = _ALL_SIGNALS = None   # the test init's stack and signal mask (_nested_pid_start)
_MAX_FD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]   # above every descriptor the server may hold
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine, -1)


def _serve(plain_tmp: str | None) -> None:
    """The fork server's main loop. A request is 8 bytes of header length, a JSON header (id, kind, limits,
    payload sizes) and the payload (the program, then its stdin or its calls), which is spliced into memfds
    unread. A reply is one or more frames (_write_frame), each header carrying the request's id.
    plain_tmp: no namespaces; test directories go there."""
    global _REQUESTS_FD, _NAMESPACED
    _REQUESTS_FD, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)   # a stray print in the server must never corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.dont_write_bytecode = True
    for name in PRELOAD:
        __import__(name)
    try:
        _NAMESPACED, isolation = _isolate() if plain_tmp is None else (False, "isolation disabled by the caller")
    except Exception as e:   # half-isolated is useless: tell the harness, which restarts us unisolated
        os.write(replies, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
        os._exit(1)
    if not _NAMESPACED:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        tempfile.tempdir = plain_tmp
    isolation += ", " + _seccomp_start() + _socket_memory_start()
    arena = _Arena()
    gc.freeze()   # keep the server's objects out of the children's collections (fewer copy-on-write faults)
    hello = {"namespaced": _NAMESPACED, "seccomp": _seccomp_call is not None, "isolation": isolation}
    os.write(replies, json.dumps(hello).encode() + b"\n")
    while True:
        try:
            request = json.loads(_read_exactly(_REQUESTS_FD, int.from_bytes(_read_exactly(_REQUESTS_FD, 8), "little")))
            code = _splice_into_memfd(_REQUESTS_FD, "code", request["sizes"][0])
            data = _splice_into_memfd(_REQUESTS_FD, "data", request["sizes"][1])
        except EOFError:
            return   # the harness closed the pipe: we are done
        def reply(header, blobs):
            _write_frame(replies, {**header, "id": request["id"]}, blobs, arena)
        try:
            if request["kind"] == "calls":
                _run_calls(arena, request, code, data, reply)
            else:
                _run_program(arena, request, code, data, reply)
        except Exception:
            reply({"server_error": traceback.format_exc(), "last": True}, [])


def _socket_memory_start() -> str:
    """Count socket buffers from now on, if the kernel answers (in our own network namespace only)."""
    global _count_sockets
    if not _NAMESPACED:
        return ", socket buffers not counted (no network namespace of our own)"
    try:
        _socket_memory()
    except OSError as e:
        return f", socket buffers not counted ({e.strerror})"
    _count_sockets = True
    return ", socket buffers counted"


# ---- CLI: python execute.py SOLUTION.py PROBLEM.json

def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        return _serve(plain_tmp=argv[2] if argv[1:2] == ["--plain"] else None)
    if len(argv) != 2:
        sys.exit("usage: python execute.py SOLUTION.py PROBLEM.json")
    with open(argv[0]) as f:
        code = f.read()
    with open(argv[1]) as f:
        problem = json.load(f)
    if isinstance(problem, list):   # a plain list of {"input", "output"} tests: all public
        problem = {"public_tests": problem}
    public, private = problem.get("public_tests", []), problem.get("private_tests", [])
    time_limit = python_time_limit(problem.get("time_limit"))
    memory_limit = problem.get("memory_limit") or DEFAULT_MEMORY_LIMIT
    results = run_tests(code, [(t["input"], t["output"]) for t in public + private], time_limit, memory_limit)
    for i, r in enumerate(results):
        kind, n = ("public", i) if i < len(public) else ("private", i - len(public))
        print(f"{kind} test {n}: {r.verdict} ({r.seconds:.3f} s)")
    print()
    print(feedback(results[:len(public)]) or "All public tests pass.")


if __name__ == "__main__":
    main(sys.argv[1:])
