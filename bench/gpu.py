"""GPU speed in one run: the card's two ceilings, then sampling and a PPO micro-batch measured against them.

    python bench/gpu.py --json $OUT/gpu.json      # one H100/H200, ~5 min; docs/PERFORMANCE.md's tables come from this
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

6. One RLEF training step end to end (``rlef.rollout``, ``ppo.prepare_batch``, ``ppo.ppo_update``), for the 1B
   and 3B presets with random weights: 64 episodes of up to 3 turns on synthetic problems (prompts of ~150-650
   tokens), each response really decoded by the sampling replica (``infra.parallel.SamplingReplica``, continuous
   batching in the rows the memory left allows) with a length drawn uniformly from 50-1,024 tokens, then
   replaced by a right or wrong program of that length that the judge really runs. Seconds per step split
   into sampling / execution / training; sampling tokens/s against the decode floor of its own steps (each
   step reads the weights once, each token its sequence's keys and values: ``decode_floor_seconds``); slot
   efficiency. The second of two steps is reported.

Each section runs on its own: a failure prints its traceback and the others still run.
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
                      "prompts": [len(p) for p in prompts], "responses": budgets})
        replies = []
        for (_, logprobs), n in zip(out, budgets):
            code = tok.encode(RIGHT if rng.random() < 0.5 else WRONG)[:n - 1]
            replies.append((code + [filler] * (n - 1 - len(code)) + [tok.eot_id], logprobs))
        return replies
    return sample


def decode_floor_seconds(calls, weight_bytes: float, kv_bytes_per_position: float, bandwidth: float) -> float:
    """The least time the decode steps of ``calls`` take at ``bandwidth``: each step reads every weight once,
    each token its sequence's keys and values so far (prefill not counted)."""
    total = 0.0
    for c in calls:
        kv = sum(n * p + n * (n - 1) / 2 for p, n in zip(c["prompts"], c["responses"]))     # sum over tokens
        total += c["steps"] * weight_bytes + kv * kv_bytes_per_position
    return total / bandwidth


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
        t1 = time.perf_counter()
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
                  "pct_of_floor": 100 * floor_s / sampling, "slot_efficiency": tokens / slots}
        print(f"e2e {name} ({attempt}): step {result['step_s']:.1f}s = sampling {sampling:.1f}s (replica refresh "
              f"{refresh_s:.2f}s) + execution {result['exec_s']:.1f}s + training {result['train_s']:.1f}s | "
              f"{episodes} episodes, {result['turns']:.2f} turns, {tokens:,} sampled tokens in rows of "
              f"{result['rows']} | sampling {result['sample_tokens_per_s']:,.0f} tokens/s, "
              f"{result['pct_of_floor']:.1f}% of the decode floor ({result['floor_tokens_per_s']:,.0f}) | "
              f"slot efficiency {result['slot_efficiency']:.2f}", flush=True)
    return result


def e2e(device, smoke, ceil):
    """One RLEF step on the 1B and 3B presets (random weights) with responses of 50-1,024 tokens."""
    from dataclasses import replace
    import execute
    import rlef
    if device.type == "cuda":
        rlef.setup_distributed()                          # a process group of one: FSDP2 as in train()
    tok = Tokenizer.from_pretrained(ROOT / "data" / "tiny" / "policy")
    out = []
    with execute.Judge(workers=rlef.cores_per_rank()) as judge:
        for name in (["smoke"] if smoke else ["1b", "3b"]):
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
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    results = {"card": card, "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
    print(f"{card}, torch {torch.__version__}, {results['date']}", flush=True)
    t_start = time.perf_counter()
    for knob in ("cache_size_limit", "recompile_limit"):    # one compilation per (batch, dtype) shape: ~6 here
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 64)
    results["ceilings"] = ceilings(device, a.smoke)
    # Decode last: it compiles and records graphs, the likeliest to leave the device unusable if it fails.
    sections = {"numerics": lambda: numerics(device, a.smoke),
                "ppo": lambda: ppo_microbatch(device, a.smoke, results["ceilings"]),
                "greedy": lambda: greedy_identity(device, a.smoke),
                "e2e": lambda: e2e(device, a.smoke, results["ceilings"]),
                "decode": lambda: decode_speed(device, a.smoke, results["ceilings"])}
    for name, run in sections.items():
        if a.only and name not in a.only:
            continue
        t0 = time.perf_counter()
        try:
            results[name] = run()
        except Exception:
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc()}
        print(f"[{name}: {time.perf_counter() - t0:.0f}s, total {time.perf_counter() - t_start:.0f}s]", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
