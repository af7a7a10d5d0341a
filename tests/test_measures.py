"""infra/measures.py: n@k against the walk it estimates, played out over every order; bootstrap intervals and
rollout noise against the truth of synthetic problems."""
import itertools
import math
import random

import numpy as np
import pytest

from infra.measures import (Final, bootstrap_interval, final_at_turn_limit, multi_turn_measures, n_at_k, pass_at_k,
                            rollout_noise, rollouts_needed)


def walk(order, n, k, turn_limit) -> bool:
    """The reading of n@k, played literally on one order of rollouts (infra/measures.py's docstring)."""
    spent, submitted = 0, []
    for f in order:
        cost = f.responses if f.passed_public else turn_limit
        if spent + cost > k:
            break                                  # the budget runs out inside this rollout: nothing more
        spent += cost
        if f.passed_public and len(submitted) < n:
            submitted.append(f)
    return any(f.solved for f in submitted)


def brute_force(finals, n, k, turn_limit) -> float:
    orders = list(itertools.permutations(finals))
    return sum(walk(o, n, k, turn_limit) for o in orders) / len(orders)


WIN1, WIN3 = Final(1, True, True), Final(3, True, True)      # solved at the first / third response
MISS1, MISS2 = Final(1, True, False), Final(2, True, False)  # passed the public tests only
FAIL, CUT = Final(3, False, False), Final(2, False, False)    # turn limit reached / context outgrown


@pytest.mark.parametrize("finals,n,k", [
    ([WIN1, FAIL, MISS2, FAIL, WIN3], 1, 3), ([WIN1, FAIL, MISS2, FAIL, WIN3], 2, 6),
    ([WIN3, FAIL, FAIL, MISS1, MISS1, CUT], 1, 5), ([WIN3, FAIL, FAIL, MISS1, MISS1, CUT], 2, 7),
    ([WIN3, MISS1, MISS2, FAIL], 3, 9), ([FAIL, FAIL, FAIL], 1, 3), ([WIN1], 4, 2), ([MISS1, WIN3, CUT], 1, 2)])
def test_n_at_k_equals_the_walk_over_every_order_of_hand_made_rollouts(finals, n, k):
    assert n_at_k(finals, n, k, turn_limit=3) == pytest.approx(brute_force(finals, n, k, 3), abs=1e-12)


def test_n_at_k_equals_the_walk_over_every_order_of_random_rollouts():
    rng = random.Random(0)
    for _ in range(60):
        turn_limit = rng.randint(1, 4)
        finals = []
        for _ in range(rng.randint(1, 6)):
            passed = rng.random() < 0.5
            responses = rng.randint(1, turn_limit) if passed or rng.random() < 0.2 else turn_limit
            finals.append(Final(responses, passed, passed and rng.random() < 0.5))
        n, k = rng.randint(1, 3), rng.randint(1, 12)
        assert n_at_k(finals, n, k, turn_limit) == pytest.approx(brute_force(finals, n, k, turn_limit), abs=1e-12)


def test_single_turn_n_at_k_with_n_equal_to_k_is_pass_at_k():
    """Every sample one response and all k submitted: any correct among k samples, Chen et al.'s pass@k."""
    finals = [Final(1, True, True)] * 3 + [Final(1, True, False)] * 4 + [Final(1, False, False)] * 5
    for k in (1, 2, 5, 9):
        assert n_at_k(finals, k, k, turn_limit=1) == pytest.approx(pass_at_k(12, 3, k), abs=1e-12)


def test_n_at_k_of_200_rollouts_is_the_walk_within_sampling_error():
    """At the paper's scale (10@100 from 200 rollouts), where every order cannot be played: 20,000 random
    orders agree to within their own sampling error (4 standard errors)."""
    rng = random.Random(1)
    finals = [rng.choice([WIN1, WIN3, MISS1, MISS2, FAIL, FAIL, FAIL, FAIL, FAIL, FAIL]) for _ in range(200)]
    exact = n_at_k(finals, 2, 30, turn_limit=3)
    played = [walk(rng.sample(finals, len(finals)), 2, 30, 3) for _ in range(20000)]
    assert abs(exact - np.mean(played)) < 4 * math.sqrt(exact * (1 - exact) / 20000) and 0.05 < exact < 0.95


