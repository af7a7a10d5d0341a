"""Run model-written Python safely and fast, judge its output, and write RLEF's execution feedback (RLEF.md §1).

    extract_code(response)               the last ```python block (else the last bare ``` block), or None
    run_tests(code, tests, ...)          one TestResult per (input, expected_output) test
    Judge(workers=N).map(jobs)           many programs in parallel
    feedback(results), NO_CODE_FEEDBACK  the paper's user messages
    python execute.py SOLUTION.py PROBLEM.json

Each Sandbox is a *fork server*: a fresh interpreter (`python -I execute.py --serve`, started with subprocess,
so a trainer holding GBs of weights is never forked) that isolates itself once, then forks one child per test
that runs the code as `solution.py` in a clean `__main__`. Forking an interpreter that is already started and
isolated costs less than starting `python -c` (bench/bench_execute.py).

Isolated, where the kernel allows namespaces (checked at start-up):
  - processes: the server is init of its own pid namespace and kills every other process in it after each test
    (kill(-1) from init), so forks, double forks, setsid daemons and threads never outlive their test. Signals
    cannot reach the server (the kernel shields a namespace's init) or anything outside.
  - network: a new net namespace whose loopback is down: no connection to anything, 127.0.0.1 included.
  - files: a new root of read-only bind mounts of /usr, /bin, /lib* and the interpreter's prefixes, plus
    /dev/{null,zero,full,random,urandom}, a private /proc, and private size-capped /tmp and /dev/shm (tmpfs)
    that are emptied after each test (the test's working directory is in /tmp). The repository, the data
    (private tests!), home directories, /etc and the host's /tmp are not visible; nothing written reaches the
    host.
  - identity: as root the server becomes an unprivileged uid of its own (1<<20 + its pid); otherwise a user
    namespace maps the caller to root and every capability is dropped. no_new_privs: setuid binaries gain
    nothing. The environment is empty (no secrets, no PYTHON* variables).
  - limits, soft = hard: CPU time (ceil(wall limit) + 1 s), address space (the memory limit on top of the
    interpreter's own mappings), file size (16 MiB; stdout and stderr are files, so nothing blocks on a full
    pipe), 256 open files, 64 processes + threads, no core dumps. The server enforces wall time.
NOT isolated: the kernel (no seccomp: every syscall is available); the interpreter and site-packages are
readable; memory is limited per process (no cgroup), so a test that forks may use up to 64 x the limit; CPU
time is not reserved (other load slows tests down); str hashes are randomised per server, not per test. As
root without CAP_SYS_ADMIN (a container), the user namespace keeps uid 0, which the kernel exempts from the
process limit. Without namespaces the fallback is rlimits, a temp dir and a subreaper that kills every
descendant; programs then run as you and can read your files and use the network: one warning says so.
Needs Linux >= 5.3 (pidfd); the per-sandbox process limit in a user namespace needs >= 5.14.

Verdicts: pass, wrong_answer, runtime_error, timeout, memory_limit (a MemoryError), output_limit, syntax_error.
A nonzero exit or a signal fails a test even after correct output. Output comparison (our rule): whitespace-
separated tokens, equal counts, each pair equal as strings or case-insensitively; where the *expected* token is
a float literal (a '.' or an exponent) a numeric token within 1e-6 * max(1, |expected|) also matches; integers
compare as strings, so 10^19 and 10^19+1 differ. Time: a contest's (C++) limit x PYTHON_TIME_FACTOR = 3 (our
choice), else the paper's 10 s; memory: the problem's limit, else the paper's 1 GB.
"""
import atexit
import builtins
import ctypes
import dataclasses
import faulthandler
import gc
import io
import json
import math
import os
import queue
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

FORMAT_LINE = ("Your code should be enclosed in triple backticks like so: ```python YOUR CODE HERE ```. "
               "Use the backticks for your code only.")
NO_CODE_FEEDBACK = "Could not parse your code.\nGive it another try.\n" + FORMAT_LINE

