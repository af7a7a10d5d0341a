"""What torchrun changes: sharded loading, sharded checkpoints across world sizes, pooled evaluation.

Each test runs real processes under ``torchrun --nproc_per_node=2`` (gloo, CPU; 4 for the 2 x 2 mesh of
``--tp 2``) and compares them with one process doing the same thing.
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
from model import Tokenizer, Transformer
from test_train import assert_same_policy, metrics, run_cli, tiny_args

ROOT = Path(rlef.__file__).parent
TESTS = Path(__file__).parent
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
TORCHRUN_4 = TORCHRUN[:-1] + ("--nproc_per_node=4",)


# A script's last lines: the ranks leave together and close their process group, as rlef.py does. A rank
# that exits with its gloo group still open can abort in the group's destructor ("terminate called without
# an active exception"), now and then.
TEARDOWN = """
import torch.distributed
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
"""


def torchrun(tmp_path, code: str, *args, launcher=TORCHRUN) -> subprocess.CompletedProcess:
    """Run ``code`` (a script body: rlef and the test modules importable) under torchrun (x2 by default)."""
    script = tmp_path / "script.py"
    script.write_text(f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(TESTS)!r}]\n{code}{TEARDOWN}")
    done = subprocess.run([*launcher, str(script), *map(str, args)], capture_output=True, text=True, timeout=900)
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
    for role, model in zip(("policy", "reference", "critic"), rlef.load_models(cfg, Path(ckpt), device)):
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
        for role, model in zip(("policy", "reference", "critic"), rlef.load_models(cfg, ckpt, torch.device("cpu"))):
            one = model.state_dict()
            assert sharded[f"{ckpt}/{role}"].keys() == one.keys()
            for name, tensor in one.items():
                assert torch.equal(sharded[f"{ckpt}/{role}"][name], tensor), (ckpt.name, role, name)
            # Each rank allocated its own rows only: half of every parameter, give or take one row.
            n, one_row_each = sum(p.numel() for p in model.parameters()), sum(p[0].numel() for p in model.parameters())
            for rank in (0, 1):
                held = json.loads(Path(f"{tmp_path / 'loaded.pt'}.rank{rank}.json").read_text())[f"{ckpt}/{role}"]
                assert abs(held - n / 2) <= one_row_each, (ckpt.name, role, rank, held, n)


# The KV-cache budget: each rank reports a different free memory (rank r: (r + 1) x 4 MB), as the ranks of a
# GPU node do (the judge's rank, fragmentation); every rank must size its cache from the smallest.
BUDGETS = """
import json, torch, rlef
import infra.memory_plan as plan
from conftest import TINY_ARGS
from model import Transformer
rank, world, device = rlef.setup_distributed()
plan.free_memory = lambda device: (rank + 1) * 4_000_000
policy, critic = Transformer(TINY_ARGS), Transformer(TINY_ARGS, value_head=True)
budgets = {"train": plan.kv_cache_budget(policy, critic, device, world), "eval": plan.eval_cache_budget(device)}
rows = {k: plan.cache_rows(policy, b, 100) for k, b in budgets.items()}
own = plan.cache_rows(policy, int(0.9 * plan.free_memory(device)), 100)
json.dump({"budgets": budgets, "rows": rows, "own rows": own}, open(f"{sys.argv[1]}.rank{rank}.json", "w"))
"""


def test_ranks_with_different_free_memory_agree_on_the_smallest_kv_budget(tmp_path):
    torchrun(tmp_path, BUDGETS, tmp_path / "budgets")
    ranks = [json.loads(Path(f"{tmp_path / 'budgets'}.rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["own rows"] < ranks[1]["own rows"]          # each rank alone would decode a different count
    assert ranks[0]["budgets"] == ranks[1]["budgets"] and ranks[0]["rows"] == ranks[1]["rows"]
    assert ranks[0]["budgets"]["eval"] == int(0.9 * 4_000_000)  # rank 0's, the smaller
    n = sum(p.numel() for p in Transformer(TINY_ARGS).parameters()) + sum(
        p.numel() for p in Transformer(TINY_ARGS, value_head=True).parameters())
    assert ranks[0]["budgets"]["train"] == int(0.9 * 4_000_000) - 8 * n // 2


# Every process group waits as long as RLEF_TIMEOUT_MINUTES says: the world's, the mesh's two dimensions (which
# torch would otherwise give its own defaults) and the host group of barriers and verdicts.
TIMEOUTS = """
import json, os, torch, rlef
import torch.distributed as dist
from infra.parallel import cpu_group, device_mesh
os.environ["RLEF_TIMEOUT_MINUTES"] = "7"
rank, world, device = rlef.setup_distributed()
def minutes(group):
    return group._get_backend(torch.device("cpu")).options._timeout.total_seconds() / 60
