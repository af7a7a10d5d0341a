"""GPU speed in one run: the card's two ceilings, then sampling and a PPO micro-batch measured against them.

    python bench/gpu.py --json $OUT/gpu.json      # one H100/H200, < 10 min; docs/PERFORMANCE.md's tables come from this
    python bench/gpu.py --smoke                   # CPU, small shapes: checks the script itself (~1 min)

What it prints (random weights throughout: speed does not depend on their values):

1. Ceilings: device-to-device copy bandwidth (bytes read + written per second) and a large bf16 matmul rate.
2. Numerics: bf16 GPU logits against fp32 CPU logits of the same small random model (relative error).
3. Compiled vs eager sampling (``model.decoder``): greedy tokens of the trained tiny policy (data/tiny/policy)
   on the held-out tiny problems, fp32 and bf16, eager vs CUDA graph vs torch.compile + CUDA graph.
4. Decode tokens/s for the 8B preset, bf16, prompt 512, batch 1/16/64, eager / CUDA graph / compiled, each as
   a percentage of the bandwidth floor: a decode step must read every weight once (the input embedding
   excepted: it reads B rows) and each sequence's keys and values, so
   floor tokens/s = B * bandwidth / (weight bytes + B * context * KV bytes per position).
5. Prefill tokens/s (8B, batch 16 x 512) and a PPO micro-batch (1B and 3B presets, 4 x 2048 tokens: forward
   with chunked log-probs, PPO's clipped loss, backward, activation checkpointing) in tokens/s and model
   FLOPs utilisation against the measured matmul rate: 6 N + 6 n_layers T d FLOPs per token (PaLM's
   convention, causal attention; the recomputation of checkpointing is not counted).
6. One RLEF training step end to end (``rlef.rollout``, ``ppo.prepare_batch``, ``ppo.ppo_update``) on each preset
   of 1B and 3B that fits the card by the bench's own plan (``e2e_presets``: ``--dry-run``'s arithmetic for one
   GPU; on an 80 GB card 1B only, as 3B's persistent state is ~90 GB), random weights: 64 episodes of up to 3
   turns on synthetic problems (prompts of ~150-650 tokens), each response really decoded by the sampling
   replica (``infra.parallel.SamplingReplica``, continuous batching in the rows the memory left allows) with a
   length drawn uniformly from 50-1,024 tokens, then replaced by a right or wrong program of that length that
   the judge really runs. Seconds per step split into sampling (with the replica's refresh) / execution /
   training; sampling tokens/s against the decode floor of its own steps (each step reads the weights once,
   each token its sequence's keys and values: ``decode_floor_seconds``); slot efficiency; ``logprob_gap``
   (mean |trainer - sampler| log-prob, what PPO's importance weight sees); the allocator's retries and peak.
   The second of two steps is reported.
7. Probes a first GPU session needs: continuous batching's refills under CUDA graphs (``refill``), temperature 1
   with top-p (``sampling``), compiled decoding over a rollout's shapes at torch's default recompile limit
   (``compile``), long dialogues in many rows (``long``). Each has a CPU smoke test in tests/test_bench.py.

Each section starts with torch._dynamo reset (as a run of its own would) and runs on its own: a failure prints
its traceback and the others still run. The whole script is meant to finish within 10 minutes on one H100.
"""
import argparse
import json
import random
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from model import (PRESETS, KVCache, ModelArgs, Sampling, Tokenizer, Transformer, decoder, generate,  # noqa: E402
                   sample_next)
from ppo import policy_loss_sum  # noqa: E402

