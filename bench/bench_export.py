"""Host memory of the policy export (a Hugging Face folder in bf16, ``infra.checkpoints.export_policy``): the
whole-state way (rank 0 gathers every tensor, then writes the files: what the export did until this bench
was written) against the streamed way (the shards planned from the shapes, each gathered, written and let
go before the next), measured in the same invocation on the same model.

Each way runs in its own process (``--ranks 2``: under torchrun, the policy FSDP2-sharded over 2 ranks as in
training, gloo on CPU), which builds a random fp32 policy and records rank 0's peak resident set (VmHWM,
reset just before the export) above its resident set at that moment: what the export adds to the host.
The table gives that peak for each way and its ratio to the whole-state way's; the streamed peak should
stay near one shard (``--shard-mb``; training writes 5 GiB shards, so 70B's 131 GiB export needs ~5 GiB).

    python bench/bench_export.py                          # 1 process, ~300M parameters, 64 MiB shards (~1 min)
    python bench/bench_export.py --ranks 2 --shard-mb 32
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
WAYS = ("whole state", "streamed")


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def whole_state_export(policy, path: Path, dtype, max_shard_bytes: int):
    """The export as it was: every tensor gathered onto rank 0's host first, then the files written."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor
    from infra.checkpoints import save_hf_folder
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    state = {}
    for name, t in policy.hf_state_dict().items():
        t = t.detach().to(dtype)
        t = t.full_tensor() if isinstance(t, DTensor) else t
        if rank0:
            state[name] = t.to(device="cpu")
    if rank0:
        save_hf_folder(state, policy.args, path, max_shard_bytes)


def probe(way: str, out: Path, a):
    """One rank of one way: build the policy, reset the peak, export, write rank<N>.json (rank 0's peak)."""
    import gc
    import torch
    import torch.distributed as dist
    from bench_scale import peak_rss, reset_peak_rss
    from infra.checkpoints import export_policy
    from infra.parallel import setup_distributed, shard
    from model import ModelArgs, Transformer
    rank, world, device = setup_distributed()
    args = ModelArgs(dim=a.dim, n_layers=a.layers, n_heads=a.dim // 64, n_kv_heads=max(1, a.dim // 256),
                     hidden_dim=a.hidden, vocab_size=a.vocab, max_seq_len=2048)
    torch.manual_seed(0)
    policy = Transformer(args).init_weights(std=0.02)
    if world > 1:
        policy = shard(policy, device, torch.float32)
    gc.collect()
    if dist.is_initialized():
        dist.barrier()
    before = rss()
    reset_peak_rss()
    t0 = time.perf_counter()
    export = whole_state_export if way == "whole state" else \
        lambda *x: export_policy(x[0], x[1], out, x[2], x[3])
    export(policy, out / "policy", torch.bfloat16, a.shard_mb << 20)
    seconds = time.perf_counter() - t0
    (out / f"rank{rank}.json").write_text(json.dumps({"peak": peak_rss() - before, "seconds": seconds}))
    if dist.is_initialized():
        dist.destroy_process_group()


def run(way: str, work: Path, a) -> dict:
    out = work / way.replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    launcher = [sys.executable] if a.ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={a.ranks}"]
    # glibc keeps freed blocks below its adaptive mmap threshold in the heap; with every block of 64 KiB or
    # more on mmap the resident set follows live memory (as in bench_scale.py).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    flags = [f"--{k}={v}" for k, v in (("dim", a.dim), ("layers", a.layers), ("hidden", a.hidden),
                                      ("vocab", a.vocab), ("shard-mb", a.shard_mb))]
    done = subprocess.run([*launcher, __file__, "--probe", way, str(out), *flags], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{way} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    files = sorted((out / "policy").glob("*.safetensors"))
    return {**json.loads((out / "rank0.json").read_text()), "files": len(files),
            "bytes": sum(f.stat().st_size for f in files)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=1, help="1: one process; N: torchrun, FSDP2 over N ranks (gloo)")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=3584)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--shard-mb", type=int, default=64, help="the export's largest shard, MiB")
    if sys.argv[1:2] == ["--probe"]:                       # internal: one rank of one way
        return probe(sys.argv[2], Path(sys.argv[3]), p.parse_args(sys.argv[4:]))
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    import torch
    try:
        results = {way: run(way, work, a) for way in WAYS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = results["streamed"]["bytes"]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {a.ranks} rank(s); random Llama: dim {a.dim}, "
          f"{a.layers} layers, vocabulary {a.vocab:,}; bf16 export {size / 2**20:.0f} MiB in shards of at most "
          f"{a.shard_mb} MiB")
    print("| export | files | rank 0's peak host memory above the process, MiB | vs whole state | seconds |")
    print("|---|---|---|---|---|")
    base = results["whole state"]["peak"]
    for way, r in results.items():
        print(f"| {way} | {r['files']} | {r['peak'] / 2**20:.0f} | {r['peak'] / base:.2f}x | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