out = {"world": minutes(dist.group.WORLD), "barriers": minutes(cpu_group())}
for tp in (1, 2):
    mesh = device_mesh(world, tp, device)
    out.update({f"{name} of {world // tp} x {tp}": minutes(mesh[name].get_group()) for name in ("dp", "tp")})
json.dump(out, open(f"{sys.argv[1]}.rank{rank}.json", "w"))
"""


def test_every_process_group_gets_the_timeout(tmp_path):
    torchrun(tmp_path, TIMEOUTS, tmp_path / "timeouts")
    for rank in (0, 1):
        got = json.loads(Path(f"{tmp_path / 'timeouts'}.rank{rank}.json").read_text())
        assert len(got) == 6 and set(got.values()) == {7.0}, got


# ----------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------

# Greedy rollouts and one mini-batch per step make a step's update independent of how the batch is split
# over ranks (as in test_train's torchrun test), so runs on 1 and 2 ranks agree up to float reassociation.
SPLIT_FREE = {"temperature": 0, "minibatches": 1, "keep-checkpoints": 5}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """"one": 3 batches in one process; "two": the first 2 under torchrun x2. Both checkpoint after every batch."""
    tmp = tmp_path_factory.mktemp("runs")
    ckpt = write_checkpoint(tmp / "tiny")
    one = run_cli(tiny_args(tmp, ckpt, run="one", **SPLIT_FREE))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(tiny_args(tmp, ckpt, run="two", **SPLIT_FREE, batches=2), launcher=TORCHRUN)
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp, ckpt


def dcp_bytes_by_rank(state_dir: Path, prefix: str) -> Counter:
    """Tensor bytes of the entries under ``prefix`` that each rank's file of a DCP checkpoint holds."""
    import math
    import torch.distributed.checkpoint as dcp
    metadata = dcp.FileSystemReader(state_dir).read_metadata()
    held = Counter()
    for index, where in metadata.storage_data.items():
        if index.fqn.startswith(prefix):
            entry = metadata.state_dict_metadata[index.fqn]
            chunk = next(c for c in entry.chunks if tuple(c.offsets) == tuple(index.offset))
            held[where.relative_path] += math.prod(chunk.sizes) * entry.properties.dtype.itemsize
    return held


@pytest.mark.slow
def test_no_rank_saves_more_than_its_half_of_the_optimiser_state(runs):
    tmp, _ = runs
    state = tmp / "two" / "checkpoints" / "step_000002" / "state"
    for opt in ("policy_optimizer.state.", "critic_optimizer.state."):
        held = dcp_bytes_by_rank(state, opt)
        assert sorted(held) == ["__0_0.distcp", "__1_0.distcp"]           # one file per rank, each with its rows
        total = sum(held.values())
        assert all(0.4 * total < b < 0.6 * total for b in held.values()), held
    # Saved once, nothing gathered: the policy's two AdamW moments (fp32, like its n weights) and a step count
    # per parameter tensor.
    params = list(Transformer(TINY_ARGS).parameters())
    n = sum(p.numel() for p in params)
    assert sum(dcp_bytes_by_rank(state, "policy_optimizer.state.").values()) == 8 * n + 4 * len(params)


