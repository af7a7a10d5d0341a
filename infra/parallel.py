"""Parallelism, applied from outside to an unchanged ``model.Transformer``.

* Processes: one (``python rlef.py``) or one per GPU (``torchrun``), arranged as a 2-D device mesh ("dp", "tp").
* Tensor parallelism within a "tp" row (Megatron-LM's split): ``TP_PLAN`` for the blocks, the vocabulary split
  for the embedding and the output head, ``SEQUENCE_PLAN`` for the residual stream between blocks (training).
* FSDP2 over the "dp" rows (``shard``), on the meta-device model, so that every rank reads only its own block
  of each tensor from the files (``Transformer.from_pretrained``'s ``shard``).
* The sampling replica: the policy as rollouts decode it, without FSDP hooks, in the compute dtype.
* Gradient clipping over parameters that live on different meshes.
* The judge of a tensor-parallel row (its ranks must see the same verdicts), and averages over ranks.
"""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor
from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel, SequenceParallel,
                                               parallelize_module)

import execute
from infra.decode import logits_fp32
from model import Head, ModelArgs, Transformer, chunked_logprobs


# ----------------------------------------------------------------------------------------------------------
# Processes and the mesh
# ----------------------------------------------------------------------------------------------------------

def log0(*args, **kwargs):
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(*args, **kwargs, flush=True)


