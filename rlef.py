"""RLEF: reinforcement learning from execution feedback (Gehring et al., ICML 2025, arXiv 2410.02089).

A code LLM is put in a turn-based environment (paper §2.1): it reads a programming problem,
answers with code, and, if its code fails the problem's *public* tests, reads the execution feedback and
tries again, up to three responses. The last response is judged on the *private* tests too, and the
episode's reward (+1 / -1, -0.2 for a response without code, minus a KL penalty) trains the model with PPO
(ppo.py). Only the model's own tokens are trained; what the environment says is context.

This file reads top to bottom as the method; the machinery that runs it at scale (meshes, sharding, the
sampling replica, checkpoints, the memory plan, input checks, report tables) is imported from infra/:

    1. The MDP: one episode's tokens, batched rollouts, the random-feedback ablation (paper §2.1, App. C.2)
    2. Evaluation: multi-turn 1@3, single-turn 1@3 at equal budget, n@k, pass@k (paper §3, App. B.3)
    3. Training: the settings, the loop (rollouts, PPO, evaluation, the best checkpoint) (paper §2.2, §3)
    4. The command line: `python rlef.py --model tiny` / `torchrun ... rlef.py --model 8b` / `rlef.py eval` / `show`
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import typing
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

import execute
from data import Problem
from data.prompts import initial_prompt, prefill
from execute import describe_failures
from infra.checkpoints import (TrainingState, load_policy_weights, load_training_state, open_metrics, recover_best,
                               save_checkpoint, write_best)
from infra.decode import DecodePool
from infra.episodes import (before_after_page, eval_file, report_episodes_file, show_main, transcript,
                            write_batch_sample, write_episodes)
from infra.inputs import (UsageError, add_config_flags, check_batch_split, check_config, checked_tp, dry_run,
                          eval_device, eval_inputs, eval_parser, eval_policy, load_inputs, longest_first_prompt,
                          response_budget, resumed_settings, run_folder, workload)
from infra.memory_plan import cache_rows, describe_rollout_plan, eval_cache_budget, kv_cache_budget
from infra.parallel import (SamplingReplica, cores_per_rank, cpu_group, load_models, log0, reduce_mean,
                            setup_distributed, start_judge, training_mesh)
from infra.reporting import (before_after_table, eval_report, format_report, format_step, paper_table, plot_curves,
                             read_json)
from model import HF_REPOS, Sampling, Tokenizer, Transformer, generate
from ppo import Episode, PPOSettings, make_optimizer, ppo_update, prepare_batch

ROOT = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------------------
# 1. The MDP (paper §2.1): one episode's tokens, batched rollouts, the random-feedback ablation (App. C.2)
# ----------------------------------------------------------------------------------------------------------

# The paper's prompts live in data/prompts.py, the judge glue and its feedback messages in execute.py
# (paper §2.1, App. C).

@dataclass(kw_only=True)
class Dialogue(Episode):
    """One episode in progress: the conversation as one token sequence with what PPO needs, plus what the
    environment knows of it. A token is context (the prompt, feedback, chat headers) or an action of the
    policy (a response token); only actions are trained (§2.2). ``ppo.Episode`` (a Dialogue is one) gives,
    per token: tokens, action_mask, turn_ids (-1 on context), sampler_logprobs; per turn t: value_positions
    (where V(c_t) is read) and turn_rewards (r_t, without the KL term)."""
    problem: Problem
    codes: list[str | None] = field(default_factory=list)     # extracted code per response (None: no code)
    verdicts: list[str] = field(default_factory=list)         # first failing public verdict per response
    feedbacks: list[str] = field(default_factory=list)
    done: bool = False
    solved: bool = False                                      # final response passes public + private tests
    final_verdict: str = ""                                   # its verdict on them (no_code: it had no code)

    def add_context(self, tokens: list[int]):
        self.tokens += tokens
        self.action_mask += [0] * len(tokens)
        self.turn_ids += [-1] * len(tokens)
        self.sampler_logprobs += [0.0] * len(tokens)

    def add_response(self, tokens: list[int], logprobs: list[float], turn: int):
        self.value_positions.append(len(self.tokens) - 1)    # V(c_t) is read at the last context token
        self.tokens += tokens
        self.action_mask += [1] * len(tokens)
        self.turn_ids += [turn] * len(tokens)
        self.sampler_logprobs += logprobs


def rollout(sample, tok: Tokenizer, problems: list[Problem], judge, turns: int = 3, extra_tests: bool = False,
            max_len: int | None = None, random_feedback: RandomFeedback | None = None) -> list[Dialogue]:
    """Play one episode per problem, all in lockstep: each turn, every active episode is sampled in ONE
    batched call, ``sample(list_of_token_lists) -> [(new_tokens, logprobs)]``, and all programs are judged
    in parallel. The episode ends when a response passes the public tests or after ``turns`` responses;
    then its last response is judged on public + private (+ generated, with ``extra_tests``) tests.

    With a ``random_feedback`` (``RandomFeedback``), the paper's ablation: the feedback shown comes from a
    different problem; one serves the rollouts of a whole evaluation.
    """
    dialogues = [Dialogue(problem=p) for p in problems]
    for d in dialogues:
        d.add_context(tok.encode_chat([{"role": "user", "content": initial_prompt(d.problem)}])
                      + tok.encode(prefill(d.problem)))
    for turn in range(turns):
        active = [d for d in dialogues if not d.done]
        if not active:
            break
        for d, (new_tokens, logprobs) in zip(active, sample([d.tokens for d in active])):
            add_response(d, tok, new_tokens, logprobs, turn, no_code_penalty=turns > 1)
        public_results = judge_public_tests(judge, active)
        for d, results in zip(active, public_results):
            end_turn(d, results, last_turn=turn == turns - 1)
        if random_feedback is not None:
            random_feedback.replace([d for d in active if not d.done])
        for d in active:
            if not d.done:
                continue_dialogue(d, tok, max_len)
    judge_final_responses(judge, dialogues, extra_tests)
    return dialogues


def add_response(d: Dialogue, tok: Tokenizer, new_tokens: list[int], logprobs: list[float], turn: int,
                 no_code_penalty: bool = True):
    """The policy's response: its tokens (the actions), the code in it, and the -0.2 of a response without
    code (paper §2.2), which single-turn episodes do without: the single-turn ablation's reward (§3.4.2)."""
    d.add_response(new_tokens, logprobs, turn)
    if not new_tokens or new_tokens[-1] != tok.eot_id:
        # Cut at max_new_tokens, or stopped by <|eom_id|> / <|end_of_text|>: the Llama 3 format closes every
        # message with <|eot_id|> before the next header, so add one (given, not trained).
        d.add_context([tok.eot_id])
    d.codes.append(execute.extract_code(prefill(d.problem) + tok.decode(new_tokens)))
    d.turn_rewards.append(-0.2 if d.codes[-1] is None and no_code_penalty else 0.0)