def resume(tmp, ckpt, source: str, name: str, launcher) -> Path:
    """Copy run ``source`` as it was after step 2 and continue it to step 3 with ``launcher``."""
    shutil.copytree(tmp / source, tmp / name)
    checkpoints = tmp / name / "checkpoints"
    shutil.rmtree(checkpoints / "step_000003", ignore_errors=True)
    (checkpoints / "latest").write_text("step_000002")
    out = run_cli(tiny_args(tmp, ckpt, run=name, **SPLIT_FREE) + ["--resume", str(tmp / name)], launcher=launcher)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed from" in out.stdout and "at step 2" in out.stdout
    return tmp / name


@pytest.mark.slow
@pytest.mark.parametrize("source,launcher", [("two", (sys.executable,)), ("one", TORCHRUN)],
                         ids=["2-ranks-to-1", "1-to-2-ranks"])
def test_checkpoint_continues_on_a_different_world_size(runs, source, launcher):
    tmp, ckpt = runs
    continued = resume(tmp, ckpt, source, f"{source}-continued", launcher)
    straight, rows = metrics(tmp / "one"), metrics(continued)
    assert [r["step"] for r in rows] == [1, 2, 3]
    # Step 3 starts from the reloaded weights, AdamW moments and schedule: it matches the uninterrupted run.
    x, y = straight[2], rows[2]
    assert x["reward"] == pytest.approx(y["reward"]) and x["solve_rate"] == y["solve_rate"]
    assert x["value_loss"] == pytest.approx(y["value_loss"], rel=1e-4)
    assert x["policy_grad_norm"] == pytest.approx(y["policy_grad_norm"], rel=1e-4)
    assert_same_policy(tmp / "one", continued, step=3)


@pytest.mark.slow
def test_training_on_a_2x2_mesh_matches_one_process_and_resumes_on_one(runs):
    # torchrun x4 with --tp 2: two tensor-parallel copies of each model, each playing half of every batch.
    tmp, ckpt = runs
    out = run_cli(tiny_args(tmp, ckpt, run="2x2", **SPLIT_FREE, batches=2, tp=2), launcher=TORCHRUN_4)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "mesh: 2 x 2 (data parallel x tensor parallel)" in out.stdout
    straight = metrics(tmp / "one")
    continued = metrics(resume(tmp, ckpt, "2x2", "2x2-continued", (sys.executable,)))
    assert [r["step"] for r in continued] == [1, 2, 3]
    for x, y in zip(straight, continued):
        assert x["reward"] == pytest.approx(y["reward"]) and x["solve_rate"] == y["solve_rate"]
        assert x["value_loss"] == pytest.approx(y["value_loss"], rel=1e-4)
        assert x["policy_grad_norm"] == pytest.approx(y["policy_grad_norm"], rel=1e-4)
    assert_same_policy(tmp / "one", tmp / "2x2-continued", step=3)


# ----------------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------------

# Five problems, an unequal split over two ranks (3 + 2), and answers of every kind.
ADD = [Problem(f"add{k}", f"Read n and print n plus {k}", [Test("1\n", f"{1 + k}\n")], [Test("5\n", f"{5 + k}\n")])
       for k in range(5)]
ANSWERS = ["```python\nprint(int(input()) + {k})\n```",            # right
           "```python\nprint(int(input()))\n```",                  # wrong answer
           "```python\nprint({{1: {one}}}[int(input())])\n```",    # passes the public test only
           "I am not sure.",                                       # no code
           "```python\nprint(1 / 0)\n```"]                         # runtime error


