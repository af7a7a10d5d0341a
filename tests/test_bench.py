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
