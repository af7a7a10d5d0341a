"""Decoding in buckets (infra/decode.py, model.generate): a bounded number of compilations and CUDA graphs, the
attention window, batched prefill and top-p over the top-k, all without changing what is sampled."""
from pathlib import Path

import pytest
import torch

import infra.decode
from infra.decode import DecodePool, bucket, decode_steps
from model import KVCache, Sampling, Tokenizer, Transformer, generate, sample_next

TINY = Path(__file__).resolve().parents[1] / "data" / "tiny"


@pytest.fixture(scope="module")
def policy():
    """The trained tiny policy: a random model's near-tied logits would flip on last-bit differences."""
    from data import load_problems
    from data.prompts import initial_prompt
    tok = Tokenizer.from_pretrained(TINY / "policy")
    problems = load_problems(TINY / "heldout.jsonl")[:10]
    prompts = [tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) for p in problems]
    return Transformer.from_pretrained(TINY / "policy").eval(), tok, prompts


def rollout_calls(prompts):
    """A rollout's generate calls: prompts of several lengths, fewer and longer each turn, then an evaluation."""
    first = [p[:n] for p, n in zip(prompts, (20, 35, 25, 40, 22, 30))]
    return [(first, [3, 6, 4, 5, 2, 6]), ([p + p[-30:] for p in first[:4]], [5, 3, 6, 4]),
            ([p * 5 for p in first[:3]], [4, 6, 2]), ([p[:70] for p in prompts[:5]], 3), ([prompts[0] * 3], 2)]


