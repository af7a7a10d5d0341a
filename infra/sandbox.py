"""The judge's sandbox: fork servers that run untrusted Python, one test at a time (standard library only).

    ForkServer()                   one server: a fresh interpreter (`python -I infra/sandbox.py --serve`) that
                                   isolates itself once, then forks one test process per test
    .run(code, stdin, ...)         the raw report of one run of a stdin/stdout program (exit, signal, output)
    .run_calls(code, f, calls)     one raw report per call of a function: its result as plain data, or why not
    to_plain / from_plain          the plain-data encoding results travel in (never the program's own objects)

execute.py turns the reports into verdicts and compares outputs and results; nothing here decides a verdict
from what a program printed or returned. What is isolated, what is counted, and what is NOT: docs/SANDBOX.md.
This file is both the harness side (ForkServer, in the judge's process) and the server it starts (the second
half, from "Server side"), which is why it imports nothing outside the standard library.
"""
import atexit
import builtins
import ctypes
import errno
import faulthandler
import gc
import io
import itertools
import json
import math
import mmap
import os
import resource
import select
import signal
import _signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings

OUTPUT_LIMIT = 16 << 20            # bytes of stdout (and of any file the program writes)
ERROR_KEEP = 64 << 10              # characters of stderr (head and tail) or of a call's error (tail) kept
TRUNCATED = "... <<truncated>>"    # where kept text was cut

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
PRELOAD = ("array", "bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools", "heapq",
           "itertools", "math", "operator", "random", "re", "statistics", "string", "threading", "typing")

_warned = False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _forward_stderr(pipe, pid: int) -> None:
    """The fork server's own stderr (its crashes, warnings), labelled, into ours; never a program's output."""
    for line in pipe:
        sys.stderr.write(f"[infra/sandbox.py fork server {pid}] {line.decode('utf-8', 'replace').rstrip()}\n")
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


def check_limits(time_limit, memory_limit) -> tuple[float, int]:
    """The limits as the server takes them (execute.py has put its defaults in place of None). Refused here,
    before anything is sent."""
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit <= 86400:
        raise ValueError(f"time_limit must be a number of seconds > 0 and <= 86400 (or None), got {time_limit!r}")
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or not 0 < memory_limit <= 1 << 48:
        raise ValueError(f"memory_limit must be an int number of bytes > 0 and <= 2**48 (or None), "
                         f"got {memory_limit!r}")
    return float(time_limit), memory_limit



# ---- Plain data: how arguments and results cross the sandbox
#
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
        return _FROM_TAG[tag](hash_guard(from_plain(v, _depth + 1) for v in body))
    if tag == "dict" and type(body) is list and all(type(kv) is list and len(kv) == 2 for kv in body):
        keys = hash_guard(from_plain(k, _depth + 1) for k, _ in body)
        return dict(zip(keys, (from_plain(v, _depth + 1) for _, v in body)))
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        return complex(from_plain(body[0]), from_plain(body[1]))
    if tag == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    raise ValueError(f"not an encoding of plain data: {str(data)[:80]}")


EQUAL_HASH_LIMIT = 8   # distinct values that may share one hash in a set or dict built from a program's reply


def hash_guard(items) -> list:
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



# ---- Harness side: one fork server (execute.Judge keeps a pool of them)

