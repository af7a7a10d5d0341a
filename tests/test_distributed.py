"""What torchrun changes: sharded loading, sharded checkpoints across world sizes, pooled evaluation.

Each test runs real processes under ``torchrun --nproc_per_node=2`` (gloo, CPU) and compares them with one
process doing the same thing.
"""
import json
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import execute
import rlef
from conftest import TINY_ARGS, byte_tokenizer, write_checkpoint
from data import Problem, Test, save_problems
from model import Tokenizer
from test_train import metrics, run_cli, tiny_args

ROOT = Path(rlef.__file__).parent
TESTS = Path(__file__).parent
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")


def torchrun(tmp_path, code: str, *args) -> subprocess.CompletedProcess:
    """Run ``code`` (a script body: rlef and this test module importable) under torchrun x2."""
    script = tmp_path / "script.py"
    script.write_text(f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]\n{code}")
    done = subprocess.run([*TORCHRUN, str(script), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------

LOAD = """
import json, torch, rlef
from pathlib import Path
rank, world, device = rlef.setup_distributed()
cfg = rlef.Config(model="tiny", dtype="float32")
out, local = {}, {}
for ckpt in sys.argv[2:]:
    torch.manual_seed(0)                                        # the critic's random head
    for role, model in zip(("policy", "reference", "value"), rlef.load_models(cfg, Path(ckpt), device)):
        out[f"{ckpt}/{role}"] = {k: v.full_tensor() for k, v in model.state_dict().items()}
        local[f"{ckpt}/{role}"] = sum(p.to_local().numel() for p in model.parameters())
if rank == 0:
    torch.save(out, sys.argv[1])
Path(sys.argv[1] + f".rank{rank}.json").write_text(json.dumps(local))
"""


@pytest.mark.slow
def test_sharded_loading_is_bit_identical_to_one_process(tmp_path):
    # bf16 files in several safetensors shards (read and converted row block by row block), and a tied
    # embedding with an odd vocabulary (503 rows: rank 0 gets 252, rank 1 251).
    untied = write_checkpoint(tmp_path / "untied", TINY_ARGS, seed=1, max_shard_bytes=40_000, dtype=torch.bfloat16)
    tied = write_checkpoint(tmp_path / "tied", replace(TINY_ARGS, vocab_size=503, tie_word_embeddings=True), seed=2)
    assert len(list(untied.glob("*.safetensors"))) > 1
    torchrun(tmp_path, LOAD, tmp_path / "loaded.pt", untied, tied)
    sharded = torch.load(tmp_path / "loaded.pt")
    cfg = rlef.Config(model="tiny", dtype="float32")
    for ckpt in (untied, tied):
        torch.manual_seed(0)
        for role, model in zip(("policy", "reference", "value"), rlef.load_models(cfg, ckpt, torch.device("cpu"))):
            one = model.state_dict()
            assert sharded[f"{ckpt}/{role}"].keys() == one.keys()
            for name, tensor in one.items():
                assert torch.equal(sharded[f"{ckpt}/{role}"][name], tensor), (ckpt.name, role, name)
            # Each rank allocated its own rows only: half of every parameter, give or take one row.
            n, one_row_each = sum(p.numel() for p in model.parameters()), sum(p[0].numel() for p in model.parameters())
            for rank in (0, 1):
                held = json.loads(Path(f"{tmp_path / 'loaded.pt'}.rank{rank}.json").read_text())[f"{ckpt}/{role}"]
                assert abs(held - n / 2) <= one_row_each, (ckpt.name, role, rank, held, n)