def judge_public_tests(judge, dialogues: list[Dialogue]) -> list[list | None]:
    """The public-test results of each dialogue's last response, in order; None for a response without code."""
    with_code = [d for d in dialogues if d.codes[-1] is not None]
    results = iter(judge.map([(d.problem, d.codes[-1], d.problem.public_tests) for d in with_code]))
    return [next(results) if d.codes[-1] is not None else None for d in dialogues]


def end_turn(d: Dialogue, public_results: list | None, last_turn: bool):
    """Record the response's verdict; the episode ends when it passes the public tests (paper §2.1) or on the
    last turn, and otherwise the environment writes its feedback."""
    d.verdicts.append("no_code" if public_results is None else verdict_of(public_results))
    if d.verdicts[-1] == "pass" or last_turn:
        d.done = True
    else:
        d.feedbacks.append(execute.NO_CODE_FEEDBACK if public_results is None else
                           describe_failures(d.problem, public_results))


def continue_dialogue(d: Dialogue, tok: Tokenizer, max_len: int | None):
    """The feedback as the next user message, then the next assistant header: the context of the next turn.
    A dialogue with no room left for another response ends here and is judged as it is."""
    follow = (tok.encode_message("user", d.feedbacks[-1]) + tok.encode_header("assistant")
              + tok.encode(prefill(d.problem)))
    if max_len is not None and len(d.tokens) + len(follow) > max_len:
        d.done = True
    else:
        d.add_context(follow)


def judge_final_responses(judge, dialogues: list[Dialogue], extra_tests: bool):
    """The episode's reward: +1 if the last response passes public + private (+ generated) tests, else -1
    (paper §2.1; the paper does not say whether a no-code -0.2 on the last turn stacks with the -1:
    here it does). The public results of the last response are
    already known, so only responses that passed them run the rest: a failed one is unsolved anyway."""
    passed = [d for d in dialogues if d.verdicts[-1] == "pass"]
    hidden = [all_tests(d.problem, extra_tests)[len(d.problem.public_tests):] for d in passed]
    rest = iter(judge.map([(d.problem, d.codes[-1], tests) for d, tests in zip(passed, hidden)]))
    for d in dialogues:   # next(): in the order of `passed`
        d.final_verdict = verdict_of(next(rest)) if d.verdicts[-1] == "pass" else d.verdicts[-1]
        d.solved = d.final_verdict == "pass"   # judge_error (the machinery failed) is a failure like any other
        d.turn_rewards[-1] += 1.0 if d.solved else -1.0


def verdict_of(results) -> str:
    return next((r.verdict for r in results if r.verdict != "pass"), "pass")


def all_tests(problem: Problem, extra_tests: bool = False):
    return problem.public_tests + problem.private_tests + (problem.generated_tests if extra_tests else [])


class RandomFeedback:
    """The paper's random-feedback ablation (appendix C.2): after a failed response the policy is shown feedback
    written for a different problem, so that 1@3 measures how much the policy relies on what it is told.
    One construction serves a whole evaluation, and the report names it:

    - "incorrect solutions" (appendix C.2; CodeContests): a random incorrect solution of a random other problem
      is run on THAT problem's public tests and its feedback shown (``raise NotImplementedError()`` instead if
      it passes them), drawn anew for every feedback turn (our choice); each (problem, solution) runs once.
    - "message swap" (our choice where no incorrect solutions exist: tiny tasks, HumanEval, MBPP): a message the
      policy received for another problem, uniform over the evaluation's messages so far (a reservoir sample);
      an episode keeps its own only while no other problem's message exists (counted: ``kept_real``).
    """

    def __init__(self, problems: list[Problem], judge, rng: random.Random, pool_size: int = 4096):
        self.judge, self.rng, self.pool_size = judge, rng, pool_size
        self.donors = [p for p in problems if p.incorrect_solutions and p.public_tests]
        paper = len({p.name for p in self.donors}) >= 2
        self.construction = "incorrect solutions" if paper else "message swap"
        self.messages: dict[tuple[str, int], str] = {}        # (donor name, solution index) -> its feedback
        self.pool: list[tuple[str, str]] = []                 # message swap: (problem name, message) reservoir
        self.seen = self.shown = self.kept_real = 0

    def replace(self, dialogues: list[Dialogue]):
        """Replace the last feedback message of each dialogue with a random one from another problem."""
        self.shown += len(dialogues)
        if self.construction == "incorrect solutions":
            self._from_incorrect_solutions(dialogues)
        else:
            self._swap(dialogues)

    def _from_incorrect_solutions(self, dialogues):
        picks = []                                            # per dialogue: (donor problem, solution index)
        for d in dialogues:
            donor = self.rng.choice([p for p in self.donors if p.name != d.problem.name])
            picks.append((donor, self.rng.randrange(len(donor.incorrect_solutions))))
        new = list({(p.name, i): (p, i) for p, i in picks if (p.name, i) not in self.messages}.values())
        results = self.judge.map([(p, p.incorrect_solutions[i], p.public_tests) for p, i in new])
        passing = [k for k, res in enumerate(results) if verdict_of(res) == "pass"]
        crashes = self.judge.map([(new[k][0], "raise NotImplementedError()", new[k][0].public_tests)
                                         for k in passing])
        for k, res in zip(passing, crashes):
            results[k] = res
        for (p, i), res in zip(new, results):
            self.messages[(p.name, i)] = describe_failures(p, res)
        for d, (p, i) in zip(dialogues, picks):
            d.feedbacks[-1] = self.messages[(p.name, i)]

    def _swap(self, dialogues):
        own = [(d.problem.name, d.feedbacks[-1]) for d in dialogues]
        for d in dialogues:
            others = [m for name, m in self.pool + own if name != d.problem.name]
            if others:
                d.feedbacks[-1] = self.rng.choice(others)
            else:
                self.kept_real += 1
        for item in own:                                      # reservoir sampling: uniform over all messages
            self.seen += 1
            if len(self.pool) < self.pool_size:
                self.pool.append(item)
            elif (j := self.rng.randrange(self.seen)) < self.pool_size:
                self.pool[j] = item

    def describe(self) -> dict:
        return {"construction": self.construction, "messages": self.shown,
                **({"kept_real": self.kept_real} if self.construction == "message swap" else {})}