DEFAULT_TIME_LIMIT = 10.0          # seconds of wall time per test (the paper's default)
DEFAULT_MEMORY_LIMIT = 1 << 30     # bytes (the paper's default)
PYTHON_TIME_FACTOR = 3.0           # C++ contest limit -> Python (our choice)
OUTPUT_LIMIT = 16 << 20            # bytes of stdout (and of any file the program writes)
MAX_PROCESSES = 64                 # processes + threads of one test
MAX_OPEN_FILES = 256
TMPFS_SIZE = "64m"                 # each of the sandbox's /tmp and /dev/shm (RAM), emptied after every test
FIELD_LIMIT = 512                  # characters per input / output / traceback in the feedback (RLEF.md §1)
MESSAGE_LIMIT = 4096               # characters (~1k tokens) per feedback message; later failures are dropped
ERROR_KEEP = 64 << 10              # characters of stderr kept in TestResult.error (head and tail)
OUTPUT_KEEP = 64 << 10             # characters of stdout kept in TestResult.output
TMP_PREFIX = "rlef-sandbox-"
SANDBOX_UID_BASE = 1 << 20         # as root, a server runs its tests as uid SANDBOX_UID_BASE + its pid
# Modules competitive programs import, loaded once by the fork server so a test pays nothing for them.
PRELOAD = ("array", "bisect", "collections", "copy", "decimal", "fractions", "functools", "heapq", "itertools",
           "math", "operator", "random", "re", "string", "threading", "typing")


# ---- Code extraction, verdicts and output comparison

_FENCE = re.compile(r"```([\w+-]*)[ \t]*\n?(.*?)```", re.DOTALL)


def extract_code(response: str) -> str | None:
    """The last ```python block of a response (else its last bare ``` block); None when it has none."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(response) if body.strip()]
    python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
    bare = [body for lang, body in blocks if lang == ""]
    return (python or bare or [None])[-1]


@dataclasses.dataclass
class TestResult:
    __test__ = False               # not a pytest test class
    verdict: str                   # pass wrong_answer runtime_error timeout memory_limit output_limit syntax_error
    input: str
    expected: str | None           # None: the test is the program itself exiting 0 (an appended assert)
    output: str = ""               # stdout, first OUTPUT_KEEP characters
    error: str = ""                # traceback / stderr, paths read solution.py, no harness frames
    seconds: float = 0.0           # wall time

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def outputs_match(expected: str, output: str) -> bool:
    """The judge's comparison rule (module docstring): tokens, equal counts, floats only where expected."""
    want, got = expected.split(), output.split()
    return len(want) == len(got) and all(_tokens_match(w, g) for w, g in zip(want, got))


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
    if "syntax_error" in raw:
        return TestResult("syntax_error", test_input, expected, error=raw["syntax_error"])
    out = raw["stdout"]
    # A segfault's faulthandler dump lists the harness frames below the program's: drop them.
    err = "\n".join(line for line in raw["stderr"].rstrip().split("\n") if _HARNESS_FRAME not in line)
    failed = raw["signal"] is not None or raw["exit"] != 0
    if raw["timed_out"]:
        verdict = "timeout"
    elif raw["stdout_bytes"] >= OUTPUT_LIMIT:
        verdict = "output_limit"
    elif failed and err.rsplit("\n", 1)[-1].startswith("MemoryError"):
        verdict = "memory_limit"
    elif failed:
        verdict = "runtime_error"
        if raw["signal"] is not None:
            err += ("\n" if err else "") + f"Process killed by {signal.Signals(raw['signal']).name}"
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


# ---- The paper's feedback message (RLEF.md §1)