SMOKE_ARGS = ModelArgs(dim=128, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512, hidden_dim=256, max_seq_len=4096)
MODES = {"eager": dict(cuda_graph=False, compile=False), "CUDA graph": dict(cuda_graph=True, compile=False),
         "compiled": dict(cuda_graph=True, compile=True)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device, warmup=1, repeat=3):
    """Median wall time of fn() over ``repeat`` runs after ``warmup`` runs, the device drained around each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def random_model(args: ModelArgs, device, dtype, value_head: bool = False) -> Transformer:
    """A Transformer with N(0, 0.02) weights made directly on the device (no CPU copy of 16 GB)."""
    with torch.device("meta"):
        model = Transformer(args, value_head=value_head).to(dtype)
    model = model.to_empty(device=device)
    if args.tie_word_embeddings and not value_head:
        model.lm_head.weight = model.embed_tokens.weight
    with torch.no_grad():
        return model.init_weights(0.02)


def matmul_params(model: Transformer) -> int:
    """Parameters used by matrix multiplications: all but the embedding table (looked up, not multiplied)
    and the norms; a tied output layer counts once, as the output layer."""
    n = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and name != "embed_tokens.weight")
    return n + (model.lm_head.weight.numel() if model.args.tie_word_embeddings else 0)


# ---------------------------------------------------------------------------------------------------------

def ceilings(device, smoke):
    n_bytes = (64 if smoke else 4096) << 20
    src = torch.empty(n_bytes // 2, dtype=torch.bfloat16, device=device).normal_()
    dst = torch.empty_like(src)
    t = seconds(lambda: dst.copy_(src), device, warmup=2, repeat=10)
    bandwidth = 2 * n_bytes / t                                     # read + write
    n = 1024 if smoke else 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    t = seconds(lambda: a @ b, device, warmup=3, repeat=10)
    flops = 2 * n ** 3 / t
    print(f"copy bandwidth {bandwidth / 1e9:,.0f} GB/s ({n_bytes >> 20} MiB copied); "
          f"bf16 matmul {n}^3 {flops / 1e12:,.1f} TFLOP/s")
    return {"bandwidth_bytes_per_s": bandwidth, "matmul_flops_per_s": flops}


def numerics(device, smoke):
    """Same random fp32 weights and tokens: CPU fp32 logits are the reference."""
    args = SMOKE_ARGS if smoke else ModelArgs(dim=512, n_layers=4, n_heads=8, n_kv_heads=2, vocab_size=32000,
                                              hidden_dim=1536, max_seq_len=1024)
    torch.manual_seed(0)
    ref_model = Transformer(args).init_weights(0.02).eval()
    tokens = torch.randint(0, args.vocab_size, (2, 256))
    with torch.no_grad():
        ref = ref_model(tokens).double()
        out = {}
        torch.backends.cuda.matmul.allow_tf32 = False
        for dtype in (torch.float32, torch.bfloat16):
            model = Transformer(args).to(device, dtype).eval()
            model.load_state_dict(ref_model.state_dict())
            logits = model(tokens.to(device)).double().cpu()
            rel = ((logits - ref).norm() / ref.norm()).item()
            top1 = (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()
            out[str(dtype)] = {"relative_error": rel, "top1_agreement": top1}
            print(f"{device.type} {str(dtype)[6:]:>8} logits vs CPU fp32: relative error {rel:.2e}, "
                  f"same argmax at {100 * top1:.1f}% of positions")
    return out


def greedy_identity(device, smoke):
    """The trained tiny policy, greedy, on the 100 held-out tiny problems: tokens per decode mode."""
    from data import load_problems
    from data.prompts import initial_prompt
    weights = ROOT / "data" / "tiny" / "policy"
    tok = Tokenizer.from_pretrained(weights)
    problems = load_problems(ROOT / "data" / "tiny" / "heldout.jsonl")
    prompts = [tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) for p in problems]
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = Transformer.from_pretrained(weights, device, dtype).eval()
        runs = {}
        for mode, kw in MODES.items():
            if mode == "CUDA graph" and device.type != "cuda":
                continue
            kw = {**kw, "cuda_graph": kw["cuda_graph"] and device.type == "cuda"}     # CPU: compile only
            runs[mode] = [t for t, _ in generate(model, prompts, 40, Sampling(temperature=0, stop_ids=tok.stop_ids, **kw))]
        same = {mode: sum(a == b for a, b in zip(runs["eager"], toks)) for mode, toks in runs.items()}
        out[str(dtype)] = same
        print(f"tiny policy {str(dtype)[6:]:>8}: sequences identical to eager out of {len(prompts)}: "
              + ", ".join(f"{m} {n}" for m, n in same.items()))
    return out


def decode_speed(device, smoke, ceil):
    name = "smoke" if smoke else "8b"
    args = SMOKE_ARGS if smoke else PRESETS["8b"]
    dtype = torch.float32 if smoke else torch.bfloat16
    model = random_model(args, device, dtype).eval()
    elem = torch.finfo(dtype).bits // 8
    weight_bytes = matmul_params(model) * elem + sum(p.numel() for n, p in model.named_parameters() if p.dim() == 1) * elem
    kv_bytes_per_position = 2 * args.n_layers * args.n_kv_heads * args.head_dim * elem
    prompt_len, warm, steps = 512, 3, (8 if smoke else 64)
    rows, tokens_by_mode = [], {}
    for batch in (1, 16, 64):
        gen = torch.Generator(device=device).manual_seed(batch)
        prompts = torch.randint(0, args.vocab_size, (batch, prompt_len), device=device, generator=gen)
        for mode, kw in MODES.items():
            if mode == "CUDA graph" and device.type != "cuda":
                continue
            kw = {**kw, "cuda_graph": kw["cuda_graph"] and device.type == "cuda"}
            with torch.no_grad():
                cache = KVCache(args, batch, -(-(prompt_len + warm + steps) // 64) * 64, device, dtype)
                logits = model(prompts, cache=cache)[:, -1]
                t0 = time.perf_counter()
                decode = decoder(model, cache, batch, **kw)
                sync(device)
                setup = time.perf_counter() - t0
                token = logits.argmax(-1)
                made = []
                for i in range(warm + steps):
                    if i == warm:
                        sync(device)
                        t0 = time.perf_counter()
                    token, _ = sample_next(decode(token), 0.0, 1.0)
                    made.append(token)
                sync(device)
                dt = time.perf_counter() - t0
            tokens_by_mode[batch, mode] = torch.stack(made, 1).cpu()
            context = prompt_len + warm + steps / 2
            floor = batch * ceil["bandwidth_bytes_per_s"] / (weight_bytes + batch * context * kv_bytes_per_position)
            rate = batch * steps / dt
            agree = tokens_by_mode[batch, mode] == tokens_by_mode[batch, "eager"]             # (batch, steps)
            same = int(agree.all(1).sum())
            # where the first different token comes (steps if none): near-ties of a random model's logits
            first_diff = int((~agree).float().argmax(1).where(~agree.all(1), torch.tensor(steps)).median())
            rows.append({"model": name, "batch": batch, "mode": mode, "tokens_per_s": rate,
                         "ms_per_step": 1e3 * dt / steps, "floor_tokens_per_s": floor, "pct_of_floor": 100 * rate / floor,
                         "setup_s": setup, "greedy_same_as_eager": same, "median_first_diff": first_diff})
            print(f"decode {name} {str(dtype)[6:]} batch {batch:>2} {mode:>10}: {rate:>9,.1f} tokens/s  "
                  f"{1e3 * dt / steps:7.2f} ms/step  {100 * rate / floor:5.1f}% of floor ({floor:,.0f})  "
                  f"setup {setup:5.1f}s  greedy same as eager: {same}/{batch} (median first difference at step {first_diff})", flush=True)
            del cache, decode
    # Random bf16 logits are full of near-ties that rounding differences flip. In fp32 (TF32 off) the same
    # comparison checks that compiled decoding computes what eager decoding computes.
    model = None                                           # free the bf16 weights first
    torch.backends.cuda.matmul.allow_tf32 = False
    model32 = random_model(args, device, torch.float32).eval()
    prompts = torch.randint(0, args.vocab_size, (16, prompt_len), device=device).tolist()
    on_gpu = device.type == "cuda"
    runs = {mode: [t for t, _ in generate(model32, prompts, 32, Sampling(temperature=0, compile=kw["compile"],
                                                                          cuda_graph=kw["cuda_graph"] and on_gpu))]
            for mode, kw in MODES.items() if on_gpu or mode != "CUDA graph"}
    fp32_same = {mode: sum(a == b for a, b in zip(runs["eager"], toks)) for mode, toks in runs.items()}
    print(f"decode {name} float32 (generate, 16 x 32 greedy tokens): sequences identical to eager: "
          + ", ".join(f"{m} {n}/16" for m, n in fp32_same.items()), flush=True)
    model32 = None
    model = random_model(args, device, dtype).eval()
    # Prefill: one forward over batch x prompt with the cache (what generate does first).
    batch = 16
    prompts = torch.randint(0, args.vocab_size, (batch, prompt_len), device=device)

    def prefill():
        with torch.no_grad():
            cache = KVCache(args, batch, prompt_len + 64, device, dtype)
            model(prompts, cache=cache)
    t = seconds(prefill, device)
    n_tokens = batch * prompt_len
    flops = n_tokens * (2 * matmul_params(model) + 2 * args.n_layers * prompt_len * args.dim)
    mfu = 100 * flops / t / ceil["matmul_flops_per_s"]
    print(f"prefill {name} batch {batch} x {prompt_len}: {n_tokens / t:,.0f} tokens/s, {mfu:.1f}% MFU")
    model = None
    return {"decode": rows, "fp32_greedy_same_as_eager": fp32_same, "prefill": {"model": name, "batch": batch, "prompt": prompt_len,
                                        "tokens_per_s": n_tokens / t, "mfu_pct": mfu},
            "weight_bytes": weight_bytes, "kv_bytes_per_position": kv_bytes_per_position}


def ppo_microbatch(device, smoke, ceil):
    out = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for name in (["smoke"] if smoke else ["1b", "3b"]):
        args = SMOKE_ARGS if smoke else PRESETS[name]
        dtype = torch.float32 if smoke else torch.bfloat16
        model = random_model(args, device, dtype)
        model.gradient_checkpointing = True
        B, T = (2, 256) if smoke else (4, 2048)
        tokens = torch.randint(0, args.vocab_size, (B, T + 1), device=device)
        advantages = torch.randn(B, T, device=device)
        mask = torch.ones(B, T, device=device)

        def step():
            logprobs, _ = model(tokens[:, :-1], targets=tokens[:, 1:])              # (B, T) chunked
            loss, _ = policy_loss_sum(logprobs, logprobs.detach(), logprobs.detach(), advantages, mask)
            (loss / mask.sum()).backward()
        t = seconds(step, device, warmup=1, repeat=3)
        flops = B * T * (6 * matmul_params(model) + 6 * args.n_layers * T * args.dim)
        mfu = 100 * flops / t / ceil["matmul_flops_per_s"]
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        print(f"PPO micro-batch {name} {B}x{T}: {B * T / t:,.0f} tokens/s, {1e3 * t:.0f} ms, {mfu:.1f}% MFU, "
              f"peak {peak:.1f} GiB", flush=True)
        out.append({"model": name, "batch": B, "seq": T, "tokens_per_s": B * T / t, "mfu_pct": mfu, "peak_gib": peak})
        model = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return out


# ---------------------------------------------------------------------------------------------------------
# 7. Probes for a first GPU session: the paths CPU tests cannot time or cannot reach (CUDA graphs, Inductor)

def tiny_policy(device, dtype=torch.float32, prompts: int = 100):
    """The trained tiny policy and the first ``prompts`` held-out prompts: greedy tokens worth comparing (a random
    model's near-tied logits flip on last-bit differences)."""
    from data import load_problems
    from data.prompts import initial_prompt
    weights = ROOT / "data" / "tiny" / "policy"
    tok = Tokenizer.from_pretrained(weights)
    problems = load_problems(ROOT / "data" / "tiny" / "heldout.jsonl")[:prompts]
    return (Transformer.from_pretrained(weights, device, dtype).eval(), tok,
            [tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) for p in problems])


