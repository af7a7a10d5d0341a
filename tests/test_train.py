"""rlef.py training: checkpoints survive SIGKILL, resume exactly, reload in HF format; torchrun on CPU; dry run."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rlef
from data import Problem, Test, save_problems
from model import PRESETS, Transformer

ROOT = Path(rlef.__file__).parent
PROBLEMS = [Problem(f"add{k}", f"Read n and print n plus {k}", [Test("1\n", f"{1 + k}\n")], [Test("5\n", f"{5 + k}\n")])
            for k in range(8)]


def tiny_args(tmp_path, checkpoint, run="run", **overrides):
    data = tmp_path / "problems.jsonl"
    save_problems(PROBLEMS, data)
    flags = {"weights": checkpoint, "train-data": data, "valid-data": data, "run-dir": tmp_path / run, "batches": 3,
             "batch-size": 4, "minibatches": 2, "micro-batch-size": 1, "max-new-tokens": 12, "eval-every": 100,
             "eval-problems": 2, "judge-workers": 1, "lr": 1e-4, "checkpoint-every": 1, "no-eval-before": None,
             **overrides}
    return ["--model", "tiny"] + [x for k, v in flags.items() for x in (f"--{k}",) + (() if v is None else (str(v),))]


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def run_cli(argv, env_extra=None, prelude="", launcher=(sys.executable,)):
    """Run rlef.py's main in a fresh process (optionally after ``prelude`` code, e.g. a fault injection)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import rlef\n{prelude}\nrlef.main(sys.argv[1:])"
    script = Path(argv[argv.index("--run-dir") + 1]).parent / "launch.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([*launcher, str(script), *argv], env=env, capture_output=True, text=True, timeout=600)