def policy_sampler(model, tok, max_new_tokens, sampling: Sampling, generator, cache_bytes: int | None = None,
                   usage: dict | None = None):
    """The ``sample`` function of ``rollout`` for a Transformer: one ``generate`` call per turn, stopped by
    the tokenizer's stop tokens, ``sampling.rows`` episodes decoding together (0 or None: as many as a KV
    cache of ``cache_bytes`` holds; all when that is None), a finished one's row going to the next
    (continuous batching). ``usage`` counts tokens, slots and seconds. On a GPU (or compiling) the turns share
    one KV cache and its CUDA graphs (``sample.pool``), freed with the sampler at the end of the phase."""
    on_gpu = model.embed_tokens.weight.device.type == "cuda"
    pool = DecodePool() if on_gpu or sampling.compile else None

    def sample(prompts):
        t0 = time.time()
        n = sampling.rows or (cache_rows(model, cache_bytes, max(map(len, prompts)) + max_new_tokens) if cache_bytes
                              else len(prompts))
        out = generate(model, prompts, max_new_tokens, replace(sampling, stop_ids=tok.stop_ids, rows=n), generator,
                       usage, pool)
        if usage is not None:            # rollout time = sampling + judging: this splits the two
            usage["seconds"] = usage.get("seconds", 0.0) + time.time() - t0
        return out
    sample.pool = pool
    return sample


# ----------------------------------------------------------------------------------------------------------
# 2. Evaluation (paper §3, App. B.3): multi-turn 1@3, single-turn 1@3 at equal budget, n@k, pass@k
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation plays its episodes; defaults are the paper's evaluation (paper §3, appendix B.3)."""
    samples: int = 1                 # rollouts per problem (paper: 200 for 1@3)
    turns: int = 3                   # responses per multi-turn episode, and single-turn samples per problem
    feedback_mode: str = "real"      # "random": feedback from other problems (the ablation, appendix C.2)
    extra_tests: bool = True         # final responses judged on the generated tests too (appendix B.3)
    batch_size: int = 64             # (sample, problem) rollouts sampled together
    seed: int = 0                    # the random feedback's draws
    max_len: int | None = None       # a next turn starts if dialogue + feedback fit: --max-len less a response
    budgets: tuple = ((1, 3), (10, 100))  # n@k to report (paper: 1@3 at temperature 0.2, 10@100 at 1.0)
    turn_limits: tuple = ()          # shorter turn limits to report the n@k at too (Fig. 4b)
    feedback_tests: int = 0          # N: feedback from up to N of all tests, at most 8 failures (App. B.3)
    episodes: Path | None = None     # write every episode played, and its page, here (infra/episodes.py)


def evaluate(sample, tok, problems, judge, settings: EvalSettings = EvalSettings(), log=print,
             feedback_donors: list[Problem] | None = None, group=None) -> dict:
    """The paper's measures on ``problems`` (paper §3, appendix B.3), from ``settings.samples`` rollouts per problem
    (``eval_report``). Under torchrun each share of ``group`` (the data-parallel ranks; a tensor-parallel row plays
    one share) plays its problems, the per-episode records are gathered, and the report is computed once from all
    of them: what one process reports (an average of per-rank rates over unequal shares would not be). Final
    responses are judged on public + private (+ generated, ``extra_tests``: appendix B.3) tests. With
    ``feedback_mode="random"`` the feedback comes from other problems (``RandomFeedback``) of ``feedback_donors``
    (default: all of ``problems``); ``report["tests"]`` and ``report["random_feedback"]`` say what was done."""
    rank, world = (dist.get_rank(group), dist.get_world_size(group)) if dist.is_initialized() else (0, 1)
    if settings.feedback_tests:     # App. B.3: the feedback comes from more tests, private ones among them
        problems = [with_feedback_tests(p, settings.feedback_tests, settings.extra_tests) for p in problems]
        judge = FailuresListed(judge, limit=8)
    random_feedback = RandomFeedback(feedback_donors or problems, judge, random.Random(settings.seed)) \
        if settings.feedback_mode == "random" else None
    records = eval_episodes(sample, tok, problems[rank::world], judge, settings, log, random_feedback)
    described = [random_feedback.describe()] if random_feedback else []
    if world > 1:
        shares = [None] * world
        dist.all_gather_object(shares, (records, described), group=cpu_group(group))   # pickles wait on the host
        records, described = [r for rs, _ in shares for r in rs], [d for _, ds in shares for d in ds]
    report = eval_report(records, problems, settings)
    if described:            # the same construction on every rank; its counts add up
        report["random_feedback"] = {k: v if k == "construction" else sum(d[k] for d in described)
                                     for k, v in described[0].items()}
    if settings.episodes and (not dist.is_initialized() or dist.get_rank() == 0):   # one writer, all episodes
        write_episodes(settings.episodes, records, report)
    return report


