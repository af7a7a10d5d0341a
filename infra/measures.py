"""The estimators behind the evaluation's headline numbers (paper §3): pass@k (Chen et al.), n@k with every
response counted as a sample, a rollout's final solution at a shorter turn limit, 95% bootstrap intervals over
problems (Table 5), and the rollout noise of a score on a fixed set of problems (what decides which
checkpoint is "best"). Pure functions of per-rollout facts; reporting.py builds the report with them.

n@k is "the expectation that any of n solutions, selected from k samples in total, is correct" (Li et al.,
2022), and in multi-turn mode every response is a sample. The paper does not say how the n finals are chosen
from the rollouts that k responses buy (10@100 is "about 33 rollouts"). Our reading, a walk through the
rollouts in a random order:
  1. rollouts are played one after another while the budget of k responses lasts. A rollout whose final
     passed the public tests spent the responses it used; one that did not spent its whole turn limit (the
     turn limit was reached, or the dialogue outgrew the context and forfeits the rest). A rollout that does
     not fit in what is left is not played (played until the budget runs out, its responses so far all
     failed the public tests, so nothing would be submitted from it);
  2. the finals that passed the public tests are submitted in the order played, at most n of them; a final
     that failed them cannot pass all tests, so the other slots never matter;
  3. the walk succeeds if any submitted final passes all tests.
``n_at_k`` is the exact expectation of that walk over all orders of a problem's rollouts. With at least
``rollouts_needed(n, k, turn_limit)`` rollouts every order is decided before they run out, so the mean of
``n_at_k`` is the rate an endless supply of rollouts would give (unbiased, as Chen et al.'s pass@k).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 200            # Table 5: 200 resamples over problems, the 2.5 and 97.5 percentiles


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, not {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


class Final(NamedTuple):
    """What n@k needs of one rollout: responses it used, whether its final passed the public tests, and whether
    it passed all of them."""
    responses: int
    passed_public: bool
    solved: bool


def final_at_turn_limit(public_verdicts: Sequence[str], solved_after: Sequence[bool], limit: int) -> Final:
    """The rollout as it would have been under a turn limit of ``limit``: the same dialogue, stopped after
    ``limit`` responses (the policy is never told the limit, so a rollout of up to 10 turns cut at 3 is a
    rollout of up to 3). ``public_verdicts[t]``: response t+1 on the public tests; ``solved_after[t]``: on all."""
    used = min(limit, len(public_verdicts))
    return Final(used, public_verdicts[used - 1] == "pass", bool(solved_after[used - 1]))


def rollouts_needed(n: int, k: int, turn_limit: int) -> int:
    """The most rollouts the walk of ``n_at_k`` can play before its outcome is decided: n - 1 unsolved
    finals that passed the public tests with one response each, then rollouts that spend the whole turn
    limit, while the budget lasts, and the one that decides. Fewer rollouts per problem bias n@k low."""
    cheap = min(n - 1, k - 1)
    return cheap + (k - 1 - cheap) // turn_limit + 1


def n_at_k(finals: Sequence[Final], n: int, k: int, turn_limit: int) -> float:
    """n@k of one problem: the walk of this module's reading, averaged exactly over every order of ``finals``.

    The walk succeeds iff the first solved final in the order (a "winner", w) comes after fewer than n other
    finals that passed the public tests, and everything up to and including it fits in the budget. Over all
    orders, the chance that exactly a given set A of j non-winners precedes w, and w comes first of the
    winners, is j! (S - j - 1)! / S! = 1 / (S C(S-1, j)). So count the sets A: u unsolved finals that passed
    the public tests (u < n; their responses vary) and i that failed them (each costs the turn limit).
    """
    size = len(finals)
    winners = Counter(f.responses for f in finals if f.passed_public and f.solved)
    near_misses = [f.responses for f in finals if f.passed_public and not f.solved]
    failed = size - sum(winners.values()) - len(near_misses)
    # ways[u, b]: sets of u near misses that spend b responses, for u < n and b < k
    ways = np.zeros((n, k))
    ways[0, 0] = 1.0
    for c in near_misses:
        if c < k and n > 1:
            ways[1:, c:] += ways[:-1, :k - c].copy()
    within = ways.cumsum(axis=1)                       # within[u, b]: those spending at most b responses
    total = 0.0
    for c, count in winners.items():
        for u in range(min(n, len(near_misses) + 1)):
            for i in range(min(failed, (k - c) // turn_limit) + 1 if c <= k else 0):   # none if w cannot fit
                chance = math.comb(failed, i) / (size * math.comb(size - 1, u + i))
                total += count * chance * within[u, k - c - i * turn_limit]
    return float(total)


def bootstrap_interval(per_problem: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> list[float]:
    """95% interval of a rate that is the mean of per-problem values: ``resamples`` draws of the problems with
    replacement, the 2.5 and 97.5 percentiles of their means (paper Table 5). Seeded: the same problems give
    the same interval, and every rate of one report is resampled over the same draws."""
    values = np.asarray(per_problem, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    low, high = np.percentile(values[draws].mean(axis=1), [2.5, 97.5])
    return [float(low), float(high)]


def rollout_noise(solved: Sequence[int], rollouts: int) -> float:
    """Half-width of the 95% interval of a solve rate from the same problems evaluated again, with
    ``rollouts`` rollouts each, ``solved[i]`` of them solved on problem i: the noise that can swap which of
    two checkpoints looks best (the problems stay fixed, so the spread between problems is not part of it).
    Var(rate) = sum_i p_i (1 - p_i) / (rollouts N^2); p_i (1 - p_i) is estimated without bias from two or
    more rollouts, and with one by the pooled rate's p (1 - p), an upper bound on the mean of p_i (1 - p_i)."""
    counts = np.asarray(solved, dtype=float)
    if rollouts > 1:
        spread = counts * (rollouts - counts) / (rollouts * (rollouts - 1))
    else:
        rate = counts.mean()
        spread = np.full_like(counts, rate * (1 - rate))
    return float(1.96 * math.sqrt(spread.sum() / rollouts) / len(counts))


