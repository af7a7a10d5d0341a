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

from infra.parallel import cpu_group
from model import ModelArgs, Transformer

EXPORT_SHARD_BYTES = 5 << 30        # safetensors shards of at most 5 GiB (a larger tensor alone), as HF writes them


def save_hf_folder(state: dict, args: ModelArgs, path, max_shard_bytes: int = EXPORT_SHARD_BYTES,
                   dtype: torch.dtype | None = None, gather=None, write: bool = True, **token_ids):
    """Save an HF-named state dict (``Transformer.hf_state_dict()``, sharded or not) in ``dtype`` (default: its
    own) as a Hugging Face folder: config.json and safetensors, sharded with an index past ``max_shard_bytes``.
    It loads with ``Transformer.from_pretrained`` and with transformers' LlamaForCausalLM.

    Written one shard at a time: the shards are planned from the tensors' shapes and dtypes alone
    (``shard_plan``), so every file's name (model-0000i-of-0000N) is known before any tensor is fetched; then
    each shard's tensors are fetched, written and let go before the next shard's. ``gather(t)`` fetches one
    (``export_policy``: a collective that every rank calls, whether it ``write``s or not); by default the
    tensor itself, on the host. So the writer never holds more than one shard's tensors (70B: one 5 GB
    shard, not 140 GB)."""
    from safetensors.torch import save_file
    dtype = dtype or next(iter(state.values())).dtype
    gather = gather or (lambda t: t.detach().to(device="cpu", dtype=dtype).contiguous())
    sizes = {name: t.numel() * dtype.itemsize for name, t in state.items()}
    shards = shard_plan(sizes, max_shard_bytes)
    files = ["model.safetensors"] if len(shards) == 1 else \
        [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    path = Path(path)
    if write:
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(args.to_hf_config(dtype, **token_ids), indent=2))
    for names, file in zip(shards, files):
        tensors = {name: gather(state[name]) for name in names}      # this shard's tensors, and no others
        if write:
            save_file(tensors, str(path / file), metadata={"format": "pt"})
        del tensors
    if write and len(shards) > 1:
        weight_map = {name: file for names, file in zip(shards, files) for name in names}
        (path / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}, indent=2))


def shard_plan(sizes: dict, max_shard_bytes: int) -> list[list[str]]:
    """The tensors' names (``sizes``: name -> bytes, in file order) cut into consecutive shards of at most
    ``max_shard_bytes``; a larger tensor gets a shard of its own."""
    shards, size = [[]], 0
    for name, nbytes in sizes.items():
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def save_model(model: Transformer, path, max_shard_bytes: int = EXPORT_SHARD_BYTES, **token_ids):
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
        for stale in checkpoints.glob(".tmp_step_*"):        # left by a run killed (or out of space) while writing
            shutil.rmtree(stale, ignore_errors=True)
        (tmp / "state").mkdir(parents=True)
    barrier()
    try:
        with one_process_dcp():
            dcp.save(dcp_state(state, step), checkpoint_id=tmp / "state")             # files fsynced
        if export_dtype is not None:
            export_policy(state.policy, tmp / "policy", tok_dir, export_dtype)
    except (OSError, RuntimeError) as e:                      # a full disk shows as either
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"writing checkpoint {final} failed ({type(e).__name__}: {e}); is {checkpoints} out of "
                           f"space? The previous checkpoint is intact: free space, then --resume {run_dir}") from e
    if rank == 0:
        for f in (tmp / "policy").glob("*"):                  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        write_atomically(checkpoints / "latest", final.name)
        complete = sorted(checkpoints.glob("step_*"))
        kept = {protect, *[c.name for c in complete if (c / "policy").is_dir()][-1:]}
        for old in complete[:-keep]:
            if old.name not in kept:
                shutil.rmtree(old, ignore_errors=True)
    barrier()


