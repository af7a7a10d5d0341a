"""FSDP2 x tensor parallelism on a 2-D mesh: 4 processes under torchrun (gloo, CPU) as a 2 x 2 mesh ("dp", "tp")
compute what one process and the 1-D FSDP x 4 mesh compute, and a checkpoint moves between meshes.

One torchrun launch does all the distributed work (``MESHES``) on a tiny Llama with grouped-query attention
(4 query heads, 2 K/V heads: one K/V head and its two query heads per tensor-parallel rank), with tied and
untied embeddings; the tests compare what it wrote with single-process runs of the same code.
"""
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import ppo
import rlef
from conftest import TINY_ARGS, write_checkpoint
from infra.inputs import dry_run
from infra.memory_plan import memory_plan, plan_peaks, smallest_mesh
from infra.parallel import parameter_counts
from model import PRESETS, Sampling, Transformer, generate
from test_distributed import torchrun
from test_ppo import four_episodes

ROOT = Path(rlef.__file__).parent
TESTS = Path(__file__).parent
TORCHRUN_4 = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4")
TOKENS = torch.arange(2 * 40).reshape(2, 40) * 37 % 264                   # (2, 40) fixed token ids
PROMPTS = [[5, 17, 99, 3], [200, 1, 42, 42, 7, 9]]

# The whole distributed side: per checkpoint (untied, tied), on the 2 x 2 mesh, what each rank holds (weights,
# a block's input), the logits, log-probs and entropy (tempered), greedy tokens from the tensor-parallel
# sampling replica, and one PPO update; the same update on the 4 x 1 mesh (FSDP only); then a checkpoint
# written on 2 x 2 after that update, and a second update both on 2 x 2 and on 4 x 1 after resuming from it.
MESHES = """
import json, torch, rlef
from pathlib import Path
from model import Sampling, generate
from infra.parallel import device_mesh
from test_tensor_parallel import TOKENS, PROMPTS, ppo_step
out, run_dir, checkpoints = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
rank, world, device = rlef.setup_distributed()
meshes = {"2x2": device_mesh(4, 2, device), "4x1": device_mesh(4, 1, device)}
cfg = rlef.Config(model="tiny", dtype="float32", keep_checkpoints=5)
results, held = {}, {}
for ckpt in checkpoints:
    for name, mesh in meshes.items():
        torch.manual_seed(0)                                        # the critic's random head
        policy, reference, value = rlef.load_models(cfg, Path(ckpt), device, mesh)
        opts, scheds = ppo_step(policy, reference, value, mesh, steps=0)[:2]   # before a forward gathers any
        r = results[f"{ckpt}/{name}"] = {}
        if name == "2x2":
            held[ckpt] = {k: v.to_local().numel() for k, v in policy.named_parameters()}
            hook = policy.layers[1].register_forward_pre_hook(
                lambda block, args: held[ckpt].update({"block input": list(args[0].to_local().shape)}))
            with torch.no_grad():
                r["logits"] = policy(TOKENS)
                hook.remove()
                r["logprobs"] = policy(TOKENS[:, :-1], targets=TOKENS[:, 1:], temperature=0.7, chunk_size=16)
            replica = rlef.SamplingReplica(policy, torch.float32, mesh["tp"]).refresh(policy)
            r["greedy"] = generate(replica, PROMPTS, 12, Sampling(temperature=0))
            held[ckpt]["replica q_proj"] = replica.layers[0].self_attn.q_proj.weight.to_local().numel()
            held[ckpt]["replica kv heads"] = replica.kv_heads
        r["update"] = ppo_step(policy, reference, value, mesh, opts, scheds)[2]
        if name == "2x2" and ckpt == checkpoints[0]:
            rlef.save_checkpoint(run_dir, 1, rlef.TrainingState(policy, value, opts, scheds), Path(ckpt),
                                 cfg.keep_checkpoints)
            r["second update"] = ppo_step(policy, reference, value, mesh, opts, scheds)[2]
torch.manual_seed(0)                                                # resume the 2 x 2 run on 4 x 1
policy, reference, value = rlef.load_models(cfg, Path(checkpoints[0]), device, meshes["4x1"])
opts, scheds = ppo_step(policy, reference, value, meshes["4x1"], steps=0)[:2]
rlef.load_training_state(run_dir / "checkpoints" / "step_000001", rlef.TrainingState(policy, value, opts, scheds))
results["resumed on 4x1"] = ppo_step(policy, reference, value, meshes["4x1"], opts, scheds)[2]
if rank == 0:
    torch.save(results, out)
Path(f"{out}.rank{rank}.json").write_text(json.dumps(held))
"""