def with_feedback_tests(problem: Problem, n: int, extra_tests: bool) -> Problem:
    """The problem with its first ``n`` tests (public, then private, then generated) as the ones that give
    feedback and end the episode; the final responses are still judged on all of them."""
    tests = all_tests(problem, extra_tests)
    return replace(problem, public_tests=tests[:n], private_tests=tests[n:], generated_tests=[])


class FailuresListed:
    """A judge that reports at most ``limit`` failed tests per program (App. B.3 lists at most 8 in the
    feedback). Verdicts do not change: the first failure is always kept."""
    def __init__(self, judge, limit: int):
        self.judge, self.limit = judge, limit

    def map(self, jobs):
        return [[r for i, r in enumerate(results) if r.verdict == "pass" or
                 sum(x.verdict != "pass" for x in results[:i]) < self.limit] for results in self.judge.map(jobs)]


def eval_episodes(sample, tok, problems, judge, settings: EvalSettings, log=print,
                  random_feedback: RandomFeedback | None = None) -> list[dict]:
    """Play the evaluation: per problem and sample, one multi-turn rollout of up to ``turns`` responses and
    ``turns`` independent single-turn ones; one small record per episode, all the report needs. A call samples
    ``batch_size`` (sample, problem) pairs (a chunk's single-turn attempts: one call) to fill the rows."""
    turns, extra_tests = settings.turns, settings.extra_tests
    multi, single = [], []                                    # (sample, dialogue), (sample, attempt, dialogue)
    pairs = [(s, p) for s in range(settings.samples) for p in problems]
    t0, total = time.time(), len(pairs) * (1 + turns)
    for i in range(0, len(pairs), settings.batch_size):
        chunk = pairs[i:i + settings.batch_size]
        played = rollout(sample, tok, [p for _, p in chunk], judge, turns, extra_tests, settings.max_len,
                         random_feedback)
        multi += [(s, d) for (s, _), d in zip(chunk, played)]
        attempts = [(s, attempt, p) for s, p in chunk for attempt in range(turns)]
        played = rollout(sample, tok, [p for *_, p in attempts], judge, 1, extra_tests)
        single += [(s, attempt, d) for (s, attempt, _), d in zip(attempts, played)]
        log(f"  eval {len(multi) + len(single)}/{total} episodes, {time.time() - t0:.0f}s", end="\r")
    log(" " * 60, end="\r")
    # Judge every multi-turn response but the last on all tests, for the solve rate after each turn; the last
    # one's is the final judgement's (judged twice, a timing-sensitive test could give two 1@3 in one report).
    responses = [(d, code) for _, d in multi for code in d.codes[:-1] if code]
    results = judge.map([(d.problem, code, all_tests(d.problem, extra_tests)) for d, code in responses])
    verdicts = {}                                             # (problem name, code) -> its verdict on all tests
    for (d, code), res in zip(responses, results):
        verdicts[d.problem.name, code] = verdict_of(res)
    records = []
    for s, d in multi:
        after = [verdicts.get((d.problem.name, code), "no_code") for code in d.codes[:-1]]
        solved_after = [v == "pass" and public == "pass" for v, public in zip(after, d.verdicts)] + [d.solved]
        records.append({"mode": "multi", "problem": d.problem.name, "sample": s, "codes": d.codes,
                        "verdicts": d.verdicts, "solved": d.solved, "solved_after": solved_after,
                        "judge_errors": (d.verdicts + [d.final_verdict] + after).count("judge_error")})
    for s, attempt, d in single:
        records.append({"mode": "single", "problem": d.problem.name, "sample": s, "attempt": attempt,
                        "verdict": d.verdicts[0], "solved": d.solved,
                        "judge_errors": (d.verdicts + [d.final_verdict]).count("judge_error")})
    for r, (*_, d) in zip(records, multi + single):   # records follow that order; the text is for infra/episodes.py
        r["episode"] = transcript(d, tok)
    return records


# ----------------------------------------------------------------------------------------------------------
# 3. Training (paper §2.2, §3): the settings, the loop, its phases
# ----------------------------------------------------------------------------------------------------------


def option(default, help: str):
    """A Config field with its --help line: the one place each setting is described."""
    return field(default=default, metadata={"help": help})


