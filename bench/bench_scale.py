"""Memory per rank as ranks are added: a short training run (load, one PPO step, one checkpoint, evaluation)
as one process and under torchrun with 2 and 4 ranks on CPU (gloo), the same command each time, and with 4
ranks as a 2 x 2 mesh (``--tp 2``: FSDP2 over 2 ranks x tensor parallelism over 2).

A random Llama with the Llama 3 vocabulary (128,256) is written as a bf16 Hugging Face folder; the run is
`rlef.py --model 8b --weights THAT --steps 1 ...`, each rank started by this script in --probe mode, which
wraps rlef's phases (load_models, the rollout + PPO update, save_checkpoint, evaluate) and records each
phase's peak resident set (VmHWM, reset between phases through /proc/self/clear_refs) and its seconds.
The table gives, per rank, the peak of every phase and of the whole run, and the whole-run peak as a
multiple of the single process's, measured in the same invocation; then the sampling replica's bytes
(``infra.parallel.SamplingReplica``: under torchrun a whole copy of the policy in the compute dtype, fp32 on a CPU,
kept for the run; a single process samples with the policy itself) and the peak without them. Model-written
programs run in the judge's own processes, which are not counted (one per rank, the same in every row).

    python bench/bench_scale.py                       # 1, 2, 4 ranks and 2 x 2, 102M parameters (~14 min on 2 cores)
    python bench/bench_scale.py --meshes 1 2x2 --vocab 32768
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHASES = ["start", "load", "step", "checkpoint", "eval", "other"]


def peak_rss() -> int:
    """This process's peak resident set since the last reset, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                       # 5: reset the peak resident set to the current one


class PhasePeaks:
    """Attribute the process's time and peak memory to the phase that is running. A wrapped function called
    inside another one (rollout inside evaluate) stays in the outer phase."""

    def __init__(self):
        self.peak, self.seconds = defaultdict(int), defaultdict(float)
        self.phase, self.depth, self.since = "start", 0, time.perf_counter()

    def switch(self, phase: str):
        self.peak[self.phase] = max(self.peak[self.phase], peak_rss())
        self.seconds[self.phase] += time.perf_counter() - self.since
        reset_peak_rss()
        self.phase, self.since = phase, time.perf_counter()

    def wrap(self, module, name: str, phase: str):
        inner = getattr(module, name)

        def wrapped(*args, **kwargs):
            if self.depth:
                return inner(*args, **kwargs)
            self.switch(phase)
            self.depth += 1
            try:
                return inner(*args, **kwargs)
            finally:
                self.depth -= 1
                self.switch("other")
        setattr(module, name, wrapped)


def probe(out_dir: Path, argv: list[str]):
    """One rank of the measured run: rlef.main(argv) with its phases wrapped; writes rank<N>.json."""
    reset_peak_rss()
    phases = PhasePeaks()
    import rlef
    replica = {}
    make_replica = rlef.SamplingReplica.__init__

    def record_replica(self, policy, *args):
        make_replica(self, policy, *args)
        replica["bytes"] = self.nbytes(policy)
    rlef.SamplingReplica.__init__ = record_replica
    for name, phase in (("load_models", "load"), ("rollout", "step"), ("prepare_batch", "step"),
                        ("ppo_update", "step"), ("save_checkpoint", "checkpoint"), ("evaluate", "eval")):
        phases.wrap(rlef, name, phase)
    rlef.main(argv)
    phases.switch("other")
    rank = int(os.environ.get("RANK", "0"))
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"peak": phases.peak, "seconds": phases.seconds,
                                                         "replica": replica["bytes"]}))


