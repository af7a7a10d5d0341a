"""Turn a benchmark's assert statements into tests the judge checks from outside the program.

HumanEval and MBPP check a solution with asserts such as `assert add(2, 3) == 5`. Running those asserts in the
same process as the model's code lets the code pass without solving anything (exit before they run, return an
object whose __eq__ is always true, read them from its own source). So the judge never runs them there: it calls
the function with the arguments and compares the returned plain data itself (execute.FunctionTest). This module
finds, for every assert, the call, the expected value and the comparison, by running the benchmark's test code
once here with the *reference* solution and recording each assert as it executes:

    assert f(ARGS) == EXPECTED          (either side; also !=)      compare "=="
    assert W(f(ARGS)) == EXPECTED       W: sorted, set, tuple, round(., 2), ... (execute.WRAPPERS)
    assert f(ARGS) is True / False / None                           compare "is"
    assert f(ARGS)  /  assert not f(ARGS)                           compare "truthy" / "falsy"
    assert abs(f(ARGS) - EXPECTED) < TOL                            compare "close"
    assert math.isclose(f(ARGS), EXPECTED, rel_tol=..., abs_tol=...)
    assertion(f(*inp), exp, atol)       (EvalPlus's MBPP+ scripts)  compare "==" within atol
    x = f(ARGS) ... assert P(x)         a property (HumanEval/32)   compare "predicate": P with its values inlined

ARGS and EXPECTED may be any expressions, in loops too: they are evaluated here, as the test code runs, and
stored as values (a loop over 100 random inputs becomes 100 tests; `random` is seeded, so conversion is
reproducible). An assert of another shape, or whose values are not plain data, is *outside*: it is left out
and counted, and the converters report the counts (data/README.md has them for HumanEval and MBPP).

The benchmark's test code and reference solution run in this process: convert only datasets you trust.
"""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass, field

from execute import WRAPPERS, FunctionTest, to_plain

_PACK = "__rlef_pack__"          # names the rewritten test code calls; nothing else in it uses them
_RECORD = "__rlef_record__"
_REMEMBER = "__rlef_remember__"
_FAILED = "__rlef_failed__"


@dataclass
class Converted:
    tests: list[tuple[str, FunctionTest]] = field(default_factory=list)   # (the assert as shown, its check)
    outside: list[str] = field(default_factory=list)      # asserts of another shape, left out (one per statement)
    no_call: list[str] = field(default_factory=list)      # asserts that do not call the function: nothing to test
    reference_failures: int = 0                           # recorded asserts the reference solution itself fails


