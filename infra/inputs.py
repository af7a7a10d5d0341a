"""What the user gives, checked before any work starts: flags, data files, the weights folder.

A mistake in a flag, a data file or a weights folder is one ``UsageError`` at start-up (``rlef.main`` prints it
as ``error: ...`` and exits with status 2, as argparse does), not a traceback hours into a run.
"""
from __future__ import annotations

import argparse
import json
import os
import typing
from collections import Counter
from pathlib import Path

import torch

from data import Problem, load_problems
from data.prompts import initial_prompt, prefill
from infra.checkpoints import latest_checkpoint, read_json_file
from infra.memory_plan import Workload, memory_plan, print_plan
from infra.parallel import device_mesh, for_loading, log0, tensor_parallel, tensor_parallel_size
from model import HF_REPOS, PRESETS, ModelArgs, Tokenizer, Transformer


class UsageError(Exception):
    """A mistake in what the user gave (a flag value, a data file, a weights folder). A traceback means a bug."""


def checked_tp(tp: int, args: ModelArgs, world: int, gpus_per_node: int | None = None) -> int:
    """--tp (0: its default) for ``world`` ranks, nodes of ``gpus_per_node`` (default: torchrun's ranks per node)."""
    gpus_per_node = gpus_per_node or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    try:
        return tensor_parallel_size(tp, args, world, gpus_per_node)
    except ValueError as e:
        raise UsageError(str(e)) from None


def workload(cfg) -> Workload:
    """What the run asks of each GPU (``cfg``: rlef's Config), for the memory plan (--dry-run)."""
    return Workload(cfg.batch_size, cfg.micro_batch_size, cfg.max_len, cfg.rollout_batch, cfg.dtype)


def dry_run(name: str, tp: int, work: Workload, world: int, gpu_gb: float = 80):
    """--dry-run: the memory plan per GPU of preset ``name`` on ``world`` GPUs, printed; nothing is allocated."""
    args = PRESETS[name]
    tp = checked_tp(tp, args, world, gpus_per_node=8)
    plan = memory_plan(args, world, work, gpu_gb * 1e9, tp)
    print_plan(plan, args, work, world, tp, gpu_gb, name)
    return plan


def read_problems(path) -> list[Problem]:
    try:
        problems = load_problems(path)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not problems:
        raise UsageError(f"{path} holds no problems")
    repeated = sorted(name for name, n in Counter(p.name for p in problems).items() if n > 1)
    if repeated:       # reports, episodes and the best checkpoint's selection tell problems apart by name
        raise UsageError(f"{path}: problem names must be unique; repeated: {', '.join(repeated[:5])}")
    return problems


def read_weights(load, path, *args, **kwargs):
    """``load(path, ...)`` (a ``from_pretrained``), a missing or corrupt folder being a UsageError."""
    try:
        return load(path, *args, **kwargs)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load {path}: {e}") from None
    except KeyError as e:
        raise UsageError(f"cannot load {path}: config.json lacks the field {e}") from None


def check_weights_folder(path: Path, model: str | None = None):
    """A folder without config.json: say how to get the official weights of the preset ``model``."""
    if (Path(path) / "config.json").is_file():
        return
    repo = HF_REPOS.get(model)
    how = (f"download the official weights (accept the licence on https://huggingface.co/{repo} first): "
           f"huggingface-cli download {repo} --exclude 'original/*' --local-dir {path}" if repo else
           "pass a Hugging Face Llama folder (config.json, *.safetensors, tokenizer.json)")
    raise UsageError(f"no weights at {path}: {how}")


def check_dataset(path):
    if not Path(path).is_file():
        how = ("python -m data.code_contests PARQUET_DIR --out 'data/code_contests/{split}.jsonl'"
               if "code_contests" in str(path) else "its converter in data/ (data/README.md lists them)")
        raise UsageError(f"no dataset at {path}: convert it first, with {how}")