_TRUNCATED = "... <<truncated>>"
_MESSAGES = {"timeout": "Execution took too long", "memory_limit": "Out of memory",
             "output_limit": "Output limit exceeded"}   # the last: our choice, in the paper's style


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
    """The feedback for function-completion problems (RLEF appendix C.4/C.5, HumanEval+ / MBPP+): every
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
                "output_limit": "Output limit exceeded."}.get(r.verdict) or (
            f"`{_cap(last)}`" if last.startswith("AssertionError") else _cap_traceback(r.error))
        bullets.append(f"- Failure: `{_cap(test)}`:\n{body}")
    message = "Your code failed some test cases:\n\n" + "\n".join(bullets) + "\n\nGive it another try."
    return message + ("\n" + FORMAT_LINE if format_line else "")


# ---- Harness side: a fork server per Sandbox, a pool of them in Judge

_warned = False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class Sandbox:
    """One fork server; runs one test at a time (Judge runs several)."""

    def __init__(self, isolate: bool = True):
        self.isolate, self.proc, self._tmp = isolate, None, None
        self._start()

    def _start(self) -> None:
        # A fresh interpreter, empty environment, own session (a Ctrl-C meant for the trainer does not reach
        # it); it exits when its stdin closes, so it never outlives us.
        cmd = [sys.executable, "-I", os.path.abspath(__file__), "--serve"]
        if not self.isolate:   # test directories go in a host directory of ours, removed even if the server dies
            self._tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
            cmd += ["--plain", self._tmp]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={},
                                     close_fds=True, start_new_session=True)
        hello = self._receive(60.0)
        if hello is None or "error" in hello:
            reason = hello["error"] if hello else "the fork server did not start"
            self.close()
            if not self.isolate:
                raise RuntimeError(f"execute.py: {reason}")
            self.isolate = False
            _warn_once(f"execute.py: namespace isolation failed ({reason})")
            return self._start()
        self.isolation, self.namespaced = hello["isolation"], hello["namespaced"]
        if not self.namespaced:
            _warn_once(f"execute.py: programs run WITHOUT namespace isolation ({self.isolation}): they can "
                       "read your files and use the network; only rlimits and a temp dir apply")

    def _receive(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        return json.loads(line) if line else None

    def run(self, code: str, stdin: str, time_limit: float, memory_limit: int) -> dict:
        """Run code once on stdin; the server's raw report (see _run_one)."""
        request = {"code": code, "input": stdin, "time_limit": time_limit, "memory_limit": memory_limit}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            raw = self._receive(time_limit + 60.0)   # the server enforces the limit; this only guards a dead one
        except OSError:
            raw = None
        if raw is None:   # the server died (only possible without namespaces): fail the test, restart it
            self.close()
            self._start()
            raw = {"exit": None, "signal": int(signal.SIGKILL), "timed_out": False, "stdout": "",
                   "stdout_bytes": 0, "stderr": "The sandbox was killed", "seconds": 0.0}
        return raw

    def run_tests(self, code: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
                  memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
                  stop_on_first_failure: bool = False) -> list[TestResult]:
        """One TestResult per (input, expected_output) test, in order; None limits mean the defaults. With
        stop_on_first_failure, the tests after the first failure are neither run nor returned."""
        results = []
        for test_input, expected in tests:
            raw = self.run(code, test_input, time_limit or DEFAULT_TIME_LIMIT, memory_limit or DEFAULT_MEMORY_LIMIT)
            results.append(_result(raw, test_input, expected))
            if stop_on_first_failure and not results[-1].passed:
                break
        return results

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()   # EOF: the server exits, and its pid namespace with it
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


_default_sandbox, _default_lock = None, threading.Lock()


def run_tests(code: str, tests, time_limit: float | None = DEFAULT_TIME_LIMIT,
              memory_limit: int | None = DEFAULT_MEMORY_LIMIT, stop_on_first_failure: bool = False) -> list[TestResult]:
    """Judge one program on (input, expected_output) tests with a shared fork server (see Sandbox.run_tests).
    expected_output None: the test passes iff the program exits 0 within the limits."""
    global _default_sandbox
    with _default_lock:
        if _default_sandbox is None:
            _default_sandbox = Sandbox()
            atexit.register(_default_sandbox.close)
        return _default_sandbox.run_tests(code, tests, time_limit, memory_limit, stop_on_first_failure)


