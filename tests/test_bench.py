"""bench/gpu.py runs on the rare sessions that have a GPU; its CPU smoke mode keeps it from breaking unnoticed."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def gpu_bench():
    """bench/gpu.py as a module, for its sections' functions."""
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_bench_section(tmp_path, section: str):
    """One section of bench/gpu.py's CPU smoke mode, run as the script runs (its own process, no GPU visible):
    what it wrote into the JSON file."""
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--only", section, "--json", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())[section]


def test_e2e_runs_the_presets_its_plan_fits_on_the_card(gpu_bench):
    # 3B's policy and critic with AdamW, reference and replica: ~90 GB before any KV cache.
    fits = {gb: [name for name, ok, _ in gpu_bench.e2e_presets(gb * 1e9) if ok] for gb in (24, 80, 141)}
    assert fits == {24: [], 80: ["1b"], 141: ["1b", "3b"]}
    why = dict((name, w) for name, _, w in gpu_bench.e2e_presets(80e9))
    assert "KV cache for" in why["3b"] and "plan peak" in why["1b"]


def test_refill_probe_refills_rows_and_keeps_greedy_tokens(gpu_bench):
    out = gpu_bench.refill_probe(CPU, smoke=True)
    assert out["prompts"] > out["rows"]                         # rows end and are refilled
    assert out["eager"]["same_as_at_once"] == out["prompts"]
    assert 0 < out["eager"]["slot_efficiency"] <= 1 and out["eager"]["tokens_per_s"] > 0


def test_sampling_probe_draws_with_top_p_and_times_every_case(gpu_bench):
    out = gpu_bench.sampling_probe(CPU, smoke=True)
    assert out["eager"]["same_as_at_once"] == out["prompts"] == 12 and out["eager"]["tokens_per_s"] > 0
    assert set(out["sample_next_ms"]) == {"greedy", "temperature 1", "top-p 0.95, peaked (top-k)",
                                          "top-p 0.95, flat (full sort)"}
    assert all(ms > 0 for ms in out["sample_next_ms"].values())


def test_long_context_probe_decodes_every_row(gpu_bench):
    out = gpu_bench.long_context_probe(CPU, smoke=True)
    assert out["rows"] == 8 and out["new_tokens"] == 8 * 64 and out["prompt_tokens"] >= 8 * 100
    assert out["num_alloc_retries"] == 0 and out["seconds"] > 0


def test_compile_probe_stays_under_the_default_recompile_limit(tmp_path):
    # Run as the script runs it (main), so that a limit raised anywhere on the way would show.
    probe = gpu_bench_section(tmp_path, "compile")
    assert "error" not in probe, probe["error"]
    assert probe["recompile_limit"] == 8                        # torch's default: the bench no longer raises it
    assert 1 <= probe["graphs"] <= 3 and len(probe["seconds"]) == probe["calls"] == 7
    assert probe["same_as_eager"] == probe["sequences"]


@pytest.mark.slow
def test_gpu_bench_end_to_end_step_runs_on_a_cpu(tmp_path):
    e2e = gpu_bench_section(tmp_path, "e2e")
    assert "error" not in e2e, e2e["error"]                       # a section's failure is caught and recorded
    step, = e2e
    assert step["sampled_tokens"] > 0 and step["trained_tokens"] > step["sampled_tokens"]
    assert 1 <= step["turns"] <= 3 and 0 < step["slot_efficiency"] <= 1
    assert step["sample_s"] > 0 and step["exec_s"] > 0 and step["train_s"] > 0
    assert step["refresh_s"] >= 0 and step["num_alloc_retries"] == 0 and 0 <= step["logprob_gap"] < 1e-3


def table_rows(stdout: str) -> dict[str, list[float]]:
    """The rows of a bench's markdown table: name -> its numbers (a trailing 'x' dropped)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 1 and cells[1][:1].isdigit():
            rows[cells[0]] = [float(c.rstrip("x")) for c in cells[1:]]
    return rows


@pytest.mark.slow
def test_ppo_step_bench_times_the_step_against_its_baseline_in_one_run():
    command = [sys.executable, str(ROOT / "bench" / "bench_ppo_step.py"), "--smoke"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = table_rows(run.stdout)
    baseline, step = rows["plain forward/backward (baseline)"], rows["PPO step = prepare_batch + ppo_update"]
    assert baseline[2:] == [1.0, 1.0]
    for name in ("prepare_batch", "ppo_update"):
        assert rows[name][0] > 0 and rows[name][1] > 0
    # the step is its two phases, and every ratio is against the baseline measured in the same run
    assert step[0] == pytest.approx(rows["prepare_batch"][0] + rows["ppo_update"][0], abs=2e-3)
    for wall, cpu, wall_ratio, cpu_ratio in rows.values():
        assert wall_ratio == pytest.approx(wall / baseline[0], abs=0.02, rel=0.02)
        assert cpu_ratio == pytest.approx(cpu / baseline[1], abs=0.02, rel=0.02)


@pytest.mark.slow
def test_episodes_bench_writes_only_the_sample_and_times_it_against_the_batch():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_episodes.py"), "--smoke"], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| sampled (--episodes-per-batch 8) | 8 |" in run.stdout and "| all (what the flag avoids) | 64 |" in run.stdout
    batch = next(line for line in run.stdout.splitlines() if line.startswith("| 1 | 8 |"))
    wall, cpu, write_wall = (float(c) for c in batch.strip("|").split("|")[2:5])
    assert wall > 0 and cpu > 0 and write_wall > 0