def longest_first_prompt(tok: Tokenizer, problems: list[Problem]) -> int:
    """Tokens before the first response of the longest problem: the least context a dialogue needs."""
    return max(len(tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) + tok.encode(prefill(p)))
               for p in problems)


def load_inputs(cfg):
    """The training run's inputs (``cfg`` is rlef's Config): weights folder, its architecture, tokenizer and
    problems, each checked."""
    weights = Path(cfg.weights)
    check_weights_folder(weights, cfg.model)
    check_dataset(cfg.train_data)
    check_dataset(cfg.valid_data)
    args = read_weights(ModelArgs.from_pretrained, weights)
    tok = read_weights(Tokenizer.from_pretrained, weights)
    train_set, valid_set = read_problems(cfg.train_data), read_problems(cfg.valid_data)[:cfg.eval_problems]
    check_private_tests(cfg.train_data, train_set)
    context, longest = min(cfg.max_len, args.max_seq_len), longest_first_prompt(tok, train_set + valid_set)
    if longest + cfg.max_new_tokens > context:
        raise UsageError(f"the longest first prompt ({longest} tokens) plus --max-new-tokens {cfg.max_new_tokens} "
                         f"exceeds the dialogue length {context} (--max-len {cfg.max_len}, model context "
                         f"{args.max_seq_len}): lower --max-new-tokens or raise --max-len")
    return weights, args, tok, train_set, valid_set


# What a resumed run may change: how long it goes, how often it evaluates and saves, and how this session runs
# on its machines (MACHINE: not carried over, as the GPUs may differ). Anything else (data, model, seed, batch,
# rewards, optimiser, what an evaluation measures) would change what it learns or what its best checkpoint is
# compared on.
MACHINE = {"tp", "judge_workers", "rollout_batch", "compile", "dry_run"}
RESUMABLE = {"resume", "run_dir", "batches", "eval_every", "eval_before", "checkpoint_every", "keep_checkpoints",
             "export_every", "episodes_per_batch", "activation_checkpointing", *MACHINE}
PATHS = {"weights", "train_data", "valid_data"}


def resumed_settings(run_dir: str, given: dict) -> dict:
    """A resumed run's settings: its config.json, which ``given`` (the flags passed now) may change only where
    RESUMABLE allows; --run-dir, if given, must be the run's folder."""
    saved = read_json_file(Path(run_dir) / "config.json")
    if not isinstance(saved, dict):
        raise UsageError(f"--resume {run_dir}: no readable config.json there; is it a run folder?")
    if "run_dir" in given and Path(given["run_dir"]).resolve() != Path(run_dir).resolve():
        raise UsageError(f"--run-dir {given['run_dir']} with --resume {run_dir}: a run continues in its own folder")

    def same(key, value):
        return Path(value).resolve() == Path(saved[key]).resolve() if key in PATHS else value == saved[key]
    changed = [f"--{k.replace('_', '-')} {v} (the run's: {saved[k]})" for k, v in given.items()
               if k in saved and k not in RESUMABLE and saved[k] is not None and not same(k, v)]
    if changed:
        raise UsageError(f"--resume {run_dir} continues the run with its own settings (its config.json), but "
                         f"these flags would change what it learns: {'; '.join(changed)}. Leave them out, or "
                         f"start a new run")
    return {**{k: v for k, v in saved.items() if k not in MACHINE}, "run_dir": str(run_dir)}


def run_folder(run_dir: str, resume: str | None, config: dict, rank: int) -> tuple[Path, Path | None]:
    """The run's folder and, with --resume, its last complete checkpoint. A new run needs a folder that holds no
    other run: appending to its metrics.jsonl would mix two runs' curves, and its best.json would name the other
    run's checkpoint. Rank 0 writes the run's config.json."""
    folder = Path(resume or run_dir)
    resume_from = latest_checkpoint(folder) if resume else None
    if resume and resume_from is None:
        raise UsageError(f"--resume {folder}: no complete checkpoint under {folder}/checkpoints (the run stopped "
                         f"before its first): delete {folder}, or pass another --run-dir, to start it again")
    held = [name for name in ("metrics.jsonl", "checkpoints") if (folder / name).exists()]
    if held and not resume:
        raise UsageError(f"{folder} already holds a run ({', '.join(held)}): pass --resume {folder} to continue "
                         "it, or another --run-dir (or delete the folder) to start a new one")
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder, resume_from


