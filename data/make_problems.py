"""Writes data/problems.jsonl, the project's own small stdin/stdout problem set:  python -m data.make_problems

Each problem below is a statement, a reference Python 3 solution, a deliberately wrong solution (a plausible
bug: an off-by-one, a forgotten edge case) and the test *inputs*. The expected outputs are produced by running
the reference solution on those inputs, so a test can never disagree with the solution that defines it.
The script then checks, before writing anything, that
  - the reference solution exits cleanly with non-empty output on every input,
  - the wrong solution fails at least one test (so the tests have teeth), and
  - no expected output is empty (so a program that prints nothing fails every problem).
tests/test_data.py repeats these checks through execute.py, the judge the MDP really uses.

The statements follow CodeContests' layout (statement, Input, Output, Examples, Note) because that is what the
paper's prompt wraps; the examples are exactly the public tests, as in CodeContests.
Inputs are kept small so every test runs in a few milliseconds of Python: this set is for demos and tests.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from data import Problem, Test, save_problems
from execute import outputs_match

OUT = Path(__file__).with_name("problems.jsonl")
# Contest-style limits (set "for C++"); execute.py scales the time limit for Python.
TIME_LIMIT = 1.0
MEMORY_LIMIT = 256 * 1024 * 1024


@dataclass
class Spec:
    name: str
    difficulty: str  # "trivial", "easy" or "medium"
    statement: str
    input_format: str
    output_format: str
    solution: str
    wrong: str  # a plausible but wrong solution that the tests must reject
    public: list[str]  # 1-3 inputs, shown as the statement's examples
    private: list[str]  # 4+ inputs, edge cases first
    note: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # filled in by running `solution`


SPECS: list[Spec] = []


def problem(name, difficulty, statement, input_format, output_format, solution, wrong, public, private,
            note=""):
    def clean(s):
        return textwrap.dedent(s).strip("\n")

    def paragraphs(s):  # the statement and note are prose: undo the source's line wrapping
        return "\n\n".join(" ".join(p.split()) for p in clean(s).strip().split("\n\n"))

    SPECS.append(Spec(name, difficulty, paragraphs(statement), clean(input_format).strip(),
                      clean(output_format).strip(), clean(solution) + "\n", clean(wrong) + "\n",
                      list(public), list(private), paragraphs(note)))


def rng(name: str) -> random.Random:
    # One generator per problem, seeded by its name: editing one problem never changes another's tests.
    return random.Random(name)


def lines(*rows) -> str:
    """An input file from rows; a row that is a list is written space-separated."""
    return "".join((" ".join(map(str, r)) if isinstance(r, (list, tuple)) else str(r)) + "\n" for r in rows)


# ============================================================================================================
# Trivial
# ============================================================================================================

problem(
    "echo_integer", "trivial",
    "You are given an integer n. Print it.",
    "The only line contains one integer n (-10^18 ≤ n ≤ 10^18).",
    "Print n.",
    """
    print(int(input()))
    """,
    """
    n = int(input())
    print(abs(n))
    """,
    public=[lines(42)],
    private=[lines(0), lines(-7), lines(10**18), lines(-(10**18)), lines(123456789)],
)

problem(
    "sum_of_two", "trivial",
    "Given two integers a and b, print their sum a + b.",
    "The only line contains two integers a and b (-10^18 ≤ a, b ≤ 10^18).",
    "Print one integer: a + b.",
    """
    a, b = map(int, input().split())
    print(a + b)
    """,
    # Floats lose precision above 2^53: exactly the judge's big-integer case.
    """
    a, b = map(float, input().split())
    print(int(a + b))
    """,
    public=[lines([1, 2]), lines([-5, 3])],
    private=[lines([0, 0]), lines([10**18, 10**18]), lines([-(10**18), 1]), lines([999999999999999999, 1]),
             lines([123456789012345678, 876543210987654321])],
)

problem(
    "maximum_of_three", "trivial",
    "Print the largest of three given integers.",
    "The only line contains three integers a, b and c (-10^9 ≤ a, b, c ≤ 10^9).",
    "Print the largest of a, b and c.",
    """
    print(max(map(int, input().split())))
    """,
    # Compares a with b only, so it forgets c whenever a > b.
    """
    a, b, c = map(int, input().split())
    print(a if a > b else (b if b > c else c))
    """,
    public=[lines([1, 5, 3])],
    private=[lines([2, 1, 3]), lines([7, 7, 2]), lines([-1, -2, -3]), lines([4, 4, 4]), lines([0, -1000000000, 1000000000]),
             lines([9, 9, 1])],
)

problem(
    "even_or_odd", "trivial",
    "Tell whether an integer is even or odd.",
    "The only line contains one integer n (-10^9 ≤ n ≤ 10^9).",
    "Print EVEN if n is even and ODD otherwise.",
    """
    n = int(input())
    print("EVEN" if n % 2 == 0 else "ODD")
    """,
    # C-style remainder: -3 % 2 is -1 in C, so the test "== 1" misses negative odd numbers.
    """
    import math
    n = int(input())
    print("ODD" if math.fmod(n, 2) == 1 else "EVEN")
    """,
    public=[lines(4), lines(7)],
    private=[lines(0), lines(-3), lines(-8), lines(1), lines(999999999)],
)

problem(
    "reverse_string", "trivial",
    "You are given a string s. Print it reversed.",
    "The only line contains the string s (1 ≤ |s| ≤ 1000), consisting of lowercase Latin letters.",
    "Print s written backwards.",
    """
    print(input().strip()[::-1])
    """,
    """
    s = input().strip()
    print(s[-1:0:-1])
    """,
    public=[lines("hello")],
    private=[lines("a"), lines("ab"), lines("racecar"), lines("abcdefghijklmnopqrstuvwxyz"),
             lines("".join(rng("reverse_string").choice("xyz") for _ in range(1000)))],
)

problem(
    "count_vowels", "trivial",
    "Count the vowels in a word. The vowels are a, e, i, o, u and y.",
    "The only line contains a word w (1 ≤ |w| ≤ 100) of lowercase Latin letters.",
    "Print the number of vowels in w.",
    """
    print(sum(c in "aeiouy" for c in input().strip()))
    """,
    """
    print(sum(c in "aeiou" for c in input().strip()))
    """,
    public=[lines("programming")],
    private=[lines("rhythm"), lines("bcd"), lines("aeiouy"), lines("y"), lines("queueing")],
    note="In the example the vowels are o, a and i.",
)

problem(
    "sum_of_list", "trivial",
    "You are given n integers. Print their sum.",
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print the sum of all a_i.",
    """
    n = int(input())
    print(sum(map(int, input().split())))
    """,
    """
    n = int(input())
    a = list(map(int, input().split()))
    print(sum(a[1:]))
    """,
    public=[lines(3, [1, 2, 3])],
    private=[lines(1, [-5]), lines(2, [10**9, 10**9]), lines(4, [-1, 1, -1, 1]),
             lines(1000, [rng("sum_of_list").randint(-10**9, 10**9) for _ in range(1000)])],
)

problem(
    "min_and_max", "trivial",
    "You are given n integers. Print the smallest and the largest of them.",
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print two integers separated by a space: the minimum and the maximum.",
    """
    n = int(input())
    a = list(map(int, input().split()))
    print(min(a), max(a))
    """,
    # Starting the running maximum at 0 breaks when every number is negative.
    """
    n = int(input())
    a = list(map(int, input().split()))
    lo, hi = a[0], 0
    for x in a:
        lo, hi = min(lo, x), max(hi, x)
    print(lo, hi)
    """,
    public=[lines(5, [3, 1, 4, 1, 5])],
    private=[lines(1, [7]), lines(3, [-3, -1, -2]), lines(2, [0, 0]),
             lines(100, [rng("min_and_max").randint(-10**9, 10**9) for _ in range(100)])],
)

# ============================================================================================================
# Easy
# ============================================================================================================

problem(
    "fizzbuzz", "easy",
    """
    For every integer i from 1 to n print one line: Fizz if i is divisible by 3, Buzz if it is divisible
    by 5, FizzBuzz if it is divisible by both, and the number i itself otherwise.
    """,
    "The only line contains one integer n (1 ≤ n ≤ 100).",
    "Print n lines as described.",
    """
    n = int(input())
    for i in range(1, n + 1):
        print("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else i)
    """,
    """
    n = int(input())
    for i in range(1, n + 1):
        print("Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else "FizzBuzz" if i % 15 == 0 else i)
    """,
    public=[lines(5)],
    private=[lines(1), lines(3), lines(15), lines(100)],
)

problem(
    "leap_year", "easy",
    """
    A year is a leap year if it is divisible by 4, except years divisible by 100, which are leap years only
    if they are also divisible by 400. Tell whether the given year is a leap year.
    """,
    "The only line contains one integer y (1 ≤ y ≤ 10^9).",
    "Print YES if y is a leap year and NO otherwise.",
    """
    y = int(input())
    print("YES" if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else "NO")
    """,
    """
    y = int(input())
    print("YES" if y % 4 == 0 else "NO")
    """,
    public=[lines(2024), lines(2023)],
    private=[lines(1900), lines(2000), lines(4), lines(1), lines(2100), lines(1600)],
)

problem(
    "gcd_and_lcm", "easy",
    "Given two positive integers a and b, print their greatest common divisor and least common multiple.",
    "The only line contains two integers a and b (1 ≤ a, b ≤ 10^12).",
    "Print two integers: gcd(a, b) and lcm(a, b).",
    """
    from math import gcd
    a, b = map(int, input().split())
    g = gcd(a, b)
    print(g, a // g * b)
    """,
    """
    from math import gcd
    a, b = map(int, input().split())
    print(gcd(a, b), a * b)
    """,
    public=[lines([12, 18])],
    private=[lines([1, 1]), lines([7, 13]), lines([10**12, 10**12]), lines([6, 4]), lines([999999999989, 2])],
)

problem(
    "is_prime", "easy",
    "Answer t questions: is the given number prime?",
    """
    The first line contains one integer t (1 ≤ t ≤ 10).
    Each of the next t lines contains one integer n (1 ≤ n ≤ 10^9).
    """,
    "For each n print YES if it is prime and NO otherwise, one answer per line.",
    """
    def is_prime(n):
        if n < 2:
            return False
        i = 2
        while i * i <= n:
            if n % i == 0:
                return False
            i += 1
        return True

    for _ in range(int(input())):
        print("YES" if is_prime(int(input())) else "NO")
    """,
    """
    def is_prime(n):
        i = 2
        while i * i <= n:
            if n % i == 0:
                return False
            i += 1
        return True

    for _ in range(int(input())):
        print("YES" if is_prime(int(input())) else "NO")
    """,
    public=[lines(3, 2, 9, 13)],
    private=[lines(1, 1), lines(2, 4, 25), lines(3, 999999937, 1000000000, 3),
             lines(4, 49, 97, 121, 2147483647 % 1000000000)],
    note="1 is not prime.",
)

problem(
    "count_primes", "easy",
    "Count the prime numbers that are less than or equal to n.",
    "The only line contains one integer n (1 ≤ n ≤ 10^5).",
    "Print the number of primes p with p ≤ n.",
    """
    n = int(input())
    sieve = [True] * (n + 1)
    sieve[0] = False
    if n >= 1:
        sieve[1] = False
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = [False] * len(range(i * i, n + 1, i))
    print(sum(sieve))
    """,
    # Counts primes strictly below n.
    """
    n = int(input())
    sieve = [True] * n
    for i in range(2, n):
        if sieve[i]:
            for j in range(i * i, n, i):
                sieve[j] = False
    print(sum(sieve[2:]))
    """,
    public=[lines(10)],
    private=[lines(1), lines(2), lines(3), lines(97), lines(100000)],
)

problem(
    "palindrome", "easy",
    "Tell whether a string reads the same forwards and backwards.",
    "The only line contains a string s (1 ≤ |s| ≤ 1000) of lowercase Latin letters.",
    "Print YES if s is a palindrome and NO otherwise.",
    """
    s = input().strip()
    print("YES" if s == s[::-1] else "NO")
    """,
    # Only compares the first and the last letter.
    """
    s = input().strip()
    print("YES" if s[0] == s[-1] else "NO")
    """,
    public=[lines("level"), lines("hello")],
    private=[lines("a"), lines("ab"), lines("abca"), lines("abba"), lines("abcdba")],
)

problem(
    "most_frequent_word", "easy",
    """
    You are given a text of n words. Find the word that occurs most often. If several words occur equally
    often, print the lexicographically smallest of them.
    """,
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    The second line contains n words separated by single spaces; each word has 1 to 10 lowercase Latin letters.
    """,
    "Print the most frequent word and the number of its occurrences, separated by a space.",
    """
    from collections import Counter
    n = int(input())
    counts = Counter(input().split())
    word = min(counts, key=lambda w: (-counts[w], w))
    print(word, counts[word])
    """,
    # most_common breaks ties by first appearance, not alphabetically.
    """
    from collections import Counter
    n = int(input())
    word, count = Counter(input().split()).most_common(1)[0]
    print(word, count)
    """,
    public=[lines(6, "the cat and the dog and".split())],
    private=[lines(1, ["zebra"]), lines(3, ["b", "a", "c"]), lines(4, "dog cat cat dog".split()),
             lines(5, "x y x y z".split()),
             lines(300, [rng("most_frequent_word").choice(["red", "green", "blue", "cyan"]) for _ in range(300)])],
)

problem(
    "caesar_cipher", "easy",
    """
    Encrypt a message with the Caesar cipher: every lowercase letter is replaced by the letter k positions
    further in the alphabet, wrapping around from z to a. Spaces are kept as they are.
    """,
    """
    The first line contains one integer k (0 ≤ k ≤ 1000).
    The second line contains the message: 1 to 1000 lowercase Latin letters and spaces; it does not start or
    end with a space.
    """,
    "Print the encrypted message.",
    """
    k = int(input())
    s = input()
    print("".join(c if c == " " else chr((ord(c) - 97 + k) % 26 + 97) for c in s))
    """,
    # Forgets to wrap k itself: only correct when the shift never passes z.
    """
    k = int(input())
    s = input()
    print("".join(c if c == " " else chr(ord(c) + k) for c in s))
    """,
    public=[lines(3, "hello world")],
    private=[lines(1, "xyz"), lines(0, "abc"), lines(26, "same text"), lines(1000, "the quick brown fox"),
             lines(25, "a")],
)

problem(
    "digit_sum", "easy",
    "Print the sum of the decimal digits of a (possibly very long) non-negative integer.",
    "The only line contains an integer n with 1 to 1000 digits, without leading zeros (n may be 0).",
    "Print the sum of the digits of n.",
    """
    print(sum(int(c) for c in input().strip()))
    """,
    # Reads the digits through a float, which keeps only about 17 of them.
    """
    n = float(input())
    total = 0
    for c in "%d" % n:
        total += int(c)
    print(total)
    """,
    public=[lines(12345)],
    private=[lines(0), lines(9), lines("9" * 1000), lines("1" + "0" * 999),
             lines("".join(rng("digit_sum").choice("123456789") for _ in range(500)))],
)

problem(
    "second_largest", "easy",
    "Find the second largest distinct value among n integers.",
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print the second largest distinct value, or NONE if all the numbers are equal.",
    """
    n = int(input())
    values = sorted(set(map(int, input().split())))
    print(values[-2] if len(values) >= 2 else "NONE")
    """,
    # Forgets that the largest value may occur more than once.
    """
    n = int(input())
    values = sorted(map(int, input().split()))
    print(values[-2] if len(values) >= 2 else "NONE")
    """,
    public=[lines(4, [3, 1, 4, 2]), lines(3, [5, 5, 5])],
    private=[lines(1, [7]), lines(4, [9, 9, 8, 1]), lines(2, [-1, -2]), lines(5, [2, 2, 2, 2, 3]),
             lines(50, [rng("second_largest").randint(-100, 100) for _ in range(50)])],
)

problem(
    "range_sum_queries", "easy",
    """
    You are given an array a of n integers and q queries. For each query (l, r) print a_l + a_(l+1) + ... + a_r.
    The array is indexed from 1.
    """,
    """
    The first line contains two integers n and q (1 ≤ n, q ≤ 10^4).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    Each of the next q lines contains two integers l and r (1 ≤ l ≤ r ≤ n).
    """,
    "For each query print the sum on its own line.",
    """
    import sys
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    prefix = [0]
    for x in data[2:2 + n]:
        prefix.append(prefix[-1] + int(x))
    out = []
    for i in range(q):
        l, r = int(data[2 + n + 2 * i]), int(data[3 + n + 2 * i])
        out.append(prefix[r] - prefix[l - 1])
    print("\\n".join(map(str, out)))
    """,
    # Off by one: drops a_l from every sum.
    """
    import sys
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    prefix = [0]
    for x in data[2:2 + n]:
        prefix.append(prefix[-1] + int(x))
    for i in range(q):
        l, r = int(data[2 + n + 2 * i]), int(data[3 + n + 2 * i])
        print(prefix[r] - prefix[l])
    """,
    public=[lines([5, 3], [1, 2, 3, 4, 5], [1, 5], [2, 3], [4, 4])],
    private=[lines([1, 1], [-7], [1, 1]), lines([3, 2], [10**9, 10**9, 10**9], [1, 3], [2, 2]),
             lines([4, 2], [1, -1, 1, -1], [1, 4], [2, 3])]
    + [(lambda r: lines([200, 200], [r.randint(-10**9, 10**9) for _ in range(200)],
                        *[sorted((r.randint(1, 200), r.randint(1, 200))) for _ in range(200)]))(
        rng("range_sum_queries"))],
)

problem(
    "count_at_most", "easy",
    """
    You are given a sorted array of n integers and q queries. For each query x print how many elements of the
    array are less than or equal to x.
    """,
    """
    The first line contains two integers n and q (1 ≤ n, q ≤ 10^5).
    The second line contains n integers in non-decreasing order (-10^9 ≤ a_i ≤ 10^9).
    The third line contains q integers x_1, ..., x_q (-10^9 ≤ x_j ≤ 10^9).
    """,
    "Print q integers separated by spaces: the answers to the queries.",
    """
    import sys
    from bisect import bisect_right
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    a = list(map(int, data[2:2 + n]))
    print(" ".join(str(bisect_right(a, int(x))) for x in data[2 + n:2 + n + q]))
    """,
    # bisect_left counts elements strictly less than x: wrong whenever x occurs in the array.
    """
    import sys
    from bisect import bisect_left
    data = sys.stdin.read().split()
    n, q = int(data[0]), int(data[1])
    a = list(map(int, data[2:2 + n]))
    print(" ".join(str(bisect_left(a, int(x))) for x in data[2 + n:2 + n + q]))
    """,
    public=[lines([5, 3], [1, 3, 5, 7, 9], [0, 4, 10])],
    private=[lines([1, 2], [5], [5, 4]), lines([4, 3], [2, 2, 2, 2], [1, 2, 3]),
             lines([3, 2], [-10**9, 0, 10**9], [-10**9, 10**9])]
    + [(lambda r: lines([1000, 500], sorted(r.randint(-50, 50) for _ in range(1000)),
                        [r.randint(-60, 60) for _ in range(500)]))(rng("count_at_most"))],
)

problem(
    "balanced_brackets", "easy",
    """
    A bracket sequence consisting of the characters ( ) [ ] { } is balanced if every opening bracket is closed
    by a bracket of the same type and the pairs are properly nested. Tell whether the given sequence is balanced.
    """,
    "The only line contains a string s (1 ≤ |s| ≤ 10^5) of the characters ( ) [ ] { }.",
    "Print YES if s is balanced and NO otherwise.",
    """
    s = input().strip()
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    ok = True
    for c in s:
        if c in pairs:
            if not stack or stack.pop() != pairs[c]:
                ok = False
                break
        else:
            stack.append(c)
    print("YES" if ok and not stack else "NO")
    """,
    # Counting opening and closing brackets ignores both order and type.
    """
    s = input().strip()
    opened = sum(c in "([{" for c in s)
    print("YES" if 2 * opened == len(s) else "NO")
    """,
    public=[lines("([]{})"), lines("(]")],
    private=[lines("("), lines(")("), lines("([)]"), lines("{[()()]}"), lines("(" * 5000 + ")" * 5000),
             lines("()" * 10 + ")")],
)

problem(
    "sort_by_age", "easy",
    """
    You are given a list of people with their ages. Print them sorted by age from oldest to youngest; people of
    the same age are printed in alphabetical order of their names.
    """,
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    Each of the next n lines contains a name (1 to 10 lowercase Latin letters) and an age (0 ≤ age ≤ 150),
    separated by a space. All names are different.
    """,
    "Print n lines, each with a name and an age, in the required order.",
    """
    n = int(input())
    people = [input().split() for _ in range(n)]
    people.sort(key=lambda p: (-int(p[1]), p[0]))
    for name, age in people:
        print(name, age)
    """,
    # Sorts ages as strings: "9" > "10".
    """
    n = int(input())
    people = [input().split() for _ in range(n)]
    people.sort(key=lambda p: p[0])
    people.sort(key=lambda p: p[1], reverse=True)
    for name, age in people:
        print(name, age)
    """,
    public=[lines(3, ["bob", 25], ["alice", 30], ["carol", 25])],
    private=[lines(1, ["zoe", 0]), lines(2, ["ann", 9], ["ben", 10]), lines(3, ["c", 5], ["b", 5], ["a", 5]),
             lines(4, ["old", 150], ["young", 1], ["mid", 75], ["baby", 0])]
    + [(lambda r: lines(60, *[["p" + "".join(r.choice("abcdefgh") for _ in range(6)) + str(i), r.randint(0, 150)]
                              for i in range(60)]))(rng("sort_by_age"))],
)

problem(
    "rotate_matrix", "easy",
    "Rotate an n × m matrix of integers by 90 degrees clockwise.",
    """
    The first line contains two integers n and m (1 ≤ n, m ≤ 100).
    Each of the next n lines contains m integers (0 ≤ value ≤ 10^9): the rows of the matrix.
    """,
    "Print the rotated matrix: m lines of n integers each.",
    """
    n, m = map(int, input().split())
    a = [input().split() for _ in range(n)]
    for j in range(m):
        print(" ".join(a[i][j] for i in range(n - 1, -1, -1)))
    """,
    # Transposes instead of rotating (the rows come out in the wrong order).
    """
    n, m = map(int, input().split())
    a = [input().split() for _ in range(n)]
    for j in range(m):
        print(" ".join(a[i][j] for i in range(n)))
    """,
    public=[lines([2, 3], [1, 2, 3], [4, 5, 6])],
    private=[lines([1, 1], [7]), lines([1, 4], [1, 2, 3, 4]), lines([3, 1], [1], [2], [3]),
             lines([3, 3], [1, 2, 3], [4, 5, 6], [7, 8, 9])],
)

problem(
    "run_length_encoding", "easy",
    """
    Compress a string with run-length encoding: every maximal block of equal consecutive letters is written as
    the letter followed by the length of the block. For example, aaabcc becomes a3b1c2.
    """,
    "The only line contains a string s (1 ≤ |s| ≤ 10^4) of lowercase Latin letters.",
    "Print the encoded string.",
    """
    s = input().strip()
    out = []
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(s[i] + str(j - i))
        i = j
    print("".join(out))
    """,
    # Forgets to write the last block.
    """
    s = input().strip()
    out = []
    count = 1
    for i in range(1, len(s)):
        if s[i] == s[i - 1]:
            count += 1
        else:
            out.append(s[i - 1] + str(count))
            count = 1
    print("".join(out))
    """,
    public=[lines("aaabcc")],
    private=[lines("a"), lines("abc"), lines("z" * 10000), lines("aabbaa"), lines("abbbbbbbbbbbbc")],
)

problem(
    "anagrams", "easy",
    "Tell whether two words are anagrams, that is, whether one is a rearrangement of the letters of the other.",
    "The two lines contain the words s and t (1 ≤ |s|, |t| ≤ 1000), of lowercase Latin letters.",
    "Print YES if s and t are anagrams and NO otherwise.",
    """
    s, t = input().strip(), input().strip()
    print("YES" if sorted(s) == sorted(t) else "NO")
    """,
    # Compares the sets of letters, so repeated letters are not counted.
    """
    s, t = input().strip(), input().strip()
    print("YES" if set(s) == set(t) else "NO")
    """,
    public=[lines("listen", "silent"), lines("apple", "paper")],
    private=[lines("a", "a"), lines("aab", "abb"), lines("abc", "abcd"), lines("night", "thing"),
             lines("aaab", "abbb")],
)

problem(
    "fibonacci_mod", "easy",
    """
    The Fibonacci numbers are F_0 = 0, F_1 = 1 and F_i = F_(i-1) + F_(i-2) for i ≥ 2. Print F_n modulo
    1 000 000 007.
    """,
    "The only line contains one integer n (0 ≤ n ≤ 10^5).",
    "Print F_n mod 1000000007.",
    """
    n = int(input())
    a, b = 0, 1
    for _ in range(n):
        a, b = b, (a + b) % 1000000007
    print(a)
    """,
    # Forgets the modulus.
    """
    n = int(input())
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    print(a % 1000000009)
    """,
    public=[lines(10)],
    private=[lines(0), lines(1), lines(2), lines(50), lines(100000)],
)

problem(
    "average", "easy",
    "Print the arithmetic mean of n integers.",
    """
    The first line contains one integer n (1 ≤ n ≤ 1000).
    The second line contains n integers a_1, ..., a_n (-10^6 ≤ a_i ≤ 10^6).
    """,
    """
    Print the mean. Your answer is accepted if its absolute or relative error does not exceed 10^-6.
    """,
    """
    n = int(input())
    a = list(map(int, input().split()))
    print("%.9f" % (sum(a) / n))
    """,
    # Integer division rounds the mean down.
    """
    n = int(input())
    a = list(map(int, input().split()))
    print(sum(a) // n)
    """,
    public=[lines(4, [1, 2, 3, 4])],
    private=[lines(1, [-5]), lines(3, [1, 1, 2]), lines(2, [-1, -2]), lines(3, [10**6, 10**6, -(10**6)]),
             lines(7, [rng("average").randint(-10**6, 10**6) for _ in range(7)])],
)

problem(
    "to_binary", "easy",
    "Write a non-negative integer in binary.",
    "The only line contains one integer n (0 ≤ n ≤ 10^18).",
    "Print n in base 2, without leading zeros (0 is printed as 0).",
    """
    n = int(input())
    print(bin(n)[2:])
    """,
    # The loop never runs for n = 0 and prints an empty line.
    """
    n = int(input())
    digits = ""
    while n > 0:
        digits = str(n % 2) + digits
        n //= 2
    print(digits)
    """,
    public=[lines(10)],
    private=[lines(0), lines(1), lines(255), lines(256), lines(10**18)],
)

# ============================================================================================================
# Medium
# ============================================================================================================

problem(
    "maximum_subarray", "medium",
    "Find the largest sum of a non-empty contiguous subarray of the given array.",
    """
    The first line contains one integer n (1 ≤ n ≤ 10^5).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print the largest subarray sum.",
    """
    n = int(input())
    best = current = None
    for x in map(int, input().split()):
        current = x if current is None or current < 0 else current + x
        best = current if best is None else max(best, current)
    print(best)
    """,
    # Starting the best sum at 0 allows the empty subarray: wrong when every number is negative.
    """
    n = int(input())
    best = current = 0
    for x in map(int, input().split()):
        current = max(0, current + x)
        best = max(best, current)
    print(best)
    """,
    public=[lines(9, [-2, 1, -3, 4, -1, 2, 1, -5, 4])],
    private=[lines(1, [-7]), lines(3, [-3, -1, -2]), lines(1, [5]), lines(4, [10**9] * 4),
             lines(1000, [rng("maximum_subarray").randint(-100, 90) for _ in range(1000)])],
)

problem(
    "grid_shortest_path", "medium",
    """
    A maze is an n × m grid of cells. A cell is free (.), a wall (#), the start (S) or the target (T). In one
    step you can move to a free side-adjacent cell (up, down, left or right). Find the minimum number of steps
    from S to T.
    """,
    """
    The first line contains two integers n and m (1 ≤ n, m ≤ 100).
    Each of the next n lines contains m characters. There is exactly one S and exactly one T.
    """,
    "Print the minimum number of steps, or -1 if T cannot be reached.",
    """
    from collections import deque
    n, m = map(int, input().split())
    grid = [input() for _ in range(n)]
    start = next((i, j) for i in range(n) for j in range(m) if grid[i][j] == "S")
    dist = {start: 0}
    queue = deque([start])
    answer = -1
    while queue:
        i, j = queue.popleft()
        if grid[i][j] == "T":
            answer = dist[(i, j)]
            break
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a, b = i + di, j + dj
            if 0 <= a < n and 0 <= b < m and grid[a][b] != "#" and (a, b) not in dist:
                dist[(a, b)] = dist[(i, j)] + 1
                queue.append((a, b))
    print(answer)
    """,
    # Also moves diagonally.
    """
    from collections import deque
    n, m = map(int, input().split())
    grid = [input() for _ in range(n)]
    start = next((i, j) for i in range(n) for j in range(m) if grid[i][j] == "S")
    dist = {start: 0}
    queue = deque([start])
    answer = -1
    while queue:
        i, j = queue.popleft()
        if grid[i][j] == "T":
            answer = dist[(i, j)]
            break
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                a, b = i + di, j + dj
                if 0 <= a < n and 0 <= b < m and grid[a][b] != "#" and (a, b) not in dist:
                    dist[(a, b)] = dist[(i, j)] + 1
                    queue.append((a, b))
    print(answer)
    """,
    public=[lines([3, 4], "S..#", ".#..", "...T"), lines([2, 2], "S#", "#T")],
    private=[lines([1, 2], "ST"), lines([1, 5], "S.#.T"), lines([3, 3], "S..", "##.", "T.."),
             lines([5, 5], "S....", "####.", ".....", ".####", "....T"),
             lines([2, 2], "S.", ".T")]
    + [(lambda r: lines([30, 30], *["".join("S" if (i, j) == (0, 0) else "T" if (i, j) == (29, 29)
                                            else "#" if r.random() < 0.25 else "." for j in range(30))
                                    for i in range(30)]))(rng("grid_shortest_path"))],
)

problem(
    "count_islands", "medium",
    """
    A map is an n × m grid of land (#) and water (.) cells. An island is a maximal group of land cells connected
    through shared sides (cells touching only at a corner are not connected). Count the islands.
    """,
    """
    The first line contains two integers n and m (1 ≤ n, m ≤ 100).
    Each of the next n lines contains m characters # or .
    """,
    "Print the number of islands.",
    """
    n, m = map(int, input().split())
    grid = [list(input()) for _ in range(n)]
    islands = 0
    for si in range(n):
        for sj in range(m):
            if grid[si][sj] != "#":
                continue
            islands += 1
            grid[si][sj] = "."
            stack = [(si, sj)]
            while stack:
                i, j = stack.pop()
                for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                    if 0 <= a < n and 0 <= b < m and grid[a][b] == "#":
                        grid[a][b] = "."
                        stack.append((a, b))
    print(islands)
    """,
    # Connects diagonal neighbours too.
    """
    n, m = map(int, input().split())
    grid = [list(input()) for _ in range(n)]
    islands = 0
    for si in range(n):
        for sj in range(m):
            if grid[si][sj] != "#":
                continue
            islands += 1
            grid[si][sj] = "."
            stack = [(si, sj)]
            while stack:
                i, j = stack.pop()
                for a in (i - 1, i, i + 1):
                    for b in (j - 1, j, j + 1):
                        if 0 <= a < n and 0 <= b < m and grid[a][b] == "#":
                            grid[a][b] = "."
                            stack.append((a, b))
    print(islands)
    """,
    public=[lines([4, 5], "##..#", "#...#", "..#..", ".....")],
    private=[lines([1, 1], "."), lines([1, 1], "#"), lines([2, 2], "#.", ".#"), lines([3, 3], "###", "#.#", "###"),
             lines([3, 5], "#.#.#", ".#.#.", "#.#.#")]
    + [(lambda r: lines([40, 40], *["".join("#" if r.random() < 0.4 else "." for _ in range(40))
                                    for _ in range(40)]))(rng("count_islands"))],
)

problem(
    "minimum_coins", "medium",
    """
    There are coins of k different values, with an unlimited supply of each. Find the minimum number of coins
    whose values add up to exactly s.
    """,
    """
    The first line contains two integers k and s (1 ≤ k ≤ 100, 0 ≤ s ≤ 10^4).
    The second line contains k distinct integers c_1, ..., c_k (1 ≤ c_i ≤ 10^4): the coin values.
    """,
    "Print the minimum number of coins, or -1 if the sum s cannot be paid exactly.",
    """
    k, s = map(int, input().split())
    coins = list(map(int, input().split()))
    INF = float("inf")
    best = [0] + [INF] * s
    for total in range(1, s + 1):
        for c in coins:
            if c <= total and best[total - c] + 1 < best[total]:
                best[total] = best[total - c] + 1
    print(best[s] if best[s] != INF else -1)
    """,
    # Greedy: always take the largest coin that fits. Right for 1, 2, 5, wrong for 1, 3, 4 and s = 6.
    """
    k, s = map(int, input().split())
    coins = sorted(map(int, input().split()), reverse=True)
    count = 0
    for c in coins:
        count += s // c
        s %= c
    print(count if s == 0 else -1)
    """,
    public=[lines([3, 11], [1, 2, 5])],
    private=[lines([3, 6], [1, 3, 4]), lines([1, 3], [2]), lines([2, 0], [5, 7]), lines([2, 7], [2, 5]),
             lines([4, 9999], [7, 13, 29, 101]), lines([1, 10000], [1])],
)

problem(
    "longest_increasing_subsequence", "medium",
    """
    Find the length of the longest strictly increasing subsequence of the given sequence. A subsequence is
    obtained by deleting some (possibly zero) elements without changing the order of the rest.
    """,
    """
    The first line contains one integer n (1 ≤ n ≤ 10^4).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print the length of the longest strictly increasing subsequence.",
    """
    from bisect import bisect_left
    n = int(input())
    tails = []  # tails[k] = the smallest possible last element of an increasing subsequence of length k + 1
    for x in map(int, input().split()):
        k = bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
    print(len(tails))
    """,
    # bisect_right computes the longest non-decreasing subsequence instead.
    """
    from bisect import bisect_right
    n = int(input())
    tails = []
    for x in map(int, input().split()):
        k = bisect_right(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
    print(len(tails))
    """,
    public=[lines(8, [10, 9, 2, 5, 3, 7, 101, 18])],
    private=[lines(1, [5]), lines(4, [2, 2, 2, 2]), lines(5, [5, 4, 3, 2, 1]), lines(6, [1, 2, 2, 3, 3, 4]),
             lines(2000, [rng("longest_increasing_subsequence").randint(-1000, 1000) for _ in range(2000)])],
)

problem(
    "knapsack", "medium",
    """
    There are n items; item i has weight w_i and value v_i. Choose a set of items with total weight at most W
    and the largest possible total value. Each item can be taken at most once.
    """,
    """
    The first line contains two integers n and W (1 ≤ n ≤ 100, 0 ≤ W ≤ 1000).
    Each of the next n lines contains two integers w_i and v_i (1 ≤ w_i ≤ 1000, 0 ≤ v_i ≤ 10^9).
    """,
    "Print the largest total value.",
    """
    n, W = map(int, input().split())
    best = [0] * (W + 1)  # best[c] = the largest value with total weight at most c
    for _ in range(n):
        w, v = map(int, input().split())
        for c in range(W, w - 1, -1):  # downwards, so each item is used at most once
            best[c] = max(best[c], best[c - w] + v)
    print(best[W])
    """,
    # Iterating capacities upwards lets an item be taken several times.
    """
    n, W = map(int, input().split())
    best = [0] * (W + 1)
    for _ in range(n):
        w, v = map(int, input().split())
        for c in range(w, W + 1):
            best[c] = max(best[c], best[c - w] + v)
    print(best[W])
    """,
    public=[lines([3, 5], [2, 3], [3, 4], [4, 5])],
    private=[lines([1, 0], [1, 10]), lines([1, 10], [3, 7]), lines([2, 4], [5, 100], [4, 1]),
             lines([3, 50], [10, 60], [20, 100], [30, 120])]
    + [(lambda r: lines([60, 1000], *[[r.randint(1, 200), r.randint(0, 10**9)] for _ in range(60)]))(
        rng("knapsack"))],
)

problem(
    "edit_distance", "medium",
    """
    The edit distance between two strings is the minimum number of single-character insertions, deletions and
    substitutions that turn one string into the other. Compute it.
    """,
    "The two lines contain the strings s and t (0 ≤ |s|, |t| ≤ 500), of lowercase Latin letters.",
    "Print the edit distance between s and t.",
    """
    s = input().strip()
    t = input().strip()
    prev = list(range(len(t) + 1))
    for i in range(1, len(s) + 1):
        cur = [i] + [0] * len(t)
        for j in range(1, len(t) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] != t[j - 1]))
        prev = cur
    print(prev[len(t)])
    """,
    # Forgets that the first row and column start at i and j (the cost of deleting a prefix).
    """
    s = input().strip()
    t = input().strip()
    prev = [0] * (len(t) + 1)
    for i in range(1, len(s) + 1):
        cur = [0] * (len(t) + 1)
        for j in range(1, len(t) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] != t[j - 1]))
        prev = cur
    print(prev[len(t)])
    """,
    public=[lines("kitten", "sitting")],
    private=[lines("", "abc"), lines("abc", ""), lines("same", "same"), lines("ab", "ba"),
             lines("intention", "execution")]
    + [(lambda r: lines("".join(r.choice("ab") for _ in range(300)), "".join(r.choice("ab") for _ in range(280))))(
        rng("edit_distance"))],
)

problem(
    "pairs_with_sum", "medium",
    "Count the pairs of indices i < j with a_i + a_j = k.",
    """
    The first line contains two integers n and k (1 ≤ n ≤ 10^5, -2·10^9 ≤ k ≤ 2·10^9).
    The second line contains n integers a_1, ..., a_n (-10^9 ≤ a_i ≤ 10^9).
    """,
    "Print the number of pairs.",
    """
    from collections import Counter
    n, k = map(int, input().split())
    seen = Counter()
    pairs = 0
    for x in map(int, input().split()):
        pairs += seen[k - x]
        seen[x] += 1
    print(pairs)
    """,
    # Counts the pairs of distinct values, so duplicates are counted once.
    """
    n, k = map(int, input().split())
    values = set(map(int, input().split()))
    print(sum(1 for x in values if k - x in values and x < k - x))
    """,
    public=[lines([5, 6], [1, 5, 7, -1, 5])],
    private=[lines([1, 2], [1]), lines([4, 4], [2, 2, 2, 2]), lines([3, 0], [0, 0, 1]),
             lines([2, 2 * 10**9], [10**9, 10**9]),
             lines([2000, 10], [rng("pairs_with_sum").randint(0, 10) for _ in range(2000)])],
)

problem(
    "merge_intervals", "medium",
    """
    You are given n closed intervals [l_i, r_i] on a line. Merge all intervals that overlap or touch (share an
    end point) and print the resulting intervals in increasing order.
    """,
    """
    The first line contains one integer n (1 ≤ n ≤ 10^4).
    Each of the next n lines contains two integers l_i and r_i (0 ≤ l_i ≤ r_i ≤ 10^9).
    """,
    "Print the number of merged intervals, then each merged interval on its own line as two integers.",
    """
    n = int(input())
    intervals = sorted(tuple(map(int, input().split())) for _ in range(n))
    merged = []
    for l, r in intervals:
        if merged and l <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], r)
        else:
            merged.append([l, r])
    print(len(merged))
    for l, r in merged:
        print(l, r)
    """,
    # Extends the last interval with r even when r is inside it.
    """
    n = int(input())
    intervals = sorted(tuple(map(int, input().split())) for _ in range(n))
    merged = []
    for l, r in intervals:
        if merged and l <= merged[-1][1]:
            merged[-1][1] = r
        else:
            merged.append([l, r])
    print(len(merged))
    for l, r in merged:
        print(l, r)
    """,
    public=[lines(4, [1, 3], [2, 6], [8, 10], [15, 18])],
    private=[lines(1, [5, 5]), lines(2, [1, 4], [4, 5]), lines(2, [1, 10], [2, 3]), lines(3, [7, 8], [1, 2], [4, 5]),
             lines(3, [0, 1000000000], [5, 6], [0, 0])]
    + [(lambda r: lines(300, *[(lambda a: [a, a + r.randint(0, 30)])(r.randint(0, 3000)) for _ in range(300)]))(
        rng("merge_intervals"))],
)

problem(
    "course_order", "medium",
    """
    There are n courses numbered from 1 to n and m requirements "course a must be taken before course b". Find
    an order in which all courses can be taken. If there are several, print the lexicographically smallest one
    (the one with the smallest first course, then the smallest second course, and so on).
    """,
    """
    The first line contains two integers n and m (1 ≤ n ≤ 10^4, 0 ≤ m ≤ 10^4).
    Each of the next m lines contains two integers a and b (1 ≤ a, b ≤ n, a ≠ b).
    """,
    "Print the n course numbers in the required order, separated by spaces, or IMPOSSIBLE if no order exists.",
    """
    import heapq
    import sys
    data = sys.stdin.read().split()
    n, m = int(data[0]), int(data[1])
    after = [[] for _ in range(n + 1)]
    indegree = [0] * (n + 1)
    for i in range(m):
        a, b = int(data[2 + 2 * i]), int(data[3 + 2 * i])
        after[a].append(b)
        indegree[b] += 1
    ready = [v for v in range(1, n + 1) if indegree[v] == 0]
    heapq.heapify(ready)  # a min-heap, so the smallest available course is always taken first
    order = []
    while ready:
        v = heapq.heappop(ready)
        order.append(v)
        for w in after[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                heapq.heappush(ready, w)
    print(" ".join(map(str, order)) if len(order) == n else "IMPOSSIBLE")
    """,
    # A plain FIFO queue gives a valid order, but not the smallest one.
    """
    import sys
    from collections import deque
    data = sys.stdin.read().split()
    n, m = int(data[0]), int(data[1])
    after = [[] for _ in range(n + 1)]
    indegree = [0] * (n + 1)
    for i in range(m):
        a, b = int(data[2 + 2 * i]), int(data[3 + 2 * i])
        after[a].append(b)
        indegree[b] += 1
    ready = deque(v for v in range(1, n + 1) if indegree[v] == 0)
    order = []
    while ready:
        v = ready.popleft()
        order.append(v)
        for w in after[v]:
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    print(" ".join(map(str, order)) if len(order) == n else "IMPOSSIBLE")
    """,
    public=[lines([4, 3], [1, 2], [1, 3], [3, 4]), lines([2, 2], [1, 2], [2, 1])],
    private=[lines([1, 0]), lines([3, 0]), lines([3, 2], [3, 1], [1, 2]), lines([3, 3], [1, 2], [2, 3], [3, 1]),
             lines([5, 3], [5, 1], [4, 1], [3, 2]), lines([4, 2], [1, 4], [2, 3])],
)

problem(
    "shortest_path_weighted", "medium",
    """
    A country has n cities connected by m two-way roads; road i connects cities u_i and v_i and has length w_i.
    Find the length of the shortest route from city 1 to city n.
    """,
    """
    The first line contains two integers n and m (2 ≤ n ≤ 10^4, 0 ≤ m ≤ 2·10^4).
    Each of the next m lines contains three integers u_i, v_i and w_i (1 ≤ u_i, v_i ≤ n, 1 ≤ w_i ≤ 10^9).
    There may be several roads between two cities and roads from a city to itself.
    """,
    "Print the length of the shortest route, or -1 if city n cannot be reached from city 1.",
    """
    import heapq
    import sys
    data = sys.stdin.read().split()
    n, m = int(data[0]), int(data[1])
    roads = [[] for _ in range(n + 1)]
    for i in range(m):
        u, v, w = int(data[2 + 3 * i]), int(data[3 + 3 * i]), int(data[4 + 3 * i])
        roads[u].append((v, w))
        roads[v].append((u, w))
    dist = [None] * (n + 1)
    heap = [(0, 1)]
    while heap:
        d, u = heapq.heappop(heap)
        if dist[u] is not None:
            continue
        dist[u] = d
        for v, w in roads[u]:
            if dist[v] is None:
                heapq.heappush(heap, (d + w, v))
    print(dist[n] if dist[n] is not None else -1)
    """,
    # Breadth-first search counts roads, not their lengths.
    """
    import sys
    from collections import deque
    data = sys.stdin.read().split()
    n, m = int(data[0]), int(data[1])
    roads = [[] for _ in range(n + 1)]
    for i in range(m):
        u, v, w = int(data[2 + 3 * i]), int(data[3 + 3 * i]), int(data[4 + 3 * i])
        roads[u].append((v, w))
        roads[v].append((u, w))
    dist = [None] * (n + 1)
    dist[1] = 0
    queue = deque([1])
    while queue:
        u = queue.popleft()
        for v, w in roads[u]:
            if dist[v] is None:
                dist[v] = dist[u] + w
                queue.append(v)
    print(dist[n] if dist[n] is not None else -1)
    """,
    public=[lines([4, 4], [1, 2, 1], [2, 4, 1], [1, 3, 5], [3, 4, 1])],
    private=[lines([2, 0]), lines([2, 1], [1, 2, 1000000000]), lines([3, 3], [1, 3, 10], [1, 2, 2], [2, 3, 3]),
             lines([3, 2], [1, 1, 5], [2, 3, 1]), lines([2, 3], [1, 2, 7], [2, 1, 3], [1, 2, 5])]
    + [(lambda r: lines([200, 600], *[[r.randint(1, 200), r.randint(1, 200), r.randint(1, 1000)]
                                      for _ in range(600)]))(rng("shortest_path_weighted"))],
)

problem(
    "binary_search_answer", "medium",
    """
    A printing office has n machines; machine i prints one page every t_i seconds, and all machines work at the
    same time. Find the minimum number of seconds needed to print at least p pages.
    """,
    """
    The first line contains two integers n and p (1 ≤ n ≤ 10^5, 1 ≤ p ≤ 10^9).
    The second line contains n integers t_1, ..., t_n (1 ≤ t_i ≤ 10^9).
    """,
    "Print the minimum number of seconds.",
    """
    n, p = map(int, input().split())
    t = list(map(int, input().split()))
    lo, hi = 0, min(t) * p  # the fastest machine alone prints p pages in min(t) * p seconds
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(mid // x for x in t) >= p:
            hi = mid
        else:
            lo = mid + 1
    print(lo)
    """,
    # Divides the work as if machines could print fractions of a page.
    """
    n, p = map(int, input().split())
    t = list(map(int, input().split()))
    rate = sum(1 / x for x in t)
    print(int(p / rate + 0.999999))
    """,
    public=[lines([2, 5], [2, 3])],
    private=[lines([1, 1], [1]), lines([1, 10**9], [10**9]), lines([3, 7], [3, 3, 3]), lines([2, 3], [2, 5]),
             lines([3, 10], [1, 100, 100])],
    note="In the example the machines print pages at seconds 2, 3, 4, 6 and 6, so 6 seconds are enough.",
)

problem(
    "palindromic_substrings", "medium",
    """
    Given a string s, count how many of its substrings are palindromes. Substrings at different positions are
    counted separately even if they are equal.
    """,
    "The only line contains a string s (1 ≤ |s| ≤ 2000) of lowercase Latin letters.",
    "Print the number of palindromic substrings of s.",
    """
    s = input().strip()
    n = len(s)
    count = 0
    for center in range(2 * n - 1):  # centers on letters (even) and between letters (odd)
        l, r = center // 2, center // 2 + center % 2
        while l >= 0 and r < n and s[l] == s[r]:
            count += 1
            l -= 1
            r += 1
    print(count)
    """,
    # Only expands around letters, missing the even-length palindromes.
    """
    s = input().strip()
    n = len(s)
    count = 0
    for c in range(n):
        l, r = c, c
        while l >= 0 and r < n and s[l] == s[r]:
            count += 1
            l -= 1
            r += 1
    print(count)
    """,
    public=[lines("aaa"), lines("abc")],
    private=[lines("a"), lines("ab"), lines("abba"), lines("z" * 500),
             lines("".join(rng("palindromic_substrings").choice("ab") for _ in range(1000)))],
    note="In the first example the palindromes are a, a, a, aa, aa and aaa.",
)


# ============================================================================================================
# Building the file
# ============================================================================================================

def run(code: str, stdin: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout


def check_and_fill(spec: Spec) -> None:
    if not spec.public or len(spec.public) > 3 or len(spec.private) < 4:
        raise SystemExit(f"{spec.name}: needs 1-3 public and 4+ private inputs")
    inputs = spec.public + spec.private
    if len(set(inputs)) != len(inputs):
        raise SystemExit(f"{spec.name}: duplicate test inputs")
    for stdin in inputs:
        rc, out = run(spec.solution, stdin)
        if rc != 0 or not out.strip():
            raise SystemExit(f"{spec.name}: reference solution failed (exit {rc}) on input {stdin[:80]!r}")
        spec.outputs[stdin] = out
    if all(outputs_match(spec.outputs[stdin], run(spec.wrong, stdin)[1]) for stdin in inputs):   # the judge's rule
        raise SystemExit(f"{spec.name}: the wrong solution passes every test; add a test that catches it")


def description(spec: Spec) -> str:
    parts = [spec.statement, "Input", spec.input_format, "Output", spec.output_format,
             "Example" if len(spec.public) == 1 else "Examples"]
    for stdin in spec.public:
        parts += ["Input", stdin.rstrip("\n"), "Output", spec.outputs[stdin].rstrip("\n")]
    if spec.note:
        parts += ["Note", spec.note]
    return "\n\n".join(parts) + "\n"


def to_problem(spec: Spec) -> Problem:
    return Problem(
        name=spec.name,
        description=description(spec),
        public_tests=[Test(i, spec.outputs[i]) for i in spec.public],
        private_tests=[Test(i, spec.outputs[i]) for i in spec.private],
        time_limit=TIME_LIMIT,
        memory_limit=MEMORY_LIMIT,
        solutions=[spec.solution],
        source="rlef-reference",
        difficulty=spec.difficulty,
    )


def main() -> None:
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()   # --help, before writing anything
    names = [s.name for s in SPECS]
    assert len(set(names)) == len(names), "problem names must be unique"
    with ThreadPoolExecutor(max_workers=4) as pool:  # each check runs subprocesses; threads just wait on them
        list(pool.map(check_and_fill, SPECS))
    n = save_problems((to_problem(s) for s in SPECS), OUT)
    print(f"wrote {n} problems to {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
