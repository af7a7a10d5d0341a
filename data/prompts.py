"""The paper's user prompts, one per problem kind (paper §2.1, App. C.4/C.5), beside the problem format.

The feedback messages that follow a failed response are written by the judge (execute.py), which sees the
test results; the first prompt and the text a response is prefilled with depend on the problem alone.
"""
from __future__ import annotations

from data import Problem
from execute import FORMAT_LINE


def initial_prompt(problem: Problem) -> str:
    """The first user message, verbatim from the paper (§2.1, App. C); no system prompt."""
    if problem.kind == "function":
        return function_prompt(problem)
    return ("Provide a Python solution for the following competitive programming question: "
            f"{problem.description}.\n{FORMAT_LINE}")


def function_prompt(problem: Problem) -> str:
    """HumanEval+ / MBPP+ prompts (App. C.4/C.5): a function to complete, checked by asserts."""
    if problem.prompt:   # HumanEval: the signature and docstring; the response is prefilled with them
        return f"Write a solution to the following problem and make sure that it passes the tests:\n{problem.prompt}"
    # MBPP+: App. C.5's template shows one test (${test}), the first public one, as EvalPlus's prompt does; the
    # other public tests still give feedback.
    test = problem.public_tests[0].input if problem.public_tests else ""
    return (f"Provide a Python solution for the following problem: {problem.description}\n"
            f"Your code should pass these tests:\n\n{test}\n\n{FORMAT_LINE}")


def prefill(problem: Problem) -> str:
    """Text every assistant response starts with, given rather than sampled (so never trained on)."""
    return f"```python\n{problem.prompt}" if problem.kind == "function" and problem.prompt else ""