def test_buckets_waste_under_a_third():
    assert [bucket(n) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    assert [bucket(n, 64) for n in (1, 64, 65, 97, 129, 1000)] == [64, 64, 96, 128, 192, 1024]
    assert all(n <= bucket(n) and bucket(n) - n < bucket(n) / 3 for n in range(1, 5000))   # padding: under a third


def test_greedy_tokens_are_those_of_a_forward_without_cache(policy):
    # Buckets of rows (idle rows padded), batched refill and attention bounded by the longest row change no
    # greedy token: each prompt gets what argmax over the full forward of its own sequence gives.
    model, tok, prompts = policy
    prompts = [p[:n] for p, n in zip(prompts, (90, 31, 64, 17, 120, 45, 77))]
    stop = tok.stop_ids
    with torch.no_grad():
        alone = []
        for p in prompts:
            seq = list(p)
            while len(seq) - len(p) < 14 and (len(seq) == len(p) or seq[-1] not in stop):
                seq.append(model(torch.tensor([seq]))[0, -1].argmax().item())
            alone.append(seq[len(p):])
    for rows, pool in ((None, None), (3, None), (5, DecodePool())):
        out = generate(model, prompts, 14, Sampling(temperature=0, stop_ids=stop, rows=rows), pool=pool)
        assert [t for t, _ in out] == alone


def test_padding_rows_and_windows_change_no_prompts_samples(policy):
    # 10 rows shrink to a bucket of 6 when 5 are busy: one padded idle row, whose junk draws use no other
    # row's random numbers (each prompt its own stream), so every prompt samples what it samples alone.
    model, tok, prompts = policy
    prompts = [p[:n] for p, n in zip(prompts, (20, 35, 25, 40, 22, 30, 28, 45, 21, 33))]
    budgets = [2, 9, 3, 8, 2, 9, 3, 7, 2, 8]
    usage = {}
    def sample(rows, pool=None):
        out = generate(model, prompts, budgets, Sampling(temperature=1.0, rows=rows),
                       torch.Generator().manual_seed(3), usage, pool)
        return [t for t, _ in out]
    together = sample(None)
    assert usage["slots"] == 10 * 3 + 6 * 5 + 2 * 1    # 10 rows; 6 once 5 are busy (one padded); 2 once 2 are
    assert together == sample(1) == sample(4, DecodePool())
    assert [len(t) for t in together] == budgets


def test_one_compilation_serves_a_whole_rollout(policy, monkeypatch):
    # Blocks compiled per shape hit torch's recompile limit (8) on the 9th shape; with dynamic row and slot
    # dimensions, three graphs serve every shape: several rows, one row of a larger cache, a one-row cache.
    model, tok, prompts = policy
    compiled = []
    monkeypatch.setattr(infra.decode, "COMPILE_BACKEND", lambda gm, inputs: compiled.append(1) or gm.forward)
    torch._dynamo.reset()
    assert torch._dynamo.config.recompile_limit == 8
    shapes = set()
    for batch, budget in rollout_calls(prompts):
        pool = DecodePool()
        generate(model, batch, budget, Sampling(temperature=1.0, compile=True), pool=pool)
        shapes |= set(pool.steps.graphs)
    assert len(shapes) > 8                        # more shapes than the limit, each a (rows, window) bucket
    assert len(compiled) <= 3
    torch._dynamo.reset()


def test_the_turns_of_a_sampling_phase_share_one_cache_and_its_compiled_steps(policy, monkeypatch):
    # rlef.policy_sampler is what rollouts and evaluations sample with: its generate calls (one per turn) must
    # reuse one DecodePool, so that CUDA graphs and compiled steps are made once per bucket per phase.
    import rlef
    model, tok, prompts = policy
    compiled = []
    monkeypatch.setattr(infra.decode, "COMPILE_BACKEND", lambda gm, inputs: compiled.append(1) or gm.forward)
    torch._dynamo.reset()
    sample = rlef.policy_sampler(model, tok, 6, Sampling(1.0, compile=True), torch.Generator().manual_seed(0))
    calls = [batch for batch, _ in rollout_calls(prompts)]
    longest = max(len(p) for batch in calls for p in batch)
    sample([(prompts[0] * 9)[:longest]] * max(map(len, calls)))     # a first turn as large as any later one
    first = sample.pool.steps
    for batch in calls:                               # later turns fit its cache: the same steps serve them
        sample(batch)
        assert sample.pool.steps is first
    n_compiled, n_buckets = len(compiled), len(first.graphs)
    for batch in calls:                               # the next phase's shapes: nothing new to make
        sample(batch)
    assert n_buckets > 3 and len(first.graphs) == n_buckets and len(compiled) == n_compiled <= 3
    assert rlef.policy_sampler(model, tok, 6, Sampling(1.0), None).pool is None     # eager on a CPU: no pool
    torch._dynamo.reset()


def test_cuda_graphs_are_recorded_once_per_bucket_and_reused_across_calls(policy):
    # Off a GPU the recorder is a stand-in that counts; the step it returns is the eager one.
    model, tok, prompts = policy
    recorded = []
    def record(step, token, lengths):
        recorded.append(len(token))
        return step
    cache = KVCache(model.args, 4, 256)
    steps = decode_steps(model, cache, cuda_graph=True, compile=False, record=record)
    with torch.no_grad():
        model(torch.tensor([p[:40] for p in prompts[:4]]), cache=cache)
        for rows, window in ((4, 64), (4, 64), (4, 96), (2, 96), (4, 64), (2, 96), (1, 96)):
            steps(rows, window, torch.zeros(rows, dtype=torch.long))
    assert recorded == [4, 4, 2, 1]               # (4, 64), (4, 96), (2, 96), (1, 96): each once

    pool, seen, calls = DecodePool(), [], rollout_calls(prompts)
    for batch, budget in (calls[2], calls[3], calls[2]):    # the second and third fit the first one's cache
        generate(model, batch, budget, Sampling(temperature=1.0, rows=4), pool=pool)
        seen.append((pool.cache, dict(pool.steps.graphs)))
    assert seen[0][0] is seen[1][0] is seen[2][0] and seen[0][0].max_len == 192 + 1
    assert seen[1][1].items() >= seen[0][1].items()       # the second call reuses the first one's steps
    assert seen[2][1] == seen[1][1]                       # and a call seen before makes none
    assert min(window for _, window in seen[2][1]) < 192          # attention bounded by the longest row


def reference_top_p(logits, temperature, top_p, uniforms):
    """The full-sort nucleus (the code before the top-k pre-filter)."""
    logprobs = (logits.float() / temperature).log_softmax(-1)
    sorted_lp, order = logprobs.sort(-1, descending=True)
    outside = sorted_lp.exp().cumsum(-1) - sorted_lp.exp() >= top_p
    logprobs = torch.full_like(logprobs, float("-inf")).scatter(-1, order, sorted_lp.masked_fill(outside, -torch.inf))
    logprobs = logprobs.log_softmax(-1)
    cdf = logprobs.exp().double().cumsum(-1)
    token = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True).squeeze(-1).clamp(max=cdf.shape[1] - 1)
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


@pytest.mark.parametrize("scale", [8.0, 0.01])      # peaked: the top-k holds top_p; flat: it does not (full sort)
def test_top_p_over_the_top_k_equals_the_full_sort(scale):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5000, generator=gen) * scale
    uniforms = torch.rand(64, dtype=torch.float64, generator=gen)
    for top_p in (0.5, 0.9, 0.999):
        ours, ref = sample_next(logits, 0.8, top_p, uniforms), reference_top_p(logits, 0.8, top_p, uniforms)
        assert torch.equal(ours[0], ref[0])
        assert torch.equal(ours[1], ref[1])