def export_policy(policy, path: Path, tok_dir: Path, dtype: torch.dtype, max_shard_bytes: int = EXPORT_SHARD_BYTES):
    """The policy as a Hugging Face folder in ``dtype``, what people load elsewhere (``from_pretrained``,
    transformers), written by rank 0 shard by shard (``save_hf_folder``): its weights are gathered one tensor
    at a time and rank 0's host holds one shard's at most, its optimiser never. Each rank casts its block to
    ``dtype`` first (the same numbers: rounding is per element), so what a GPU briefly holds whole is a bf16
    tensor, not the fp32 master."""
    from torch.distributed.tensor import DTensor
    rank0 = not dist.is_initialized() or dist.get_rank() == 0

    def gather(t):
        t = t.detach().to(dtype)
        t = t.full_tensor() if isinstance(t, DTensor) else t   # a collective: every rank takes part
        return t.to(device="cpu").contiguous() if rank0 else None

    save_hf_folder(policy.hf_state_dict(), policy.args, path, max_shard_bytes, dtype, gather, write=rank0)
    if rank0:
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
            if (tok_dir / f).is_file():
                shutil.copy(tok_dir / f, path / f)


def barrier():
    """All ranks wait here, on the host (``cpu_group``): while rank 0 writes and renames a checkpoint."""
    if dist.is_initialized():
        dist.barrier(group=cpu_group())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (DCP writes .metadata last; a step_N folder is renamed into place only when
    complete), even if a kill came before ``latest``, which names it for people and scripts, was updated."""
    complete = sorted(p.parent.parent for p in (run_dir / "checkpoints").glob("step_*/state/.metadata"))
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
    """checkpoints/best.json: the checkpoint with the best valid multi-turn 1@3 so far, and its report (None if
    missing, unreadable, or naming a checkpoint that is gone)."""
    best = read_json_file(run_dir / "checkpoints" / "best.json")
    return best if best and (run_dir / "checkpoints" / best["checkpoint"]).is_dir() else None


def recover_best(run_dir: Path, updates_per_step: int, write: bool = False) -> dict | None:
    """best.json on resume, checked against the evaluations on disk: a run killed after writing an evaluated
    checkpoint but before best.json named it would never pick it (a resumed run does not evaluate that step
    again) and could rotate it away. Every complete checkpoint with a valid-set report (eval_step<N>_real.json)
    competes; a tie keeps the earlier one, as training does. ``write``: best.json is rewritten to match."""
    best = read_best(run_dir)
    for done in sorted((run_dir / "checkpoints").glob("step_*/state/.metadata")):
        name = done.parent.parent.name
        step = int(name.removeprefix("step_"))
        report = read_json_file(run_dir / f"eval_step{step}_real.json")
        if report and (best is None or report["multi_turn_1@3"] > best["multi_turn_1@3"]
                       or (report["multi_turn_1@3"] == best["multi_turn_1@3"] and step < best["step"])):
            best = {"checkpoint": name, "step": step, "updates": step * updates_per_step,
                    "multi_turn_1@3": report["multi_turn_1@3"], "report": report}
    if write and best:
        write_best(run_dir, best)
    return best


def write_best(run_dir: Path, best: dict):
    write_atomically(run_dir / "checkpoints" / "best.json", json.dumps(best, indent=2))


def write_atomically(path: Path, text: str):
    """``path`` holds either its old text or ``text``, whatever happens: written beside it, flushed to disk,
    then renamed over it (and the rename made durable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_json_file(path: Path):
    """A JSON file's value, or None when it is missing or not valid JSON (cut short by a crash or a full disk)."""
    try:
        return json_or_none(path.read_text())
    except OSError:
        return None


def json_or_none(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


def open_metrics(run_dir: Path, resumed_at: int | None):
    """metrics.jsonl, appended to (by rank 0). A run resumed at step N redoes the steps after N: their rows are
    dropped first, so every step appears once."""
    path = run_dir / "metrics.jsonl"
    if resumed_at is not None and path.is_file():
        rows = [line for line in path.read_text().splitlines()
                if (row := json_or_none(line)) is not None and row["step"] <= resumed_at]   # torn lines dropped
        write_atomically(path, "".join(r + "\n" for r in rows))
    return open(path, "a")
