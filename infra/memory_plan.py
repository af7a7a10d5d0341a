"""Memory per GPU: the plan behind ``python rlef.py --dry-run`` and the KV-cache budget of a live run.

``memory_plan`` counts, phase by phase, the bytes each rank of a (world / tp) x tp mesh holds (FSDP2 x tensor
parallelism, infra/parallel.py) without allocating anything; ``smallest_mesh`` searches the fewest nodes on
which that plan fits. ``kv_cache_budget`` measures what a running rank has left for its rollouts' KV cache,
agreed over all ranks (``agreed_budget``).
What the plan needs of a run's settings arrives as a ``Workload``.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from infra.checkpoints import EXPORT_SHARD_BYTES
from infra.parallel import parameter_counts
from model import KVCache, Transformer, cache_slots


@dataclass(frozen=True)
class Workload:
    """What a training run asks of each GPU, besides the model: the batch (episodes over all ranks), the
    micro-batch of one forward/backward, the dialogue length, the KV-cache rows per rank (0: what memory is
    left holds) and the dtype of compute and exports."""
    batch_size: int
    micro_batch_size: int
    max_len: int
    rollout_batch: int = 0
    dtype: str = "bfloat16"


def free_memory(device) -> int:
    """Bytes this rank can still allocate: the GPU's free memory, or on a CPU its share of the host's."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(meminfo.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return available // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def kv_cache_budget(policy: Transformer, critic: Transformer, device, world: int) -> int:
    """Bytes the rollouts' KV cache may take on this rank, measured once the models and the sampling replica
    are allocated: the free memory, less the AdamW moments of policy and critic (2 x fp32, sharded) that the
    first update allocates for good, less 10% for the allocator and for what sampling needs besides the cache
    (a prefill's scratch cache of up to PREFILL_TOKENS tokens, 2.1 GB at 8B, its activations, the CUDA graphs'
    pools: bench/gpu.py's num_alloc_retries says whether it is enough). Gradients and activations live only
    during training, and the cache only during sampling: each phase's buffers are freed before the other's."""
    n = sum(p.numel() for m in (policy, critic) for p in m.parameters())      # a DTensor counts its whole tensor
    return agreed_budget(max(0, int(0.9 * free_memory(device)) - 8 * n // world))


def eval_cache_budget(device) -> int:
    """Bytes an evaluation's KV cache may take on this rank (the model is loaded; nothing else grows): 90% of
    the free memory, agreed over all ranks (``agreed_budget``)."""
    return agreed_budget(int(0.9 * free_memory(device)))


def agreed_budget(budget: int) -> int:
    """The smallest of every rank's ``budget`` (one all-reduce, once per run). The ranks of a tensor-parallel
    row decode the same prompts in lockstep, each step a collective of (rows, ...) tensors: if one rank
    sized its cache from its own free memory (the row's first rank also runs the judge; allocators fragment
    differently) and chose more rows (``cache_rows``) than another, their step counts and collective shapes
    would differ and the row would hang or mix up data. So every rank takes the minimum."""
    if not dist.is_initialized():
        return budget
    on_gpu = dist.get_backend() == "nccl"           # NCCL reduces GPU tensors only, gloo CPU ones
    t = torch.tensor([budget], dtype=torch.int64, device=torch.cuda.current_device() if on_gpu else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def memory_plan(args, world: int, work: Workload, gpu_bytes: float = 80e9, tp: int = 1,
                counts=None) -> list[tuple[str, str, str, float]]:
    """Bytes per rank for training on a (world / tp) x tp mesh, FSDP2 x tensor parallel: the arithmetic behind
    ``--dry-run``. Rows are (GPU or host, phase, what, bytes). Everything is sharded over all ranks but the
    norms (over the dp = world / tp ranks: tiny). The sampling, training and checkpoint phases never hold
    their buffers at once; loading allocates each rank's block of the persistent weights and nothing else.
    The KV cache gets what the persistent rows leave of 90% of ``gpu_bytes``, as ``kv_cache_budget`` gives
    it. ``counts``: ``parameter_counts`` of policy and critic, if known."""
    (split, whole), critic = counts or (parameter_counts(args), parameter_counts(args, value_head=True))
    dp, n = world // tp, split + whole
    p = split / world + whole / dp                                            # one policy's parameters per rank
    v = critic[0] / world + critic[1] / dp                                   # one critic's
    mb_tokens = work.micro_batch_size * work.max_len
    embedding_rows = -(-args.vocab_size // world) * args.dim                  # the largest tensor's share
    root = args.vocab_size * args.dim * (1 if args.tie_word_embeddings else 2)   # embedding + head
    export_bytes = torch.finfo(getattr(torch, work.dtype)).bits // 8
    replica = "the policy unsharded in bf16" if tp == 1 else f"1/{tp} of the policy (all but its norms), bf16"
    persistent = [("GPU", "persistent", "policy weights, fp32 master (sharded)", 4 * p),
                  ("GPU", "persistent", "policy AdamW moments, 2 x fp32 (sharded)", 8 * p),
                  ("GPU", "persistent", "critic weights + AdamW (sharded)", 12 * v),
                  ("GPU", "persistent", "reference policy, bf16 (sharded)", 2 * p),
                  ("GPU", "persistent", f"sampling replica: {replica}, allocated once", 2 * (split / tp + whole))]
    per_rollout = KVCache.bytes_per_token(args, n_kv_heads=args.n_kv_heads // tp) * work.max_len
    left = 0.9 * gpu_bytes - sum(b for *_, b in persistent)
    rollouts = work.rollout_batch or max(1, min(work.batch_size // dp, int(left // per_rollout)))
    kv_heads = "" if tp == 1 else f", {args.n_kv_heads // tp} of {args.n_kv_heads} K/V heads"
    return persistent + [
        ("GPU", "loading", "policy, critic fp32 + reference bf16: each rank reads its own rows", 4 * p + 4 * v + 2 * p),
        ("GPU", "sampling", f"KV cache: {rollouts} rollouts x {work.max_len} tokens, bf16{kv_heads}"
                            f"{'' if work.rollout_batch else ' (the memory left)'}", per_rollout * rollouts),
        ("GPU", "training", "policy + critic gradients, fp32 (sharded; freed after the update)", 4 * (p + v)),
        # Each rank keeps 1/tp of every block's input (SEQUENCE_PLAN); the block being computed gathers its
        # input whole and splits its heads and MLP width.
        ("GPU", "training", f"activations: {work.micro_batch_size} x {work.max_len} tokens, checkpointed per block"
                            f"{'' if tp == 1 else f', 1/{tp} of the positions each'}",
         mb_tokens * args.dim * 2 * args.n_layers / tp
         + mb_tokens * (args.dim + (3 * args.dim + 3 * args.hidden_dim) / tp) * 2),
        # FSDP2 gathers one unit at a time for compute: at most the root (embedding and head) with one block,
        # in bf16, and their gradient, in bf16 and then fp32 for the reduce-scatter.
        ("GPU", "training", f"gathered for compute: embedding + head + one block{'' if tp == 1 else f', 1/{tp}'}, "
                            "bf16, with their gradient", 8 * (root + (split - root) / args.n_layers) / tp),
        ("GPU", "training", f"log-prob chunk: 256 positions x {'vocab' if tp == 1 else f'vocab/{tp}'}, fp32, x3 "
                            "(softmax, backward)", 3 * 4 * work.micro_batch_size * 256 * args.vocab_size / tp),
        ("GPU", "checkpoint", f"policy export: one tensor gathered whole at a time (embedding, {work.dtype})",
         torch.finfo(getattr(torch, work.dtype)).bits // 8 * args.vocab_size * args.dim),
        ("host", "loading", "one tensor's rows read from safetensors (embedding, bf16)", 2 * embedding_rows),
        ("host", "checkpoint", "DCP: own shards copied out one tensor at a time (embedding, fp32)",
         4 * embedding_rows),
        ("host", "checkpoint", f"policy export on rank 0: one safetensors shard at a time ({work.dtype})",
         export_bytes * min(n, max(EXPORT_SHARD_BYTES // export_bytes, args.vocab_size * args.dim)))]


def cache_rows(model: Transformer, cache_bytes: int, positions: int) -> int:
    """How many sequences of up to ``positions`` positions ``generate`` can decode in ``cache_bytes`` of KV cache."""
    per_token = KVCache.bytes_per_token(model.args, model.embed_tokens.weight.dtype, model.kv_heads)
    per_row = per_token * cache_slots(positions)
    return max(1, cache_bytes // per_row)


def plan_peaks(plan) -> tuple[float, float]:
    """(GPU peak, host peak of rank 0) of a ``memory_plan``: the persistent state plus the largest phase."""
    total = defaultdict(float)
    for where, phase, _, b in plan:
        total[where, phase] += b
    gpu = max(total["GPU", "loading"], total["GPU", "persistent"] + max(
        total["GPU", "sampling"], total["GPU", "training"], total["GPU", "checkpoint"]))
    return gpu, max(total["host", "loading"], total["host", "checkpoint"])


def smallest_mesh(args, work: Workload, gpu_bytes: float, gpus_per_node: int = 8, max_gpus: int = 2048):
    """The fewest whole nodes of ``gpus_per_node`` GPUs on which the plan fits, with the smallest tensor-parallel
    degree (within a node, dividing the heads) that fits there: (world, tp), or None up to ``max_gpus``."""
    counts = parameter_counts(args), parameter_counts(args, value_head=True)
    tps = [t for t in (1, 2, 4, 8, 16) if t <= gpus_per_node and args.n_kv_heads % t == 0
           and args.n_heads % t == 0 and args.hidden_dim % t == 0]
    for world in range(gpus_per_node, max_gpus + 1, gpus_per_node):
        for tp in tps:
            if plan_peaks(memory_plan(args, world, work, gpu_bytes, tp, counts))[0] < gpu_bytes:
                return world, tp
    return None


def print_plan(plan, args, work: Workload, world: int, tp: int, gpu_gb: float, name: str):
    """The plan as ``--dry-run`` prints it: one line per row, the peaks, and where it does not fit the smallest
    mesh on which it would."""
    gpu_bytes = gpu_gb * 1e9
    mesh = f"{world} GPUs" if tp == 1 else f"{world} GPUs as {world // tp} x {tp} (data parallel x tensor parallel)"
    print(f"memory plan per rank: --model {name}, {mesh}, batch {work.batch_size}, "
          f"micro-batch {work.micro_batch_size} x {work.max_len} tokens")
    for where, phase, what, b in plan:
        print(f"  {where:<4} {phase:<10} {what:<78} {b / 2**30:6.1f} GiB")
    gpu, host = plan_peaks(plan)
    print(f"  {'GPU peak = persistent + max(sampling, training, checkpoint)':<94} {gpu / 2**30:6.1f} GiB  "
          f"({'fits' if gpu < gpu_bytes else 'does NOT fit'} in {gpu_gb:g} GB)")
    print(f"  {'host peak (rank 0) = max(loading, checkpoint), beyond the process itself':<94} {host / 2**30:6.1f} GiB")
    if gpu >= gpu_bytes:
        found = smallest_mesh(args, work, gpu_bytes)
        print(f"  smallest mesh that fits in {gpu_gb:g} GB per GPU (nodes of 8): " + (
            f"{found[0]} GPUs as {found[0] // found[1]} x {found[1]} (--tp {found[1]})" if found else
            "none up to 2,048 GPUs: the rows that do not shrink with the mesh (activations, log-prob chunk, KV "
            "cache, the replica's embedding and head) exceed it; lower --micro-batch-size or --max-len"))


def describe_rollout_plan(replica, policy, cache_bytes: int, per_rank: int, rollout_batch: int, max_len: int) -> str:
    """The start-up line that says how many episodes decode together on a rank, and why."""
    together = rollout_batch or min(per_rank, cache_rows(replica.model, cache_bytes, max_len))
    why = "--rollout-batch" if rollout_batch else f"{cache_bytes / 2**30:.1f} GiB left for the KV cache"
    copy = "the policy itself" if replica.model is policy else f"{replica.nbytes(policy) / 2**30:.2f} GiB"
    return (f"rollouts: {per_rank} episodes per rank, {together} of {max_len} tokens decoding together ({why}; "
            f"more when shorter); sampling replica: {copy}")