def check_private_tests(path, problems: list[Problem]):
    """Training rewards the final response on public + private tests. Without private tests that reward is
    decided by the public tests the policy was shown (and may copy from the examples), so such problems are
    refused, as the paper drops them (paper §3.1)."""
    without = [p.name for p in problems if not p.private_tests]
    if without:
        names = ", ".join(without[:5]) + (f" and {len(without) - 5} more" if len(without) > 5 else "")
        raise UsageError(f"{path}: {len(without)} of {len(problems)} training problems have no private tests "
                         f"({names}); their reward would be decided by the public tests the policy is shown. "
                         "Remove them (the paper drops them, §3.1) or give them private tests")


def add_config_flags(parser: argparse.ArgumentParser, config_class):
    """A flag per field of rlef's Config (``--micro-batch-size`` for ``micro_batch_size``), its help the field's
    ``option`` text. Every default is None here: a flag the user did not give leaves the field to the preset."""
    hints = typing.get_type_hints(config_class)
    for f in config_class.__dataclass_fields__.values():
        flag, default, help_ = "--" + f.name.replace("_", "-"), f.default, f.metadata["help"]
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        if f.name == "model":
            parser.add_argument(flag, default=None, choices=sorted(PRESETS), help=f"{help_} (default: 8b)")
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            parser.add_argument(flag, type=kind, default=None, help=f"{help_} (default: {default})")


