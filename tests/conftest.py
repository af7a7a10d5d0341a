"""Shared fixtures: tiny Hugging Face-format Llama checkpoints written to a temp dir (never downloaded)."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere: `pytest tests/...`

import execute  # noqa: E402
from infra.checkpoints import save_model  # noqa: E402
from model import SPECIAL_TOKENS, ModelArgs, Tokenizer, Transformer  # noqa: E402


def byte_tokenizer():
    """A byte-level tokenizer (token id = byte value, no merges) with the Llama 3 special tokens at ids 256-261,
    for test checkpoints: the same ``tokenizers`` code path as Llama 3's 128k BPE, with predictable ids.
    (The tiny preset's own BPE is trained by data/train_tiny.py.)"""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers
    # GPT-2's byte-to-unicode table, which the ByteLevel pre-tokenizer uses: printable bytes stand for
    # themselves, the others for chr(256 + k). Ordering the vocabulary by byte value makes id == byte.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    others = [b for b in range(256) if b not in printable]
    char_of = {b: chr(b) for b in printable} | {b: chr(256 + k) for k, b in enumerate(others)}
    tok = HFTokenizer(models.BPE(vocab={char_of[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


# A tiny Llama 3.1-like shape: GQA (4 query heads share 2 K/V heads) and llama3 RoPE scaling whose original
# context (32) is short enough that tests reach positions past it.
TINY_ARGS = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=264, hidden_dim=160,
                      rope_theta=10000.0, max_seq_len=2048, tie_word_embeddings=False,
                      rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 32})


def write_checkpoint(path: Path, args: ModelArgs = TINY_ARGS, seed: int = 0, max_shard_bytes: int = 1 << 40,
                     dtype=torch.float32) -> Path:
    """Write config.json, safetensors (sharded if max_shard_bytes is small) and a byte-level tokenizer.json
    with the Llama 3 special tokens into ``path``; return ``path``."""
    torch.manual_seed(seed)
    model = Transformer(args).init_weights(std=0.1).to(dtype)
    save_model(model, path, max_shard_bytes=max_shard_bytes)
    byte_tokenizer().save(str(path / "tokenizer.json"))
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path):
    return write_checkpoint(tmp_path / "tiny")


@pytest.fixture
def make_checkpoint(tmp_path):
    """Factory: make_checkpoint(name, **ModelArgs overrides, seed=0, max_shard_bytes=...)."""
    def make(name="ckpt", seed=0, max_shard_bytes=1 << 40, **overrides):
        return write_checkpoint(tmp_path / name, replace(TINY_ARGS, **overrides), seed, max_shard_bytes)
    return make


@pytest.fixture(scope="module")
def tok():
    """The byte-level tokenizer as the trainer uses it: token ids are bytes, so tests can count them."""
    return Tokenizer(byte_tokenizer())


@pytest.fixture(scope="module")
def judge():
    """A real sandboxed judge (two test servers) shared by a module's tests."""
    with execute.Judge(workers=2) as j:
        yield j


def function_tests(reference: str, entry_point: str, *asserts: str):
    """Function-problem tests (data.Test with the judge's check) made from assert statements, as the HumanEval
    and MBPP converters make them: their values are computed by running ``reference``."""
    from data import Test
    from data.asserts import convert_asserts
    tests = []
    for text in asserts:
        converted = convert_asserts(text, entry_point, reference, shown=[text])
        assert converted.tests, f"not convertible: {text}"
        tests += [Test(shown, None, check) for shown, check in converted.tests]
    return tests
