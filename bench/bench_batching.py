"""Static batches vs continuous batching on responses of spread lengths: slot efficiency and decode speed.

A rollout turn decodes many responses of very different lengths. The baseline is what rollouts did before
continuous batching: ``generate`` called on chunks of ``--rows`` prompts, each chunk a static batch that
computes every row until its longest response ends (emulated exactly: every prompt of a chunk gets the
chunk's longest budget, and the responses are cut to their own budgets afterwards). Continuous batching,
``generate(..., rows=R)``: when a response ends, the next waiting prompt is prefilled into its row; with
none waiting and at most half the rows busy, only the busy rows are computed. Also shown: all prompts in one
batch, static, and as ``generate`` runs it (no refills, the tail compacted), which needs that much KV cache.

The lengths are synthetic: prompts of uniform random length, each response given its own token budget
(uniform 50-1,024 by default) and no stop tokens, so a response is exactly as long as its budget whatever
the (random) weights; a response ends at a step the host knows, so it is noticed at once (a stop token is
noticed within ``check_every`` steps: up to 15 more on a GPU). Slot efficiency = sampled tokens / (rows x
decode steps, summed over steps), what ``generate(usage=...)`` counts and training logs as
``slot_efficiency``. Every method must produce the same greedy tokens.

    python bench/bench_batching.py                      # CPU, small random model: ~2 min on an idle machine
    python bench/bench_batching.py --device cuda --preset 1b --prompts 256 --rows 64
"""
import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import PRESETS, ModelArgs, Sampling, Transformer, generate  # noqa: E402

SMALL = ModelArgs(dim=128, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1024, hidden_dim=384, max_seq_len=4096)


def run(model, prompts, budgets, rows, static, device):
    """Greedy responses, rows x steps computed, and seconds of one method."""
    usage, out = {}, []
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if static:         # chunks of ``rows`` prompts, each decoded until its longest response ends
        for i in range(0, len(prompts), rows):
            longest = max(budgets[i:i + rows])
            out += generate(model, prompts[i:i + rows], longest, Sampling(temperature=0), usage=usage)
    else:
        out = generate(model, prompts, budgets, Sampling(temperature=0, rows=rows), usage=usage)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return [t[:n] for (t, _), n in zip(out, budgets)], usage["slots"], time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="random weights of a named shape (default: a small "
                   "2-layer model, dim 128)")
    p.add_argument("--prompts", type=int, default=64, help="responses to decode")
    p.add_argument("--rows", type=int, default=16, help="sequences decoded together (the baseline's chunk size)")
    p.add_argument("--prompt-len", type=int, nargs=2, default=[20, 200], help="uniform range of prompt lengths")
    p.add_argument("--response-len", type=int, nargs=2, default=[50, 1024], help="uniform range of response lengths")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (1 on a machine that others load)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    device = torch.device(a.device)
    torch.set_num_threads(a.threads)
    args = PRESETS[a.preset] if a.preset else SMALL
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(a.seed)
    with torch.device(device):
        model = Transformer(args).init_weights().to(dtype).eval()
    rng = random.Random(a.seed)
    prompts = [[rng.randrange(args.vocab_size) for _ in range(rng.randint(*a.prompt_len))] for _ in range(a.prompts)]
    budgets = [rng.randint(*a.response_len) for _ in prompts]
    methods = [(f"static batches of {a.rows} (baseline)", a.rows, True), (f"continuous, {a.rows} rows", a.rows, False),
               (f"one static batch of {a.prompts}", a.prompts, True),
               (f"{a.prompts} rows (all at once), tail compacted", a.prompts, False)]
    generate(model, prompts[:2], 4, Sampling(temperature=0))          # warm-up
    print(f"{a.preset or 'small'} model, {str(dtype)[6:]}, {device.type} ({a.threads} threads); {a.prompts} prompts of "
          f"{a.prompt_len[0]}-{a.prompt_len[1]} tokens, responses of {a.response_len[0]}-{a.response_len[1]} "
          f"tokens ({sum(budgets):,} in all), greedy\n")
    print("| method | rows | rows x steps | slot efficiency | tokens/s | speed-up | same tokens |")
    print("|---|---:|---:|---:|---:|---:|---|")
    reference = base_rate = None
    tokens = sum(budgets)
    for name, rows, static in methods:
        responses, slots, seconds = run(model, prompts, budgets, rows, static, device)
        reference = reference or responses
        rate = tokens / seconds
        base_rate = base_rate or rate
        print(f"| {name} | {rows} | {slots:,} | {tokens / slots:.2f} | {rate:,.0f} | {rate / base_rate:.2f}x | "
              f"{'yes' if responses == reference else 'NO'} |", flush=True)

if __name__ == "__main__":
    main()