class ForkServer:
    """One fork server; runs one job at a time (execute.Judge runs several). execute.Sandbox is this class
    with verdicts."""

    def __init__(self, isolate: bool = True):
        self.isolate, self.proc, self._tmp, self._next_id = isolate, None, None, 0
        self.namespaced, self._lock = False, threading.RLock()
        self._start()

    def _start(self) -> None:
        # A fresh interpreter, own session (a Ctrl-C meant for the trainer does not reach it); it exits when its
        # stdin closes, so it never outlives us. Its environment is empty but for LD_BIND_NOW, which it clears:
        # the dynamic linker binds every C function at start-up, instead of in each test process that calls one
        # first (each binding writes a page the process then copies).
        cmd = [sys.executable, "-I", os.path.abspath(__file__), "--serve"]
        if not self.isolate:   # test directories go in a host directory of ours, removed even if the server dies
            self._tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
            cmd += ["--plain", self._tmp]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={"LD_BIND_NOW": "1"}, close_fds=True, start_new_session=True, bufsize=0)
        threading.Thread(target=_forward_stderr, args=(self.proc.stderr, self.proc.pid), daemon=True).start()
        hello = self._receive(60.0)
        if hello is None or "error" in hello:
            reason = hello["error"] if hello else "the fork server did not start"
            self.close()
            if not self.isolate or self.namespaced:   # never fall back silently once isolation worked
                raise RuntimeError(f"infra/sandbox.py: {reason}")
            self.isolate = False
            _warn_once(f"infra/sandbox.py: namespace isolation failed ({reason})")
            return self._start()
        self.isolation, self.namespaced, self.seccomp = hello["isolation"], hello["namespaced"], hello["seccomp"]
        if not self.namespaced:
            _warn_once(f"infra/sandbox.py: programs run WITHOUT namespace isolation ({self.isolation}): they can "
                       "read your files and use the network; only rlimits and a temp dir apply")
        if not self.seccomp:   # (one warning in all: after the one above, this says nothing)
            _warn_once(f"infra/sandbox.py: programs run WITHOUT a seccomp filter ({self.isolation}): every system "
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
                raise RuntimeError(f"infra/sandbox.py: the fork server failed on a request:\n{frames[-1][0]['server_error']}")
            return frames if ok else None

    def run(self, code: str, stdin: str, time_limit: float, memory_limit: int, preamble: str = "") -> dict:
        """Run code once on stdin (after the problem's preamble: _run_preamble): the raw report (exit, signal,
        stopped, stdout, stderr without the harness's frames, seconds; syntax_error or judge_error where they
        apply) that execute.py turns into a verdict."""
        time_limit, memory_limit = check_limits(time_limit, memory_limit)
        request = {"kind": "program", "time_limit": time_limit, "memory_limit": memory_limit, "preamble": preamble}
        # The server enforces the time limit; this timeout only guards against a server that died.
        frames = self._call(request, [code.encode(errors="replace"), stdin.encode(errors="replace")], time_limit + 60)
        if frames is None:
            return self._server_died()
        (run, (stdout, stderr, results)), = frames
        raw = {**run, "stdout": stdout.decode("utf-8", "replace"),
               "stderr": _without_harness(_stderr_text(run, stderr))}
        # Only the harness writes results here (it closes them before the program runs): a syntax error or a
        # failed preamble.
        report = json.loads(results) if results else {}
        raw.update({key: report[key] for key in ("syntax_error", "judge_error") if key in report})
        return raw

    def run_calls(self, code: str, entry_point: str, calls: list[tuple[list, dict]], time_limit: float,
                  memory_limit: int, preamble: str = "") -> list[dict] | None:
        """Load code once and call ``entry_point`` with each (args, kwargs) of plain data: one raw report per
        call, {"value": plain data} or why there is none; None if the server died (see _server_died). Each call
        has the time limit, from the moment its arguments are handed to the program (never earlier: see
        _CallFeeder) to its result; a call that times out or ends the process is charged alone, and the next
        call runs in a fresh process. A report's seconds are the server's measure of that span. The problem's
        preamble runs before the program loads (_run_preamble)."""
        time_limit, memory_limit = check_limits(time_limit, memory_limit)
        # One JSON line per call; the server hands them to the program one at a time (see _CallFeeder).
        with _AnyIntDigits():   # an argument may be an int of more than 4,300 digits
            lines = [json.dumps([to_plain(list(args)), {k: to_plain(v) for k, v in kwargs.items()}]).encode()
                     + b"\n" for args, kwargs in calls]
        request = {"kind": "calls", "entry_point": entry_point, "time_limit": time_limit,
                   "memory_limit": memory_limit, "calls": len(lines), "call_sizes": [len(c) for c in lines],
                   "preamble": preamble}
        frames = self._call(request, [code.encode(errors="replace"), b"".join(lines)],
                            (time_limit + 5.0) * (len(lines) + 1) + 60.0)
        return None if frames is None else _call_reports(frames, len(lines))

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


_HARNESS_FRAME = f'File "{os.path.abspath(__file__)}"'


def _without_harness(stderr: str) -> str:
    """A program's stderr without this file's frames (a segfault's faulthandler dump lists them below its own)."""
    return "\n".join(line for line in stderr.rstrip().split("\n") if _HARNESS_FRAME not in line)


_SERVER_DIED = {"exit": None, "signal": int(signal.SIGKILL), "timed_out": False, "stdout": "", "stdout_bytes": 0,
                "stderr": "The sandbox was killed", "seconds": 0.0}


def _stderr_text(run: dict, stderr: bytes) -> str:
    """The kept stderr (head, then tail), with a marker where the middle was dropped."""
    text = stderr.decode("utf-8", "replace")
    if run["stderr_bytes"] > len(stderr):
        head = _Arena.STDERR_HEAD
        text = f"{stderr[:head].decode('utf-8', 'replace')}\n{TRUNCATED}\n{stderr[head:].decode('utf-8', 'replace')}"
    return text


def _call_reports(frames, n: int) -> list[dict]:
    """One report per call from the server's frames (one frame per test process). The result lines were
    written by the program's own process, so each is checked as untrusted input here."""
    reports: list[dict] = [{"verdict": "runtime_error", "error": "The test did not run"}] * n
    for run, (stderr, results) in frames:
        stderr_text = _without_harness(stderr.decode("utf-8", "replace"))
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
    how = f"exit code {run['exit']}" if run["signal"] is None else f"killed by {signal_name(run['signal'])}"
    message = f"The program ended the process ({how}) {when}"
    return {"verdict": "runtime_error", "error": f"{stderr}\n{message}" if stderr else message, "seconds": run["seconds"]}


def _load_failure(line, run: dict, stderr: str) -> dict:
    if isinstance(line, dict) and set(line) == {"syntax_error"} and isinstance(line["syntax_error"], str):
        return {"verdict": "syntax_error", "error": line["syntax_error"]}
    if isinstance(line, dict) and set(line) == {"load_error", "exception"} and isinstance(line["load_error"], str):
        verdict = "memory_limit" if line["exception"] == "MemoryError" else "runtime_error"
        return {"verdict": verdict, "error": line["load_error"][-ERROR_KEEP:]}
    # (A program could write this line itself, before its own load fails: it stays a failure, reward -1.)
    if isinstance(line, dict) and set(line) == {"judge_error"} and isinstance(line["judge_error"], str):
        return {"verdict": "judge_error", "error": line["judge_error"][-ERROR_KEEP:]}
    return _stopped_report(run, stderr, "before the tests ran")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:   # real-time signals have no name
        return f"signal {number}"


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
_SCRATCH_DIRS: list[str] = []     # what _clean_up empties after every test: /tmp, /dev/shm, /dev/mqueue
_WORKDIR = f"/tmp/{TMP_PREFIX}test"   # each test's directory, in namespaces (_new_workdir)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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
    _SCRATCH_DIRS.extend(d for d in ("/tmp", "/dev/shm", "/dev/mqueue") if os.path.isdir(d))
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
    global _OWN_PID_NS, _INIT_STACK, _INIT_CLONE
    _INIT_STACK = ctypes.create_string_buffer(1 << 16)   # the init's C stack: it never runs Python
    top = (ctypes.addressof(_INIT_STACK) + len(_INIT_STACK)) & ~0xF
    all_signals = ctypes.create_string_buffer(b"\xff" * 128)   # a sigset_t with every signal in it
    # clone()'s arguments, made once: the function the init runs, its stack, the flags, the function's argument.
    _INIT_CLONE = (ctypes.cast(_libc.sigsuspend, ctypes.c_void_p), ctypes.c_void_p(top),
                   CLONE_VM | CLONE_FILES | int(signal.SIGCHLD), all_signals)
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
BPF_LD_W_ABS, BPF_AND_K, BPF_JEQ_K, BPF_JGT_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x54, 0x15, 0x25, 0x35, 0x06   # classic BPF
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
    code += _bpf_search(_bpf_ranges(sorted(rules.items())))
    return b"".join(struct.pack("=HBBI", *insn) for insn in code)


def _bpf_ranges(rules: list[tuple[int, list]]) -> list[tuple[int, int, list]]:
    """(first, last, body): consecutive call numbers with the same body as one range (64-71 are SysV IPC's,
    425-433 io_uring's and the new mount API's). The kernel checks and compiles the filter at each test's
    installation, in time that grows with its length."""
    ranges: list[tuple[int, int, list]] = []
    for nr, body in rules:
        if ranges and ranges[-1][1] == nr - 1 and ranges[-1][2] == body:
            ranges[-1] = (ranges[-1][0], nr, body)
        else:
            ranges.append((nr, nr, body))
    return ranges


def _bpf_search(rules: list[tuple[int, int, list]]) -> list[tuple]:
    """Code that runs the rule whose range holds the call number in A (its body ends in a return), or allows
    the call. A binary search, not a list: installing a filter, the kernel runs it for every call number (to
    find the calls it may allow without running it again), so a short path makes each test's installation
    cheap."""
    if len(rules) <= 2:
        code = []
        for first, last, body in rules:
            if first == last:
                code += [(BPF_JEQ_K, 0, len(body), first)] + body
            else:   # first <= A <= last
                code += [(BPF_JGE_K, 0, len(body) + 1, first), (BPF_JGT_K, len(body), 0, last)] + body
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
    total, page = 0, _PAGE_SIZE
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
            room = len(target)
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
            if n < room:   # the pipe is empty for now: poll() says when there is more (no BlockingIOError)
                return True

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


def _new_workdir() -> str:
    """The test's own directory. In namespaces it is in the sandbox's /tmp, which is emptied after every test
    (_clean_up), so one name serves every test; outside them, a fresh name in our host directory."""
    if _NAMESPACED:
        try:
            os.mkdir(_WORKDIR, 0o700)
            return _WORKDIR
        except FileExistsError:   # something the last cleanup could not remove
            pass
    return tempfile.mkdtemp(prefix=TMP_PREFIX)


def _fork_test(child_main, request: dict, captures: dict, inputs: dict[int, int], cpu_limit: int,
               feeder: "_CallFeeder | None" = None) -> dict:
    """Fork one test process that runs ``child_main()`` with ``inputs`` ({child fd: our fd}) and the captures'
    pipes as stdout, stderr and fd 3 (results); supervise it; kill everything it left; clean up; report."""
    workdir = _new_workdir()
    # What we map now is the program's starting point, not its usage.
    vm_pages, rss_pages = map(int, _read_file("/proc/self/statm").split()[:2])
    page = _PAGE_SIZE
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
    """A stdin/stdout program, once on one input: one frame (run, stdout, stderr, results: a syntax error or a
    failed preamble)."""
    captures = _captures(arena)
    run = _fork_test(lambda: _program_child(request.get("preamble", "")), request, captures, {0: stdin, 5: code},
                     math.ceil(request["time_limit"]) + 1)
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
        run = _fork_test(lambda: _calls_child(request["entry_point"], n - first, request.get("preamble", "")),
                         request, captures, inputs, cpu_limit, feeder)
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
    if not _NAMESPACED:
        return _remove(workdir)
    # Sockets sent over a unix socket to themselves (SCM_RIGHTS) stay "in flight" after every process died,
    # holding what they carry (an abstract name, a file lock) until the kernel's unix garbage collector runs;
    # releasing a unix socket schedules it. Every process of the test is dead, so any unix socket left in our
    # network namespace is such a leftover: wait (up to a second) until the collector has taken them.
    for _ in range(200):
        if _read_file("/proc/net/unix").count(b"\n") <= 1:   # its header line only
            break
        for fd in socket.socketpair():
            fd.close()
        time.sleep(0.005)
    for scratch in _SCRATCH_DIRS:
        for name in os.listdir(scratch):
            if scratch + "/" + name not in _SCRATCH_KEEP:
                _remove(scratch + "/" + name)
    for kind, remove in _SYSV_IPC:
        try:
            lines = _read_file(f"/proc/sysvipc/{kind}").split(b"\n")[1:]
        except OSError:
            continue
        for ipc_id in [int(line.split()[1]) for line in lines if line.strip()]:
            remove(ipc_id, 0, None)   # IPC_RMID


_SYSV_IPC = (("msg", _libc.msgctl), ("sem", _libc.semctl), ("shm", _libc.shmctl))


def _read_file(path: str | int) -> bytes:
    """All of a file's bytes, read with no Python file object: the server reads a few /proc files per test, a
    test process its program (from an open descriptor, which this closes)."""
    fd, chunks = os.open(path, os.O_RDONLY) if isinstance(path, str) else path, []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


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
        return _fork(), None
    _c("unshare", CLONE_NEWPID)   # our next children enter it: the first one is its pid 1
    pid = init = None
    try:
        init = _start_test_init()
        pid = _fork()
    except BaseException:
        if init is not None:
            os.kill(init, signal.SIGKILL)
            os.waitpid(init, 0)
        raise
    finally:
        if pid != 0:   # the server: back to our own namespace, so that the next test may unshare again
            _c("setns", _OWN_PID_NS, CLONE_NEWPID)
    return pid, init


# glibc >= 2.34 (PyDLL: the GIL stays held). CPython 3.13 changed what its fork repairs (thread handles, the
# free-threaded build's allocator): there, os.fork.
_Fork = getattr(ctypes.PyDLL(None, use_errno=True), "_Fork", None) if sys.version_info < (3, 13) else None


def _fork() -> int:
    """os.fork() without its repairs for a process that had other threads. In the child, os.fork() re-creates
    the GIL and the import lock, then runs the at-fork hooks in Python (threading's bookkeeping, random's
    reseeding), and every page they write is copied (copy-on-write): about 50 page faults a test that nothing
    else in the test process needs, close to a tenth of its CPU. The server has one thread and holds no lock
    when it forks, so there is nothing to repair (the test process seeds random itself: _child). glibc's
    _Fork is fork() without the at-fork handlers, with its own per-thread state (the cached thread id) set
    right."""
    if _Fork is None or threading.active_count() != 1:
        return os.fork()
    pid = _Fork()
    if pid == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid


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
    # The init copies our signal dispositions when it is cloned. Ours are back to normal before the program is
    # forked; meanwhile a child of ours that ends would be reaped by the kernel (the last test's are all reaped).
    # (_signal's functions: signal.signal's enum conversions are Python code the server would run every test.)
    previous = _signal.signal(signal.SIGCHLD, _signal.SIG_IGN)
    try:
        pid = _libc.clone(*_INIT_CLONE)
    finally:
        _signal.signal(signal.SIGCHLD, previous)
    if pid == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def _child(child_main, workdir: str, fds: dict[int, int], cpu_limit: int, as_limit: int):
    """The forked test process: the tests' identity, its descriptors, limits, fresh stdio; then child_main().
    Never returns. (What is the same for every test was set once, in the server: _serve.)"""
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
        # As in a fresh interpreter. (_signal's own function: signal.signal's enum conversions would run code
        # that no earlier test ran, and copying the pages it touches costs each test about 50 page faults.)
        _signal.signal(signal.SIGINT, signal.default_int_handler)
        # Python's own stdio on a POSIX system: utf-8, "\n" newlines untranslated, block-buffered (not a tty).
        sys.stdin = sys.__stdin__ = io.open(0, "r", encoding="utf-8", newline="\n", closefd=False)
        sys.stdout = sys.__stdout__ = io.open(1, "w", encoding="utf-8", newline="\n", closefd=False)
        sys.stderr = sys.__stderr__ = io.open(2, "w", encoding="utf-8", errors="backslashreplace",
                                              newline="\n", closefd=False)
        faulthandler.enable()   # a segfault (deep recursion) prints where it happened
        if "random" in sys.modules:   # not the server's state: a fresh interpreter seeds from urandom (_fork
            sys.modules["random"].seed()   # skips the hook of os.fork() that would)
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
    source = _read_file(5)
    fd, written = os.open("solution.py", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), 0
    while written < len(source):   # tracebacks print the program's source lines from this file
        written += os.write(fd, source[written:])
    os.close(fd)
    try:
        return compile(source, "solution.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:   # ValueError: NUL bytes
        error = "".join(traceback.format_exception_only(type(e), e))
        os.write(3, json.dumps({"syntax_error": error}).encode() + b"\n")
        return None


def _run_preamble(preamble: str, namespace: dict) -> str | None:
    """Run the problem's preamble (the dataset's code: LiveCodeBench's harness runs its imports before every
    solution) in the program's namespace. It is compiled apart, as "<preamble>", so that tracebacks give
    solution.py's own line numbers. It runs before the program: its failure is the judge's (the problem's
    setup), returned as the error of a judge_error; None when it ran."""
    if not preamble:
        return None
    try:
        exec(compile(preamble, "<preamble>", "exec", dont_inherit=True), namespace)
    except BaseException as e:
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None   # drop the harness frame
        return "the problem's preamble failed, before the program ran:\n" + \
            "".join(traceback.format_exception(type(e), e, tb)).rstrip()
    return None


def _program_child(preamble: str) -> int:
    """Run a stdin/stdout program as a fresh interpreter would run solution.py, after the problem's preamble;
    return its exit status."""
    main, status = _new_main("__main__"), 1
    failed = _run_preamble(preamble, main.__dict__)
    if failed:
        os.write(3, json.dumps({"judge_error": failed}).encode() + b"\n")
        return 0
    compiled = _compile_solution()
    if compiled is None:
        return 0
    os.close(3)   # the results pipe is for function jobs; a program has only stdout to answer with
    try:
        exec(compiled, main.__dict__)
        status = 0
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as e:
        e.__traceback__ = e.__traceback__.tb_next   # drop this frame: the harness is not the program's
        sys.excepthook(type(e), e, e.__traceback__)
    try:
        threads = sys.modules.get("threading")
        # Wait for non-daemon threads, as interpreter exit does: when there may be any (or an exit function of
        # threading's own), since _shutdown is Python that no earlier test ran (~45 pages copied).
        if threads is not None and (threads.active_count() > 1 or threads._threading_atexits):
            threads._shutdown()
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


def _calls_child(entry_point: str, count: int, preamble: str) -> int:
    """Load a function problem's solution (as module `solution`, after the problem's preamble: its
    `if __name__ == "__main__"` part does not run), then, ``count`` times, read the next call's arguments from
    fd 4 (the server writes them only after the previous line) and write one line to fd 3: the result as plain
    data, or the exception. The expected values are not here: only arguments ever were, and only those of calls
    already begun."""
    results = open(3, "wb", buffering=0)

    def send(report: dict) -> None:
        results.write(json.dumps(report).encode() + b"\n")

    main = _new_main("solution")
    failed = _run_preamble(preamble, main.__dict__)
    if failed:
        send({"judge_error": failed})
        return 0
    compiled = _compile_solution()
    if compiled is None:
        return 0
    calls = open(4, "rb")
    try:
        exec(compiled, main.__dict__)
        function = _function_under_test(main.__dict__, entry_point)
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


def _function_under_test(namespace: dict, entry_point: str):
    """A module-level function, or "Class.method" (LeetCode's class Solution): that method of one instance."""
    owner, _, name = entry_point.rpartition(".")
    if not owner:
        return namespace[name] if name in namespace else _missing(name)
    return getattr((namespace[owner] if owner in namespace else _missing(owner))(), name)


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
_INIT_STACK = _INIT_CLONE = None   # the test init's stack and clone()'s arguments (_nested_pid_start)
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
    compile("", "<warm-up>", "exec")   # the first compile() in a process builds the AST's types: here, not per test
    # What every test process starts with, set here once and inherited (each test pays for what its own process
    # runs, in page faults): Python 3.10's ints, the paper's (printing 2**20000 is no error); one malloc arena
    # for all threads (glibc reserves 64 MiB of address space per thread's arena, which RLIMIT_AS counts); an
    # empty environment. (Not faulthandler: its signal handlers would be inherited by each test's init too,
    # which must have none, so that the kernel drops whatever a program sends it: _start_test_init.)
    sys.set_int_max_str_digits(0)
    _libc.mallopt(M_ARENA_MAX, 1)
    os.environ.clear()
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


if __name__ == "__main__":   # python -I infra/sandbox.py --serve [--plain DIR]: the server (ForkServer starts it)
    if sys.argv[1:2] != ["--serve"]:
        sys.exit("usage: python -I infra/sandbox.py --serve [--plain DIR]  (started by ForkServer, not by hand)")
    _serve(plain_tmp=sys.argv[3] if sys.argv[2:3] == ["--plain"] else None)
