"""Parallelism, applied from outside to an unchanged ``model.Transformer``.

* Processes: one (``python rlef.py``) or one per GPU (``torchrun``), arranged as a 2-D device mesh ("dp", "tp").
* Tensor parallelism within a "tp" row (Megatron-LM's split): ``TP_PLAN`` for the blocks, the vocabulary split
  for the embedding and the output head, ``SEQUENCE_PLAN`` for the residual stream between blocks (training).
* FSDP2 over the "dp" rows (``shard``), on the meta-device model, so that every rank reads only its own block
  of each tensor from the files (``Transformer.from_pretrained``'s ``shard``).
* The sampling replica: the policy as rollouts decode it, without FSDP hooks, in the compute dtype.
* Gradient clipping over parameters that live on different meshes.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel, SequenceParallel,
                                               parallelize_module)

from model import ModelArgs, Transformer


# ----------------------------------------------------------------------------------------------------------
# Processes and the mesh
# ----------------------------------------------------------------------------------------------------------

def log0(*args, **kwargs):
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(*args, **kwargs, flush=True)


def setup_distributed():
    """One process (``python rlef.py``) or one per device (``torchrun``): NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 or device.type == "cuda":
        # On GPU even a single process uses FSDP2, for its bf16-compute / fp32-master mixed precision.
        os.environ.setdefault("MASTER_ADDR", "localhost"), os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return rank, world, device