@dataclass
class Config:
    """Every training setting; a flag per field (``--micro-batch-size`` for ``micro_batch_size``).
    Defaults are the paper's (paper App. A.1) where it gives one; PRESET_DEFAULTS override them per preset."""
    model: str = option("8b", "preset: picks the architecture, the default weights folder and defaults")
    weights: str | None = option(None, "HF folder of the initial policy (default: checkpoints/<repo name>)")
    train_data: str | None = option(None, "JSONL problems to train on (default: data/code_contests/train.jsonl)")
    valid_data: str | None = option(None, "JSONL problems to evaluate on (default: data/code_contests/valid.jsonl)")
    run_dir: str = option("runs/rlef", "folder for config.json, metrics.jsonl, checkpoints/, learning_curve.png")
    resume: str | None = option(None, "RUN_DIR to continue from its last complete checkpoint, with its "
                                      "config.json; only how long, how often and machine flags may differ")
    # "12,000 updates", where 1,024 rollouts give "4 updates on 256 sequences": an update is an optimiser step.
    batches: int = option(3000, "rollout batches to train on; each gives --minibatches x --epochs optimiser "
                                "updates (paper: 12,000 updates for 8B = 3,000 batches of 4; 8,000 for 70B)")
    batch_size: int = option(1024, "episodes per batch over all ranks (paper: 1024 rollouts)")
    minibatches: int = option(4, "optimiser updates per batch (paper: 4 updates of 256 sequences)")
    micro_batch_size: int = option(4, "episodes per forward/backward; gradients accumulate over them")
    epochs: int = option(1, "passes over each batch")
    lr: float = option(2e-7, "policy learning rate, AdamW")
    critic_lr: float | None = option(None, "critic learning rate (default: --lr; our choice)")
    weight_decay: float = option(0.1, "AdamW weight decay")
    warmup_updates: int = option(50, "linear learning-rate warm-up, in optimiser updates (paper: 50 steps)")
    beta: float = option(0.05, "KL penalty towards the initial policy, per turn")
    clip_eps: float = option(0.2, "PPO ratio clipping")
    value_clip: float = option(0.2, "value clipping around the old value")
    max_grad_norm: float = option(1.0, "gradient-norm clipping (our choice)")
    advantage: str = option("turn", "turn: the paper's turn-level value; token: the GAE ablation")
    turns: int = option(3, "responses per episode")
    temperature: float = option(1.0, "sampling temperature of training rollouts (paper: 1.0, no top-p); "
                                     "PPO scores the tokens at the same temperature")
    max_new_tokens: int = option(1024, "tokens per response")
    max_len: int = option(8192, "no further turn starts unless the dialogue and one more response fit in it")
    rollout_batch: int = option(0, "episodes decoded together per rank (KV-cache rows; 0: as many as the "
                                   "memory left holds, printed at start)")
    compile: bool = option(False, "torch.compile the rollouts' decode step (GPU; its rows and cache length are "
                                  "dynamic: one compilation serves the run)")
    eval_every: int = option(200, "evaluate on the valid set every N batches, and after the last, keeping the "
                                  "best checkpoint by multi-turn 1@3 (paper: every 800 updates = 200 batches)")
    eval_problems: int | None = option(None, "evaluate on the first N valid problems only")
    eval_samples: int = option(12, "rollouts per problem in evaluation: 12 keeps the rollout noise of the best "
                                   "checkpoint's 1@3 near +-2 points on 117 problems (README)")
    eval_before: bool = option(True, "evaluate before training: the 'before' column of the final table")
    checkpoint_every: int = option(50, "save a checkpoint every N batches (and at every evaluation)")
    keep_checkpoints: int = option(2, "how many checkpoints to keep, besides the best one and the newest export")
    export_every: int = option(1, "write the policy as a Hugging Face folder (in --dtype) into every Nth "
                               "checkpoint, every evaluated one (it may be the best) and the last")
    judge_workers: int = option(0, "parallel test executors per rank (0: the node's CPU cores / ranks on it)")
    time_factor: float = option(1.0, "x a problem's own time limit (1: the paper's rule, App. A.2; e.g. 3 for "
                                     "Python against C++ limits: our option)")
    seed: int = option(0, "random seed (data order, sampling, critic head)")
    episodes_per_batch: int = option(8, "episodes of each batch written to RUN_DIR/episodes/ to read (sampled)")
    activation_checkpointing: bool = option(True, "recompute each block in backward to save memory")
    dtype: str = option("bfloat16", "GPU compute dtype and the dtype of exported policies; master weights stay fp32")
    tp: int = option(0, "tensor-parallel ranks per model copy; torchrun's world becomes a (world / tp) x tp mesh, "
                        "FSDP2 over its first dimension (0: 1 up to 8B, the GPUs of one node for larger models)")
    dry_run: bool = option(False, "print the per-GPU memory plan for --model, --world-size and --tp, allocate nothing")


# Preset defaults differ from the paper's where the scale does: the tiny byte-level model learns at a
# learning rate 1000x the one for 8B, from smaller batches, in minutes (README: "Our choices").
PRESET_DEFAULTS = {
    "70b": dict(batches=2000),   # App. A.1: 70B trains for 8,000 updates (= 2,000 batches of 4), 8B for 12,000
    "tiny": dict(weights=str(ROOT / "data/tiny/policy"), train_data=str(ROOT / "data/tiny/train.jsonl"),
                 valid_data=str(ROOT / "data/tiny/heldout.jsonl"), batches=60, batch_size=64, minibatches=2,
                 micro_batch_size=8, lr=3e-4, warmup_updates=5, max_new_tokens=40, max_len=1024,
                 eval_every=20, eval_samples=1, checkpoint_every=20, activation_checkpointing=False, dtype="float32",
                 run_dir="runs/tiny"),
}


def ppo_settings(cfg: Config) -> PPOSettings:
    """The learning rule's settings. PPO scores the tokens under the distribution they were drawn from
    (ppo.prepare_batch); greedy sampling (temperature 0, for tests) records the untempered model's log-probs."""
    return PPOSettings(beta=cfg.beta, advantage_mode=cfg.advantage, temperature=cfg.temperature or 1.0,
                       clip_eps=cfg.clip_eps, value_clip=cfg.value_clip, max_grad_norm=cfg.max_grad_norm,
                       minibatches=cfg.minibatches, micro_batch_size=cfg.micro_batch_size, epochs=cfg.epochs)


@dataclass
class Run:
    """What the phases of one training run share; ``start_run`` builds it."""
    cfg: Config
    dir: Path
    rank: int
    world: int
    device: torch.device
    weights: Path                      # the initial policy's folder (its tokenizer files go into every export)
    tok: Tokenizer
    train_set: list[Problem]
    valid_set: list[Problem]
    judge: execute.Judge               # or a tensor-parallel row's GroupJudge
    trained: TrainingState             # policy pi and critic V(c_t), their optimisers and schedulers
    reference: Transformer             # rho, the frozen initial policy of the KL penalty (paper §2.2)
    replica: SamplingReplica           # what rollouts decode with
    cache_bytes: int                   # the rollouts' KV-cache budget on this rank
    max_len: int                       # a next turn starts if dialogue + feedback fit: --max-len less a response
    mesh: object = None                # the ("dp", "tp") DeviceMesh under torchrun (training_mesh)
    dp_rank: int = 0                   # this rank's data-parallel share: the ranks of a "tp" row play one share
    dp: int = 1                        # data-parallel shares (world / tp)
    start: int = 0                     # the first batch this invocation trains on (resuming: the checkpoint's)
    best: dict | None = None           # the best checkpoint on the valid set so far (best.json)
    metrics: typing.TextIO | None = None