def timed_generate(model, prompts, budgets, sampling, device, seed: int = 0):
    """generate(...) with a fresh ``DecodePool``: (token lists, seconds, usage, CUDA graphs recorded)."""
    from infra.decode import DecodePool
    usage, pool = {}, DecodePool()
    gen = torch.Generator(device).manual_seed(seed)
    sync(device)
    t0 = time.perf_counter()
    out = generate(model, prompts, budgets, sampling, gen, usage, pool)
    sync(device)
    return [t for t, _ in out], time.perf_counter() - t0, usage, pool.steps.recorded


def refill_probe(device, smoke):
    """Continuous batching under CUDA graphs: 100 prompts (12 in smoke) in 16 rows (4), responses of 8-40
    tokens, so rows end and are refilled (batched prefill) between replays, and the rows shrink to smaller
    buckets at the tail. Greedy, fp32: the same tokens as eager decoding of all prompts at once (no refill)."""
    model, tok, prompts = tiny_policy(device, prompts=12 if smoke else 100)
    rng = random.Random(0)
    budgets = [rng.randint(8, 40) for _ in prompts]
    rows = 4 if smoke else 16
    at_once = timed_generate(model, prompts, budgets, Sampling(temperature=0, cuda_graph=False), device)[0]
    out = {"prompts": len(prompts), "rows": rows}
    for mode in (["eager", "CUDA graph"] if device.type == "cuda" else ["eager"]):
        sampling = Sampling(temperature=0, rows=rows, cuda_graph=mode == "CUDA graph")
        tokens, dt, usage, recorded = timed_generate(model, prompts, budgets, sampling, device)
        out[mode] = {"same_as_at_once": sum(a == b for a, b in zip(tokens, at_once)),
                     "tokens_per_s": usage["tokens"] / dt,
                     "slot_efficiency": usage["tokens"] / usage["slots"], "graphs_recorded": recorded}
        print(f"refill {mode:>10}: {len(prompts)} prompts in {rows} rows, sequences identical to all at once "
              f"{out[mode]['same_as_at_once']}/{len(prompts)}, {usage['tokens'] / dt:,.0f} tokens/s, slot efficiency "
              f"{usage['tokens'] / usage['slots']:.2f}, {recorded} CUDA graphs recorded", flush=True)
    return out


