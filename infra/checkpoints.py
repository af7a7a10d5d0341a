"""Checkpoints of a training run: atomic, sharded, readable by any number of ranks.

``checkpoints/step_N/state`` holds the training state as torch.distributed.checkpoint (DCP) writes it (every
rank its own shards of policy, critic and their optimisers), ``step_N/policy`` the policy as a Hugging Face
folder (``export_policy``); ``latest`` names the newest complete checkpoint and ``best.json`` the one with the
best valid multi-turn 1@3 (paper §3: the run's result).
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from model import ModelArgs, Transformer


def save_hf_folder(state: dict, args: ModelArgs, path, max_shard_bytes: int = 5 << 30, **token_ids):
    """Save an HF-named state dict (``Transformer.hf_state_dict()``, or one gathered from FSDP shards) as a
    Hugging Face folder: config.json and safetensors, sharded with an index past ``max_shard_bytes``. It loads
    with ``Transformer.from_pretrained`` and with transformers' LlamaForCausalLM."""
    from safetensors.torch import save_file
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = t.detach().to("cpu").contiguous()
        size += nbytes
    shards.append(current)
    dtype = next(iter(state.values())).dtype
    (path / "config.json").write_text(json.dumps(args.to_hf_config(dtype, **token_ids), indent=2))
    if len(shards) == 1:
        save_file(shards[0], str(path / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


def save_model(model: Transformer, path, max_shard_bytes: int = 5 << 30, **token_ids):
    """A whole (unsharded) model as a Hugging Face folder."""
    save_hf_folder(model.hf_state_dict(), model.args, path, max_shard_bytes, **token_ids)


@dataclass
class TrainingState:
    """What training changes, and so what a checkpoint holds: the two trained models with their optimisers
    and learning-rate schedulers, each a (policy's, critic's) pair."""
    policy: torch.nn.Module
    critic: torch.nn.Module
    optimizers: tuple
    schedulers: tuple


@contextmanager
def one_process_dcp():
    """DCP warns when one process saves or loads without torch.distributed: that is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled")
        yield


def dcp_state(state: TrainingState, step: int) -> dict:
    """What a checkpoint holds, in the form torch.distributed.checkpoint (DCP) reads and writes: this rank's
    shards of both models and both optimisers, keyed by parameter name and global shape (so that any number
    of ranks can read them back, each taking its own rows), the two schedulers and the step."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
    (policy, critic), opts, scheds = (state.policy, state.critic), state.optimizers, state.schedulers
    return {"policy": get_model_state_dict(policy), "critic": get_model_state_dict(critic),
            "policy_optimizer": get_optimizer_state_dict(policy, opts[0]),
            "critic_optimizer": get_optimizer_state_dict(critic, opts[1]),
            "policy_scheduler": scheds[0].state_dict(), "critic_scheduler": scheds[1].state_dict(), "step": step}


def save_checkpoint(run_dir: Path, step: int, state: TrainingState, tok_dir: Path, keep: int,
                    export_dtype: torch.dtype | None = None, protect: str | None = None):
    """Write checkpoints/step_N atomically: every rank writes its own shards of the training state (DCP) into
    a temporary folder, the policy is added as a Hugging Face folder in ``export_dtype`` (None: not exported),
    and rank 0 renames the
    folder into place once everything is on disk, then replaces ``latest``. A kill at any moment leaves the
    previous checkpoint intact and ``latest`` pointing at a complete one. No process ever gathers the
    optimiser state: for 8B that would be 190 GB through one process every few steps. The ``keep`` newest
    are kept, ``protect`` (the best one's name) and the newest export too."""
    import torch.distributed.checkpoint as dcp
    rank = dist.get_rank() if dist.is_initialized() else 0
    checkpoints = run_dir / "checkpoints"
    final, tmp = checkpoints / f"step_{step:06d}", checkpoints / f".tmp_step_{step:06d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)                # left by a run killed while writing it
        (tmp / "state").mkdir(parents=True)
    barrier()
    with one_process_dcp():
        dcp.save(dcp_state(state, step), checkpoint_id=tmp / "state")                 # files fsynced
    if export_dtype is not None:
        export_policy(state.policy, tmp / "policy", tok_dir, export_dtype)
    if rank == 0:
        for f in (tmp / "policy").glob("*"):                  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        latest_tmp = checkpoints / ".latest.tmp"
        latest_tmp.write_text(final.name)
        os.replace(latest_tmp, checkpoints / "latest")
        complete = sorted(checkpoints.glob("step_*"))
        kept = {protect, *[c.name for c in complete if (c / "policy").is_dir()][-1:]}
        for old in complete[:-keep]:
            if old.name not in kept:
                shutil.rmtree(old, ignore_errors=True)
    barrier()


def export_policy(policy, path: Path, tok_dir: Path, dtype: torch.dtype):
    """The policy as a Hugging Face folder in ``dtype``, what people load elsewhere (``from_pretrained``,
    transformers), written by rank 0. Its weights are gathered one tensor at a time, its optimiser never;
    each rank casts its shard to ``dtype`` first (the same numbers: rounding is per element), so what every
    rank briefly holds whole is a bf16 tensor, not the fp32 master."""
    from torch.distributed.tensor import DTensor
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    state = {}
    for name, t in policy.hf_state_dict().items():
        t = t.detach().to(dtype)
        t = t.full_tensor() if isinstance(t, DTensor) else t  # a collective: every rank takes part
        if rank0:
            state[name] = t.to(device="cpu")
    if rank0:
        save_hf_folder(state, policy.args, path)
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
            if (tok_dir / f).is_file():
                shutil.copy(tok_dir / f, path / f)


def barrier():
    if dist.is_initialized():
        dist.barrier()


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``latest`` names, or else the newest complete one (DCP writes .metadata last)."""
    checkpoints = run_dir / "checkpoints"
    pointer = checkpoints / "latest"
    if pointer.is_file() and (checkpoints / pointer.read_text().strip() / "state" / ".metadata").is_file():
        return checkpoints / pointer.read_text().strip()
    complete = sorted(p.parent.parent for p in checkpoints.glob("step_*/state/.metadata"))
    return complete[-1] if complete else None


def load_training_state(checkpoint: Path, state: TrainingState) -> int:
    """Continue from ``checkpoint``, written by any number of ranks: DCP gives each rank its own rows of every
    saved tensor. Returns the step it was written at."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict
    saved = dcp_state(state, step=0)
    with one_process_dcp():
        dcp.load(saved, checkpoint_id=checkpoint / "state")
    for name, model, opt, sched in zip(("policy", "critic"), (state.policy, state.critic), state.optimizers,
                                       state.schedulers):
        set_model_state_dict(model, saved[name])
        set_optimizer_state_dict(model, opt, saved[f"{name}_optimizer"])
        sched.load_state_dict(saved[f"{name}_scheduler"])
    return saved["step"]


def load_policy_weights(policy, checkpoint: Path):
    """Put a checkpoint's policy back into the training policy, sharded or not: each rank reads its own rows
    of the saved training state (DCP), as when resuming."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict
    state = {"policy": get_model_state_dict(policy)}
    with one_process_dcp():
        dcp.load(state, checkpoint_id=checkpoint / "state")
    set_model_state_dict(policy, state["policy"])


def read_best(run_dir: Path) -> dict | None:
    """checkpoints/best.json: the checkpoint with the best valid multi-turn 1@3 so far, and its report."""
    path = run_dir / "checkpoints" / "best.json"
    best = json.loads(path.read_text()) if path.is_file() else None
    return best if best and (run_dir / "checkpoints" / best["checkpoint"]).is_dir() else None


def write_best(run_dir: Path, best: dict):
    tmp = run_dir / "checkpoints" / ".best.json.tmp"
    tmp.write_text(json.dumps(best, indent=2))
    os.replace(tmp, run_dir / "checkpoints" / "best.json")


def open_metrics(run_dir: Path, resumed_at: int | None):
    """metrics.jsonl, appended to (by rank 0). A run resumed at step N redoes the steps after N: their rows are
    dropped first, so every step appears once."""
    path = run_dir / "metrics.jsonl"
    if resumed_at is not None and path.is_file():
        rows = [r for r in path.read_text().splitlines() if json.loads(r)["step"] <= resumed_at]
        path.write_text("".join(r + "\n" for r in rows))
    return open(path, "a")