class ByPrompt:
    """A scripted policy whose answer depends only on the problem, the turn, and how often it has seen this
    exact prompt before: the same episodes come out however the problems are split over ranks."""

    def __init__(self, tok):
        self.tok, self.seen = tok, Counter()

    def __call__(self, prompts):
        out = []
        for p in prompts:
            k = int(self.tok.decode(p).split("print n plus ")[1][0])
            turn = p.count(self.tok.start_header_id) // 2            # user + assistant headers per turn
            n = self.seen[tuple(p)]
            self.seen[tuple(p)] += 1
            text = ANSWERS[(k + 2 * turn + n) % len(ANSWERS)].format(k=k, one=1 + k)
            out.append((self.tok.encode(text) + [self.tok.eot_id], [-1.0] * (len(self.tok.encode(text)) + 1)))
        return out


POOLED_EVAL = """
import json, execute, rlef
from model import Tokenizer
from conftest import byte_tokenizer
from test_distributed import ADD, ByPrompt
rank, world, device = rlef.setup_distributed()
tok = Tokenizer(byte_tokenizer())
with execute.Judge(workers=1) as judge:
    reports = [rlef.evaluate(ByPrompt(tok), tok, ADD, judge, rlef.EvalSettings(samples=2, turns=3, feedback_mode=mode),
                             log=lambda *a, **k: None) for mode in ("real", "random")]
if rank == 0:
    open(sys.argv[1], "w").write(json.dumps(reports))
"""


def test_torchrun_evaluation_report_equals_one_process(tmp_path):
    torchrun(tmp_path, POOLED_EVAL, tmp_path / "pooled.json")
    tok = Tokenizer(byte_tokenizer())
    with execute.Judge(workers=2) as judge:
        one = rlef.evaluate(ByPrompt(tok), tok, ADD, judge, rlef.EvalSettings(samples=2, turns=3),
                            log=lambda *a, **k: None)
    pooled, pooled_random = json.loads((tmp_path / "pooled.json").read_text())
    assert pooled == json.loads(json.dumps(one))                   # every field: per turn, verdicts, pass@k, chrF
    # Random feedback: each rank draws its own messages; the report counts those of both ranks (one message
    # per episode that went on to another turn).
    shown = pooled_random["random_feedback"]
    assert shown["construction"] == "message swap"
    assert shown["messages"] == sum(t["episodes"] for t in pooled_random["per_turn"][1:]) > 0
    # The script gives a report worth comparing: partial rates, every verdict, code changes between turns.
    assert 0 < one["multi_turn_1@3"] < 1 and 0 < one["single_turn_1@3"] < 1 and 0 < one["pass@k"]["pass@1"] < 1
    assert set(one["per_turn"][0]["verdicts"]) == {"pass", "wrong_answer", "no_code", "runtime_error"}
    assert one["per_turn"][0]["episodes"] == 10 and one["per_turn"][1]["chrF_to_previous"] is not None


@pytest.mark.slow
def test_eval_command_under_torchrun_reports_all_problems_once_with_or_without_tp(tmp_path, tiny_checkpoint):
    save_problems(ADD, tmp_path / "add.jsonl")
    flags = ["eval", "--weights", tiny_checkpoint, "--data", tmp_path / "add.jsonl", "--temperature", "0",
             "--max-new-tokens", "8", "--samples", "2"]
    runs = {}
    for name, launcher, tp in (("one", (sys.executable,), 0), ("two", TORCHRUN, 1), ("tp", TORCHRUN, 2)):
        done = subprocess.run([*launcher, str(ROOT / "rlef.py"), *map(str, flags), "--tp", str(tp),
                               "--out", tmp_path / f"{name}.json"], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("multi-turn 1@3") == 1                     # rank 0 alone reports
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert name == "one" or f"mesh: {2 // tp} x {tp}" in done.stdout
    # Greedy sampling: the same episodes on 1 and 2 ranks (two copies of the model, or one split over both
    # ranks: --tp 2), so the same report, over all 5 problems x 2 samples.
    assert runs["two"] == runs["one"] and runs["tp"] == runs["one"]
    assert runs["two"]["problems"] == 5 and runs["two"]["per_turn"][0]["episodes"] == 10