def setup_distributed():
    """One process (``python rlef.py``) or one per device (``torchrun``): NCCL on CUDA, gloo on CPU
    (``process_group_options``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 or device.type == "cuda":
        # On GPU even a single process uses FSDP2, for its bf16-compute / fp32-master mixed precision; its
        # store takes a free port, so that two single-GPU jobs on one machine do not collide.
        os.environ.setdefault("MASTER_ADDR", "localhost"), os.environ.setdefault("MASTER_PORT", str(free_port()))
        dist.init_process_group(rank=rank, world_size=world, **process_group_options(device))
    return rank, world, device


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def process_group_options(device) -> dict:
    """``init_process_group``'s backend, timeout and device.

    The timeout (``RLEF_TIMEOUT_MINUTES``, default 120) must outlast the longest wait of a healthy run, not
    NCCL's default 10 minutes: the other ranks of a tensor-parallel row wait in ``GroupJudge``'s broadcast
    while its first rank runs every program of a batch; ranks with fewer evaluation episodes wait in
    ``evaluate``'s gather; all ranks wait at the checkpoint barrier while rank 0 writes the export (70B:
    140 GB from one host). A hung run still ends, with the collective named, after that time.

    On CUDA, ``device_id`` binds the process group to this rank's GPU: NCCL's communicators start now, before
    ``kv_cache_budget`` measures the free memory (their buffers, hundreds of MB, would otherwise appear
    later, inside the KV cache's share), and the mesh's groups are split from them (``ncclCommSplit``)."""
    from datetime import timedelta
    minutes = float(os.environ.get("RLEF_TIMEOUT_MINUTES", "120"))
    if not minutes > 0:
        raise ValueError(f"RLEF_TIMEOUT_MINUTES={minutes:g}: give the collectives' timeout in minutes, > 0")
    cuda = device.type == "cuda"
    return {"backend": "nccl" if cuda else "gloo", "timeout": timedelta(minutes=minutes),
            **({"device_id": device} if cuda else {})}


def cpu_group(group=None):
    """A gloo process group with the ranks of ``group`` (default: the world), for barriers and object
    collectives: pickled objects and barriers then wait on the host, not in a GPU communicator (NCCL's
    watchdog, a device tensor per object). ``group`` itself when it is already gloo. Only the group's own
    ranks call this (``use_local_synchronization``); created once per set of ranks."""
    group = group or dist.group.WORLD
    if dist.get_backend(group) == "gloo":
        return group
    ranks = tuple(dist.get_process_group_ranks(group))
    if ranks not in _CPU_GROUPS:
        timeout = process_group_options(torch.device("cpu"))["timeout"]
        _CPU_GROUPS[ranks] = dist.new_group(list(ranks), timeout, "gloo", use_local_synchronization=True)
    return _CPU_GROUPS[ranks]


_CPU_GROUPS = {}


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
    # Each dimension's groups wait as long as the world's (the mesh would give them torch's default timeout);
    # each gets its own options object, as torch's group splitting may write into the one it is given.
    options = process_group_options(device)

    def groups():
        backend_options = (dist.ProcessGroupNCCL.Options() if options["backend"] == "nccl"
                           else dist.ProcessGroupGloo._Options())
        backend_options._timeout = options["timeout"]
        return options["backend"], backend_options
    return init_device_mesh(device.type, (world // tp, tp), mesh_dim_names=("dp", "tp"),
                            backend_override={"dp": groups(), "tp": groups()})


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
# ... and after the last block the positions are gathered, so that the final norm and the head see them all.
GATHER_PLAN = {"norm": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),),
                                          use_local_output=True)}


def parameter_counts(args: ModelArgs, value_head: bool = False) -> tuple[int, int]:
    """Parameters split over the "tp" ranks (the projections of TP_PLAN, the embedding and the vocabulary head:
    ``split_vocabulary``) and those every "tp" rank holds whole (the norms; the critic's scalar head), counted on a
    model built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        named = list(Transformer(args, value_head=value_head).named_parameters())
    split_names = [*TP_PLAN, "embed_tokens", *([] if value_head else ["lm_head"])]
    split = sum(p.numel() for name, p in named if any(name.endswith(f"{m}.weight") for m in split_names))
    return split, sum(p.numel() for _, p in named) - split


def tensor_parallel(model: Transformer, tp_mesh, sequence_parallel: bool = False) -> Transformer:
    """Split a model built on the meta device over ``tp_mesh``: every block as TP_PLAN says (and SEQUENCE_PLAN,
    with ``sequence_parallel``), the embedding and vocabulary head over the vocabulary (``split_vocabulary``);
    nothing to do for one rank. Each rank's attention then computes n_heads / tp query heads against
    n_kv_heads / tp K/V heads, read off its projections' outputs; the model's KV cache holds those K/V heads.
    The critic's scalar head is not split."""
    if tp_mesh is None or tp_mesh.size() == 1:
        return model
    for block in model.layers:
        parallelize_module(block, tp_mesh, {**TP_PLAN, **(SEQUENCE_PLAN if sequence_parallel else {})})
    split_vocabulary(model, tp_mesh, sequence_parallel)
    if sequence_parallel:
        parallelize_module(model, tp_mesh, GATHER_PLAN)
    model.kv_heads = model.args.n_kv_heads // tp_mesh.size()
    return model


def split_vocabulary(model: Transformer, tp_mesh, sequence_parallel: bool):
    """Swap in the vocabulary-parallel embedding and head, their rows (Llama 3: 128k each, the largest tensors)
    split over ``tp_mesh``. A token's embedding row lives on one rank and the others add zeros (one
    all-reduce). The head's logits stay split when training (``vocab_parallel_chunk`` sums the softmax over
    the ranks' slices); sampling gathers them, one position of each row. The final norm is computed whole
    everywhere. A tied head and embedding split the same rows (dim 0): they stay one parameter."""
    tied = model.lm_head.weight is model.embed_tokens.weight
    old = model.embed_tokens.weight
    model.embed_tokens = VocabParallelEmbedding(model.args.vocab_size, model.args.dim, device="meta")
    model.embed_tokens.weight = nn.Parameter(distribute_tensor(old, tp_mesh, [Shard(0)]),
                                             requires_grad=old.requires_grad)
    model.embed_tokens.sequence_parallel = sequence_parallel
    if model.value_head:
        return
    head = VocabParallelHead(model.args.dim, model.args.vocab_size, bias=False, device="meta")
    head.weight = model.lm_head.weight
    model.lm_head = parallelize_module(head, tp_mesh, ColwiseParallel(output_layouts=Replicate()))
    if tied:
        model.lm_head.weight = model.embed_tokens.weight


class VocabParallelEmbedding(nn.Embedding):
    """The embedding with its (V, dim) weight split over the vocabulary (a DTensor, ``split_vocabulary``): each
    rank looks up the tokens that fall in its own rows, zeros for the others, and the ranks' results are
    summed (one all-reduce). By hand, because DTensor's embedding would build the whole (V, dim) gradient on
    every rank in backward; here each rank's gradient covers its own rows. With ``sequence_parallel`` each
    rank receives only its share of the positions (a reduce-scatter): a DTensor split on dim 1, which the
    blocks then keep split (SEQUENCE_PLAN)."""
    sequence_parallel = False

    def forward(self, tokens):                                                     # (B, T) -> (B, T, dim)
        rows, (vocab, _) = local_block(self.weight)
        mine = (tokens >= vocab.start) & (tokens < vocab.stop)                      # (B, T)
        x = F.embedding(torch.where(mine, tokens - vocab.start, 0), rows) * mine[..., None]    # (B, T, dim)
        x = DTensor.from_local(x, self.weight.device_mesh, [Partial()])
        return x.redistribute(placements=[Shard(1)]) if self.sequence_parallel else x.full_tensor()


class VocabParallelHead(Head):
    """The output head with its (V, dim) weight split over the vocabulary: calling it gives whole fp32 logits
    (each rank its slice's, ColwiseParallel gathers them: ``split_vocabulary``), its log-probs are computed on
    each rank's slice (``vocab_parallel_chunk``). Both keep the product in fp32 as ``Head`` does (sampler =
    trainer), so DTensor's own product, which rounds to the weights' dtype, is not used."""

    def forward(self, hidden):                     # replicated DTensor (..., dim) -> DTensor (..., V), split
        logits = logits_fp32(column_parallel_input(hidden), self.weight.to_local())        # (..., V/tp) fp32
        shape = (*logits.shape[:-1], self.out_features)
        return DTensor.from_local(logits, self.weight.device_mesh, [Shard(logits.ndim - 1)], run_check=False,
                                  shape=shape, stride=torch.empty(shape, device="meta").stride())

    def logprobs(self, hidden, targets, chunk_size: int = 256, temperature: float = 1.0):
        return chunked_logprobs(hidden, self.weight, targets, chunk_size, temperature, vocab_parallel_chunk)


def column_parallel_input(h: DTensor) -> torch.Tensor:
    """The local tensor of a replicated DTensor, for a product with this rank's slice of a column-parallel
    layer: the same forward on every rank, and in backward each rank's gradient is only its slice's part, so
    the parts are summed over the ranks (Megatron-LM's "f" operator: identity forward, all-reduce backward)."""
    return h.to_local(grad_placements=[Partial()])


def vocab_parallel_chunk(h, t, weight, temperature: float):
    """``chunked_logprobs``' chunk for an output layer split over the vocabulary (Megatron-LM's vocabulary-
    parallel cross-entropy): ``weight`` is a DTensor of which this rank holds V/tp rows. Each rank computes
    the logits of its own rows only, (B, c, V/tp), so a chunk costs 1/tp of the memory; the softmax's sums
    over the vocabulary (the normaliser, the target's logit, the entropy's expectation) add up the ranks'
    partial sums. The same maths as ``model.logprobs_chunk``, whose logsumexp also subtracts the maximum first."""
    mesh = weight.device_mesh

    def vocab_sum(partial_sums):                  # (B, c) on each rank -> their sum, on every rank
        return DTensor.from_local(partial_sums, mesh, [Partial()]).full_tensor()

    # h is the same on every rank; its gradient (one part per vocabulary slice) is summed over the ranks.
    h = column_parallel_input(DTensor.from_local(h, mesh, [Replicate()], run_check=False))
    logits = logits_fp32(h, weight.to_local()) / temperature                     # (B, c, V/tp) fp32
    top = logits.amax(-1).detach()                                               # (B, c): for exp's range only
    dist.all_reduce(top, dist.ReduceOp.MAX, group=mesh.get_group())
    logz = top + vocab_sum((logits - top[..., None]).exp().sum(-1)).log()       # (B, c)
    _, (vocab, _) = local_block(weight)                                          # this rank's rows: a slice
    mine = (t >= vocab.start) & (t < vocab.stop)                                 # the target is in this slice
    picked = logits.gather(-1, (t - vocab.start).clamp(0, logits.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    logprobs = vocab_sum(torch.where(mine, picked, 0.0)) - logz
    with torch.no_grad():
        entropy = logz - vocab_sum(((logits - logz[..., None]).exp() * logits).sum(-1))
    return logprobs, entropy


def local_block(t: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """The block of parameter ``t`` that this process holds, and where it sits in the whole tensor: all of a
    plain tensor; of a sharded one (a DTensor: FSDP2 splits rows, tensor parallelism rows or columns, both
    over a 2-D mesh), this rank's rows x columns, as DTensor itself places them."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    if not isinstance(t, DTensor):
        return t, tuple(slice(0, n) for n in t.shape)
    shape, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    return t.to_local(), tuple(slice(o, o + n) for o, n in zip(offset, shape))


def shard(model: torch.nn.Module, device, dtype: torch.dtype, mesh=None, trained: bool = True):
    """Tensor parallelism over the mesh's "tp" ranks (``tensor_parallel``, with SEQUENCE_PLAN), then FSDP2 over
    its "dp" ranks (without a mesh: FSDP2 alone over all ranks), per transformer block and for the root
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


def for_loading(split):
    """``Transformer.from_pretrained``'s ``shard``: ``split(model)`` (``shard`` or ``tensor_parallel``) on the
    meta-device model, then each parameter's block on this rank as DTensor places it (``local_block``)."""
    def shard_for_loading(model):
        split(model)
        return local_block
    return shard_for_loading


def load_models(cfg, weights, device, mesh=None):
    """Policy pi, frozen reference rho (the initial policy) and critic, all from the same weights (paper §2.2);
    ``cfg`` is rlef's Config (its ``dtype`` and ``activation_checkpointing``). Under torchrun each model is
    split (over ``mesh``, default FSDP2 over all ranks) while still on the meta device and every rank reads
    only its own block of each tensor: no rank ever holds a whole model (8B: 30 + 28 + 15 GiB), on any mesh."""
    master = torch.float32   # master weights; on GPU, FSDP2 computes in cfg.dtype
    sharded = mesh is not None or dist.is_initialized()
    compute = getattr(torch, cfg.dtype)
    trained = for_loading(lambda model: shard(model, device, compute, mesh)) if sharded else None
    frozen = for_loading(lambda model: shard(model, device, compute, mesh, trained=False)) if sharded else None
    policy = Transformer.from_pretrained(weights, device, master, shard=trained)
    critic = Transformer.from_pretrained(weights, device, master, value_head=True, shard=trained)
    reference = Transformer.from_pretrained(weights, device, compute if device.type == "cuda" else master,
                                            shard=frozen).eval().requires_grad_(False)
    policy.gradient_checkpointing = critic.gradient_checkpointing = cfg.activation_checkpointing
    return policy, reference, critic


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


# ----------------------------------------------------------------------------------------------------------
# The judge of a tensor-parallel row, and statistics over ranks
# ----------------------------------------------------------------------------------------------------------

class GroupJudge:
    """The judge of one "tp" row of the mesh. Its ranks decode together, so they must play the very same
    episodes and see the same verdicts, but a program near its time limit may pass on one rank and time out
    on another. So the row's first rank alone runs the programs (``judge``; None on the others) and sends
    the results to the rest."""

    def __init__(self, judge, tp_mesh):
        self.judge, self.group = judge, cpu_group(tp_mesh.get_group())   # waits while the first rank judges

    def map(self, jobs):
        results = [self.judge.map(jobs) if self.judge is not None else None]
        dist.broadcast_object_list(results, group=self.group, group_src=0)
        return results[0]

    def close(self):
        if self.judge is not None:
            self.judge.close()


def start_judge(workers: int, mesh, time_factor: float = execute.TIME_FACTOR):
    """This rank's judge: its own (one test server per core of its share of the node), or under tensor
    parallelism its "tp" row's, run by the row's first rank with the cores of the whole row."""
    tp = mesh["tp"].size() if mesh is not None else 1
    if tp == 1:
        return execute.Judge(workers=workers or cores_per_rank(), time_factor=time_factor)
    first = mesh["tp"].get_local_rank() == 0
    judge = execute.Judge(workers=workers or cores_per_rank() * tp, time_factor=time_factor) if first else None
    return GroupJudge(judge, mesh["tp"])


def reduce_mean(row: dict, device) -> dict:
    """Average scalar statistics over ranks (each rank rolled out its own share of the batch)."""
    if not dist.is_initialized():
        return row
    keys = sorted(k for k, v in row.items() if isinstance(v, (int, float)))
    t = torch.tensor([float(row[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return {**row, **{k: v / dist.get_world_size() for k, v in zip(keys, t.tolist())}}