def with_interval(per_problem: Sequence[float]) -> dict:
    """A rate over problems and its bootstrap interval, as the report's JSON holds them."""
    return {"rate": float(np.mean(per_problem)), "interval": bootstrap_interval(per_problem)}


def n_at_k_rates(rollouts: Sequence[Sequence[tuple]], turn_limit: int, budgets: Sequence[tuple[int, int]],
                 rollouts_per_sample: int = 1) -> dict:
    """Each n@k in ``budgets`` at ``turn_limit``, from each problem's rollouts, given as (public-test verdicts,
    solved on all tests) after each response. One that needs more rollouts per problem than there are is left
    out, saying how many --samples it needs (``rollouts_per_sample`` rollouts each), rather than biased low."""
    finals = [[final_at_turn_limit(verdicts, solved, turn_limit) for verdicts, solved in rs] for rs in rollouts]
    rates = {}
    for n, k in budgets:
        needed = rollouts_needed(n, k, turn_limit)
        if min(map(len, finals)) < needed:
            rates[f"{n}@{k}"] = {"rate": None, "needs_samples": -(-needed // rollouts_per_sample)}
        else:
            rates[f"{n}@{k}"] = with_interval([n_at_k(fs, n, k, turn_limit) for fs in finals])
    return rates


def multi_turn_measures(rollouts: Sequence[Sequence[tuple]], turns: int, budgets: Sequence[tuple[int, int]],
                        turn_limits: Sequence[int] = ()) -> dict:
    """The multi-turn measures of a report: n@k at the rollouts' turn limit ``turns`` and, for Fig. 4b, at each
    shorter one in ``turn_limits`` (the same rollouts cut short, ``final_at_turn_limit``), and pass@k over the
    final solutions (Fig. 4a, Chen et al.'s estimator), each with its interval; and the rollout noise of the
    mean final solve rate (the checkpoint selection's metric)."""
    samples = min(map(len, rollouts))
    solved = [sum(s[-1] for _, s in rs) for rs in rollouts]
    measures = {"n@k": n_at_k_rates(rollouts, turns, budgets),
                "multi_turn_pass@k": {f"pass@{k}": with_interval([pass_at_k(len(rs), c, k)
                                                                  for rs, c in zip(rollouts, solved)])
                                      for k in sorted({1, turns, 10}) if k <= samples},
                "rollout_noise": rollout_noise(solved, samples) if samples == max(map(len, rollouts)) else None}
    if turn_limits:
        measures["turn_limits"] = {str(t): n_at_k_rates(rollouts, t, budgets) for t in turn_limits}
    return measures

