"""Peak memory of log-probs over a 128k vocabulary: model.chunked_logprobs vs full logits.

Full fp32 logits of a (T, 128k) sequence cost ~2 GB per 4k tokens, before autograd keeps them for backward.

Forward + backward of sum(log pi(target)) for one sequence, from final hidden states (1, T, dim) and the
output layer (V, dim). The baseline is the plain `log_softmax(hidden @ W.T).gather(...)`, measured in the same
run. "extra" is the memory above the inputs (hidden, W) that the forward + backward needs at its peak: on CUDA
torch.cuda.max_memory_allocated; on CPU the peak resident set of a fresh process per measurement (ru_maxrss)
minus its resident set just before (large blocks forced onto mmap so that freed memory leaves the RSS).

    python bench/bench_logprobs.py                      # dims 512 and 1024, T 4096, V 128256 (CPU: ~2 min)
    python bench/bench_logprobs.py --device cuda --dtype bfloat16
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model import chunked_logprobs  # noqa: E402


def full_logprobs(hidden, weight, targets):
    """The baseline: all (B, T, V) logits in fp32 at once, kept by autograd for the backward pass."""
    logits = (hidden @ weight.t()).float()  # (B, T, V)
    return F.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(method: str, dim: int, T: int, V: int, chunk: int, device: str, dtype: torch.dtype) -> dict:
    """Run one forward + backward; return extra peak bytes and seconds."""
    if dim > 8:  # warm-up at a toy size: lazy imports and allocator set-up must not count as peak memory
        measure(method, 8, 16, 64, 8, device, dtype)
    torch.manual_seed(0)
    hidden = torch.empty(1, T, dim, device=device, dtype=dtype).normal_().requires_grad_()
    weight = torch.empty(V, dim, device=device, dtype=dtype).normal_(std=0.02).requires_grad_()
    targets = torch.randint(0, V, (1, T), device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    t0 = time.perf_counter()
    logprobs = full_logprobs(hidden, weight, targets) if method == "full" else \
        chunked_logprobs(hidden, weight, targets, chunk)[0]
    logprobs.sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return dict(extra=peak - before, seconds=time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--seq-len", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=128256)
    p.add_argument("--chunk-sizes", type=int, nargs="+", default=[1024, 256])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one CPU measurement in a fresh process
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    if a.one:
        method, dim, chunk = a.one.split(",")
        print(json.dumps(measure(method, int(dim), a.seq_len, a.vocab, int(chunk), "cpu", dtype)))
        return

    def run(method, dim, chunk):
        if a.device == "cuda":
            return measure(method, dim, a.seq_len, a.vocab, chunk, "cuda", dtype)
        cmd = [sys.executable, __file__, "--one", f"{method},{dim},{chunk}", "--seq-len", str(a.seq_len),
               "--vocab", str(a.vocab), "--dtype", a.dtype]
        # glibc keeps freed blocks below its (adaptive) mmap threshold in the heap, so RSS would count
        # fragmentation; forcing every large block onto mmap makes RSS follow live memory
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)

    print(f"device {a.device}, inputs {a.dtype}, logits fp32, T {a.seq_len}, V {a.vocab}, forward + backward")
    print(f"{'dim':>5} {'method':<16} {'extra peak MiB':>15} {'vs full':>8} {'seconds':>8}")
    for dim in a.dims:
        base = run("full", dim, 0)
        print(f"{dim:>5} {'full logits':<16} {base['extra'] / 2**20:>15.0f} {'1.00x':>8} {base['seconds']:>8.2f}")
        for chunk in a.chunk_sizes:
            r = run("chunked", dim, chunk)
            print(f"{dim:>5} {f'chunked {chunk}':<16} {r['extra'] / 2**20:>15.0f} "
                  f"{r['extra'] / base['extra']:>7.2f}x {r['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
