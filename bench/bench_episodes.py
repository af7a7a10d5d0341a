"""What writing training episodes to disk costs: the tiny demo's batch against its sampled episodes, in one run.

Training writes ``--episodes-per-batch`` (default 8) episodes of each batch to RUN_DIR/episodes/ (infra/episodes.py),
after the PPO step. The baseline is the batch itself, timed in the same run: the tiny preset's real rollouts
(the shipped policy, 64 problems of data/tiny/train.jsonl, up to 3 turns, judged) and its PPO step; the
target is under 2% of it. Then an 8B-shaped batch of 1,024 synthetic episodes (a 1,000-token prompt, three
1,024-token responses, feedback between them: what a batch of the paper's setting holds per rank with one
rank) shows that only the sampled number is written, against writing all of them (what the flag avoids).
Wall seconds on a shared machine are inflated; CPU seconds (this process, all threads) less so.

    python bench/bench_episodes.py              # ~30 s on 2 shared cores (output: bench/bench_episodes.log)
    python bench/bench_episodes.py --smoke      # seconds: a batch of 8, one repeat
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # idle threads of a shared CPU wait instead of spinning

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import rlef  # noqa: E402
from data import load_problems  # noqa: E402
from infra.episodes import write_batch_sample  # noqa: E402
from ppo import prepare_batch, ppo_update  # noqa: E402


def timed(fn):
    """(result, wall seconds, CPU seconds) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def tiny_batches(batch_size: int, repeats: int, writes: int, out: Path):
    """Tiny preset batches: per batch (episodes, batch wall, batch CPU, median write wall, median write CPU);
    the tokenizer; --episodes-per-batch."""
    argv = ["--model", "tiny", "--run-dir", str(out / "run"), "--batch-size", str(batch_size), "--no-eval-before"]
    cfg = rlef.config_from_args(rlef.train_parser().parse_args(argv))
    run = rlef.start_run(cfg)
    policy, critic, settings = run.trained.policy, run.trained.critic, rlef.ppo_settings(cfg)
    rows = []
    for step in range(repeats):
        def batch_step():
            dialogues, _ = rlef.play_batch(run, step)
            batch = prepare_batch(dialogues, policy, run.reference, critic, settings)
            ppo_update(policy, critic, *run.trained.optimizers, batch, settings, run.trained.schedulers)
            return dialogues, batch
        (dialogues, batch), wall, cpu = timed(batch_step)
        w = [timed(lambda: write_batch_sample(out / "w", step + 1, dialogues, run.tok, batch,
                                              cfg.episodes_per_batch))[1:] for _ in range(writes)]
        rows.append((len(dialogues), wall, cpu, statistics.median(x for x, _ in w), statistics.median(y for _, y in w)))
    run.judge.close()
    return rows, run.tok, cfg.episodes_per_batch


def big_batch(tok, n: int = 1024, prompt: int = 1000, response: int = 1024, feedback: int = 200):
    """n synthetic episodes of 8B shapes (random tokens of the tiny vocabulary) and the tensors PPO gives."""
    problem = load_problems(ROOT / "data/tiny/train.jsonl")[0]
    rng = random.Random(0)
    words = lambda k: [rng.randrange(200) for _ in range(k)]          # noqa: E731 (byte-level pieces)
    dialogues = []
    for _ in range(n):
        d = rlef.Dialogue(problem=problem)
        d.add_context(words(prompt))
        for t in range(3):
            d.add_response(words(response), [-1.0] * response, t)
            d.codes.append("print(input())")
            d.verdicts.append("wrong_answer" if t < 2 else "pass")
            d.turn_rewards.append(0.0 if t < 2 else 1.0)
            if t < 2:
                d.feedbacks.append(tok.decode(words(feedback)))
                d.add_context(words(feedback))
        d.final_verdict, d.solved = "pass", True
        dialogues.append(d)
    T = len(dialogues[0].tokens)
    batch = {"old_logprobs": torch.randn(n, T), "ref_logprobs": torch.randn(n, T),
             "turn_ids": torch.tensor([d.turn_ids for d in dialogues]), "rewards": torch.randn(n, 3)}
    return dialogues, batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="tiny batches to time")
    parser.add_argument("--writes", type=int, default=5, help="writes of each batch's sample (median)")
    parser.add_argument("--smoke", action="store_true")
    a = parser.parse_args()
    batch_size, repeats, big = (8, 1, 64) if a.smoke else (64, a.repeats, 1024)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows, tok, n = tiny_batches(batch_size, repeats, a.writes, out)
        print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; --episodes-per-batch {n}")
        print("| tiny batch | episodes | batch wall s | batch CPU s | write wall ms | write CPU ms | wall share | CPU share |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for i, (k, wall, cpu, w_wall, w_cpu) in enumerate(rows):
            print(f"| {i + 1} | {k} | {wall:.2f} | {cpu:.2f} | {1e3 * w_wall:.1f} | {1e3 * w_cpu:.1f} | "
                  f"{100 * w_wall / wall:.3f}% | {100 * w_cpu / cpu:.3f}% |")
        dialogues, batch = big_batch(tok, big)
        sampled, s_wall, s_cpu = timed(lambda: write_batch_sample(out / "big", 1, dialogues, tok, batch, n))
        every, a_wall, a_cpu = timed(lambda: write_batch_sample(out / "all", 1, dialogues, tok, batch, len(dialogues)))
        lines = len(sampled.read_text().splitlines())
        print(f"\n{len(dialogues)}-episode batch, 8B shapes ({len(dialogues[0].tokens)} tokens each):")
        print("| written | episodes | MB | wall s | CPU s |\n|---|---:|---:|---:|---:|")
        print(f"| sampled (--episodes-per-batch {n}) | {lines} | {sampled.stat().st_size / 1e6:.2f} | {s_wall:.3f} | "
              f"{s_cpu:.3f} |")
        print(f"| all (what the flag avoids) | {len(every.read_text().splitlines())} | {every.stat().st_size / 1e6:.1f} "
              f"| {a_wall:.2f} | {a_cpu:.2f} |")
        assert lines == n, f"wrote {lines} episodes of a {len(dialogues)}-episode batch, not {n}"


if __name__ == "__main__":
    main()