def convert_asserts(script: str, entry_point: str, reference: str, callee_names=("candidate",),
                    shown: list[str] | None = None) -> Converted:
    """Run ``script`` (test code that calls ``entry_point`` or one of ``callee_names``) after ``reference`` and
    turn every assert it executes into a FunctionTest. ``shown``: the text to show for each top-level assert,
    in order (MBPP's own strings); otherwise the assert is unparsed, or written out from its values when it
    runs more than once (in a loop)."""
    callees = {entry_point, *callee_names}
    tree = ast.parse(script)
    rewriter = _Rewriter(callees)
    tree = ast.fix_missing_locations(rewriter.visit(tree))
    records: list[tuple[int, dict]] = []
    remembered: dict[str, tuple] = {}
    namespace: dict = {"__name__": "__rlef_tests__"}

    def record(k, arguments, expected=None, tolerance=None, values=None):
        """Evaluate this run's arguments and expected value now (loop variables change on the next run)."""
        try:
            found = {"arguments": arguments(), "expected": expected() if expected else None,
                     "tolerance": tolerance() if tolerance else None, "values": values}
        except Exception:   # e.g. the expected value raises: the assert cannot be a test
            found = None
        records.append((k, found))

    def remember(name, arguments):
        remembered[name] = arguments
        return arguments

    failures = []
    state = random.getstate()
    random.seed(0)
    try:
        exec(compile(reference, "<reference>", "exec"), namespace)
        namespace.update({_PACK: lambda *a, **k: copy.deepcopy((list(a), k)), _RECORD: record, _REMEMBER: remember,
                          "__rlef_remembered__": remembered, _FAILED: lambda: failures.append(1)})
        exec(compile(tree, "<tests>", "exec"), namespace)
    finally:
        random.setstate(state)
    # A property's helpers (HumanEval/32's poly) and modules come from the reference and the test's imports.
    setup = "\n".join([reference] + [ast.unparse(n) for n in ast.walk(ast.parse(script))
                                     if isinstance(n, (ast.Import, ast.ImportFrom))])
    out = Converted(reference_failures=len(failures))
    for node, shape in rewriter.asserts:
        if shape is None:   # `assert True, "..."` (HumanEval has 48) checks nothing: not a test, not outside
            (out.no_call if not _contains_callee(node, callees) else out.outside).append(_text(node, callees, entry_point))
    runs = [sum(1 for k, _ in records if k == i) for i in range(len(rewriter.asserts))]
    for k, values in records:
        node, shape = rewriter.asserts[k]
        test = _function_test(shape, values, setup)
        if test is None:
            out.outside.append(_text(node, callees, entry_point))
            continue
        if runs[k] == 1 and shown is not None and k < len(shown):
            text = shown[k]
        elif runs[k] == 1:
            text = _text(node, callees, entry_point)
        else:
            text = _written_out(entry_point, shape, test)
        out.tests.append((text, test))
    return out


# ---- Shapes

def _is_callee(node, callees) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in callees


def _contains_callee(node, callees) -> bool:
    return any(_is_callee(n, callees) for n in ast.walk(node))


def _unwrap(node, callees):
    """W1(W2(f(ARGS))) -> (the f call, [[W2, extras], [W1, extras]]), or None."""
    wraps = []
    while not _is_callee(node, callees):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WRAPPERS
                and node.args and not node.keywords):
            return None
        try:
            extras = [ast.literal_eval(a) for a in node.args[1:]]
        except ValueError:
            return None
        wraps.append([node.func.id, *extras])
        node = node.args[0]
    if any(_contains_callee(a, callees) for a in node.args + [k.value for k in node.keywords]):
        return None   # f(f(x)): the inner result would have to come from the program too
    return node, wraps[::-1]


def _classify(test, callees) -> dict | None:
    """What the assert's test checks, or None (outside)."""
    def side(node, other):   # node is W(f(ARGS)) and other does not involve f
        found = _unwrap(node, callees)
        return None if found is None or _contains_callee(other, callees) else found

    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        op, left, right = test.ops[0], test.left, test.comparators[0]
        if isinstance(op, (ast.Eq, ast.NotEq)):
            for a, b in ((left, right), (right, left)):
                if found := side(a, b):
                    return {"call": found[0], "wrap": found[1], "compare": "==" if isinstance(op, ast.Eq) else "!=",
                            "expected": b}
        if isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value in (True, False, None):
            if found := side(left, right):
                return {"call": found[0], "wrap": found[1], "compare": "is", "expected": right}
        if isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name) \
                and left.func.id == "abs" and len(left.args) == 1 and isinstance(left.args[0], ast.BinOp) \
                and isinstance(left.args[0].op, ast.Sub) and not _contains_callee(right, callees):
            diff = left.args[0]
            for a, b in ((diff.left, diff.right), (diff.right, diff.left)):
                if found := side(a, b):
                    return {"call": found[0], "wrap": found[1], "compare": "close", "expected": b, "tolerance": right,
                            "strict": isinstance(op, ast.Lt)}
    if isinstance(test, ast.Call) and ast.unparse(test.func) in ("math.isclose", "isclose") and len(test.args) == 2:
        tolerance = ast.Dict([ast.Constant(k.arg) for k in test.keywords], [k.value for k in test.keywords])
        for a, b in (test.args, test.args[::-1]):
            if (found := side(a, b)) and all(k.arg in ("rel_tol", "abs_tol") for k in test.keywords):
                return {"call": found[0], "wrap": found[1], "compare": "isclose", "expected": b, "tolerance": tolerance}
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and (found := _unwrap(test.operand, callees)):
        return {"call": found[0], "wrap": found[1], "compare": "falsy"}
    if found := _unwrap(test, callees):
        return {"call": found[0], "wrap": found[1], "compare": "truthy"}
    return None