def write_model(path: Path, dim: int, layers: int, hidden: int, vocab: int) -> int:
    """A random Llama 3.2-style (tied embeddings, GQA) bf16 HF folder with the tiny preset's tokenizer (its
    ids are a subset of the vocabulary); returns the parameter count."""
    import torch
    from infra.checkpoints import save_model
    from model import ModelArgs, Transformer
    args = ModelArgs(dim=dim, n_layers=layers, n_heads=dim // 64, n_kv_heads=max(1, dim // 256),
                     hidden_dim=hidden, vocab_size=vocab, max_seq_len=2048, tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device("meta"):
        n = sum(p.numel() for p in Transformer(args).parameters())
    save_model(Transformer(args).init_weights(std=0.02).to(torch.bfloat16), path)
    shutil.copy(ROOT / "data/tiny/policy/tokenizer.json", path / "tokenizer.json")
    return n


def run(mesh: str, work: Path, weights: Path, a) -> dict:
    """The short training run on ``mesh`` ("N": N ranks, FSDP2 alone; "DxT": D x T ranks, --tp T); returns
    {rank: {"peak": ..., "seconds": ...}}."""
    dp, _, tp = mesh.partition("x")
    ranks, tp = int(dp) * int(tp or 1), int(tp or 1)
    out = work / f"mesh{mesh}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    problems = str(ROOT / "data/tiny/heldout.jsonl")
    argv = ["--model", "8b", "--weights", str(weights), "--train-data", problems, "--valid-data", problems,
            "--run-dir", str(out / "run"), "--batches", "1", "--batch-size", "4", "--minibatches", "1",
            "--micro-batch-size", "1", "--rollout-batch", "0", "--max-new-tokens", str(a.max_new_tokens),
            "--max-len", "1024", "--eval-problems", "4", "--eval-samples", "1", "--no-eval-before",
            "--checkpoint-every", "1", "--judge-workers", "1", "--tp", str(tp)]
    launcher = [sys.executable] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    # glibc keeps freed blocks below its adaptive mmap threshold in the heap, where the resident set would
    # count them; putting every block of 64 KiB or more on mmap makes RSS follow live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(max(1, a.threads // ranks))}
    t0 = time.time()
    done = subprocess.run([*launcher, __file__, "--probe", str(out), *argv], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mesh} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    (out / "log.txt").write_text(done.stdout + done.stderr)
    print(f"  [{mesh}: {time.time() - t0:.0f} s]", file=sys.stderr)
    return {r: json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meshes", nargs="+", default=["1", "2", "4", "2x2"],
                   help="N ranks (FSDP2) or DxT (D x T mesh, --tp T); the first is the baseline")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=128256, help="vocabulary (Llama 3's by default)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads shared by the ranks")
    p.add_argument("--workdir", default=None, help="where the model and runs go (default: a temporary folder)")
    if sys.argv[1:2] == ["--probe"]:                       # internal: one rank of the measured run
        return probe(Path(sys.argv[2]), sys.argv[3:])
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
    n = write_model(work / "model", a.dim, a.layers, a.hidden, a.vocab)
    size = sum(f.stat().st_size for f in (work / "model").glob("*.safetensors"))
    import torch
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; random Llama: dim {a.dim}, {a.layers} layers, vocabulary "
          f"{a.vocab:,} (tied), {n / 1e6:.0f}M parameters, {size / 2**20:.0f} MiB bf16 safetensors")
    print("run: load policy + critic + reference, 1 PPO step of 4 episodes, 1 checkpoint (DCP + HF export),\n"
          "     evaluation of 4 problems (real and random feedback), the same flags at every world size")
    print("peak resident memory per rank, MiB")
    header = f"{'mesh':>5} {'rank':>4} " + " ".join(f"{ph:>10}" for ph in PHASES) + \
        f" {'whole run':>10} {'vs 1 proc':>9} {'replica':>8} {'w/o replica':>11} {'vs 1 proc':>9} {'ckpt write s':>12}"
    print(header)
    base = None
    for mesh in a.meshes:
        results = run(mesh, work, work / "model", a)
        for r, res in sorted(results.items()):
            peaks = [res["peak"].get(ph, 0) for ph in PHASES]
            whole = max(peaks)
            base = base or whole
            rest = whole - res["replica"]
            print(f"{mesh:>5} {r:>4} " + " ".join(f"{b / 2**20:>10.0f}" for b in peaks) +
                  f" {whole / 2**20:>10.0f} {whole / base:>8.2f}x {res['replica'] / 2**20:>8.0f} "
                  f"{rest / 2**20:>11.0f} {rest / base:>8.2f}x {res['seconds'].get('checkpoint', 0):>12.1f}")
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