def full(model) -> dict:
    """Every parameter whole (a collective on a mesh)."""
    return {k: v.full_tensor() if hasattr(v, "full_tensor") else v.detach().clone() for k, v in model.named_parameters()}


def ppo_step(policy, reference, value, mesh=None, opts=None, scheds=None, steps: int = 1):
    """One PPO update on this data-parallel rank's share of four fixed episodes: (optimisers, schedulers,
    {loss statistics, gradients and weights after it, all whole}). ``steps=0`` only makes the optimisers."""
    if opts is None:
        (p_opt, p_sched), (v_opt, v_sched) = (ppo.make_optimizer(m, 1e-2, warmup_updates=1) for m in (policy, value))
        opts, scheds = (p_opt, v_opt), (p_sched, v_sched)
        for group in (*p_opt.param_groups, *v_opt.param_groups):
            # AdamW's eps far above the gradients' rounding (they are ~1e-3): its first step is then about
            # lr * g / eps, linear in the gradient, rather than lr * sign(g), which rounding can flip where
            # g is near 0; so the weights can be compared as tightly as the gradients.
            group["eps"] = 1e-2
    if steps == 0:
        return opts, scheds, None
    dp_rank, dp = (mesh["dp"].get_local_rank(), mesh["dp"].size()) if mesh is not None else (0, 1)
    settings = ppo.PPOSettings(minibatches=1, micro_batch_size=1, max_grad_norm=0.5)
    batch = ppo.prepare_batch(four_episodes()[dp_rank::dp], policy, reference, value, settings)
    stats = ppo.ppo_update(policy, value, *opts, batch, settings, schedulers=scheds)
    stats = rlef.reduce_mean(stats, torch.device("cpu"))                 # each rank's share: averaged, as rlef does
    grads = {k: p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad.clone()
             for k, p in policy.named_parameters()}
    return opts, scheds, {"stats": stats, "grads": grads, "policy": full(policy), "value": full(value)}


@pytest.fixture(scope="module")
def meshes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("meshes")
    untied = write_checkpoint(tmp / "untied", TINY_ARGS, seed=1, max_shard_bytes=40_000)
    tied = write_checkpoint(tmp / "tied", replace(TINY_ARGS, tie_word_embeddings=True), seed=2)
    torchrun(tmp, MESHES, tmp / "out.pt", tmp / "run", untied, tied, launcher=TORCHRUN_4)
    held = [json.loads(Path(f"{tmp / 'out.pt'}.rank{r}.json").read_text()) for r in range(4)]
    return tmp, torch.load(tmp / "out.pt"), held, (untied, tied)


def one_process(ckpt):
    torch.manual_seed(0)
    return rlef.load_models(rlef.Config(model="tiny", dtype="float32"), ckpt, torch.device("cpu"))


def assert_close(a: dict, b: dict, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=lambda m: f"{k}: {m}")