class _Rewriter(ast.NodeTransformer):
    """Put a recording call before every assert whose shape is known; the assert itself stays and still runs
    (with the reference solution), so the test code behaves as before."""

    def __init__(self, callees):
        self.callees, self.asserts, self.bound = callees, [], set()   # bound: names assigned x = f(ARGS)

    def _recording(self, node, shape, extra=()):
        k = len(self.asserts)
        self.asserts.append((node, shape))
        if shape is None:
            return _counting_failures(node)
        call = shape["call"]
        pack = ast.Call(ast.Name(_PACK, ast.Load()), call.args, call.keywords)
        lam = lambda e: ast.Lambda(ast.arguments([], [], None, [], [], None, []), e)   # noqa: E731
        args = [ast.Constant(k), lam(pack)] + [lam(e) if e is not None else ast.Constant(None) for e in extra]
        return [ast.Expr(ast.Call(ast.Name(_RECORD, ast.Load()), args, [])), _counting_failures(node)]

    def visit_Assert(self, node):
        shape = _classify(node.test, self.callees)
        if shape is not None:
            if isinstance(node.msg, ast.Constant) and isinstance(node.msg.value, str):
                shape["message"] = node.msg.value   # shown as "AssertionError: <message>", as Python would
            return self._recording(node, shape, (shape.get("expected"), shape.get("tolerance")))
        return self._predicate(node) or self._recording(node, None)

    def visit_Expr(self, node):   # EvalPlus: assertion(f(*inp), exp, atol)
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "assertion" \
                and len(value.args) == 3 and (found := _unwrap(value.args[0], self.callees)):
            shape = {"call": found[0], "wrap": found[1], "compare": "==", "expected": value.args[1],
                     "tolerance": value.args[2], "atol": True}
            return self._recording(node, shape, (value.args[1], value.args[2]))
        return self.generic_visit(node)

    def visit_Assign(self, node):   # x = f(ARGS): remember the arguments, for a property asserted of x later
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and _is_callee(node.value, self.callees):
            name = node.targets[0].id
            self.bound.add(name)
            call = node.value
            pack = ast.Call(ast.Name(_PACK, ast.Load()), call.args, call.keywords)
            remember = ast.Expr(ast.Call(ast.Name(_REMEMBER, ast.Load()), [ast.Constant(name), pack], []))
            return [remember, node]
        return self.generic_visit(node)

    def _predicate(self, node):
        """assert P(x) where x = f(ARGS) earlier: record ARGS, and P's other names' values when it runs."""
        names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
        subjects = names & self.bound
        if len(subjects) != 1 or _contains_callee(node.test, self.callees):
            return None
        subject = subjects.pop()
        others = sorted(names - {subject})
        values = ast.Dict([ast.Constant(n) for n in others], [ast.Name(n, ast.Load()) for n in others])
        remembered = ast.Subscript(ast.Name("__rlef_remembered__", ast.Load()), ast.Constant(subject), ast.Load())
        shape = {"compare": "predicate", "subject": subject, "test": node.test}
        k = len(self.asserts)
        self.asserts.append((node, shape))
        lam = lambda e: ast.Lambda(ast.arguments([], [], None, [], [], None, []), e)   # noqa: E731
        record = ast.Call(ast.Name(_RECORD, ast.Load()), [ast.Constant(k), lam(remembered)],
                          [ast.keyword("values", values)])
        return [ast.Expr(record), _counting_failures(node)]