def cores_per_rank() -> int:
    """This process's share of the node's CPU cores: torchrun starts LOCAL_WORLD_SIZE ranks per node, and each
    starts its own test servers (execute.Judge) and compute threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def tensor_parallel_size(tp: int, args: ModelArgs, world: int, gpus_per_node: int) -> int:
    """--tp, or its default (0): 1 for models up to 8B, the GPUs of one node for larger ones (70B: tensor
    parallelism all-reduces twice per block, so it stays within a node's NVLink). Refused unless it divides
    the world and splits every block into whole heads."""
    tp = tp or (min(gpus_per_node, world) if sum(parameter_counts(args)) > 20e9 else 1)
    if world % tp:
        raise ValueError(f"--tp {tp} does not divide the {world} ranks: the mesh is (world / tp) x tp; pass a --tp "
                         "that divides the number of processes torchrun starts")
    for what, n in (("query heads", args.n_heads), ("key/value heads", args.n_kv_heads),
                    ("MLP width", args.hidden_dim)):
        if n % tp:
            fits = [t for t in (1, 2, 4, 8, 16) if args.n_heads % t == args.n_kv_heads % t == args.hidden_dim % t == 0]
            raise ValueError(f"--tp {tp} does not divide the model's {n} {what}: each rank computes whole heads "
                             f"and an equal share of the MLP; use --tp {' or '.join(map(str, fits))}")
    return tp


def device_mesh(world: int, tp: int, device):
    """torchrun's ranks as a 2-D mesh ("dp", "tp"): each row of ``tp`` consecutive ranks (on one node) holds one
    tensor-parallel copy of every model, and the world / tp rows shard those copies further with FSDP2 and
    split each batch between them (data parallel). None for a plain single process."""
    if not dist.is_initialized():
        return None
    from torch.distributed.device_mesh import init_device_mesh
    return init_device_mesh(device.type, (world // tp, tp), mesh_dim_names=("dp", "tp"))


def training_mesh(world: int, tp: int, device):
    """The mesh of a run (None for a single process) and this rank's place on its "dp" dimension: (mesh,
    dp rank, dp size). The ranks of a "tp" row share a dp rank: they play the same episodes."""
    mesh = device_mesh(world, tp, device)
    if mesh is None:
        return None, 0, 1
    log0(f"mesh: {world // tp} x {tp} (data parallel x tensor parallel)")
    return mesh, mesh["dp"].get_local_rank(), mesh["dp"].size()


# ----------------------------------------------------------------------------------------------------------
# Tensor parallelism and FSDP2
# ----------------------------------------------------------------------------------------------------------

# Tensor parallelism inside each block (Megatron-LM's split): the query/key/value and gate/up projections are
# split by output features, so each rank computes its own heads (and its slice of the MLP's inner width)
# with no communication; the output and down projections are split by input features, and one all-reduce
# sums their partial outputs. Query heads h and the K/V head h // g they share stay on one rank, because
# both projections are cut into tp equal blocks of whole heads.
TP_PLAN = {"self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
           "self_attn.v_proj": ColwiseParallel(), "self_attn.o_proj": RowwiseParallel(),
           "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(), "mlp.down_proj": RowwiseParallel()}
# The embedding and the output head (Llama 3: 128k rows each, the largest tensors) are split over the
# vocabulary. A token's embedding row lives on one rank and the others add zeros (one all-reduce:
# model.vocab_parallel_embedding, which the model calls instead of the module). The head's logits stay
# split when training (model.vocab_parallel_chunk sums the softmax over the ranks' slices); sampling
# gathers them, one position of each row. The final norm is computed whole everywhere.
VOCAB_PLAN = {"embed_tokens": RowwiseParallel(input_layouts=Replicate()),
              "lm_head": ColwiseParallel(output_layouts=Replicate())}
# Sequence parallelism (Megatron-LM's), for training: between blocks the residual stream is split over the
# "tp" ranks by position, so the block inputs that activation checkpointing keeps (70B: the largest
# activations) cost 1/tp each. The norms run on each rank's positions; attention and MLP gather their
# input once; the output and down projections reduce-scatter their sums instead of all-reducing them.
# Sampling decodes one position at a time, which cannot be split: the replica does not use it.
SEQUENCE_PLAN = {"input_layernorm": SequenceParallel(), "post_attention_layernorm": SequenceParallel(),
                 "self_attn": PrepareModuleInput(input_layouts=(Shard(1), None, None, None, None),
                                                 desired_input_layouts=(Replicate(), None, None, None, None)),
                 "self_attn.o_proj": RowwiseParallel(output_layouts=Shard(1), use_local_output=False),
                 "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
                 "mlp.down_proj": RowwiseParallel(output_layouts=Shard(1), use_local_output=False)}


def parameter_counts(args: ModelArgs, value_head: bool = False) -> tuple[int, int]:
    """Parameters split over the "tp" ranks (the projections of TP_PLAN, the embedding and vocabulary head of
    VOCAB_PLAN) and those every "tp" rank holds whole (the norms; the critic's scalar head), counted on a
    model built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        named = list(Transformer(args, value_head=value_head).named_parameters())
    split_names = [*TP_PLAN, "embed_tokens", *([] if value_head else ["lm_head"])]
    split = sum(p.numel() for name, p in named if any(name.endswith(f"{m}.weight") for m in split_names))
    return split, sum(p.numel() for _, p in named) - split


def tensor_parallel(model: Transformer, tp_mesh, sequence_parallel: bool = False) -> Transformer:
    """Split every block over ``tp_mesh`` as TP_PLAN says (and SEQUENCE_PLAN, with ``sequence_parallel``), and
    the embedding and vocabulary head as VOCAB_PLAN says (nothing to do for one rank); each rank's attention
    then computes n_heads / tp query heads against n_kv_heads / tp K/V heads. The critic's scalar head is not
    split."""
    if tp_mesh is None or tp_mesh.size() == 1:
        return model
    model.sequence_parallel = sequence_parallel
    for block in model.layers:
        parallelize_module(block, tp_mesh, {**TP_PLAN, **(SEQUENCE_PLAN if sequence_parallel else {})})
        block.self_attn.n_heads = model.args.n_heads // tp_mesh.size()
        block.self_attn.n_kv_heads = model.args.n_kv_heads // tp_mesh.size()
    tied = model.lm_head.weight is model.embed_tokens.weight
    parallelize_module(model, tp_mesh, {k: v for k, v in VOCAB_PLAN.items() if k != "lm_head" or not model.value_head})
    if tied:                                      # both split the same rows (dim 0): one parameter again
        model.lm_head.weight = model.embed_tokens.weight
    return model


def shard(model: torch.nn.Module, device, dtype: torch.dtype, mesh=None, trained: bool = True):
    """Tensor parallelism over the mesh's "tp" ranks (TP_PLAN, SEQUENCE_PLAN, VOCAB_PLAN), then FSDP2 over its
    "dp" ranks (without a mesh: FSDP2 alone over all ranks), per transformer block and for the root
    (embedding, final norm, output head): each rank keeps 1/world of the fp32 master weights, gradients and
    optimiser state (1/dp of the norms and of the critic's scalar head, which every "tp" rank holds whole).
    On GPU the models compute in ``dtype`` (MixedPrecisionPolicy; bf16 in RLEF's runs).

    What FSDP2 does not reshard after a forward stays gathered until a backward: for a forward without
    gradients (the reference always, policy and critic when scoring a batch) that is for good, or until the
    update. So the root (embedding and output head, the largest tensors: 8B, 2.1 GB in bf16) is resharded
    after every forward and gathered again for backward, and only a trained model keeps its last block
    (backward needs it immediately)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) \
        if device.type == "cuda" else MixedPrecisionPolicy()
    if mesh is not None:
        tensor_parallel(model, mesh["tp"], sequence_parallel=True)
    dp = None if mesh is None else mesh["dp"]                   # None: FSDP2 over all ranks
    for i, block in enumerate(model.layers):
        fully_shard(block, mesh=dp, mp_policy=mp, reshard_after_forward=not trained or i < len(model.layers) - 1)
    fully_shard(model, mesh=dp, mp_policy=mp, reshard_after_forward=True)
    return model


# ----------------------------------------------------------------------------------------------------------
# The sampling replica
# ----------------------------------------------------------------------------------------------------------

class SamplingReplica:
    """The policy as rollouts and evaluation decode it: a ``Transformer`` without FSDP hooks in the compute
    dtype, allocated once for the run and refreshed with the policy's weights once per rollout phase.

    A plain module can be recorded as a CUDA graph and compiled (``model.decoder``), which an FSDP-sharded
    one cannot. With ``tp_mesh`` (more than one rank) the replica is tensor-parallel like the policy: each
    rank holds 1/tp of its weights (all but the norms) and, when decoding, of the KV cache's heads, and the
    ranks of a "tp" row decode the same prompts together (70B: 131 GiB in bf16, 16 GiB per rank at tp 8).
    A refresh gathers one parameter at a time over the "dp" ranks only, cast to the
    compute dtype before the gather as FSDP's mixed precision does, so the replica holds the very weights
    that the sharded forward computes with; it is a collective (every rank calls it). An unsharded policy
    already in the compute dtype is used as it is.
    """

    def __init__(self, policy: Transformer, dtype: torch.dtype, tp_mesh=None):
        self.dtype = dtype
        if not hasattr(policy, "unshard") and policy.embed_tokens.weight.dtype == dtype:
            self.model = policy                                  # nothing to gather or cast
            return
        with torch.device("meta"):
            replica = tensor_parallel(Transformer(policy.args).to(dtype), tp_mesh)
        self.model = replica.to_empty(device=policy.embed_tokens.weight.device).eval().requires_grad_(False)
        if policy.args.tie_word_embeddings:
            self.model.lm_head.weight = self.model.embed_tokens.weight

    @torch.no_grad()
    def refresh(self, policy: Transformer) -> Transformer:
        from torch.distributed.tensor import DTensor, Replicate
        if self.model is not policy:
            mine = dict(self.model.named_parameters())
            for name, p in policy.named_parameters():
                full, target = p.detach().to(self.dtype), mine[name]
                if isinstance(target, DTensor):                  # tensor-parallel: keep this rank's heads
                    if full.device_mesh.ndim == 2:               # sharded over "dp" too, unless FSDP holds it
                        full = full.redistribute(placements=[Replicate(), *target.placements])    # gathered
                    full, target = full.to_local(), target.to_local()
                elif isinstance(full, DTensor):                  # this rank's shard: all-gather it
                    full = full.full_tensor()
                target.copy_(full)
        return self.model

    def nbytes(self, policy: Transformer) -> int:
        """Memory the replica adds to the policy's on this rank: 0 when it is the policy."""
        from torch.distributed.tensor import DTensor
        held = [p.to_local() if isinstance(p, DTensor) else p for p in self.model.parameters()]
        return 0 if self.model is policy else sum(p.numel() * p.element_size() for p in held)


# ----------------------------------------------------------------------------------------------------------
# Gradient clipping
# ----------------------------------------------------------------------------------------------------------

def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """torch.nn.utils.clip_grad_norm_ (scale all gradients so that their global L2 norm is at most max_norm;
    return the norm before) for parameters that live on different device meshes, which torch's refuses:
    with FSDP2 x tensor parallelism (``shard``) the split projections are sharded over a 2-D mesh and the rest
    (embedding, norms) over its data-parallel rows only. Each mesh's norm is computed where its gradients
    are, then the total from those."""
    from torch.distributed.tensor import DTensor
    parameters = [p for p in parameters if p.grad is not None]
    by_mesh = {}
    for p in parameters:
        by_mesh.setdefault(p.grad.device_mesh if isinstance(p.grad, DTensor) else None, []).append(p.grad)
    norms = [torch.nn.utils.get_total_norm(grads) for grads in by_mesh.values()]
    norms = [n.full_tensor() if isinstance(n, DTensor) else n for n in norms]
    total = torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)
    coef = float((max_norm / (total + 1e-6)).clamp(max=1.0))        # a number: it scales DTensors too
    for p in parameters:
        p.grad.mul_(coef)
    return total
