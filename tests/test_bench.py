"""bench/gpu.py runs on the rare sessions that have a GPU; its CPU smoke mode keeps it from breaking unnoticed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_end_to_end_step_runs_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--only", "e2e", "--json", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-3000:]
    e2e = json.loads(out.read_text())["e2e"]
    assert "error" not in e2e, e2e["error"]                       # a section's failure is caught and recorded
    step, = e2e
    assert step["sampled_tokens"] > 0 and step["trained_tokens"] > step["sampled_tokens"]
    assert 1 <= step["turns"] <= 3 and 0 < step["slot_efficiency"] <= 1
    assert step["sample_s"] > 0 and step["exec_s"] > 0 and step["train_s"] > 0


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
