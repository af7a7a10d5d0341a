"""The policy export (a Hugging Face folder, written shard by shard) and the process group's settings."""
import gc
import warnings
from datetime import timedelta

import pytest
import safetensors.torch
import torch

from conftest import TINY_ARGS
from infra.checkpoints import export_policy, shard_plan
from infra.parallel import process_group_options
from model import Transformer


def live_tensors() -> list[torch.Tensor]:
    with warnings.catch_warnings():             # isinstance on torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore")
        # Plain tensors only: fake tensors that an earlier test's torch.compile left have no storage to count.
        return [o for o in gc.get_objects() if type(o) in (torch.Tensor, torch.nn.Parameter) and o.device.type == "cpu"]


def live_cpu_bytes(known: set) -> int:
    """Bytes of the host tensors alive now whose storage is not in ``known`` (each storage counted once)."""
    storages = {(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in live_tensors()}
    return sum(n for ptr, n in storages if ptr not in known)


def storages() -> set:
    return {t.untyped_storage().data_ptr() for t in live_tensors()}


def test_export_holds_one_shard_at_a_time_and_loads_identically(tmp_path, monkeypatch):
    torch.manual_seed(0)
    policy = Transformer(TINY_ARGS).init_weights(std=0.1)                       # fp32 master weights
    state = policy.hf_state_dict()
    max_shard = 3 * TINY_ARGS.vocab_size * TINY_ARGS.dim                       # bytes: 1.5 embeddings in bf16
    shards = shard_plan({k: t.numel() * 2 for k, t in state.items()}, max_shard)
    assert len(shards) >= 3
    # An instrumented writer: what the exporter holds on the host whenever it writes a file.
    held, save = [], safetensors.torch.save_file
    known = storages()

    def counting_save(tensors, filename, metadata=None):
        held.append((live_cpu_bytes(known), sum(t.numel() * t.element_size() for t in tensors.values())))
        save(tensors, filename, metadata=metadata)
    monkeypatch.setattr(safetensors.torch, "save_file", counting_save)
    export_policy(policy, tmp_path / "out", tmp_path, torch.bfloat16, max_shard_bytes=max_shard)
    monkeypatch.undo()            # before transformers is imported below: it would keep the counting writer
    assert len(held) == len(shards)
    for live, shard in held:                               # this shard's tensors alive, none of the others
        assert shard <= max_shard and live <= shard + 4096, (live, shard)
    total = sum(t.numel() * 2 for t in state.values())
    assert max(live for live, _ in held) < total / 2
    names = sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert names == [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    # Loaded back, with this repository's loader and with transformers: the policy rounded to bf16.
    loaded = Transformer.from_pretrained(tmp_path / "out", dtype=torch.bfloat16)
    for name, t in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], t.to(torch.bfloat16)), name
    transformers = pytest.importorskip("transformers")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.bfloat16).state_dict()
    for name, t in state.items():
        assert torch.equal(hf[name], t.to(torch.bfloat16)), name


def test_shard_plan_keeps_the_order_and_gives_an_oversized_tensor_its_own_shard():
    sizes = {"a": 4, "b": 4, "c": 9, "d": 1, "e": 3}
    assert shard_plan(sizes, 8) == [["a", "b"], ["c"], ["d", "e"]]
    assert shard_plan(sizes, 100) == [["a", "b", "c", "d", "e"]]


def test_process_group_waits_as_long_as_rlef_timeout_minutes_says(monkeypatch):
    monkeypatch.delenv("RLEF_TIMEOUT_MINUTES", raising=False)
    cpu = process_group_options(torch.device("cpu"))
    assert cpu == {"backend": "gloo", "timeout": timedelta(minutes=120)}            # no device_id for gloo
    monkeypatch.setenv("RLEF_TIMEOUT_MINUTES", "45")
    gpu = process_group_options(torch.device("cuda:3"))
    assert gpu == {"backend": "nccl", "timeout": timedelta(minutes=45), "device_id": torch.device("cuda:3")}
    monkeypatch.setenv("RLEF_TIMEOUT_MINUTES", "0")
    with pytest.raises(ValueError, match="RLEF_TIMEOUT_MINUTES"):
        process_group_options(torch.device("cpu"))