@pytest.mark.slow
def test_each_rank_of_a_2x2_mesh_holds_a_quarter_of_every_tensor_but_the_norms(meshes):
    _, _, held, checkpoints = meshes
    for ckpt in checkpoints:
        one = dict(one_process(ckpt)[0].named_parameters())
        for rank in range(4):
            mine = held[rank][str(ckpt)]
            for name, p in one.items():
                # Tensor-parallel projections, embedding and head: split over "tp" (heads or vocabulary),
                # then "dp"; the norms: FSDP2 over "dp" only, whole on each "tp" rank.
                assert mine[name] == p.numel() / (2 if name.endswith("norm.weight") else 4), (ckpt.name, rank, name)
            # Sequence parallelism: each rank of a "tp" row holds half of the positions of a block's input.
            assert mine["block input"] == [TOKENS.shape[0], TOKENS.shape[1] // 2, TINY_ARGS.dim]
            # The sampling replica: half of each split projection, and one of the two K/V heads (cache).
            assert mine["replica q_proj"] == one["layers.0.self_attn.q_proj.weight"].numel() / 2
            assert mine["replica kv heads"] == TINY_ARGS.n_kv_heads // 2


@pytest.mark.slow
def test_2x2_forward_log_probs_and_greedy_generation_equal_one_process(meshes):
    _, results, _, checkpoints = meshes
    for ckpt in checkpoints:
        policy = one_process(ckpt)[0]
        with torch.no_grad():
            logits = policy(TOKENS)                                  # (2, 40, 264)
        torch.testing.assert_close(results[f"{ckpt}/2x2"]["logits"], logits, atol=1e-5, rtol=0)
        # Log-probs and entropy from the vocabulary-split head (each rank's slice of every chunk's logits)
        with torch.no_grad():
            logprobs = policy(TOKENS[:, :-1], targets=TOKENS[:, 1:], temperature=0.7, chunk_size=16)
        torch.testing.assert_close(results[f"{ckpt}/2x2"]["logprobs"], logprobs, atol=1e-5, rtol=0)
        greedy = generate(policy, PROMPTS, 12, Sampling(temperature=0))
        assert [t for t, _ in results[f"{ckpt}/2x2"]["greedy"]] == [t for t, _ in greedy]
        for (_, lp_tp), (_, lp) in zip(results[f"{ckpt}/2x2"]["greedy"], greedy):
            assert lp_tp == pytest.approx(lp, abs=1e-5)


@pytest.mark.slow
def test_one_ppo_update_on_2x2_equals_fsdp_x4_and_one_process(meshes):
    _, results, _, checkpoints = meshes
    for ckpt in checkpoints:
        tp, fsdp = results[f"{ckpt}/2x2"]["update"], results[f"{ckpt}/4x1"]["update"]
        _, _, one = ppo_step(*one_process(ckpt))
        for other in (fsdp, one):
            for stat in ("policy_loss", "value_loss", "policy_grad_norm", "value_grad_norm"):
                assert tp["stats"][stat] == pytest.approx(other["stats"][stat], abs=1e-5), stat
            assert_close(tp["grads"], other["grads"])
            assert_close(tp["policy"], other["policy"])
            assert_close(tp["value"], other["value"])
        assert tp["stats"]["policy_grad_norm"] > 0.5                  # so the clipping to 0.5 was at work
        before = dict(one_process(ckpt)[0].named_parameters())
        assert all((tp["policy"][k] - before[k]).abs().max() > 1e-4 for k in before)  # every weight moved


@pytest.mark.slow
def test_checkpoint_written_on_2x2_resumes_on_4x1_and_on_one_process(meshes):
    tmp, results, _, (untied, _) = meshes
    straight = results[f"{untied}/2x2"]["second update"]
    policy, reference, value = one_process(untied)
    opts, scheds, _ = ppo_step(policy, reference, value, steps=0)
    resumed = rlef.TrainingState(policy, value, opts, scheds)
    assert rlef.load_training_state(tmp / "run" / "checkpoints" / "step_000001", resumed) == 1
    _, _, on_one = ppo_step(policy, reference, value, opts=opts, scheds=scheds)
    for resumed in (results["resumed on 4x1"], on_one):
        # The second update starts from the saved weights, AdamW moments and schedule: it is the update the
        # 2 x 2 run made after writing the checkpoint.
        assert resumed["stats"]["policy_loss"] == pytest.approx(straight["stats"]["policy_loss"], abs=1e-5)
        assert_close(resumed["policy"], straight["policy"])
        assert_close(resumed["value"], straight["value"])


# ----------------------------------------------------------------------------------------------------------
# The plan (--dry-run) and the flag
# ----------------------------------------------------------------------------------------------------------

def test_plan_shards_all_but_the_norms_over_all_ranks_and_the_replica_over_tp():
    args, cfg = PRESETS["tiny"], rlef.config_from_args(rlef.train_parser().parse_args(["--model", "tiny"]))
    named = dict(Transformer(args).named_parameters())
    norms = sum(p.numel() for k, p in named.items() if k.endswith("norm.weight"))
    assert norms == 4 * 2 * 64 + 64                                  # 4 blocks' two norms, the final norm
    n = sum(p.numel() for p in named.values())
    assert parameter_counts(args) == (n - norms, norms)
    assert parameter_counts(args, value_head=True) == (n - norms, norms + 64)   # its scalar head: whole
    plan = {name: b for *_, name, b in memory_plan(args, 8, rlef.workload(cfg), tp=2)}      # a 4 x 2 mesh
    assert plan["policy weights, fp32 master (sharded)"] == 4 * ((n - norms) / 8 + norms / 4)
    assert plan["sampling replica: 1/2 of the policy (all but its norms), bf16, allocated once"] == \
        2 * ((n - norms) / 2 + norms)
    kv = next(b for name, b in plan.items() if name.startswith("KV cache"))
    rollouts = cfg.batch_size // 4
    assert kv == rollouts * cfg.max_len * 2 * args.n_layers * (args.n_kv_heads // 2) * args.head_dim * 2


def test_smallest_mesh_fits_and_one_node_fewer_does_not():
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(["--model", "70b", "--micro-batch-size", "1"]))
    args = PRESETS["70b"]
    work = rlef.workload(cfg)
    world, tp = smallest_mesh(args, work, 80e9)
    assert plan_peaks(memory_plan(args, world, work, 80e9, tp))[0] < 80e9
    assert all(plan_peaks(memory_plan(args, world - 8, work, 80e9, t))[0] >= 80e9 for t in (1, 2, 4, 8))


def test_dry_run_of_70b_on_16_gpus_names_the_smallest_mesh_and_8b_is_unchanged(capsys):
    rlef.main(["--model", "70b", "--dry-run", "--world-size", "16", "--tp", "8", "--micro-batch-size", "1"])
    out = capsys.readouterr().out
    assert "16 GPUs as 2 x 8 (data parallel x tensor parallel)" in out and "does NOT fit in 80 GB" in out
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(["--model", "70b", "--micro-batch-size", "1"]))
    world, tp = smallest_mesh(PRESETS["70b"], rlef.workload(cfg), 80e9)
    assert f"smallest mesh that fits in 80 GB per GPU (nodes of 8): {world} GPUs as {world // tp} x {tp}" in out
    # 8B keeps its one-dimensional plan (--tp defaults to 1 below 70B): what it was before the mesh existed.
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(["--model", "8b"]))
    assert dry_run("8b", 0, rlef.workload(cfg), 8) == memory_plan(PRESETS["8b"], 8, rlef.workload(cfg), 80e9, tp=1)
    assert "fits in 80 GB" in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["--world-size", "8", "--tp", "3"], "--tp 3 does not divide the 8 ranks"),
    (["--world-size", "8", "--tp", "8"], "--tp 8 does not divide the model's 4 query heads"),
])
def test_a_tp_that_cannot_split_the_mesh_or_the_heads_is_refused(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        rlef.main(["--model", "tiny", "--dry-run", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {says}") and err.count("\n") == 1, err


# The vocabulary-split head in bf16: its logits (what the replica samples from) and its log-probs (what the
# trainer scores) against fp64 maths on the same bf16 weights and hidden states, and its gradients against
# fp32 maths; each rank holds half of the head.
BF16_HEAD = """
import json, torch, rlef
from pathlib import Path
from conftest import TINY_ARGS
from infra.parallel import SamplingReplica, device_mesh, local_block
from model import Transformer
rank, world, device = rlef.setup_distributed()
torch.manual_seed(0)                                                  # the same weights and inputs on both ranks
whole = Transformer(TINY_ARGS)
head = SamplingReplica(whole, torch.bfloat16, device_mesh(2, 2, device)["tp"]).model.lm_head
w = whole.lm_head.weight.detach().to(torch.bfloat16)                 # (V, dim): the split head holds its rows
mine, where = local_block(head.weight)
mine.copy_(w[where])
h = torch.randn(2, 7, TINY_ARGS.dim).to(torch.bfloat16).requires_grad_()
targets = torch.randint(0, TINY_ARGS.vocab_size, (2, 7))
reference = h.detach().double() @ w.double().t() / 0.7                   # (2, 7, V)
head.weight.requires_grad_()
logprobs, entropy = head.logprobs(h, targets, chunk_size=3, temperature=0.7)
logprobs.sum().backward()
h32, w32 = h.detach().float().requires_grad_(), w.float().requires_grad_()
(h32 @ w32.t() / 0.7).log_softmax(-1).gather(-1, targets[..., None]).sum().backward()
with torch.no_grad():
    errors = {"logits": (head(h).double() - reference * 0.7).abs().max().item(),
              "logprobs": (logprobs - reference.log_softmax(-1).gather(-1, targets[..., None])[..., 0]).abs().max().item(),
              "h grad": ((h.grad.float() - h32.grad).abs().max() / h32.grad.abs().max()).item(),
              "w grad": ((head.weight.grad.full_tensor().float() - w32.grad).abs().max() / w32.grad.abs().max()).item(),
              "rounded logits": ((h @ w.t()).double() - reference * 0.7).abs().max().item()}
Path(sys.argv[1] + f".rank{rank}.json").write_text(json.dumps(errors))
"""


@pytest.mark.slow
def test_vocabulary_split_bf16_head_computes_fp32_logits_and_their_gradients(tmp_path):
    torchrun(tmp_path, BF16_HEAD, tmp_path / "errors")
    for rank in range(2):
        errors = json.loads(Path(f"{tmp_path / 'errors'}.rank{rank}.json").read_text())
        assert errors["rounded logits"] > 1e-3                   # what a bf16 product would be off by
        assert errors["logits"] < 1e-4 and errors["logprobs"] < 2e-5, errors
        # Gradients in bf16 (the rounded product's backward; relative to the largest), each rank's part of
        # h's summed over the ranks.
        assert errors["h grad"] < 1e-2 and errors["w grad"] < 1e-2, errors