def sampling_probe(device, smoke):
    """Temperature 1 with top-p 0.95 (evaluation's 10@100 setting): (a) ``generate`` on the tiny policy (fp32)
    in half as many rows as prompts, eager and under CUDA graphs, against all prompts at once: each prompt
    draws from its own random stream, so the same seed gives it the same tokens whatever its row and
    neighbours, where the logits are the same; (b) the cost of one ``sample_next`` call over 64 rows x Llama 3's
    128,256 logits: greedy, temperature alone, top-p where the 1,024 most likely tokens hold the nucleus
    (peaked logits, the top-k path) and where they do not (flat logits, the full sort)."""
    model, tok, prompts = tiny_policy(device, prompts=12 if smoke else 64)
    at_once = timed_generate(model, prompts, 32, Sampling(temperature=1.0, top_p=0.95, cuda_graph=False), device,
                             seed=1)[0]
    out = {"prompts": len(prompts)}
    for mode in (["eager", "CUDA graph"] if device.type == "cuda" else ["eager"]):
        sampling = Sampling(temperature=1.0, top_p=0.95, rows=len(prompts) // 2, cuda_graph=mode == "CUDA graph")
        tokens, dt, usage, _ = timed_generate(model, prompts, 32, sampling, device, seed=1)
        out[mode] = {"tokens_per_s": usage["tokens"] / dt,
                     "same_as_at_once": sum(a == b for a, b in zip(tokens, at_once))}
        print(f"sampling T=1 top-p 0.95 {mode:>10}: {usage['tokens'] / dt:,.0f} tokens/s, sequences identical to "
              f"all prompts at once {out[mode]['same_as_at_once']}/{len(prompts)}", flush=True)
    rows, vocab = (8, 4096) if smoke else (64, 128256)
    gen = torch.Generator(device).manual_seed(0)
    uniforms = torch.rand(rows, dtype=torch.float64, device=device, generator=gen)
    logits = torch.randn(rows, vocab, device=device, generator=gen)
    cases = {"greedy": (logits, 0.0, 1.0), "temperature 1": (logits, 1.0, 1.0),
             "top-p 0.95, peaked (top-k)": (logits * 8, 1.0, 0.95), "top-p 0.95, flat (full sort)": (logits, 1.0, 0.95)}
    out["sample_next_ms"] = {}
    for name, (x, t, top_p) in cases.items():
        ms = 1e3 * seconds(lambda: sample_next(x, t, top_p, uniforms), device, warmup=2, repeat=10)
        out["sample_next_ms"][name] = ms
        print(f"sample_next {rows} x {vocab:,} {name:>28}: {ms:.3f} ms", flush=True)
    return out


def long_context_probe(device, smoke):
    """Long dialogues in many rows, as a third turn is (a few thousand tokens each): 64 prompts of 4-7k
    tokens (smoke: 8 of 100-300) on the 1B preset in bf16, random weights, all rows decoding together, 64 new
    tokens: the batched prefill, the attention window at its largest, and the memory it takes."""
    args = SMOKE_ARGS if smoke else PRESETS["1b"]
    dtype = torch.float32 if smoke else torch.bfloat16
    n, lengths = (8, (100, 300)) if smoke else (64, (4000, 7000))
    model = random_model(args, device, dtype).eval()
    rng = random.Random(0)
    prompts = [[rng.randrange(args.vocab_size) for _ in range(rng.randint(*lengths))] for _ in range(n)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _, dt, usage, recorded = timed_generate(model, prompts, 64, Sampling(temperature=1.0), device)
    prompt_tokens = sum(map(len, prompts))
    out = {"model": "smoke" if smoke else "1b", "rows": n, "prompt_tokens": prompt_tokens, "seconds": dt,
           "new_tokens": usage["tokens"], "graphs_recorded": recorded, **allocator_stats(device)}
    print(f"long context {out['model']}: {n} rows, {prompt_tokens:,} prompt tokens + {usage['tokens']:,} sampled in "
          f"{dt:.1f} s ({(prompt_tokens + usage['tokens']) / dt:,.0f} tokens/s with prefill), {recorded} CUDA graphs, "
          f"peak {out['peak_gib']:.1f} GiB, allocator retries {out['num_alloc_retries']}", flush=True)
    return out


def compile_probe(device, smoke):
    """``Sampling(compile=True)`` over a rollout-like sequence of ``generate`` calls (batches of 3-64 prompts of
    several lengths, fewer and longer each turn, then an evaluation batch) at torch's default recompile limit:
    every call completes, the graphs compiled (torch._dynamo's count) stay few, the first call's compile time,
    and greedy tokens against eager (fp32, the tiny policy). The smoke run counts with the eager backend."""
    import infra.decode
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    model, tok, prompts = tiny_policy(device, prompts=64)
    first = [p[:n] for p, n in zip(prompts, [20 + 7 * (i % 9) for i in range(64)])]
    calls = [(first, 12), (first[:40], 10), ([p + p[-30:] for p in first[:24]], 8), ([p * 3 for p in first[:6]], 6),
             (prompts[:48], 12), ([prompts[0] * 3], 4), (first[:3], 16)]
    backend = infra.decode.COMPILE_BACKEND
    if smoke:
        infra.decode.COMPILE_BACKEND = "eager"
    before = counters["stats"]["unique_graphs"]
    out = {"recompile_limit": torch._dynamo.config.recompile_limit, "calls": len(calls), "seconds": [],
           "same_as_eager": 0, "sequences": 0}
    try:
        for batch, budget in calls:
            eager = timed_generate(model, batch, budget, Sampling(temperature=0, cuda_graph=False), device)[0]
            tokens, dt, _, _ = timed_generate(model, batch, budget, Sampling(temperature=0, compile=True), device)
            out["seconds"].append(dt)
            out["same_as_eager"] += sum(a == b for a, b in zip(tokens, eager))
            out["sequences"] += len(batch)
    finally:
        infra.decode.COMPILE_BACKEND = backend
    out["graphs"] = counters["stats"]["unique_graphs"] - before
    print(f"compile at the default recompile limit ({out['recompile_limit']}): {len(calls)} generate calls, "
          f"{out['graphs']} graphs compiled, first call {out['seconds'][0]:.1f} s, the others "
          f"{sum(out['seconds'][1:]):.1f} s, greedy sequences identical to eager {out['same_as_eager']}/"
          f"{out['sequences']}", flush=True)
    torch._dynamo.reset()
    return out


# ---------------------------------------------------------------------------------------------------------
# 6. One RLEF training step, end to end

STATEMENT = "Read an integer n and print 2 * n."
RIGHT, WRONG = "```python\nprint(2 * int(input()))\n```", "```python\nprint(int(input()) + 2)\n```"


def synthetic_problems(n: int, rng, filler_words: tuple[int, int]):
    """``n`` copies of one task, each statement padded with a random number of filler words (longer prompts)."""
    from data import Problem, Test
    return [Problem(f"double{i}", STATEMENT + " Notes:" + " the" * rng.randint(*filler_words),
                    [Test("3\n", "6\n"), Test("5\n", "10\n")], [Test("-4\n", "-8\n"), Test("0\n", "0\n")])
            for i in range(n)]


def scripted_sampler(model, tok, rows, cache_bytes, lengths, rng, generator, usage, calls):
    """``rollout``'s sample function for random weights: the replica really decodes each response, its length
    drawn from ``lengths`` (no stop tokens, so exactly that long), and then the response's tokens are replaced
    by a program of the same length that the judge really runs: right or wrong with equal odds, followed by
    filler text. (Its log-probs stay those of the sampled tokens: PPO's ratios are meaningless, its cost not.)"""
    import rlef
    filler = tok.encode(" the")[-1]

    def sample(prompts):
        budgets = [rng.randint(*lengths) for _ in prompts]
        n_rows = rows or rlef.cache_rows(model, cache_bytes, max(map(len, prompts)) + max(budgets))
        slots = usage.get("slots", 0)
        out = generate(model, prompts, budgets, Sampling(temperature=1.0, rows=n_rows), generator=generator, usage=usage)
        calls.append({"rows": n_rows, "steps": (usage["slots"] - slots) // n_rows,
                      "prompts": [len(p) for p in prompts], "responses": budgets,
                      "sampled": [(list(p), t, lp) for p, (t, lp) in zip(prompts[:4], out)]})  # rollout extends p
        replies = []
        for (_, logprobs), n in zip(out, budgets):
            code = tok.encode(RIGHT if rng.random() < 0.5 else WRONG)[:n - 1]
            replies.append((code + [filler] * (n - 1 - len(code)) + [tok.eot_id], logprobs))
        return replies
    return sample


@torch.no_grad()
def logprob_gap(policy, calls) -> float:
    """Mean |trainer - sampler| log-prob over the sampled tokens of ``calls``' first responses: the trainer's
    (the sharded policy, as ``prepare_batch`` scores) against what the replica's decoding recorded, on the very
    tokens sampled (the rollout's own gap is meaningless here: its responses are replaced by programs)."""
    total, n = 0.0, 0
    device = policy.embed_tokens.weight.device
    for prompt, tokens, sampled in (s for c in calls for s in c["sampled"]):
        seq = torch.tensor([prompt + tokens], device=device)                              # (1, T)
        trainer, _ = policy(seq[:, :-1], targets=seq[:, 1:], temperature=1.0)          # (1, T - 1)
        total += (trainer[0, len(prompt) - 1:].float().cpu() - torch.tensor(sampled)).abs().sum().item()
        n += len(tokens)
    return total / n


def decode_floor_seconds(calls, weight_bytes: float, kv_bytes_per_position: float, bandwidth: float) -> float:
    """The least time the decode steps of ``calls`` take at ``bandwidth``: each step reads every weight once,
    each token its sequence's keys and values so far (prefill not counted)."""
    total = 0.0
    for c in calls:
        kv = sum(n * p + n * (n - 1) / 2 for p, n in zip(c["prompts"], c["responses"]))     # sum over tokens
        total += c["steps"] * weight_bytes + kv * kv_bytes_per_position
    return total / bandwidth


def allocator_stats(device) -> dict:
    """The caching allocator's retries (each one a synchronising free of its cache and a new try: the sign of a
    plan that fills the card) and peak memory since the process began (0 on a CPU)."""
    if device.type != "cuda":
        return {"num_alloc_retries": 0, "peak_gib": 0.0}
    stats = torch.cuda.memory_stats(device)
    return {"num_alloc_retries": stats.get("num_alloc_retries", 0),
            "peak_gib": stats.get("allocated_bytes.all.peak", 0) / 2**30}


def e2e_setup(args, device, cfg):
    """Policy, critic (fp32 master weights), reference and optimisers as rlef.load_models and train make them,
    with random weights; FSDP2 over the one GPU for bf16 compute (as ``python rlef.py`` on one GPU)."""
    import torch.distributed as dist
    from ppo import make_optimizer
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    policy = random_model(args, device, torch.float32)
    value = random_model(args, device, torch.float32, value_head=True)
    reference = random_model(args, device, compute).requires_grad_(False)
    policy.gradient_checkpointing = value.gradient_checkpointing = True
    if dist.is_initialized():
        dtype = getattr(torch, cfg.dtype)
        from infra.parallel import shard
        policy, value = shard(policy, device, dtype), shard(value, device, dtype)
        reference = shard(reference, device, dtype, trained=False)
    return policy, value, reference, make_optimizer(policy, 1e-6), make_optimizer(value, 1e-6), compute


def e2e_one(name, args, device, smoke, ceil, tok, judge):
    import rlef
    from ppo import PPOSettings, ppo_update, prepare_batch
    cfg = rlef.Config(model="tiny")
    policy, value, reference, (popt, psched), (vopt, vsched), compute = e2e_setup(args, device, cfg)
    replica = rlef.SamplingReplica(policy, compute)
    cache_bytes = rlef.kv_cache_budget(policy, value, device, 1)
    rng = random.Random(0)
    episodes, lengths = (6, (5, 30)) if smoke else (64, (50, 1024))
    problems = synthetic_problems(episodes, rng, (5, 20) if smoke else (100, 600))
    gen = torch.Generator(device).manual_seed(0)
    rows = 2 if smoke else 0                               # smoke: fewer rows than episodes, to refill rows
    elem = compute.itemsize
    norms = sum(p.numel() for p in replica.model.parameters() if p.dim() == 1)
    weight_bytes = (matmul_params(replica.model) + norms) * elem          # what a decode step reads, as in decode_speed
    kv_pp = 2 * args.n_layers * args.n_kv_heads * args.head_dim * elem
    result = None
    for attempt in ("warm-up", "measured"):                # the first step pays for allocator growth and graphs
        usage, calls = {}, []
        sample = scripted_sampler(replica.model, tok, rows, cache_bytes, lengths, rng, gen, usage, calls)
        sample_s = [0.0]

        def timed(prompts):
            sync(device)
            t = time.perf_counter()
            out = sample(prompts)
            sync(device)
            sample_s[0] += time.perf_counter() - t
            return out
        sync(device)
        t0 = time.perf_counter()
        replica.refresh(policy)
        sync(device)
        refresh_s = time.perf_counter() - t0
        with torch.no_grad():
            dialogues = rlef.rollout(timed, tok, problems, judge, 3, max_len=args.max_seq_len - lengths[1])
        gap_t0 = time.perf_counter()
        gap = logprob_gap(policy, calls)                   # not timed: before the update changes the policy
        t1 = time.perf_counter()
        t0 += t1 - gap_t0
        settings = PPOSettings(beta=0.05, advantage_mode="turn", minibatches=4, micro_batch_size=4)
        batch = prepare_batch(dialogues, policy, reference, value, settings)
        ppo_update(policy, value, popt, vopt, batch, settings, schedulers=(psched, vsched))
        for opt in (popt, vopt):                           # as rlef.train_step: gradients freed after the update
            opt.zero_grad(set_to_none=True)
        sync(device)
        t2 = time.perf_counter()
        tokens, slots = usage["tokens"], usage["slots"]
        floor_s = decode_floor_seconds(calls, weight_bytes, kv_pp, ceil["bandwidth_bytes_per_s"])
        sampling = refresh_s + sample_s[0]
        result = {"model": name, "episodes": episodes, "response_tokens": list(lengths),
                  "rows": [c["rows"] for c in calls],
                  "turns": sum(len(d.codes) for d in dialogues) / len(dialogues),
                  "solved": sum(d.solved for d in dialogues) / len(dialogues), "sampled_tokens": tokens,
                  "trained_tokens": sum(len(d.tokens) for d in dialogues), "refresh_s": refresh_s,
                  "sample_s": sampling, "exec_s": t1 - t0 - sampling, "train_s": t2 - t1, "step_s": t2 - t0,
                  "sample_tokens_per_s": tokens / sampling, "floor_tokens_per_s": tokens / floor_s,
                  "pct_of_floor": 100 * floor_s / sampling, "slot_efficiency": tokens / slots,
                  "logprob_gap": gap, **allocator_stats(device)}
        print_e2e(result, attempt)
    return result


def print_e2e(r: dict, attempt: str):
    print(f"e2e {r['model']} ({attempt}): step {r['step_s']:.1f}s = sampling {r['sample_s']:.1f}s (replica refresh "
          f"{r['refresh_s']:.2f}s) + execution {r['exec_s']:.1f}s + training {r['train_s']:.1f}s | "
          f"{r['episodes']} episodes, {r['turns']:.2f} turns, {r['sampled_tokens']:,} sampled tokens in rows of "
          f"{r['rows']} | sampling {r['sample_tokens_per_s']:,.0f} tokens/s, "
          f"{r['pct_of_floor']:.1f}% of the decode floor ({r['floor_tokens_per_s']:,.0f}) | "
          f"slot efficiency {r['slot_efficiency']:.2f} | logprob_gap {r['logprob_gap']:.2e} | allocator retries "
          f"{r['num_alloc_retries']}, peak {r['peak_gib']:.1f} GiB", flush=True)


E2E_PRESETS = ("1b", "3b")
E2E_WORKLOAD = dict(batch_size=64, micro_batch_size=4, max_len=4096)   # 64 episodes of up to 3 turns
E2E_MIN_ROWS = 16                         # a preset whose KV cache holds fewer rows is skipped: it would crawl


def e2e_presets(gpu_bytes: float, presets=E2E_PRESETS) -> list[tuple[str, bool, str]]:
    """Which presets one RLEF step fits on a card of ``gpu_bytes``, by the plan ``--dry-run`` prints
    (``infra.memory_plan.memory_plan`` for one GPU: policy and critic fp32 with AdamW, the reference and the
    sampling replica in bf16, then the largest phase): (name, fits, why) each. A preset fits if the plan's
    peak does and the memory left holds ``E2E_MIN_ROWS`` rows of KV cache. (3B needs ~90 GB of persistent
    state: not on an 80 GB card.)"""
    from infra.memory_plan import Workload, memory_plan, plan_peaks
    out = []
    for name in presets:
        args = PRESETS[name]
        plan = memory_plan(args, 1, Workload(**E2E_WORKLOAD), gpu_bytes)
        persistent = sum(b for _, phase, _, b in plan if phase == "persistent")
        per_row = KVCache.bytes_per_token(args) * E2E_WORKLOAD["max_len"]
        rows = int((0.9 * gpu_bytes - persistent) // per_row)
        peak = plan_peaks(plan)[0]
        fits = peak < gpu_bytes and rows >= E2E_MIN_ROWS
        out.append((name, fits, f"plan peak {peak / 2**30:.1f} GiB of {gpu_bytes / 2**30:.1f}, persistent "
                                f"{persistent / 2**30:.1f} GiB, KV cache for {max(rows, 0)} rows of "
                                f"{E2E_WORKLOAD['max_len']} tokens"))
    return out


def e2e(device, smoke, ceil):
    """One RLEF step on each preset that fits this card by its own plan (``e2e_presets``; random weights),
    with responses of 50-1,024 tokens."""
    from dataclasses import replace
    import execute
    import rlef
    if device.type == "cuda":
        rlef.setup_distributed()                          # a process group of one: FSDP2 as in train()
    tok = Tokenizer.from_pretrained(ROOT / "data" / "tiny" / "policy")
    out = []
    if smoke:
        chosen = ["smoke"]
    else:
        planned = e2e_presets(torch.cuda.mem_get_info()[1])
        for name, fits, why in planned:
            print(f"e2e {name}: {'runs' if fits else 'skipped'}: {why}", flush=True)
        chosen = [name for name, fits, _ in planned if fits]
        if not chosen:
            return [{"skipped": "no preset fits this card: " + "; ".join(f"{n}: {w}" for n, _, w in planned)}]
    with execute.Judge(workers=rlef.cores_per_rank()) as judge:
        for name in chosen:
            args = replace(SMOKE_ARGS, vocab_size=1024) if smoke else PRESETS[name]     # the tokenizer's ids fit
            out.append(e2e_one(name, args, device, smoke, ceil, tok, judge))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="small shapes on the CPU: test the script, not the card")
    p.add_argument("--json", help="also write all results to this file")
    p.add_argument("--only", nargs="*", help="run only these sections (ceilings always runs)")
    p.add_argument("--stop-after", type=float, default=480,
                   help="seconds: sections not started by then are skipped and say so (a lent GPU's command may run "
                        "10 minutes; the slowest section, e2e on two presets, takes ~2-4)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    results = {"card": card, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
    print(f"{card}, torch {torch.__version__}, {results['date']}", flush=True)
    t_start = time.perf_counter()
    results["ceilings"] = ceilings(device, a.smoke)
    # Decode last: it compiles and records graphs, the likeliest to leave the device unusable if it fails.
    sections = {"numerics": lambda: numerics(device, a.smoke),
                "ppo": lambda: ppo_microbatch(device, a.smoke, results["ceilings"]),
                "greedy": lambda: greedy_identity(device, a.smoke),
                "refill": lambda: refill_probe(device, a.smoke),
                "sampling": lambda: sampling_probe(device, a.smoke),
                "compile": lambda: compile_probe(device, a.smoke),
                "long": lambda: long_context_probe(device, a.smoke),
                "e2e": lambda: e2e(device, a.smoke, results["ceilings"]),
                "decode": lambda: decode_speed(device, a.smoke, results["ceilings"])}
    for name, run in sections.items():
        if a.only and name not in a.only:
            continue
        if time.perf_counter() - t_start > a.stop_after:
            results[name] = {"skipped": f"not started: {a.stop_after:g} s had passed (--stop-after)"}
            print(f"[{name}: skipped, past --stop-after {a.stop_after:g} s]", flush=True)
            continue
        t0 = time.perf_counter()
        torch._dynamo.reset()         # each section compiles as a run of its own would, at the default limits
        try:
            results[name] = run()
        except Exception:
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc()}
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"[{name}: {time.perf_counter() - t0:.0f}s, total {time.perf_counter() - t_start:.0f}s]", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