class Judge:
    """A pool of fork servers. Start it before loading a model (it works after, too: nothing is forked).

        with Judge(workers=8) as judge:
            results = judge.map([(code, tests), (code2, tests2, time_limit, memory_limit), ...])

    A job is a tuple of run_tests' arguments or a dict of them; map returns one result list per job, in order.
    """

    def __init__(self, workers: int | None = None, isolate: bool = True):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="judge")
        self._sandboxes = list(self._pool.map(lambda _: Sandbox(isolate), range(self.workers)))
        self._idle = queue.SimpleQueue()
        for sandbox in self._sandboxes:
            self._idle.put(sandbox)

    def _run(self, job) -> list[TestResult]:
        sandbox = self._idle.get()
        try:
            return sandbox.run_tests(**job) if isinstance(job, dict) else sandbox.run_tests(*job)
        finally:
            self._idle.put(sandbox)

    def submit(self, job) -> Future:
        """Judge one job in the background (e.g. while the next batch is sampled)."""
        return self._pool.submit(self._run, job)

    def map(self, jobs) -> list[list[TestResult]]:
        return list(self._pool.map(self._run, jobs))

    run_many = map

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for sandbox in self._sandboxes:
            sandbox.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- Server side: isolation (once), then fork a child per test

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 8192, 16384, 1 << 18)
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
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    uid, gid = os.getuid(), os.getgid()
    try:
        _c("unshare", flags)   # root: no user namespace needed, and we can switch to a uid of our own below
        userns = False
    except OSError:            # not root, or root without CAP_SYS_ADMIN (a container)
        try:
            _c("unshare", flags | CLONE_NEWUSER)
        except OSError as e:
            return False, f"no namespaces: {e}"
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        userns = True
    sandbox_uid = SANDBOX_UID_BASE + os.getpid()   # unique among live servers, as the pid is
    if pid := os.fork():
        os.closerange(0, 1 << 16)
        os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) & 0xFF)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # if our waiting parent is killed, the whole namespace goes
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates to the host
    # The new root is a tmpfs mounted over /tmp. Every source is opened first (a venv may live under /tmp)
    # and bound through /proc/self/fd, read-only (which takes a second, remounting call).
    dirs = sorted(p for p in {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", sys.prefix,
                              sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix} if os.path.lexists(p))
    devices = [d for d in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom") if os.path.exists(d)]
    sources = {p: os.open(p, os.O_PATH) for p in dirs + devices if not os.path.islink(p)}
    new, bound = "/tmp", []
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    # The scratch dirs come first, so that a venv or repository under /tmp is bound *inside* the sandbox's
    # /tmp instead of being hidden by it; per-test cleaning leaves the entries that hold those binds alone.
    for scratch in ("/tmp", "/dev/shm"):   # /dev/shm: multiprocessing's semaphores
        os.makedirs(new + scratch)
        _mount("tmpfs", new + scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={TMPFS_SIZE}")
        _SCRATCH_KEEP.update(scratch + "/" + p[len(scratch) + 1:].split("/")[0] for p in dirs
                             if p.startswith(scratch + "/"))
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
    for fd in sources.values():
        os.close(fd)
    for name, fd in (("fd", ""), ("stdin", "/0"), ("stdout", "/1"), ("stderr", "/2")):
        os.symlink("/proc/self/fd" + fd, f"{new}/dev/{name}")
    os.makedirs(new + "/proc")
    notes = ""
    try:
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        with open(new + "/proc/sys/kernel/shm_rmid_forced", "w") as f:
            f.write("1")   # SysV shared memory dies with its processes instead of piling up across tests
    except OSError as e:   # e.g. a container that masks parts of /proc: programs get no /proc
        notes = f", no /proc ({e.strerror})"
    os.chdir(new)
    _mount(new, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if userns:   # we are uid 0 of our namespace: drop every capability, and what exec could regain
        for cap in range(64):
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError:
                break
        _c("capset", (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())   # v3 header: none left
        who = "user namespace, no capabilities"
    else:
        os.setgroups([])
        os.setgid(sandbox_uid)
        os.setuid(sandbox_uid)
        who = f"uid {sandbox_uid}"
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)   # a test cannot ptrace its server
    return True, f"pid/net/mount/ipc/uts namespaces, read-only root, {who}{notes}"


def _kill_descendants(namespaced: bool) -> None:
    """Kill and reap everything a test left behind (daemons, double forks, stopped processes)."""
    while True:
        if namespaced:   # from a pid namespace's init, kill(-1) reaches every other process in it
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:            # we are a subreaper: orphans of killed processes become our children, next round
            for pid in _children():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _children() -> list[int]:
    kids = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    kids.append(int(p))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def _read(fd: int, limit: int) -> tuple[str, int]:
    size = os.fstat(fd).st_size
    if size <= limit:
        return os.pread(fd, size, 0).decode("utf-8", "replace"), size
    head = os.pread(fd, limit // 16, 0).decode("utf-8", "replace")
    tail = os.pread(fd, limit, size - limit).decode("utf-8", "replace")
    return f"{head}\n{_TRUNCATED}\n{tail}", size


def _run_one(compiled, code: str, request: dict, namespaced: bool, base_as: int) -> dict:
    """Fork one child for one test; wait at most the time limit; kill everything; report."""
    workdir = tempfile.mkdtemp(prefix=TMP_PREFIX)
    with open(os.path.join(workdir, "solution.py"), "w", errors="replace") as f:
        f.write(code)   # tracebacks print the program's source lines from this file
    stdin, stdout, stderr = (os.memfd_create(name) for name in ("stdin", "stdout", "stderr"))
    with open(stdin, "wb", closefd=False) as f:
        f.write(request["input"].encode(errors="replace"))
    os.lseek(stdin, 0, os.SEEK_SET)
    time_limit = request["time_limit"]
    cpu_limit = math.ceil(time_limit) + 1
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(compiled, workdir, (stdin, stdout, stderr), cpu_limit, request["memory_limit"] + base_as)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    timed_out = not poller.poll(time_limit * 1000)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    _kill_descendants(namespaced)
    os.close(pidfd)
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    # RLIMIT_CPU with soft = hard sends SIGKILL: that too is a timeout.
    timed_out = timed_out or (killed in (signal.SIGKILL, signal.SIGXCPU)
                              and usage.ru_utime + usage.ru_stime >= cpu_limit - 0.1)
    out, out_bytes = _read(stdout, OUTPUT_LIMIT)
    err, _ = _read(stderr, ERROR_KEEP)
    for fd in (stdin, stdout, stderr):
        os.close(fd)
    # Empty the sandbox's /tmp and /dev/shm (a program may litter outside its directory); else just ours.
    scratch = [os.path.join(d, p) for d in ("/tmp", "/dev/shm") for p in os.listdir(d)
               if os.path.join(d, p) not in _SCRATCH_KEEP] if namespaced else [workdir]
    for path in scratch:
        _remove(path)
    return {"exit": None if killed else os.WEXITSTATUS(status), "signal": None if timed_out else killed,
            "timed_out": timed_out, "stdout": out, "stdout_bytes": out_bytes, "stderr": err, "seconds": seconds}


def _remove(path: str) -> None:
    """Remove what a test left: it ran as our uid, but may have made its directories unreadable."""
    try:
        if os.path.islink(path) or not os.path.isdir(path):
            return os.unlink(path)
        os.chmod(path, 0o700)
        for top, dirs, _ in os.walk(path):
            for d in (os.path.join(top, d) for d in dirs):
                if not os.path.islink(d):
                    os.chmod(d, 0o700)
        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass


def _child(compiled, workdir: str, fds: tuple[int, int, int], cpu_limit: int, as_limit: int):
    """The forked test process: limits, fresh stdio and __main__, run, exit. Never returns to the server."""
    status = 1
    try:
        os.setsid()
        os.chdir(workdir)
        for fd, target in zip(fds, (0, 1, 2)):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)   # the server's control pipes, memfds, pidfds
        for res, value in ((resource.RLIMIT_CPU, cpu_limit), (resource.RLIMIT_AS, as_limit),
                           (resource.RLIMIT_FSIZE, OUTPUT_LIMIT), (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
                           (resource.RLIMIT_NPROC, MAX_PROCESSES), (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(res, (value, value))   # soft = hard: the program cannot raise them again
        signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a fresh interpreter
        os.environ.clear()
        # Python's own stdio on a POSIX system: utf-8, "\n" newlines untranslated, block-buffered (not a tty).
        sys.stdin = sys.__stdin__ = io.open(0, "r", encoding="utf-8", newline="\n", closefd=False)
        sys.stdout = sys.__stdout__ = io.open(1, "w", encoding="utf-8", newline="\n", closefd=False)
        sys.stderr = sys.__stderr__ = io.open(2, "w", encoding="utf-8", errors="backslashreplace",
                                              newline="\n", closefd=False)
        faulthandler.enable()   # a segfault (deep recursion) prints where it happened
        if "random" in sys.modules:
            sys.modules["random"].seed()   # not the server's state: a fresh interpreter seeds from urandom
        main = types.ModuleType("__main__")
        main.__file__, main.__builtins__ = "solution.py", builtins
        sys.modules["__main__"], sys.argv = main, ["solution.py"]
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
    finally:
        os._exit(status)


def _exit_status(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _serve(plain_tmp: str | None) -> None:
    """The fork server's main loop: one JSON request per line on stdin, one JSON report per line on stdout.
    plain_tmp: no namespaces; test directories go there."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)   # a stray print in the server must never corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.dont_write_bytecode = True
    for name in PRELOAD:
        __import__(name)
    with open("/proc/self/statm") as f:
        base_as = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")   # not charged to the program
    try:
        namespaced, isolation = _isolate() if plain_tmp is None else (False, "isolation disabled by the caller")
    except Exception as e:   # half-isolated is useless: tell the harness, which restarts us unisolated
        replies.write(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode() + b"\n")
        replies.flush()
        os._exit(1)
    if not namespaced:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        tempfile.tempdir = plain_tmp
    gc.freeze()   # keep the server's objects out of the children's collections (fewer copy-on-write faults)
    replies.write(json.dumps({"namespaced": namespaced, "isolation": isolation}).encode() + b"\n")
    replies.flush()
    cached_code, compiled = None, None
    for line in requests:
        request = json.loads(line)
        if request["code"] != cached_code:
            cached_code = request["code"]
            try:
                compiled = compile(cached_code, "solution.py", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError) as e:   # ValueError: NUL bytes
                compiled = "".join(traceback.format_exception_only(type(e), e))
        if isinstance(compiled, str):
            reply = {"syntax_error": compiled}
        else:
            reply = _run_one(compiled, cached_code, request, namespaced, base_as)
        replies.write(json.dumps(reply).encode() + b"\n")
        replies.flush()


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
