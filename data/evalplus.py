"""Convert EvalPlus's released HumanEval+ and MBPP+ files to the project's problem format ("function" problems).

    python -m data.evalplus HumanEvalPlus.jsonl.gz --out data/humanevalplus.jsonl
    python -m data.evalplus MbppPlus.jsonl.gz --out data/mbppplus.jsonl

The files (github.com/evalplus/humanevalplus_release and mbppplus_release) hold, per task: task_id, prompt,
entry_point, canonical_solution, base_input and plus_input (lists of argument lists) and atol. They hold no
expected outputs: EvalPlus computes them by running the canonical solution. So does this converter, in the
judge's sandbox (execute.Sandbox), never in this process: each expected value is what prompt +
canonical_solution returned there, as plain data. The paper's reading (Table 2): the base tests give the
feedback, the plus tests score, so

  public_tests    one test per base input: the original HumanEval / MBPP tests
  private_tests   one test per plus input (the final judgement runs public + private, as EvalPlus's "plus")
  HumanEval+      description = prompt = the task's prompt (signature + docstring; responses are prefilled)
  MBPP+           description = the prompt's text without its example assert; no prefill (App. C.5's template
                  shows the first public test)
  solutions       [prompt + canonical_solution]

A test compares with == (floats within atol where the task gives one, else EvalPlus's 1e-6), except where
EvalPlus has a special oracle: HumanEval/32 (find_zero: |poly(xs, x)| <= atol), Mbpp/164 (any value), Mbpp/295
(the value or 0) and the three MBPP+ tasks judged on "returns something" (check_str, text_match_three,
text_starta_endb: truthy / falsy here). Inputs where the canonical solution itself fails are left out and counted.
"""

from __future__ import annotations

import argparse
import queue
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from data import Problem, Test, run_converter, save_problems
from data.humaneval import read_jsonl
from execute import DEFAULT_MEMORY_LIMIT, DEFAULT_TIME_LIMIT, FunctionTest, Sandbox, from_plain

FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
CALLS_PER_JOB = 100          # calls per sandbox job: one job's results must stay under the sandbox's 4 MiB
NOT_NONE_TASKS = ("check_str", "text_match_three", "text_starta_endb")   # MBPP+: judged on "returns something"


# ---- MBPP+ inputs: JSON has no tuple, set or complex, so EvalPlus restores them per task (data/mbpp.py there)

def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


_MBPP_INPUT_TYPES = {   # task number -> how one argument list is restored
    **dict.fromkeys((2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726,
                     740, 744, 809), lambda inp: [tuple(a) for a in inp]),
    **dict.fromkeys((63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
                    lambda inp: [[tuple(x) for x in a] for a in inp]),
    **dict.fromkeys((75, 413, 444, 753), lambda inp: [[tuple(x) for x in inp[0]], inp[1]]),
    **dict.fromkeys((106, 750), lambda inp: [inp[0], tuple(inp[1])]),
    115: lambda inp: [[set(x) if isinstance(x, list) and x else {} for x in inp[0]]],
    124: lambda inp: [float(inp[0]), complex(inp[1])],
    **dict.fromkeys((250, 405, 446, 617, 720, 763, 808), lambda inp: [tuple(inp[0]), inp[1]]),
    **dict.fromkeys((259, 401, 445), lambda inp: [tuple(tuple(x) for x in a) for a in inp]),
    278: lambda inp: [tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])],
    307: lambda inp: [tuple(inp[0]), inp[1], inp[2]],
    722: lambda inp: [{k: tuple(v) for k, v in inp[0].items()}, *inp[1:]],
    252: lambda inp: [complex(inp[0])],
    **dict.fromkeys((580, 615, 791), lambda inp: list(_tuples(inp))),
}


def restore_inputs(task_id: str, inputs: list) -> list:
    """Argument lists as the functions expect them (tuples, sets, complex numbers where JSON has lists, strings)."""
    if not task_id.startswith("Mbpp/"):
        return inputs
    restore = _MBPP_INPUT_TYPES.get(int(task_id.split("/")[-1]))
    return [restore(inp) for inp in inputs] if restore else inputs


# ---- Expected values: the canonical solution, run in the sandbox

def reference_reports(jobs: list[tuple[str, str, list]], workers: int) -> list[list[dict]]:
    """For each (code, entry_point, argument lists): the sandbox's raw report of each call, in order."""
    servers = queue.SimpleQueue()
    started = [Sandbox() for _ in range(workers)]
    for server in started:
        servers.put(server)

    def run(job):
        code, entry_point, inputs = job
        server, reports = servers.get(), []
        try:
            for i in range(0, len(inputs), CALLS_PER_JOB):
                calls = [(list(args), {}) for args in inputs[i:i + CALLS_PER_JOB]]
                chunk = server.run_calls(code, entry_point, calls, DEFAULT_TIME_LIMIT, DEFAULT_MEMORY_LIMIT)
                reports += chunk or [{"verdict": "judge_error"}] * len(calls)
            return reports
        finally:
            servers.put(server)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, jobs))
    finally:
        for server in started:
            server.close()