def check_config(cfg):
    """The training flags' ranges (``cfg`` is rlef's Config)."""
    if cfg.advantage not in ("turn", "token"):
        raise UsageError(f"--advantage must be 'turn' or 'token', not {cfg.advantage!r}")
    at_least_one("batch_size", "minibatches", "micro_batch_size", "epochs", "turns", "max_new_tokens", "max_len",
                 "eval_every", "eval_samples", "checkpoint_every", "keep_checkpoints", values=cfg)
    if not cfg.time_factor > 0:
        raise UsageError(f"--time-factor must be positive, not {cfg.time_factor}")
    for name in ("batches", "warmup_updates", "rollout_batch", "judge_workers", "temperature", "lr", "beta",
                 "episodes_per_batch"):
        if getattr(cfg, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative, not {getattr(cfg, name)}")
    if cfg.batch_size % cfg.minibatches or cfg.batch_size < cfg.minibatches:
        raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of --minibatches {cfg.minibatches}")
    if cfg.dtype not in ("bfloat16", "float16", "float32"):
        raise UsageError(f"--dtype must be bfloat16, float16 or float32, not {cfg.dtype!r}")


def check_batch_split(cfg, dp: int):
    """Each of the ``dp`` data-parallel copies takes batch_size / dp episodes and splits them into --minibatches
    equal mini-batches: anything else would drop episodes, or give the copies different optimiser steps."""
    if cfg.batch_size % (dp * cfg.minibatches):
        raise UsageError(f"--batch-size {cfg.batch_size} must be a multiple of {dp * cfg.minibatches}: the {dp} "
                         f"data-parallel copies (world size / --tp) each take an equal share of every batch and "
                         f"split it into --minibatches {cfg.minibatches} equal mini-batches")


def at_least_one(*names: str, values):
    """Each flag ``--name`` (an attribute of ``values``) is unset (None) or at least 1."""
    for name in names:
        if getattr(values, name) is not None and getattr(values, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(values, name)}")


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlef.py eval", description="Evaluate a checkpoint with the paper's "
                                "measures (paper §3, appendix B.3).")
    parser.add_argument("--weights", required=True, help="HF folder (config.json, *.safetensors, tokenizer.json)")
    parser.add_argument("--data", required=True, help="JSONL problem file, or a folder holding SPLIT.jsonl")
    parser.add_argument("--split", default="valid", help="with a folder --data: which SPLIT.jsonl (default valid)")
    parser.add_argument("--samples", type=int, default=1, help="rollouts per problem (paper: 200 for 1@3)")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--problems", type=int, default=None, help="only the first N problems")
    parser.add_argument("--feedback", choices=["real", "random"], default="real",
                   help="random: feedback from a different problem (the paper's ablation)")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                   help="tokens per response (default: 1024, lowered for a model whose context cannot hold it)")
    parser.add_argument("--max-len", type=int, default=8192,
                        help="no further turn starts unless the dialogue and one more response fit in this many "
                             "tokens (default 8192, as in training; the model's context if smaller)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="multi-turn rollouts sampled together, of any samples and problems (their single-turn "
                             "attempts: --turns times as many)")
    parser.add_argument("--generated-tests", action=argparse.BooleanOptionalAction, default=True,
                   help="judge final responses on the dataset's generated tests too, as the paper does (appendix "
                        "B.3); --no-generated-tests: public + private only")
    parser.add_argument("--n-at-k", type=budgets_list, default=[(1, 3), (10, 100)], metavar="N@K,...",
                        help="n@k to report, every response a sample (default: the paper's 1@3,10@100; the paper "
                             "samples 10@100 at --temperature 1.0, and it needs --samples >= 40)")
    parser.add_argument("--turn-limits", type=turn_limits_list, default=[],
                        help="the n@k at each of these turn limits too, from the same rollouts cut short (Fig. 4b: "
                             "--turns 10 --turn-limits 1,3,5,10 --temperature 1.0)")
    parser.add_argument("--feedback-tests", type=int, default=0, metavar="N",
                        help="feedback from up to N tests, private ones among them, at most 8 failures listed (App. "
                             "B.3: 20); 0: from the public tests, as in training")
    parser.add_argument("--out", default=None, help="JSON report path (default: eval_<data>_<feedback>.json)")
    parser.add_argument("--device", default=None, help="default: the rank's GPU if there is one, else cpu")
    parser.add_argument("--tp", type=int, default=0,
                        help="under torchrun, ranks that hold one tensor-parallel copy of the model together, each "
                             "1/tp of it (0: 1 up to 8B, the GPUs of one node for larger models); the world / tp "
                             "copies split the problems")
    parser.add_argument("--time-factor", type=float, default=1.0,
                        help="x a problem's own time limit (default 1: the paper's rule, App. A.2, else 10 s; "
                             "e.g. 3 for Python against C++ limits: our option); the report names the rule")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def budgets_list(text: str) -> list[tuple[int, int]]:
    """``--n-at-k 1@3,10@100`` as [(1, 3), (10, 100)]."""
    budgets = []
    for item in text.split(","):
        n, _, k = item.strip().partition("@")
        if not (n.isdigit() and k.isdigit() and 1 <= int(n) <= int(k)):
            raise argparse.ArgumentTypeError(f"{item!r} is not n@k with 1 <= n <= k (e.g. 1@3,10@100)")
        budgets.append((int(n), int(k)))
    return budgets


def turn_limits_list(text: str) -> list[int]:
    """``--turn-limits 1,3,5,10`` as [1, 3, 5, 10]."""
    limits = [int(t) for t in text.split(",") if t.strip().isdigit()]
    if len(limits) != len(text.split(",")) or min(limits) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of turn limits of at least 1 (e.g. 1,3,5,10)")
    return limits


DEFAULT_EVAL_MAX_NEW_TOKENS = 1024


def response_budget(max_new_tokens: int | None, longest_prompt: int, context: int, turns: int, log=print) -> int:
    """--max-new-tokens for an evaluation: a value the user gave is refused when not even the first response
    fits the context (--max-len, or the model's if smaller) after the longest prompt; the default (1024) is then lowered, once, said so, to
    a share that leaves room for all ``turns`` responses and the feedback between them (each counted as
    long as a response: our choice)."""
    if longest_prompt >= context:
        raise UsageError(f"the longest prompt ({longest_prompt} tokens) fills the context of {context} tokens "
                         f"(--max-len, or the model's if smaller)")
    if max_new_tokens is not None:
        if longest_prompt + max_new_tokens > context:
            raise UsageError(f"--max-new-tokens {max_new_tokens} plus the longest prompt ({longest_prompt} tokens) "
                             f"exceeds the context of {context} tokens (--max-len, or the model's if smaller); "
                             f"pass at most {context - longest_prompt}")
        return max_new_tokens
    if longest_prompt + DEFAULT_EVAL_MAX_NEW_TOKENS <= context:
        return DEFAULT_EVAL_MAX_NEW_TOKENS
    budget = max(1, (context - longest_prompt) // (2 * turns - 1))
    log(f"note: --max-new-tokens lowered from {DEFAULT_EVAL_MAX_NEW_TOKENS} to {budget}: the context is "
        f"{context} tokens (--max-len, or the model's if smaller) and the longest prompt {longest_prompt} (pass "
        f"--max-new-tokens to choose)")
    return budget


def eval_inputs(a) -> tuple[Path, list[Problem]]:
    """The evaluation's flags (``a``: rlef.py eval's parsed arguments), data file and weights folder: the
    problem file and its problems."""
    at_least_one("samples", "turns", "batch_size", "problems", "max_new_tokens", "max_len", values=a)
    if a.tp < 0:
        raise UsageError(f"--tp must be at least 1 (or 0: the default), not {a.tp}")
    if a.feedback_tests < 0 or max(a.turn_limits, default=0) > a.turns:
        raise UsageError(f"--feedback-tests must be >= 0 and --turn-limits at most --turns {a.turns} (the rollouts "
                         f"are cut short to them), not {a.feedback_tests} and {a.turn_limits}")
    if a.temperature < 0 or not 0 < a.top_p <= 1:
        raise UsageError(f"--temperature must be >= 0 and --top-p in (0, 1], not {a.temperature} and {a.top_p}")
    if not a.time_factor > 0:
        raise UsageError(f"--time-factor must be positive, not {a.time_factor}")
    data = Path(a.data) / f"{a.split}.jsonl" if Path(a.data).is_dir() else Path(a.data)
    check_dataset(data)
    check_weights_folder(a.weights)
    return data, read_problems(data)[:a.problems]


def eval_device(requested: str | None, world: int, device):
    """eval's --device, or the rank's own: under torchrun a device of another kind than the process group's
    would hand its collectives tensors the backend cannot reduce (NCCL: GPU only; gloo: CPU)."""
    if requested and world > 1 and torch.device(requested).type != device.type:
        raise UsageError(f"--device {requested} under torchrun: the ranks' process group is on {device.type}")
    return torch.device(requested) if requested else device


def eval_policy(weights, tp: int, world: int, device):
    """The policy to evaluate, read from ``weights``, and its tokenizer. Under torchrun the evaluation is
    data-parallel: each copy of the model (one rank, or a row of ``tp`` ranks that each hold 1/tp of it) plays
    its share of the problems. Returns (model, tokenizer, mesh: None on one process)."""
    args = read_weights(ModelArgs.from_pretrained, weights)
    tp = checked_tp(tp, args, world)
    mesh = device_mesh(world, tp, device)
    if mesh is not None:
        log0(f"mesh: {world // tp} x {tp} (copies of the model x tensor-parallel ranks per copy)")
    split = for_loading(lambda model: tensor_parallel(model, mesh["tp"])) if tp > 1 else None
    model = read_weights(Transformer.from_pretrained, weights, device, shard=split).eval()
    return model, read_weights(Tokenizer.from_pretrained, weights), mesh
