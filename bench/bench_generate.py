"""Greedy decoding with and without a KV cache: decode tokens/s and peak memory (issue 2's benchmark).

Two ways to produce the same greedy continuation of a batch of prompts:

* recompute -- no cache: each new token is a full forward ``model(tokens)`` over prompt + tokens so far,
  the training path. Step t costs a forward over T + t positions (all layers, all logits), so a token costs
  O(T) matmul work plus O(T^2) attention.
* KV cache  -- ``model.generate(..., temperature=0)``: one prefill over the prompt fills a preallocated
  ``KVCache``, then each step runs the network on the single new token and attends to the cached keys and
  values. A token costs one position's matmuls (reading the weights once) plus O(T) attention.

The first new token comes out of a forward over the whole prompt in both methods (the prefill), so
"tokens/s" is the *decode* rate: new tokens after the first, divided by the time after the first; "prefill s"
is the time to the first token. A recompute step is a whole prefill, so the cache's speed-up is roughly
(B*T positions) / (B positions + attention over T keys): it grows about linearly with prompt length, until
attention over the cache dominates, and with batch while the weights' reading, not the arithmetic, bounds a
cached step. Recompute decodes fewer tokens where it is slow (the "new tokens" column, set by --budget); the
"same tokens" column checks that these are exactly the cache's first tokens.

Peak memory is measured in a fresh process per row: the increase of the peak resident set over the resident
set after building the model and a warm-up (VmHWM reset through /proc/self/clear_refs; large blocks forced
onto mmap so freed memory leaves the RSS); on CUDA torch.cuda.max_memory_allocated over memory_allocated.
Both methods' peaks include the prompt forward's (B, T, vocab) logits; the cache adds
2 * layers * B * kv_heads * (T + new) * head_dim values.

    python bench/bench_generate.py                        # default 58M-parameter model, CPU: ~4 min
    python bench/bench_generate.py --preset 1b --batches 1 --prompts 128
    python bench/bench_generate.py --weights DIR --device cuda --dtype bfloat16
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import PRESETS, ModelArgs, Sampling, Transformer, generate  # noqa: E402

DEFAULT = ModelArgs(dim=512, n_layers=8, n_heads=8, n_kv_heads=4, vocab_size=32000, hidden_dim=1536,
                    rope_theta=500000.0, max_seq_len=4096)


def build(a) -> Transformer:
    dtype = getattr(torch, a.dtype)
    if a.weights:
        return Transformer.from_pretrained(a.weights, a.device, dtype).eval()
    torch.manual_seed(0)  # the same random weights in every process
    args = PRESETS[a.preset] if a.preset else DEFAULT
    with torch.device(a.device):
        return Transformer(args).init_weights().to(dtype).eval()


def _proc_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


@torch.no_grad()
def recompute(model, prompts: torch.Tensor, n: int, on_first):
    """Greedy decoding without a cache: a full forward over everything so far for every new token."""
    tokens = prompts
    for step in range(n):
        nxt = model(tokens)[:, -1].float().argmax(-1)               # (B,)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if step == 0:
            on_first()
    return tokens[:, prompts.shape[1]:].tolist()


def measure(a, method: str, batch: int, prompt_len: int, n: int) -> dict:
    """One row, in this (fresh) process: tokens, prefill and decode seconds, extra peak bytes."""
    torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = build(a)
    vocab = model.args.vocab_size
    generate(model, [[1] * 8], 2, Sampling(temperature=0))                    # warm-up: lazy init, kernels, allocator
    recompute(model, torch.ones(1, 8, dtype=torch.long, device=a.device), 2, lambda: None)
    prompts = torch.randint(0, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(1))
    prompts = prompts.to(a.device)
    if cuda:
        sync(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
    else:
        before = _proc_kib("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")               # VmHWM := current RSS
    marks = []

    def on_first(*_):                                               # end of the prefill / first full forward
        if not marks:
            sync(); marks.append(time.perf_counter())

    t0 = time.perf_counter()
    if method == "cache":
        hook = model.register_forward_hook(on_first)
        out = [toks for toks, _ in generate(model, prompts.tolist(), n, Sampling(temperature=0))]
        hook.remove()
    else:
        out = recompute(model, prompts, n, on_first)
    sync()
    t1 = time.perf_counter()
    peak = torch.cuda.max_memory_allocated() if cuda else _proc_kib("VmHWM") * 1024
    return dict(tokens=out, prefill_s=marks[0] - t0, decode_s=t1 - marks[0], extra=peak - before)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), help="random weights of a named shape "
                   "(default: dim 512, 8 layers, 8/4 heads, vocab 32000, 58M parameters)")
    p.add_argument("--weights", help="a Hugging Face model folder instead of random weights")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--prompts", type=int, nargs="+", default=[128, 1024], help="prompt lengths in tokens")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--budget", type=int, default=8192, help="recompute decodes min(new tokens, "
                   "max(2, budget // (batch * prompt))) tokens, to bound its runtime")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: "method,batch,prompt,n" in a fresh process
    a = p.parse_args()
    if a.new_tokens < 2:
        p.error("--new-tokens must be at least 2 (the first new token is the prefill's)")
    if a.one:
        method, *nums = a.one.split(",")
        print(json.dumps(measure(a, method, *map(int, nums))))
        return

    def run(method, batch, prompt_len, n):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--one", f"{method},{batch},{prompt_len},{n}"]
        # glibc keeps freed blocks under its adaptive mmap threshold in the heap, so the RSS would count
        # reusable free memory; with every block over 64 KiB on mmap the RSS follows live memory
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)

    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    gpu = f", {torch.cuda.get_device_name()}" if a.device.startswith("cuda") else ""
    name = Path(a.weights).name if a.weights else a.preset or "default-58M"
    print(f"machine: {cpu.group(1) if cpu else 'unknown CPU'} ({os.cpu_count()} logical CPUs){gpu}; "
          f"torch {torch.__version__}; {a.threads} threads; device {a.device}; {a.dtype}; greedy\n")
    print("| preset | batch | prompt | method | new tokens | prefill s | decode tokens/s | peak MiB | "
          "speed-up | same tokens |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    start = time.perf_counter()
    for prompt_len in a.prompts:
        for batch in a.batches:
            n_re = min(a.new_tokens, max(2, a.budget // (batch * prompt_len)))
            re_, kv = run("recompute", batch, prompt_len, n_re), run("cache", batch, prompt_len, a.new_tokens)
            same = all(r == k[:n_re] for r, k in zip(re_["tokens"], kv["tokens"]))
            rate = {m: batch * (n - 1) / r["decode_s"] for m, r, n in
                    (("re", re_, n_re), ("kv", kv, a.new_tokens))}
            for method, r, n in (("recompute", re_, n_re), ("KV cache", kv, a.new_tokens)):
                speed = f"{rate['kv'] / rate['re']:.1f}x" if method == "KV cache" else "1.0x"
                print(f"| {name} | {batch} | {prompt_len} | {method} | {n} | {r['prefill_s']:.2f} | "
                      f"{rate['re' if method == 'recompute' else 'kv']:.1f} | {r['extra'] / 2**20:.0f} | "
                      f"{speed} | {'yes' if same else 'NO'} |", flush=True)
    print(f"\ntokens/s: new tokens after the first / time after the first (each method's first token is a "
          f"prompt forward, the 'prefill s'); total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