def children_of(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            out.append(int(status.parent.name))
    return out


def test_checkpoint_reloads_with_from_pretrained_to_identical_logits(tmp_path, tiny_checkpoint):
    import tempfile
    temp_before = set(Path(tempfile.gettempdir()).glob("rlef-*"))
    children_before = set(children_of(os.getpid()))          # e.g. execute.run_tests' shared sandbox
    policy = rlef.main(tiny_args(tmp_path, tiny_checkpoint, batches=2))
    assert set(children_of(os.getpid())) <= children_before             # judge servers and tests all gone
    assert set(Path(tempfile.gettempdir()).glob("rlef-*")) <= temp_before  # no sandbox temp dirs left
    saved = tmp_path / "run" / "checkpoints" / (tmp_path / "run" / "checkpoints" / "latest").read_text()
    assert saved.name == "step_000002"
    tokens = torch.randint(0, 256, (2, 40))
    with torch.no_grad():
        assert torch.equal(policy(tokens), Transformer.from_pretrained(saved / "policy")(tokens))
    assert (saved / "policy" / "tokenizer.json").is_file()
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    assert {"reward", "solve_rate", "mean_turns", "valid_code", "ref_kl", "clip_fraction", "entropy", "tokens_per_s",
            "sample_s", "exec_s", "train_s"} <= set(rows[0])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batches"] == 2


def test_sigkill_during_checkpoint_write_then_resume_continues_exactly(tmp_path, tiny_checkpoint):
    # Reference: an uninterrupted run of 3 steps.
    straight = run_cli(tiny_args(tmp_path, tiny_checkpoint, run="straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    # The same run, killed with SIGKILL while writing step 2's checkpoint (weights written, state.pt not yet).
    prelude = ("import os, signal, torch\n_save = torch.save\n"
               "def save(obj, f, *a, **k):\n"
               "    if isinstance(obj, dict) and obj.get('step') == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
               "    return _save(obj, f, *a, **k)\n"
               "torch.save = save")
    killed = run_cli(tiny_args(tmp_path, tiny_checkpoint, run="killed"), prelude=prelude)
    assert killed.returncode == -signal.SIGKILL
    checkpoints = tmp_path / "killed" / "checkpoints"
    assert (checkpoints / "latest").read_text() == "step_000001"
    assert not (checkpoints / "step_000002").exists()
    Transformer.from_pretrained(checkpoints / "step_000001" / "policy")     # the last good one loads
    resumed = run_cli(tiny_args(tmp_path, tiny_checkpoint, run="killed") + ["--resume", str(tmp_path / "killed")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "at step 1" in resumed.stdout
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "killed")
    assert [r["step"] for r in b] == [1, 2, 3]
    for x, y in zip(a, b):   # same data order, same samples, same updates
        assert x["reward"] == y["reward"] and x["solve_rate"] == y["solve_rate"]
        assert x["policy_loss"] == pytest.approx(y["policy_loss"], rel=1e-5, abs=1e-7)
    final_a = Transformer.from_pretrained(tmp_path / "straight" / "checkpoints" / "step_000003" / "policy")
    final_b = Transformer.from_pretrained(checkpoints / "step_000003" / "policy")
    for p, q in zip(final_a.parameters(), final_b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


@pytest.mark.slow
def test_torchrun_two_ranks_matches_one_process(tmp_path, tiny_checkpoint):
    # Greedy sampling makes the rollouts independent of how episodes are split over ranks, and one
    # mini-batch per step makes the update the same: the 2-rank run must reproduce the 1-process run.
    common = {"temperature": 0, "minibatches": 1, "batches": 2}
    one = run_cli(tiny_args(tmp_path, tiny_checkpoint, run="one", **common))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli(tiny_args(tmp_path, tiny_checkpoint, run="two", **common),
                  launcher=(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            "--master_port=29533"))
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    for x, y in zip(a, b):
        assert x["reward"] == pytest.approx(y["reward"]) and x["solve_rate"] == y["solve_rate"]
        assert x["policy_loss"] == pytest.approx(y["policy_loss"], abs=1e-5)   # on-policy: ~0 by construction
        assert x["value_loss"] == pytest.approx(y["value_loss"], rel=1e-4)
        assert x["ref_kl"] == pytest.approx(y["ref_kl"], abs=1e-6)
    p1 = Transformer.from_pretrained(tmp_path / "one" / "checkpoints" / "step_000002" / "policy")
    p2 = Transformer.from_pretrained(tmp_path / "two" / "checkpoints" / "step_000002" / "policy")
    for p, q in zip(p1.parameters(), p2.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_dry_run_arithmetic_matches_the_parameter_count():
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(["--model", "tiny"]))
    plan = {name: b for _, name, b in rlef.memory_plan(PRESETS["tiny"], 2, cfg)}
    n = sum(p.numel() for p in Transformer(PRESETS["tiny"]).parameters())
    assert plan["policy weights, fp32 master (sharded)"] == 4 * n / 2
    assert plan["policy AdamW moments, 2 x fp32 (sharded)"] == 8 * n / 2
    assert plan["policy unsharded in bf16, once per rollout phase"] == 2 * n


def test_dry_run_prints_plans_for_8b_and_70b(capsys):
    rlef.main(["--model", "8b", "--dry-run", "--world-size", "8"])
    rlef.main(["--model", "70b", "--dry-run", "--world-size", "8"])
    out = capsys.readouterr().out
    assert out.count("memory plan per GPU") == 2 and "GiB" in out


def user_error(argv, capsys) -> str:
    """Run rlef.main on a user's mistake: it must exit with status 2 after one line `error: ...` on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        rlef.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_missing_weights_say_how_to_download(tmp_path, capsys):
    err = user_error(["--model", "8b", "--weights", str(tmp_path / "none")], capsys)
    assert "huggingface-cli download meta-llama/Llama-3.1-8B-Instruct" in err


def test_missing_dataset_says_how_to_convert(tmp_path, tiny_checkpoint, capsys):
    err = user_error(["--model", "tiny", "--weights", str(tiny_checkpoint), "--train-data", str(tmp_path / "x.jsonl")],
                     capsys)
    assert "convert CodeContests" in err