def _counting_failures(node):
    """try: <the original assert> except AssertionError: count it, so one failing assert stops nothing."""
    handler = ast.ExceptHandler(ast.Name("AssertionError", ast.Load()), None,
                                [ast.Expr(ast.Call(ast.Name(_FAILED, ast.Load()), [], []))])
    return ast.Try([node], [handler], [], [])


def _function_test(shape: dict, values: dict, setup: str) -> FunctionTest | None:
    """The FunctionTest for one recorded run of an assert, or None when its values are not plain data."""
    if values is None:
        return None
    try:
        args, kwargs = values["arguments"]
        to_plain(args), [to_plain(v) for v in kwargs.values()]
        if shape["compare"] == "predicate":
            return _predicate_test(shape, args, kwargs, values["values"], setup)
        expected, tolerance = values["expected"], values["tolerance"]
        to_plain(expected)
        test = FunctionTest(args=args, kwargs=kwargs, expected=expected, compare=shape["compare"], wrap=shape["wrap"],
                            message=shape.get("message"))
        if shape["compare"] == "close":
            test.abs_tol, test.strict = float(tolerance), shape["strict"]
        elif shape["compare"] == "isclose":
            test.rel_tol, test.abs_tol = tolerance.get("rel_tol", 1e-9), tolerance.get("abs_tol", 0.0)
        elif shape.get("atol") and tolerance:
            test.abs_tol = float(tolerance)
        return test
    except (TypeError, ValueError, RecursionError):
        return None


def _predicate_test(shape: dict, args, kwargs, values: dict, setup: str) -> FunctionTest:
    """The property as a lambda over the result, with the values of its other plain-data names written in;
    names bound to functions or modules (a helper such as poly, math) come from the setup: the reference."""
    class Inline(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id in values and _is_plain(values[node.id]):
                return ast.parse(repr(values[node.id]), mode="eval").body
            return node
    body = ast.unparse(Inline().visit(copy.deepcopy(shape["test"])))
    return FunctionTest(args=args, kwargs=kwargs, compare="predicate",
                        predicate=f"lambda {shape['subject']}: {body}", setup=setup)


def _is_plain(value) -> bool:
    try:
        to_plain(value)
        return ast.literal_eval(repr(value)) == value
    except (TypeError, ValueError, SyntaxError):
        return False


def _text(node, callees, entry_point) -> str:
    class Rename(ast.NodeTransformer):
        def visit_Name(self, n):
            return ast.Name(entry_point, n.ctx) if n.id in callees else n
    return ast.unparse(Rename().visit(copy.deepcopy(node)))


def _written_out(entry_point: str, shape: dict, test: FunctionTest) -> str:
    """An assert of a loop, written out with this run's values: `assert add(517, 23) == 540`."""
    arguments = [repr(a) for a in test.args] + [f"{k}={v!r}" for k, v in test.kwargs.items()]
    call = f"{entry_point}({', '.join(arguments)})"
    for name, *extras in test.wrap:
        call = f"{name}({', '.join([call] + [repr(e) for e in extras])})"
    if test.compare == "predicate":
        return f"{shape['subject']} = {call}\nassert {test.predicate.split(': ', 1)[1]}"
    if test.compare == "close":
        return f"assert abs({call} - {test.expected!r}) {'<' if test.strict else '<='} {test.abs_tol!r}"
    if test.compare == "isclose":
        return f"assert math.isclose({call}, {test.expected!r}, rel_tol={test.rel_tol!r}, abs_tol={test.abs_tol!r})"
    return {"truthy": f"assert {call}", "falsy": f"assert not {call}",
            "is": f"assert {call} is {test.expected!r}"}.get(test.compare, f"assert {call} {test.compare} {test.expected!r}")