def test_with_the_rollouts_needed_n_at_k_is_unbiased_and_with_one_fewer_it_is_not():
    """The mean of n_at_k over every draw of S rollouts from a known distribution is the rate of the walk on
    an endless supply (a draw long enough that every order decides) exactly when S >= rollouts_needed."""
    kinds = [(WIN1, 0.1), (MISS1, 0.3), (MISS2, 0.1), (FAIL, 0.5)]
    n, k, turn_limit = 2, 6, 3
    needed = rollouts_needed(n, k, turn_limit)                  # 1 near miss, 1 failure, the deciding one
    assert needed == 3

    def mean_over_draws(size, estimate):
        total = 0.0
        for draw in itertools.product(kinds, repeat=size):
            total += math.prod(p for _, p in draw) * estimate([f for f, _ in draw])
        return total
    truth = mean_over_draws(6, lambda fs: walk(fs, n, k, turn_limit))   # 6 one-response rollouts fill k = 6
    assert mean_over_draws(needed, lambda fs: n_at_k(fs, n, k, turn_limit)) == pytest.approx(truth, abs=1e-12)
    assert mean_over_draws(needed - 1, lambda fs: n_at_k(fs, n, k, turn_limit)) < truth - 0.01
    assert rollouts_needed(1, 3, 3) == 1 and rollouts_needed(10, 100, 3) == 40 and rollouts_needed(10, 100, 1) == 100


def test_final_at_turn_limit_cuts_the_dialogue():
    verdicts, solved_after = ["wrong_answer", "runtime_error", "pass"], [False, False, True]
    assert final_at_turn_limit(verdicts, solved_after, 1) == Final(1, False, False)
    assert final_at_turn_limit(verdicts, solved_after, 2) == Final(2, False, False)
    assert final_at_turn_limit(verdicts, solved_after, 3) == Final(3, True, True)
    assert final_at_turn_limit(verdicts, solved_after, 10) == Final(3, True, True)


def test_bootstrap_interval_covers_the_true_rate_about_95_percent_of_the_time():
    """117 problems drawn from a population whose mean solve rate is 0.2 (Beta(0.5, 2)), 5 rollouts each; the
    95% interval must hold 0.2 in about 95% of 300 such evaluations (90-99%: 3 standard errors of 300)."""
    rng = np.random.default_rng(0)
    covered, widths = 0, []
    for trial in range(300):
        per_problem = rng.binomial(5, rng.beta(0.5, 2.0, size=117)) / 5
        low, high = bootstrap_interval(per_problem, seed=trial)
        covered += low <= 0.2 <= high
        widths.append(high - low)
    assert 0.90 <= covered / 300 <= 0.99
    assert 0.05 < np.mean(widths) < 0.15                         # 2 x 1.96 x sd / sqrt(117): about 0.11
    assert bootstrap_interval(per_problem, seed=1) == bootstrap_interval(per_problem, seed=1)


def test_rollout_noise_covers_the_rate_of_the_same_problems_about_95_percent_of_the_time():
    """Fixed problems, evaluated again and again: the rate lies within +-rollout_noise of its expectation in
    about 95% of evaluations; with one rollout each the bound is at least as wide as the truth."""
    rng = np.random.default_rng(0)
    rates = rng.beta(0.5, 2.0, size=117)
    truth = rates.mean()
    for rollouts in (3, 12):
        hits = 0
        for _ in range(300):
            solved = rng.binomial(rollouts, rates)
            hits += abs(solved.mean() / rollouts - truth) <= rollout_noise(solved, rollouts)
        assert 0.90 <= hits / 300 <= 0.99
    true_noise = 1.96 * math.sqrt((rates * (1 - rates)).sum()) / 117
    assert rollout_noise(rng.binomial(1, rates), 1) > 0.9 * true_noise


def test_multi_turn_pass_at_k_counts_the_final_solutions_however_many_turns_they_took():
    """Fig. 4a: Chen et al.'s pass@k over each rollout's final solution. Problem 1: 1 of 4 rollouts solved (at
    its 3rd response); problem 2: 3 of 4 (at the 1st, 2nd and 3rd)."""
    def won(turns):                              # (public-test verdicts, solved on all tests) per response
        return ["wrong_answer"] * (turns - 1) + ["pass"], [False] * (turns - 1) + [True]
    lost = (["wrong_answer"] * 3, [False] * 3)
    rollouts = [[won(3), lost, lost, lost], [won(1), won(2), won(3), lost]]
    measures = multi_turn_measures(rollouts, turns=3, budgets=[(1, 3)])
    for k in (1, 3):
        expected = (pass_at_k(4, 1, k) + pass_at_k(4, 3, k)) / 2
        assert measures["multi_turn_pass@k"][f"pass@{k}"]["rate"] == pytest.approx(expected)
    assert list(measures["multi_turn_pass@k"]) == ["pass@1", "pass@3"]           # 10 > 4 rollouts: left out
    assert measures["n@k"]["1@3"]["rate"] == pytest.approx((1 / 4 + 3 / 4) / 2)
    assert measures["rollout_noise"] == pytest.approx(rollout_noise([1, 3], 4))
