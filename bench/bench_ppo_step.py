"""One PPO step of the tiny demo against a plain forward/backward of the same tokens, in the same run.

The tiny demo's training phase (`python rlef.py --model tiny`, one batch) is `ppo.prepare_batch` (score the
batch: old and reference log-probs, old values) then `ppo.ppo_update` (2 mini-batches of 32 episodes, one
optimiser step each). Its episodes are the shipped tiny policy's (dim 64, 4 layers, vocabulary 1006): 64 per
batch, a prompt of ~90 tokens, 1-3 responses of up to 40 tokens with feedback between them; here they are
synthetic, of those shapes (the compute does not depend on which tokens they are).

The baseline does the same tokens, in the same micro-batches, the plainest way: full logits,
`log_softmax(...).gather(...)`, one backward for the policy and one for the critic, no PPO. The step's
unavoidable work is about one such forward/backward (the update) plus three forwards (scoring), so a
ratio far above ~1.5 says the step does work it does not need. The last row is the step as the preset ran it
before micro-batches were sorted by length and cut to 8 episodes: one micro-batch per mini-batch of 32,
padded to its longest episode (the padding cost more than the episodes). Each row is the median of --repeats runs,
interleaved so that a machine shared with other jobs slows every row alike; CPU seconds (all threads,
user + system) are disturbed less by other jobs than wall seconds, with idle threads that wait instead of
spinning (OMP_WAIT_POLICY=PASSIVE, set here unless given).

    python bench/bench_ppo_step.py                # ~1 min on 2 idle cores
    python bench/bench_ppo_step.py --profile      # also the step's most expensive operators (torch.profiler)
    python bench/bench_ppo_step.py --smoke        # a seconds-long check that it runs (tests/test_bench.py)
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # idle threads of a shared CPU wait instead of spinning

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from model import Transformer  # noqa: E402
from ppo import Episode, PPOSettings, make_optimizer, ppo_update, prepare_batch  # noqa: E402

TINY = ROOT / "data" / "tiny" / "policy"
MINIBATCHES, MICRO_BATCH = 2, 8             # the tiny preset's (rlef.PRESET_DEFAULTS["tiny"])
SETTINGS = PPOSettings(minibatches=MINIBATCHES, micro_batch_size=MICRO_BATCH)   # the paper's beta, clip, turn-level value
# The preset before: one micro-batch per mini-batch of 32, as long as its longest episode.
WHOLE_MINIBATCH = PPOSettings(minibatches=MINIBATCHES, micro_batch_size=32)


def tiny_episode(rng: random.Random, vocab: int) -> Episode:
    """A dialogue of the tiny demo's shape: the prompt (85-98 tokens with its headers), then 1-3 responses
    of up to 40 tokens with feedback (60-90 tokens) between them. Half end after one response, about as many
    as the warm-started policy solves at once; most of the others are solved at the second."""
    tokens = [rng.randrange(vocab) for _ in range(rng.randint(85, 98))]
    mask, turn_ids, value_positions, rewards = [0] * len(tokens), [-1] * len(tokens), [], []
    turns = rng.choices([1, 2, 3], weights=[50, 35, 15])[0]
    for t in range(turns):
        if t > 0:                                                    # feedback and the next turn's headers
            feedback = rng.randint(60, 90)
            tokens += [rng.randrange(vocab) for _ in range(feedback)]
            mask += [0] * feedback
            turn_ids += [-1] * feedback
        value_positions.append(len(tokens) - 1)
        response = rng.randint(15, 40)
        tokens += [rng.randrange(vocab) for _ in range(response)]
        mask += [1] * response
        turn_ids += [t] * response
        rewards.append(0.0)
    rewards[-1] = rng.choice([1.0, -1.0])
    logprobs = [-rng.random() if m else 0.0 for m in mask]
    return Episode(tokens, mask, turn_ids, value_positions, rewards, logprobs)


def models():
    """Policy, frozen reference and critic as the demo loads them (fp32, no activation checkpointing)."""
    policy, critic = Transformer.from_pretrained(TINY), Transformer.from_pretrained(TINY, value_head=True)
    return policy, Transformer.from_pretrained(TINY).eval().requires_grad_(False), critic


def micro_batches(batch: dict):
    """The (rows, length) pairs ppo_update computes: mini-batches of contiguous rows, shortest first, cut into
    micro-batches."""
    for rows in torch.arange(len(batch["tokens"])).chunk(MINIBATCHES):
        rows = rows[torch.sort(batch["lengths"][rows], stable=True).indices]
        for s in range(0, len(rows), MICRO_BATCH):
            idx = rows[s:s + MICRO_BATCH]
            yield idx, int(batch["lengths"][idx].max())


def plain_forward_backward(policy, critic, batch: dict):
    """The baseline: each micro-batch's log-probs from full logits, and the critic's values, one backward each."""
    for idx, L in micro_batches(batch):
        tokens = batch["tokens"][idx, :L]                                                  # (b, L)
        logits = policy(tokens[:, :-1])                                                    # (b, L-1, V)
        logprobs = F.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None]).squeeze(-1)   # (b, L-1)
        (logprobs * batch["action_mask"][idx, 1:L]).sum().backward()
        critic(tokens).sum().backward()
    policy.zero_grad(set_to_none=True)
    critic.zero_grad(set_to_none=True)


def plain_forward(policy, critic, batch: dict):
    """Three forwards without gradients per micro-batch (policy twice, critic once): what scoring must do."""
    with torch.no_grad():
        for idx, L in micro_batches(batch):
            tokens = batch["tokens"][idx, :L]
            for model in (policy, policy, critic):
                model(tokens)


def timed(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all of this process's threads, user + system) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64, help="episodes per batch (the tiny demo's: 64)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each row; the median is printed")
    parser.add_argument("--profile", action="store_true", help="print the step's top operators (torch.profiler)")
    parser.add_argument("--smoke", action="store_true", help="8 episodes, 1 repeat: that it runs, not a measurement")
    a = parser.parse_args(argv)
    if a.smoke:
        a.episodes, a.repeats = 8, 1
    policy, reference, critic = models()
    rng = random.Random(0)
    episodes = [tiny_episode(rng, policy.args.vocab_size) for _ in range(a.episodes)]
    optimizers = [make_optimizer(m, lr=1e-9, warmup_updates=1)[0] for m in (policy, critic)]
    batch = prepare_batch(episodes, policy, reference, critic, SETTINGS)

    def score():
        prepare_batch(episodes, policy, reference, critic, SETTINGS)

    def update():
        ppo_update(policy, critic, *optimizers, batch, SETTINGS)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)

    def whole_minibatch_step():
        ppo_update(policy, critic, *optimizers, prepare_batch(episodes, policy, reference, critic, WHOLE_MINIBATCH),
                   WHOLE_MINIBATCH)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)

    rows = {"plain forward/backward (baseline)": lambda: plain_forward_backward(policy, critic, batch),
            "plain forwards x3, no grad": lambda: plain_forward(policy, critic, batch),
            "prepare_batch": score, "ppo_update": update,
            "PPO step, micro-batches of 32 (before)": whole_minibatch_step}
    for fn in rows.values():                                                      # warm-up
        fn()
    seconds = {name: [] for name in rows}
    for _ in range(a.repeats):
        for name, fn in rows.items():
            seconds[name].append(timed(fn))
    median = {name: [statistics.median(run[k] for run in runs) for k in (0, 1)] for name, runs in seconds.items()}
    median["PPO step = prepare_batch + ppo_update"] = [p + u for p, u in zip(median["prepare_batch"],
                                                                           median["ppo_update"])]
    median["PPO step, micro-batches of 32 (before)"] = median.pop("PPO step, micro-batches of 32 (before)")
    base = median["plain forward/backward (baseline)"]

    lengths = batch["lengths"].float()
    print(f"{a.episodes} episodes, {int(lengths.sum())} tokens (mean {lengths.mean():.0f}, max {int(lengths.max())}), "
          f"{MINIBATCHES} mini-batches of micro-batches of {MICRO_BATCH}; {sum(p.numel() for p in policy.parameters())} "
          f"policy parameters; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, median of {a.repeats}")
    print(f"| {'what':<40} | {'wall s':>7} | {'CPU s':>7} | {'wall ratio':>10} | {'CPU ratio':>9} |")
    print(f"|{'-' * 42}|{'-' * 8}:|{'-' * 8}:|{'-' * 11}:|{'-' * 10}:|")
    for name, (wall, cpu) in median.items():
        print(f"| {name:<40} | {wall:>7.3f} | {cpu:>7.3f} | {wall / base[0]:>9.2f}x | {cpu / base[1]:>8.2f}x |")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            score()
            update()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