def train(cfg: Config):
    """RLEF (paper §2.2): batches of rollouts in the environment with the current policy, each followed by PPO
    updates of policy and critic; the valid set is evaluated every --eval-every batches, and the best
    checkpoint there is the run's result (paper §3)."""
    run = start_run(cfg)
    before = evaluate_on_valid(run, 0) if run.start == 0 and cfg.eval_before else None
    for step in range(run.start, cfg.batches):
        dialogues, usage = play_batch(run, step)
        t_train = time.time()
        settings = ppo_settings(cfg)
        policy, critic = run.trained.policy, run.trained.critic
        batch = prepare_batch(dialogues, policy, run.reference, critic, settings)
        stats = ppo_update(policy, critic, *run.trained.optimizers, batch, settings, run.trained.schedulers)
        for opt in run.trained.optimizers:   # gradients are dead until the next update: free them for the rollouts
            opt.zero_grad(set_to_none=True)
        usage["train_s"] = time.time() - t_train
        if run.rank == 0:                    # a few episodes to read, never the whole batch (infra/episodes.py)
            write_batch_sample(run.dir, step + 1, dialogues, run.tok, batch, cfg.episodes_per_batch)
        row = step_statistics(run, step, dialogues, {**batch["stats"], **stats}, usage)
        evaluated = (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.batches
        if evaluated:
            row["eval"] = evaluate_on_valid(run, step + 1)
        if run.metrics:
            run.metrics.write(json.dumps(row) + "\n")
            run.metrics.flush()
        if evaluated or (step + 1) % cfg.checkpoint_every == 0:
            keep_checkpoint(run, step + 1, row, evaluated)
    finish(run, before)
    run.judge.close()
    if dist.is_initialized():
        dist.destroy_process_group()
    return run.trained.policy


def play_batch(run: Run, step: int) -> tuple[list[Dialogue], dict]:
    """This rank's episodes of batch ``step``, played with the current policy, and what they cost: tokens,
    decode slots, seconds sampling (the replica's refresh included) and executing."""
    t0 = time.time()
    problems = step_problems(run.train_set, run.cfg, step, run.dp_rank, run.dp)
    gen = random_stream(run.device, run.cfg.seed, step, run.dp_rank)
    usage = {}
    sample = sampler(run, run.cfg.temperature, 1.0, gen, usage)
    refresh_s = time.time() - t0
    with torch.no_grad():
        dialogues = rollout(sample, run.tok, problems, run.judge, run.cfg.turns, max_len=run.max_len)
    usage["sample_s"] = refresh_s + usage["seconds"]
    usage["exec_s"] = time.time() - t0 - usage["sample_s"]
    return dialogues, usage


def random_stream(device, seed: int, step: int, dp_rank: int) -> torch.Generator:
    """The sampling stream of one data-parallel share at one step, a pure function of (seed, step, share): a
    resumed run samples exactly what it would have, and the copies of the policy draw different samples."""
    return torch.Generator(device).manual_seed(seed * 1_000_003 + step * 7919 + dp_rank)


def sampler(run: Run, temperature: float, top_p: float, generator, usage: dict | None = None):
    """Sampling for one rollout phase: the replica refreshed with the policy's current weights (collective)."""
    cfg = run.cfg
    sampling = Sampling(temperature, top_p, rows=cfg.rollout_batch, compile=cfg.compile)
    return policy_sampler(run.replica.refresh(run.trained.policy), run.tok, cfg.max_new_tokens, sampling, generator,
                          run.cache_bytes, usage)


def step_statistics(run: Run, step: int, dialogues: list[Dialogue], ppo_stats: dict, usage: dict) -> dict:
    """The metrics row of one batch, averaged over ranks, and the step's line in the log."""
    n_turns = sum(len(d.codes) for d in dialogues)
    row = {"step": step + 1, "reward": sum(sum(d.turn_rewards) for d in dialogues) / len(dialogues),
           "solve_rate": sum(d.solved for d in dialogues) / len(dialogues),
           "mean_turns": n_turns / len(dialogues),
           "valid_code": sum(c is not None for d in dialogues for c in d.codes) / n_turns,
           **ppo_stats, "sampled_tokens": sum(sum(d.action_mask) for d in dialogues), "decode_slots": usage["slots"]}
    row = reduce_mean(row, run.device)
    row["final_verdicts"] = verdict_counts(dialogues, run)
    # slot_efficiency: the share of the rows computed at each decode step that produced a token someone reads.
    row.update(updates=(step + 1) * run.cfg.minibatches * run.cfg.epochs,
               slot_efficiency=row["sampled_tokens"] / row["decode_slots"],
               tokens_per_s=row["sampled_tokens"] * run.dp / usage["sample_s"], sample_s=usage["sample_s"],
               exec_s=usage["exec_s"], train_s=usage["train_s"],
               step_s=usage["sample_s"] + usage["exec_s"] + usage["train_s"])
    log0(format_step(row))
    return row


def verdict_counts(dialogues: list[Dialogue], run: Run) -> dict[str, int]:
    """How many of the batch's episodes ended with each final verdict, over all ranks; judge_error (the
    machinery failed on the episode, which then counts as failed) is in the step's line when it happens."""
    names = ("no_code",) + execute.VERDICTS
    mine = Counter(d.final_verdict for d in dialogues)
    mean = reduce_mean({v: mine[v] for v in names}, run.device)   # the ranks of a "tp" row hold the same episodes
    return {v: round(mean[v] * run.dp) for v in names}


def evaluate_on_valid(run: Run, step: int, feedback_mode: str = "real") -> dict:
    """Valid-set evaluation with the paper's settings (temperature 0.2, top-p 0.95; public + private +
    generated tests, appendix B.3), each rank a share, pooled; rank 0 writes eval_step<N>_<feedback>.json."""
    gen = random_stream(run.device, run.cfg.seed, 0, run.dp_rank)   # the same draws for every checkpoint compared
    with torch.no_grad():
        settings = EvalSettings(samples=run.cfg.eval_samples, turns=run.cfg.turns, feedback_mode=feedback_mode,
                                extra_tests=True, max_len=run.max_len, episodes=eval_file(run.dir, step, feedback_mode))
        report = evaluate(sampler(run, 0.2, 0.95, gen), run.tok, run.valid_set, run.judge, settings, log=log0,
                          group=None if run.mesh is None else run.mesh["dp"].get_group())
    report.update(time_limits=execute.time_limit_rule(run.cfg.time_factor), temperature=0.2, top_p=0.95)
    log0(f"eval at step {step} ({feedback_mode} feedback):\n" + format_report(report))
    if run.rank == 0:
        (run.dir / f"eval_step{step}_{feedback_mode}.json").write_text(json.dumps(report, indent=2))
    return report


def keep_checkpoint(run: Run, step: int, row: dict, evaluated: bool):
    """Save a checkpoint after batch ``step``; an evaluated one that beats the best so far becomes the best
    (paper §3: the best valid 1@3 is the result), its policy exported; the rotation keeps the previous best."""
    cfg = run.cfg
    export = evaluated or step % (cfg.checkpoint_every * cfg.export_every) == 0
    save_checkpoint(run.dir, step, run.trained, run.weights, cfg.keep_checkpoints,
                    getattr(torch, cfg.dtype) if export else None, protect=run.best and run.best["checkpoint"])
    if evaluated and (run.best is None or row["eval"]["multi_turn_1@3"] > run.best["multi_turn_1@3"]):
        run.best = {"checkpoint": f"step_{step:06d}", "step": step, "updates": row["updates"],
                    "multi_turn_1@3": row["eval"]["multi_turn_1@3"], "report": row["eval"]}
        if run.rank == 0:
            write_best(run.dir, run.best)


def finish(run: Run, before: dict | None):
    """The run's result is its best checkpoint on the valid set (the paper's selection, every 800 updates):
    its evaluation is the "after" column, and the random-feedback ablation runs on its weights."""
    best, last_step = run.best, max(run.start, run.cfg.batches)
    if best is None:                       # no training in this invocation nor a best.json: the current policy
        report = evaluate_on_valid(run, last_step)
        best = {"checkpoint": None, "step": last_step, "multi_turn_1@3": report["multi_turn_1@3"], "report": report}
    elif best["step"] != last_step:
        load_policy_weights(run.trained.policy, run.dir / "checkpoints" / best["checkpoint"])
    log0(f"best on the valid set: step {best['step']} (multi-turn 1@3 {100 * best['multi_turn_1@3']:.1f}%); "
         "the final table and the random-feedback ablation use it")
    ablation = evaluate_on_valid(run, best["step"], "random")
    if run.rank == 0:
        plot_curves(run.dir)
        before = before or read_json(run.dir / "eval_step0_real.json")
        summary = {"before": before, "after": best["report"], "random_feedback": ablation,
                   "best": {k: v for k, v in best.items() if k != "report"}}
        (run.dir / "summary.json").write_text(json.dumps(summary, indent=2))
        log0("\n" + before_after_table(before, best["report"], ablation, best["step"]))
        log0(before_after_page(run.dir, best["step"]))


def start_run(cfg: Config) -> Run:
    """Everything a run needs before its first batch: checked inputs, the judge, the three models and their
    optimisers (from the last checkpoint when resuming), the sampling replica and the KV-cache budget."""
    rank, world, device = setup_distributed()
    weights, args, tok, train_set, valid_set = load_inputs(cfg)
    mesh, dp_rank, dp = training_mesh(world, checked_tp(cfg.tp, args, world), device)
    check_batch_split(cfg, dp)
    run_dir, resume_from = run_folder(cfg.run_dir, cfg.resume, asdict(cfg), rank)
    log0("config: " + json.dumps(asdict(cfg)))
    torch.manual_seed(cfg.seed)                                # the critic's random head, identical on all ranks
    judge = start_judge(cfg.judge_workers, mesh, cfg.time_factor)   # started before the models are loaded
    try:
        policy, reference, critic = load_models(cfg, weights, device, mesh)
    except (OSError, ValueError) as e:
        judge.close()
        raise UsageError(f"cannot load the weights in {weights}: {e}") from None
    policy_opt, policy_sched = make_optimizer(policy, cfg.lr, cfg.weight_decay, cfg.warmup_updates)
    critic_opt, critic_sched = make_optimizer(critic, cfg.critic_lr or cfg.lr, cfg.weight_decay, cfg.warmup_updates)
    replica = SamplingReplica(policy, getattr(torch, cfg.dtype) if device.type == "cuda" else torch.float32,
                              None if mesh is None else mesh["tp"])
    max_len = min(cfg.max_len, policy.args.max_seq_len) - cfg.max_new_tokens   # room for one more response
    trained = TrainingState(policy, critic, (policy_opt, critic_opt), (policy_sched, critic_sched))
    run = Run(cfg=cfg, dir=run_dir, rank=rank, world=world, device=device, weights=weights, tok=tok,
              train_set=train_set, valid_set=valid_set, judge=judge, trained=trained, reference=reference,
              replica=replica, cache_bytes=kv_cache_budget(policy, critic, device, world), max_len=max_len,
              mesh=mesh, dp_rank=dp_rank, dp=dp)
    if resume_from:
        run.start = load_training_state(resume_from, trained)
        run.best = recover_best(run_dir, cfg.minibatches * cfg.epochs, write=rank == 0)
        log0(f"resumed from {resume_from} at step {run.start}")
    run.metrics = open_metrics(run_dir, resume_from and run.start) if rank == 0 else None
    log0(describe_rollout_plan(replica, policy, run.cache_bytes, cfg.batch_size // dp, cfg.rollout_batch, cfg.max_len))
    return run


def step_problems(problems, cfg: Config, step: int, rank: int, world: int):
    """This rank's share of step ``step``'s batch. The order is a fixed permutation per epoch, so the data
    position is a pure function of the step: a resumed run sees exactly the problems it would have seen."""
    per_rank = cfg.batch_size // world
    start = step * cfg.batch_size
    out, orders = [], {}                                         # epoch -> its permutation
    for i in range(start + rank * per_rank, start + (rank + 1) * per_rank):
        epoch, j = divmod(i, len(problems))
        if epoch not in orders:
            orders[epoch] = list(range(len(problems)))
            random.Random(cfg.seed * 1000 + epoch).shuffle(orders[epoch])
        out.append(problems[orders[epoch][j]])
    return out


# ----------------------------------------------------------------------------------------------------------
# 4. The command line: `python rlef.py` (training), `python rlef.py eval`
# ----------------------------------------------------------------------------------------------------------


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a Llama 3 policy with RLEF (PPO on execution feedback). "
                    "`python rlef.py --model tiny` runs the CPU demo; `torchrun --nproc_per_node=8 rlef.py --model 8b` "
                    "the paper's setting. Defaults are the paper's (paper App. A.1) unless the preset "
                    "overrides them. `python rlef.py eval --help` for evaluation.")
    add_config_flags(parser, Config)
    parser.add_argument("--world-size", type=int, default=8, help="with --dry-run: GPUs to plan for")
    parser.add_argument("--gpu-memory", type=float, default=80, help="with --dry-run: GB of memory per GPU")
    return parser


def config_from_args(a) -> Config:
    """Paper defaults, then the preset's, then (with --resume) the run's own, then the flags the user gave."""
    given = {k: v for k, v in vars(a).items() if v is not None and k in asdict(Config())}
    saved = resumed_settings(a.resume, given) if a.resume else {}     # refuses flags that change what it learns
    model = given.get("model") or saved.get("model") or "8b"
    values = {**asdict(Config()), **PRESET_DEFAULTS.get(model, {}), **saved, **given}
    cfg = Config(**values)
    if cfg.weights is None:
        cfg.weights = str(ROOT / "checkpoints" / HF_REPOS[cfg.model].split("/")[1])
    cfg.train_data = cfg.train_data or str(ROOT / "data/code_contests/train.jsonl")
    cfg.valid_data = cfg.valid_data or str(ROOT / "data/code_contests/valid.jsonl")
    check_config(cfg)
    return cfg


def eval_main(argv):
    a = eval_parser().parse_args(argv)
    data, problems = eval_inputs(a)
    rank, world, device = setup_distributed()
    device = eval_device(a.device, world, device)
    model, tok, mesh = eval_policy(a.weights, a.tp, world, device)
    longest = longest_first_prompt(tok, problems)
    context = min(a.max_len, model.args.max_seq_len)                      # as training's (start_run)
    max_new_tokens = response_budget(a.max_new_tokens, longest, context, a.turns, log=log0)
    dp_rank = mesh["dp"].get_local_rank() if mesh is not None else 0
    gen = random_stream(device, a.seed, 0, dp_rank)
    sample = policy_sampler(model, tok, max_new_tokens, Sampling(a.temperature, a.top_p), gen,
                            cache_bytes=eval_cache_budget(device))
    judge = start_judge(0, mesh, a.time_factor)
    out = Path(a.out or f"eval_{data.stem}_{a.feedback}.json")
    try:
        with torch.no_grad():
            settings = EvalSettings(samples=a.samples, turns=a.turns, feedback_mode=a.feedback,
                                    extra_tests=a.generated_tests, batch_size=a.batch_size, seed=a.seed,
                                    max_len=context - max_new_tokens, budgets=tuple(a.n_at_k),
                                    turn_limits=tuple(a.turn_limits), feedback_tests=a.feedback_tests,
                                    episodes=report_episodes_file(out))
            report = evaluate(sample, tok, problems, judge, settings, log=log0,
                              group=mesh["dp"].get_group() if mesh is not None else None)
    finally:
        judge.close()
    if dist.is_initialized():
        dist.destroy_process_group()
    report.update(time_limits=execute.time_limit_rule(a.time_factor), temperature=a.temperature, top_p=a.top_p)
    if rank == 0:
        title = f"{data.name}, {len(problems)} problems x {a.samples} rollouts"
        print(format_report(report) + "\n\n" + paper_table(report, title))
        out.write_text(json.dumps(report, indent=2))
        print(f"report: {out}\nepisodes: {report_episodes_file(out)} and .html (python rlef.py show FILE)")
    return report


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        torch.set_num_threads(cores_per_rank())
        if argv and argv[0] == "eval":
            return eval_main(argv[1:])
        if argv and argv[0] == "show":
            return show_main(argv[1:])
        a = train_parser().parse_args(argv)
        cfg = config_from_args(a)
        if cfg.dry_run:
            return dry_run(cfg.model, cfg.tp, workload(cfg), a.world_size, a.gpu_memory)
        return train(cfg)
    except UsageError as e:
        if int(os.environ.get("RANK", "0")) == 0:          # under torchrun every rank finds the same mistake
            print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: every checkpoint already written is complete; --resume RUN_DIR continues from the "
              "last", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