# ---- One task

def _check(task: dict, args: list, report: dict, atol: float) -> FunctionTest | None:
    """The test of one input, from the canonical solution's report; None where that solution failed."""
    name = task["entry_point"]
    if name in NOT_NONE_TASKS and task["task_id"].startswith("Mbpp/") and "not_plain" in report:
        return FunctionTest(args=args, compare="truthy" if report["truth"] else "falsy")
    if "value" not in report:
        return None
    expected = from_plain(report["value"])
    if task["task_id"] == "HumanEval/32":   # any zero of the polynomial will do
        poly = f"sum(c * math.pow(x, i) for i, c in enumerate({args[0]!r}))"
        return FunctionTest(args=args, compare="predicate", predicate=f"lambda x: abs({poly}) <= {atol or 1e-6!r}",
                            setup="import math")
    if task["task_id"].startswith("Mbpp/") and name in NOT_NONE_TASKS:
        return FunctionTest(args=args, compare="truthy" if expected is not None else "falsy")
    if task["task_id"] == "Mbpp/164":
        return FunctionTest(args=args, compare="predicate", predicate="lambda r: True")
    if task["task_id"] == "Mbpp/295":
        return FunctionTest(args=args, compare="predicate", predicate=f"lambda r: r == {expected!r} or r == 0")
    test = FunctionTest(args=args, expected=expected)
    if atol:
        test.abs_tol = float(atol)
    return test


def shown(entry_point: str, test: FunctionTest) -> str:
    """The assert as the model sees it (in the prompt and the feedback)."""
    call = f"{entry_point}({', '.join(map(repr, test.args))})"
    if test.compare == "predicate":
        return f"assert ({test.predicate})({call})"
    return {"truthy": f"assert {call}", "falsy": f"assert not {call}"}.get(test.compare,
                                                                         f"assert {call} == {test.expected!r}")


def mbpp_description(prompt: str) -> str:
    """MBPP+'s prompt is a docstring: the task's text, then one example assert (shown here as a public test)."""
    lines = [line for line in prompt.strip().strip('"').strip().splitlines() if not line.startswith("assert ")]
    return "\n".join(lines).strip()


def to_problem(task: dict, reports: list[dict], counts: Counter) -> Problem:
    """One EvalPlus task; ``reports``: the canonical solution's reports on base_input + plus_input, in order."""
    inputs = restore_inputs(task["task_id"], task["base_input"]) + restore_inputs(task["task_id"], task["plus_input"])
    tests = []
    for args, report in zip(inputs, reports):
        check = _check(task, list(args), report, task["atol"])
        counts.update(tests=check is not None, reference_failures=check is None)
        tests.append(None if check is None else Test(shown(task["entry_point"], check), None, check))
    n_base = len(task["base_input"])
    public, private = [t for t in tests[:n_base] if t], [t for t in tests[n_base:] if t]
    if not public:
        raise ValueError(f"{task['task_id']}: the canonical solution fails on every base input; check the file")
    humaneval = task["task_id"].startswith("HumanEval/")
    return Problem(name=task["task_id"], description=task["prompt"] if humaneval else mbpp_description(task["prompt"]),
                   public_tests=public, private_tests=private,
                   solutions=[task["prompt"] + task["canonical_solution"]], kind="function",
                   prompt=task["prompt"] if humaneval else "", entry_point=task["entry_point"],
                   source="humaneval+" if humaneval else "mbpp+")


def convert(tasks: list[dict], workers: int, counts: Counter) -> list[Problem]:
    for task in tasks:
        missing = [f for f in FIELDS if f not in task]
        if missing:
            raise ValueError(f"{task.get('task_id', 'a task')}: no field(s) {', '.join(missing)}; this converter "
                             f"reads EvalPlus's HumanEvalPlus/MbppPlus JSONL (fields {', '.join(FIELDS)})")
    jobs = [(t["prompt"] + t["canonical_solution"], t["entry_point"],
             restore_inputs(t["task_id"], t["base_input"]) + restore_inputs(t["task_id"], t["plus_input"]))
            for t in tasks]
    return [to_problem(t, r, counts) for t, r in zip(tasks, reference_reports(jobs, workers))]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="HumanEvalPlus.jsonl(.gz) or MbppPlus.jsonl(.gz) from EvalPlus")
    ap.add_argument("--out", required=True, help="output file, e.g. data/humanevalplus.jsonl")
    ap.add_argument("--workers", type=int, default=4, help="sandboxes running the canonical solutions "
                                                            "(default: %(default)s)")
    args = ap.parse_args(argv)
    counts = Counter()
    problems = convert(read_jsonl(args.path), args.workers, counts)
    save_problems(problems, args.out)
    print(f"wrote {len(problems)} problems ({sum(len(p.public_tests) for p in problems)} base tests, public; "
          f"{sum(len(p.private_tests) for p in problems)} plus tests, private) from {args.path} to {args.out}; "
          f"inputs left out because the canonical solution fails on them: {counts['reference_failures']}")


if __name__ == "__main__":
    run_converter(main)
