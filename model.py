"""Llama 3 from scratch: the policy (and critic) that RLEF trains.

One file holds what RLEF needs from a language model:

1. ``ModelArgs`` — the architecture's shape, read from a Hugging Face ``config.json`` or a named preset.
2. ``Transformer`` — Llama 3 / 3.1 / 3.2 written out: RMSNorm, RoPE with the Llama 3.1 frequency scaling,
   grouped-query attention, SwiGLU. With ``value_head=True`` the same network is the paper's critic
   (RLEF §2.2: a separate value network initialised from the LLM, its output layer replaced by a random
   linear projection to a scalar).
3. Loading official weights from Hugging Face folders (``config.json`` + safetensors shards).
4. ``Tokenizer`` — ``tokenizer.json`` through the ``tokenizers`` library and Meta's Llama 3 dialog format.
5. ``generate`` — batched sampling with a preallocated KV cache that the caller owns, so one module both
   trains (``model(tokens)``) and samples (``model(tokens, cache=cache)``); a row whose response has ended
   takes the next waiting prompt (continuous batching; the row bookkeeping, buckets and CUDA graphs are in
   infra/decode.py, writing a folder in infra/checkpoints.py).

References: Llama 3 herd paper (arXiv 2407.21783); Meta's llama-models ``model.py`` / ``chat_format.py``;
RLEF (arXiv 2410.02089). Run ``python model.py --weights DIR --prompt "..."`` to chat with a checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from infra.decode import (DecodePool, DecodeRows, bucket, cache_and_steps, cache_slots, decoder,  # noqa: F401
                          logits_fp32, matmul_fp32, nucleus, stream_uniforms)


# ----------------------------------------------------------------------------------------------------------
# 1. Shapes
# ----------------------------------------------------------------------------------------------------------

@dataclass
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 8            # grouped-query attention: n_heads // n_kv_heads query heads share one K/V head
    vocab_size: int = 128256
    hidden_dim: int = 14336        # SwiGLU inner width ("intermediate_size" in HF configs)
    norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    rope_scaling: dict | None = None   # Llama 3.1: {"rope_type": "llama3", "factor": 8, ...}
    max_seq_len: int = 131072
    tie_word_embeddings: bool = False  # Llama 3.2 1B/3B reuse the input embedding as the output layer

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def from_pretrained(cls, path) -> "ModelArgs":
        """The architecture of the Hugging Face folder ``path``: its config.json."""
        return cls.from_hf_config(json.loads((Path(path) / "config.json").read_text()))

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "ModelArgs":
        """Read the fields of a Hugging Face LlamaConfig; refuse features this implementation lacks."""
        for flag in ("attention_bias", "mlp_bias"):
            if cfg.get(flag):
                raise ValueError(f"config.json sets {flag}=true; Llama 3 has no biases and this model does not support them")
        if cfg.get("hidden_act", "silu") != "silu":
            raise ValueError(f"config.json has hidden_act={cfg['hidden_act']!r}; Llama uses 'silu'")
        rope_theta, scaling = read_rope(cfg)
        n_heads = cfg["num_attention_heads"]
        if cfg.get("head_dim") not in (None, cfg["hidden_size"] // n_heads):
            raise ValueError(f"config.json sets head_dim={cfg['head_dim']}, not hidden_size / num_attention_heads = "
                             f"{cfg['hidden_size'] // n_heads} as in every Llama 3; this model does not support that")
        return cls(dim=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"], n_heads=n_heads,
                   n_kv_heads=cfg.get("num_key_value_heads", n_heads), vocab_size=cfg["vocab_size"],
                   hidden_dim=cfg["intermediate_size"], norm_eps=cfg.get("rms_norm_eps", 1e-5),
                   rope_theta=rope_theta, rope_scaling=scaling,
                   max_seq_len=cfg.get("max_position_embeddings", 8192),
                   tie_word_embeddings=cfg.get("tie_word_embeddings", False))

    def to_hf_config(self, dtype: torch.dtype = torch.bfloat16, **token_ids) -> dict:
        """The inverse of ``from_hf_config``: a config.json that transformers' LlamaForCausalLM accepts."""
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": self.dim,
                "num_hidden_layers": self.n_layers, "num_attention_heads": self.n_heads,
                "num_key_value_heads": self.n_kv_heads, "vocab_size": self.vocab_size,
                "intermediate_size": self.hidden_dim, "rms_norm_eps": self.norm_eps, "rope_theta": self.rope_theta,
                "rope_scaling": self.rope_scaling, "max_position_embeddings": self.max_seq_len,
                "tie_word_embeddings": self.tie_word_embeddings, "hidden_act": "silu", "attention_bias": False,
                "mlp_bias": False, "head_dim": self.head_dim, **token_ids,
                # the weights' dtype, under the name transformers 4.x reads and the one 5.x reads
                "torch_dtype": str(dtype).removeprefix("torch."), "dtype": str(dtype).removeprefix("torch.")}


LLAMA3_SCALING_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def read_rope(cfg: dict) -> tuple[float, dict | None]:
    """(rope_theta, Llama 3.1 scaling or None) from either layout of config.json.

    transformers < 5 writes ``"rope_theta": ..., "rope_scaling": {"rope_type": "llama3", ...}`` (older
    versions spell it ``"type"``); transformers 5 writes one ``"rope_parameters": {"rope_theta": ...,
    "rope_type": "llama3", ...}``. Reading only the first layout would load a model saved by today's
    transformers with rope_theta 10,000 and no scaling, silently: wrong logits everywhere, and worse
    ones past the original context. Any rope type other than plain RoPE and Llama 3's is refused.
    """
    if "rope_parameters" in cfg:
        params = cfg["rope_parameters"] or {}
        if any(isinstance(v, dict) for v in params.values()):     # one set per attention type (Gemma-like)
            raise ValueError(f"config.json: rope_parameters {params} are per attention type; Llama 3 has one RoPE")
        theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    else:
        params = cfg.get("rope_scaling") or {}
        theta = cfg.get("rope_theta", 10000.0)
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return float(theta), None
    if rope_type != "llama3":
        raise ValueError(f"config.json: rope type {rope_type!r} is not supported; this model implements plain RoPE "
                         "('default') and Llama 3.1/3.2's 'llama3' scaling only")
    missing = [k for k in LLAMA3_SCALING_KEYS if k not in params]
    if missing:
        raise ValueError(f"config.json: llama3 rope scaling lacks {', '.join(missing)}")
    return float(theta), {"rope_type": "llama3", **{k: params[k] for k in LLAMA3_SCALING_KEYS}}


_LLAMA31_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_max_position_embeddings": 8192}
_LLAMA32_ROPE = {**_LLAMA31_ROPE, "factor": 32.0}

# The Instruct models' shapes (their config.json files on the Hugging Face hub). "tiny" is this project's own
# model for CPU demos (data/train_tiny.py): same architecture, a 1,000-token BPE + the Llama 3 special tokens.
PRESETS = {
    "tiny": ModelArgs(dim=64, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=1006, hidden_dim=192,
                      rope_theta=10000.0, max_seq_len=1024, tie_word_embeddings=True),
    "1b": ModelArgs(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, hidden_dim=8192, rope_scaling=_LLAMA32_ROPE,
                    tie_word_embeddings=True),
    "3b": ModelArgs(dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, hidden_dim=8192, rope_scaling=_LLAMA32_ROPE,
                    tie_word_embeddings=True),
    "8b": ModelArgs(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, hidden_dim=14336, rope_scaling=_LLAMA31_ROPE),
    "70b": ModelArgs(dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, hidden_dim=28672, rope_scaling=_LLAMA31_ROPE),
}
# Where `--model NAME` looks for weights by default, and where a user gets them (gated: accept the licence first).
HF_REPOS = {"1b": "meta-llama/Llama-3.2-1B-Instruct", "3b": "meta-llama/Llama-3.2-3B-Instruct",
            "8b": "meta-llama/Llama-3.1-8B-Instruct", "70b": "meta-llama/Llama-3.1-70B-Instruct"}


# ----------------------------------------------------------------------------------------------------------
# 2. The network
# ----------------------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Normalise in fp32 (bf16's 8-bit mantissa makes the mean of squares noisy), then cast back.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rope_frequencies(args: ModelArgs) -> torch.Tensor:
    """Inverse frequencies theta_i = rope_theta^(-2i/d), with Llama 3.1's long-context scaling applied.

    Llama 3.1 was trained at 8k context and extended to 128k by slowing the low-frequency (long-wavelength)
    components by ``factor``, leaving high frequencies alone and interpolating smoothly in between. Ignoring
    ``rope_scaling`` is invisible on short prompts and breaks the model past ~8k tokens.
    """
    # fp32 throughout, as Meta's and HF's code: the checkpoints were trained with exactly these roundings.
    inv_freq = 1.0 / args.rope_theta ** (torch.arange(0, args.head_dim, 2).float() / args.head_dim)
    s = args.rope_scaling
    if s is None:
        return inv_freq
    old_len = s["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / s["low_freq_factor"], old_len / s["high_freq_factor"]
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_len / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
    interpolated = (1 - smooth) * inv_freq / s["factor"] + smooth * inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / s["factor"], interpolated)
    return torch.where(wavelen < high_wavelen, inv_freq, scaled)


def rope_cos_sin(positions, inv_freq):
    """cos and sin of the RoPE angles position * theta_i: (B, 1, T, hd/2) each, fp32 (bf16 angles are wrong by
    whole radians at long context). Computed once per forward, shared by all layers."""
    angles = positions[:, None, :, None].float() * inv_freq          # (B, 1, T, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """Rotate x (B, heads, T, hd) by angle position * theta_i, in the rotate-half layout of HF checkpoints.

    Meta's original checkpoints rotate interleaved pairs (x0, x1), (x2, x3), ...; Hugging Face's conversion
    permutes the rows of wq and wk so that the pairs become (x_i, x_{i + hd/2}), rotated by ``rotate_half``.
    Keeping the HF layout means HF weights load with no permutation; Meta-format weights would need one.
    """
    x1, x2 = x.float().chunk(2, dim=-1)                               # (B, heads, T, hd/2) each
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return rotated.to(x.dtype)


class KVCache:
    """Preallocated keys/values for batched sampling; owned by the caller, passed into ``forward``.

    Everything has a static shape, so that one decode step is the same GPU work every time and can be
    compiled and replayed as a CUDA graph (``generate``). Row b holds one sequence from slot 0 on, and
    ``lengths[b]``, a device tensor that the step itself advances, counts the row's filled slots. Rows share
    nothing (no padding, each its own length), so when one sequence ends another can take its row while the
    others go on (continuous batching, ``generate``). A decode step attends to all ``max_len`` slots of its
    cache (of a view, ``rows(..., slots)``: bounded by the longest row), the ones past a row's length masked.
    ``n_kv_heads`` is the K/V heads this process computes: all of them (default), or its share when the
    model's projections are split over processes (``Transformer.kv_heads``), each then caching its own heads.
    """

    def __init__(self, args: ModelArgs, batch_size: int, max_len: int, device=None, dtype=torch.float32,
                 n_kv_heads: int | None = None):
        shape = (batch_size, n_kv_heads or args.n_kv_heads, max_len, args.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.n_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.n_layers)]
        self.lengths = torch.zeros(batch_size, dtype=torch.long, device=device)   # (B,) slots filled per row
        self.max_len = max_len

    @staticmethod
    def bytes_per_token(args: ModelArgs, dtype=torch.bfloat16, n_kv_heads: int | None = None) -> int:
        """Memory one cached position of one sequence takes: a key and a value per layer (and K/V head held)."""
        return 2 * args.n_layers * (n_kv_heads or args.n_kv_heads) * args.head_dim * dtype.itemsize

    def rows(self, start: int, stop: int, slots: int | None = None) -> "KVCache":
        """Rows start..stop-1 and their first ``slots`` slots (default: all) as a cache sharing this one's memory."""
        view = KVCache.__new__(KVCache)
        view.max_len = slots or self.max_len
        view.k, view.v = ([t[start:stop, :, :view.max_len] for t in kv] for kv in (self.k, self.v))
        view.lengths = self.lengths[start:stop]
        return view

    def put(self, rows: torch.Tensor, other: "KVCache"):
        """Copy the rows of ``other`` (keys, values, lengths) into ``rows`` (n,) of this cache, from slot 0."""
        for mine, theirs in zip(self.k + self.v, other.k + other.v):
            mine[rows, :, :other.max_len] = theirs
        self.lengths[rows] = other.lengths


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        # The projections' widths say how many heads this module computes: forward reads them off their
        # outputs (view(B, T, -1, hd)), so a module whose projections were split by heads (tensor parallelism,
        # infra/parallel.py: n_heads / tp and n_kv_heads / tp per rank) runs this same code.
        self.head_dim = args.head_dim
        self.q_proj = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.k_proj = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.v_proj = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.o_proj = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(self, x, cos, sin, kv=None, mask=None):
        """kv = (k_cache, v_cache, slots) when sampling, the layer's cache (B, n_kv, L, hd). Prefill (T > 1):
        the rows start empty, so write K/V to slots 0..T-1 and attend causally to the row's own tokens, as in
        training. Decode (T = 1): write K/V at ``slots`` (B, n_kv, 1, hd: each row's slot, broadcast) and attend
        to the cache under ``mask`` (B, 1, 1, L)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)                # (B, n_heads, T, hd)
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)                # (B, n_kv, T, hd)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)                # (B, n_kv, T, hd)
        n_heads, n_kv = q.shape[1], k.shape[1]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv is not None and T > 1:                       # prefill: rows start empty (``generate``)
            kv[0][:, :, :T], kv[1][:, :, :T] = k, v
        if kv is None or T > 1:   # training, scoring, prefill: the whole sequence at once, causal (fused kernels)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:                     # decoding
            k_cache, v_cache, slots = kv
            k_cache.scatter_(2, slots, k)                                      # no host sync: capturable
            v_cache.scatter_(2, slots, v)
            # Grouped-query attention without copying K/V: the g = n_heads / n_kv query heads that share a
            # K/V head become g query rows of that head (head h uses K/V head h // g, as HF's repeat_kv).
            # The fused attention kernels parallelise over blocks of query rows, which a decode step does not
            # have, and leave most of a GPU idle; two batched matmuls do not (docs/PERFORMANCE.md). Scores
            # stay fp32, never rounded to bf16, as in the trainer's fused attention.
            q = q.reshape(B, n_kv, n_heads // n_kv, self.head_dim)                        # (B, n_kv, g, hd)
            scores = matmul_fp32(q, k_cache.transpose(-1, -2)) * self.head_dim ** -0.5    # (B, n_kv, g, L)
            y = scores.masked_fill(~mask, float("-inf")).softmax(-1).to(v_cache.dtype) @ v_cache
            y = y.reshape(B, n_heads, T, self.head_dim)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))                           # (B, T, dim)


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.dim, args.hidden_dim, bias=False)
        self.up_proj = nn.Linear(args.dim, args.hidden_dim, bias=False)
        self.down_proj = nn.Linear(args.hidden_dim, args.dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.input_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.self_attn = Attention(args)
        self.post_attention_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.mlp = MLP(args)

    def forward(self, x, cos, sin, kv=None, mask=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


def chunked_logprobs(hidden, weight, targets, chunk_size: int = 256, temperature: float = 1.0, one_chunk=None):
    """log pi(target | prefix) and the entropy of pi at each position, without materialising all logits.

    hidden (B, T, dim) are final-norm hidden states, weight (V, dim) the output layer, targets (B, T).
    pi is softmax(logits / temperature): the distribution ``generate`` samples from at that temperature.
    Full fp32 logits over a 128k vocabulary cost ~2 GB per 4k tokens, and autograd would keep
    them for the backward pass. Each chunk is checkpointed: only ``hidden`` is saved, and the chunk's
    logits are recomputed during backward. Returns (logprobs, entropy), both fp32 (B, T); the entropy is a
    statistic (PPO's loss here has no entropy bonus), computed without a graph.
    ``one_chunk`` (default ``logprobs_chunk``) computes one chunk; a head split over the vocabulary brings its
    own (infra/parallel.py).
    """
    one_chunk = partial(one_chunk or logprobs_chunk, weight=weight, temperature=temperature)
    outs = []
    for s in range(0, hidden.shape[1], chunk_size):
        h, t = hidden[:, s:s + chunk_size], targets[:, s:s + chunk_size]
        outs.append(checkpoint(one_chunk, h, t, use_reentrant=False) if torch.is_grad_enabled() else one_chunk(h, t))
    return torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1)


def logprobs_chunk(h, t, weight, temperature: float):
    """``chunked_logprobs`` for one chunk: h (B, c, dim), targets t (B, c) -> (logprobs, entropy) (B, c)."""
    logits = logits_fp32(h, weight) / temperature                             # (B, c, V) fp32 (fp64 stays)
    logz = torch.logsumexp(logits, dim=-1)                                    # (B, c)
    logprobs = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - logz
    with torch.no_grad():
        entropy = logz - (logits.softmax(-1) * logits).sum(-1)
    return logprobs, entropy


class Head(nn.Linear):
    """The output layer, hidden (..., dim) -> logits (..., V), and the log-probs of given targets under it
    computed a chunk at a time (``chunked_logprobs``). A head split over the vocabulary replaces both
    (infra/parallel.py)."""

    def forward(self, hidden):                  # fp32 logits, as the log-probs below are: sampler = trainer
        return logits_fp32(hidden, self.weight)

    def logprobs(self, hidden, targets, chunk_size: int = 256, temperature: float = 1.0):
        return chunked_logprobs(hidden, self.weight, targets, chunk_size, temperature)


class Transformer(nn.Module):
    """Llama 3. Parameter names mirror HF's ``LlamaForCausalLM`` (minus its ``model.`` prefix)."""

    def __init__(self, args: ModelArgs, value_head: bool = False):
        super().__init__()
        self.args, self.value_head = args, value_head
        self.embed_tokens = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(Block(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        # The critic (RLEF §2.2) swaps the vocabulary projection for a scalar one; it is never tied.
        self.lm_head = Head(args.dim, 1 if value_head else args.vocab_size, bias=False)
        if args.tie_word_embeddings and not value_head:
            self.lm_head.weight = self.embed_tokens.weight
        self._inv_freq = None                 # RoPE frequencies, kept fp32 whatever .to(dtype) does (see rope())
        self.gradient_checkpointing = False   # recompute each block in backward: memory for compute (8B training)
        # K/V heads this process computes and caches (KVCache's size): all of them, unless tensor parallelism
        # (infra/parallel.py) split the projections, which also sets this to the share each rank holds.
        self.kv_heads = args.n_kv_heads

    def init_weights(self, std: float = 0.02):
        """Random initialisation (tests, benchmarks, the tiny model's warm start)."""
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                nn.init.normal_(p, std=std)
        return self

    def rope(self, device) -> torch.Tensor:
        # Not a buffer: model.to(torch.bfloat16) would round the frequencies, and positions * bf16 angles are
        # wrong by whole radians at long context. 64 floats, computed once per device.
        if self._inv_freq is None or self._inv_freq.device != device:
            self._inv_freq = rope_frequencies(self.args).to(device)
        return self._inv_freq

    def forward(self, tokens, targets=None, cache: KVCache | None = None, chunk_size: int = 256, blocks=None,
                temperature: float = 1.0, lengths=None):
        """tokens (B, T) -> logits (B, T, V); or values (B, T) for the critic;
        or, with ``targets`` (B, T), the pair (logprobs, entropy) (B, T) of softmax(logits / temperature),
        computed chunk by chunk.
        With ``cache``: T = 1 continues each row of the cache from its own length (a decode step); T > 1 fills
        empty rows (a prefill), ``lengths`` (B,) the real tokens of each right-padded row (default T). Returns the
        fp32 logits (B, 1, V) after each row's last token. ``blocks`` replaces ``self.layers`` (compiled copies)."""
        B, T = tokens.shape
        kv, mask = [None] * self.args.n_layers, None
        positions = torch.arange(T, device=tokens.device).expand(B, T)                   # (B, T)
        if cache is not None:
            positions, kv, mask = self._cache_inputs(cache, positions)
        cos, sin = rope_cos_sin(positions, self.rope(tokens.device))                      # (B, 1, T, hd/2)
        x = self.embed_tokens(tokens)                                                     # (B, T, dim)
        for layer, layer_kv in zip(blocks or self.layers, kv):
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, layer_kv, mask)
        if cache is not None:
            cache.lengths.add_(T if lengths is None else lengths)
        h = self.norm(x)                                                                  # (B, T, dim)
        if self.value_head:
            values = self.lm_head(h).squeeze(-1)                                          # (B, T)
            return values.to(torch.promote_types(values.dtype, torch.float32))
        if targets is not None:
            return self.lm_head.logprobs(h, targets, chunk_size, temperature)
        if cache is not None:   # sampling needs the next token only: (B, T, 128k) prefill logits would be GBs
            h = h[:, -1:] if lengths is None else h[torch.arange(B, device=h.device), lengths - 1][:, None]
            return self.lm_head(h).float()                      # (B, 1, V) fp32, as ``logprobs_chunk``'s
        return self.lm_head(h)                                                            # (B, T, V)

    def _cache_inputs(self, cache: KVCache, positions):
        """RoPE positions (B, T), per-layer (k, v, write slots) and the decode mask of a call with ``cache``."""
        if positions.shape[1] > 1:                    # prefill: empty rows, positions from 0, causal attention
            return positions, [(k, v, None) for k, v in zip(cache.k, cache.v)], None
        slots = cache.lengths[:, None]                                  # (B, 1): every row starts at slot 0
        # A query at slot s sees its row's keys up to s; later slots are empty or left over from the row's
        # previous sequence (generate reuses rows).
        mask = torch.arange(cache.max_len, device=slots.device) <= slots                  # (B, L)
        write = slots[:, None, :, None].expand(-1, cache.k[0].shape[1], 1, self.args.head_dim)  # (B, n_kv, 1, hd)
        return slots, [(k, v, write) for k, v in zip(cache.k, cache.v)], mask[:, None, None]              # mask (B, 1, 1, L)

    # ------------------------------------------------------------------------------------------------------
    # 3. Hugging Face weights
    # ------------------------------------------------------------------------------------------------------

    def hf_state_dict(self, state: dict | None = None) -> dict:
        """``state`` (default: this model's state_dict, or one gathered from FSDP shards) under HF names
        ("model.layers.0...", "lm_head.weight"); a tied head is not stored, as in HF checkpoints."""
        tied = self.args.tie_word_embeddings and not self.value_head
        return {k if k.startswith("lm_head") else "model." + k: v
                for k, v in (self.state_dict() if state is None else state).items()
                if not (k == "lm_head.weight" and tied)}

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, value_head: bool = False, shard=None) -> "Transformer":
        """Load an HF folder: config.json + model.safetensors, or shards listed in model.safetensors.index.json.

        The model is built on the meta device (no memory), given uninitialised storage once with
        ``to_empty``, then filled tensor by tensor while reading each shard lazily, so peak memory stays
        near one copy of the weights. Every key and shape is checked. ``dtype`` defaults to fp32 on CPU and
        bf16 elsewhere. With ``value_head=True`` the vocabulary head is skipped and a random scalar head is
        created: the critic of RLEF §2.2 (a folder saved from a critic loads its trained head instead).

        ``shard(model)`` (tensor parallelism and FSDP2's ``fully_shard``, infra/parallel.py) splits the model while
        it is still on the meta device and returns the function that gives each parameter's block on this
        process (as ``whole_block`` does for an unsplit model): storage is then allocated for that block only,
        and only that block is read from the files, so no process ever holds the whole model (8B: 30 GiB in fp32).
        """
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in {path}: expected a Hugging Face model folder "
                                    "(config.json, *.safetensors, tokenizer.json)")
        device = torch.device(device or "cpu")
        dtype = dtype or (torch.float32 if device.type == "cpu" else torch.bfloat16)
        args = ModelArgs.from_pretrained(path)
        shards = _safetensors_files(path)
        with torch.device("meta"):
            model = cls(args, value_head=value_head).to(dtype)
        block_of = whole_block if shard is None else shard(model)
        model.to_empty(device=device)               # uninitialised storage, allocated once in the final dtype
        if args.tie_word_embeddings and not value_head and model.lm_head.weight is not model.embed_tokens.weight:
            model.lm_head.weight = model.embed_tokens.weight    # to_empty gives the two names separate storage
        expected = model.hf_state_dict()             # name -> tensor sharing storage with the parameter
        if value_head:   # random scalar head, unless the folder is a saved critic (lm_head of shape (1, dim))
            head, where = block_of(model.lm_head.weight)
            # Drawn whole and cut, so that every world size gets the same head from the same seed.
            full = torch.empty(model.lm_head.weight.shape, device=head.device, dtype=head.dtype)
            with torch.no_grad():
                head.copy_(nn.init.normal_(full, std=1 / math.sqrt(args.dim))[where])
        loaded = set()
        for shard_file in shards:
            loaded |= _read_blocks(path / shard_file, expected, block_of,
                                   skip_vocab_head=value_head or args.tie_word_embeddings)
        missing = sorted(set(expected) - loaded - ({"lm_head.weight"} if value_head else set()))
        if missing:
            raise ValueError(f"{path}: tensors missing from the checkpoint: {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''} ({len(missing)} in all)")
        return model


def whole_block(t: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """The block of parameter ``t`` that this process holds, and where it sits in the whole tensor: all of it.
    A model split over processes has its own answer (``from_pretrained``'s ``shard``)."""
    return t, tuple(slice(0, n) for n in t.shape)


def _safetensors_files(path: Path) -> list[str]:
    """The safetensors files of an HF folder: the shards its index lists, or the single model.safetensors."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    if (path / "model.safetensors").is_file():
        return ["model.safetensors"]
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {path}")


def _read_blocks(file: Path, expected: dict[str, torch.Tensor], block_of, skip_vocab_head: bool) -> set[str]:
    """Copy this process's block (``block_of``) of every tensor in ``file`` into ``expected`` (name ->
    parameter), checking names and shapes; only the block is read from disk. Returns the names read.
    ``skip_vocab_head``: a critic keeps its own head rather than a policy's vocabulary head; a tied head is
    the embedding (a tied checkpoint may store a copy of it anyway, which is then not read)."""
    from safetensors import safe_open
    if not file.is_file():
        raise FileNotFoundError(f"shard {file} is listed in model.safetensors.index.json but missing")
    try:
        reader = safe_open(file, framework="pt", device="cpu")
    except Exception as e:
        raise ValueError(f"{file}: not a readable safetensors file ({e}); re-download this shard") from e
    loaded = set()
    with reader:
        for name in reader.keys():
            stored = reader.get_slice(name)
            if skip_vocab_head and name == "lm_head.weight" and stored.get_shape()[0] != 1:
                continue
            if name not in expected:
                raise ValueError(f"{file}: unexpected tensor {name!r} (not part of a Llama model with this "
                                 "config.json)")
            if tuple(stored.get_shape()) != tuple(expected[name].shape):
                raise ValueError(f"{file}: tensor {name!r} has shape {tuple(stored.get_shape())}, "
                                 f"config.json implies {tuple(expected[name].shape)}")
            block, where = block_of(expected[name])
            with torch.no_grad():
                block.copy_(stored[where])
            loaded.add(name)
    return loaded


# ----------------------------------------------------------------------------------------------------------
# 4. Tokenizer and the Llama 3 dialog format
# ----------------------------------------------------------------------------------------------------------

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|eot_id|>", "<|eom_id|>"]


class Tokenizer:
    """``tokenizer.json`` plus Meta's dialog format written as explicit token construction:

        <|begin_of_text|> then, per message,
        <|start_header_id|>{role}<|end_header_id|> "\\n\\n" {content stripped} <|eot_id|>
        and finally the open assistant header the model continues from.
    """

    def __init__(self, tok):
        self.tok = tok
        # Special-token strings inside *text* (a problem statement, program output) stay plain text: only
        # this class inserts real special tokens, so model-visible text cannot forge a message boundary.
        self.tok.encode_special_tokens = True
        ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
                   if ids[t] is None]
        if missing:
            raise ValueError(f"tokenizer.json lacks the Llama 3 special tokens {missing}; is this a Llama 3 tokenizer?")
        self.bos_id, self.eot_id = ids["<|begin_of_text|>"], ids["<|eot_id|>"]
        self.start_header_id, self.end_header_id = ids["<|start_header_id|>"], ids["<|end_header_id|>"]
        # Stop on end-of-turn and end-of-message (tool call) as well as end-of-text: an Instruct model may end
        # a response with any of them.
        self.stop_ids = [ids[t] for t in ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>") if ids[t] is not None]
        self.pad_id = ids["<|end_of_text|>"] if ids["<|end_of_text|>"] is not None else self.eot_id
        self.vocab_size = tok.get_vocab_size()

    @classmethod
    def from_pretrained(cls, path) -> "Tokenizer":
        from tokenizers import Tokenizer as HFTokenizer
        file = Path(path) / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {path}")
        return cls(HFTokenizer.from_file(str(file)))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def encode_header(self, role: str) -> list[int]:
        return [self.start_header_id] + self.encode(role) + [self.end_header_id] + self.encode("\n\n")

    def encode_message(self, role: str, content: str) -> list[int]:
        return self.encode_header(role) + self.encode(content.strip()) + [self.eot_id]

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        ids = [self.bos_id]
        for m in messages:
            ids += self.encode_message(m["role"], m["content"])
        return ids + (self.encode_header("assistant") if add_generation_prompt else [])


# ----------------------------------------------------------------------------------------------------------
# 5. Sampling
# ----------------------------------------------------------------------------------------------------------

def sample_next(logits, temperature: float, top_p: float, uniforms=None):
    """Pick one token per row from logits (B, V); return it and its log-prob under the sampling distribution
    (after temperature and top-p). temperature 0 is greedy, with the log-prob of the untempered model.
    A token is drawn by inverting the cumulative distribution F at a uniform number u (``uniforms``, (B,);
    default torch.rand): token i, whose interval [F(i-1), F(i)) holds u, comes with probability p_i. One
    number per token is what lets ``generate`` give each prompt a stream of its own. Nothing here waits for
    the GPU (torch.multinomial would) but ``nucleus``'s check that its candidates hold top_p of the mass."""
    logits = logits.float()
    if temperature == 0:
        token = logits.argmax(-1)
        return token, logits.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1)
    logprobs = (logits / temperature).log_softmax(-1)                       # (B, V)
    if top_p < 1.0:         # nucleus: the smallest set of most likely tokens whose mass reaches top_p, renormalised
        logprobs = nucleus(logprobs, top_p)
    if uniforms is None:
        uniforms = torch.rand(logits.shape[0], dtype=torch.float64, device=logits.device)
    cdf = logprobs.exp().double().cumsum(-1)                                 # (B, V); F(V-1) = 1 up to rounding
    token = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True).squeeze(-1)
    token = token.clamp(max=logits.shape[-1] - 1)
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


def _positions_needed(model: Transformer, prompts: list[list[int]], budgets: list[int]) -> int:
    """The KV-cache positions the longest prompt and its response need; refuses what cannot be generated."""
    if min(budgets) < 1 or min(map(len, prompts)) < 1:
        raise ValueError("generate needs prompts of at least one token and max_new_tokens >= 1")
    need = max(len(p) + n for p, n in zip(prompts, budgets))
    if need > model.args.max_seq_len:
        raise ValueError(f"a prompt and its new tokens take up to {need} positions, more than the model's "
                         f"context of {model.args.max_seq_len}")
    return need


@dataclass(frozen=True)
class Sampling:
    """How ``generate`` draws: what (the first three fields), and how fast (the others; they never change what)."""
    temperature: float = 1.0                    # 0: greedy
    top_p: float = 1.0                          # nucleus: the smallest set of tokens with this much mass
    stop_ids: tuple[int, ...] | list[int] = ()  # a response ends with the first of these
    rows: int | None = None                     # prompts decoding together in the KV cache (None: all)
    cuda_graph: bool | None = None              # a decode step as one CUDA graph (None: on a GPU); infra/decode.py
    compile: bool = False                       # torch.compile the blocks; infra/decode.py
    check_every: int | None = None              # ask if rows stopped every N steps, as asking waits for the GPU


@torch.no_grad()
def generate(model: Transformer, prompts: list[list[int]], max_new_tokens: int | list[int],
             sampling: Sampling = Sampling(), generator=None, usage: dict | None = None,
             pool: DecodePool | None = None):
    """Sample a continuation of every prompt. Returns, per prompt, (new_tokens, logprobs): the tokens up to and
    including the first stop token (or ``max_new_tokens`` of them: one number, or one per prompt), each with
    its log-prob under the sampling distribution.

    Continuous batching: ``sampling.rows`` prompts decode together; the next waiting prompts are prefilled together
    into the rows whose responses ended; once none waits and at most half the rows are busy, only those decode
    (padded to a bucket of rows), each step attending to the slots the longest busy row fills. ``usage`` adds up
    "tokens" sampled and "slots" computed (their ratio: the slot efficiency); ``pool`` keeps the KV cache and
    its CUDA graphs across calls. Token t of prompt i is drawn at ``stream_uniforms(key_i, t)``, one key per
    prompt from ``generator``: it depends on neither ``rows``, its row, nor its neighbours (up to rounding).
    """
    if not prompts:
        return []
    device = model.embed_tokens.weight.device
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    need = _positions_needed(model, prompts, budgets)
    check_every = sampling.check_every or (16 if device.type == "cuda" else 1)   # a GPU waiting for the host idles
    keys = torch.randint(-2 ** 63, 2 ** 63 - 1, (len(prompts),), generator=generator,
                         device=generator.device if generator is not None else "cpu").to(device)
    n_rows = min(sampling.rows or len(prompts), len(prompts))
    cache, decode = cache_and_steps(model, KVCache, (sampling.rows or n_rows) if pool else n_rows, cache_slots(need),
                                    (sampling.cuda_graph, sampling.compile), pool)
    width = min(len(cache.lengths), bucket(n_rows)) if pool else n_rows
    batch = DecodeRows(model, prompts, keys, cache, width, budgets)
    logits = torch.zeros(width, model.args.vocab_size, device=device)                   # (R, V) fp32
    stop, results = torch.tensor(list(sampling.stop_ids) or [-1], device=device), {}
    cache.lengths[:width] = 0
    batch.refill(range(width), 0, logits)
    step, slots, due = 0, 0, batch.deadline()
    while True:
        uniforms = stream_uniforms(batch.keys, batch.made) if sampling.temperature > 0 else None  # (R,)
        token, logprob = sample_next(logits, sampling.temperature, sampling.top_p, uniforms)          # (R,)
        batch.record(token, logprob, stop)
        step, slots, ended = step + 1, slots + len(batch), {}
        checked = step % check_every == 0 or step == due
        if checked:
            ended = batch.ended(step, set(sampling.stop_ids))
            for r, response in ended.items():
                results[batch.prompt[r]], batch.prompt[r] = response, -1
            busy = [r for r, i in enumerate(batch.prompt) if i >= 0]
            if not busy and not batch.waiting:
                break
            if not batch.waiting and len(busy) <= len(batch) // 2:     # the tail: compute only the busy rows
                token, ended = batch.keep(busy, token), {}
            if ended:           # free rows restart at slot 0: idle ones decode junk there, refilled ones overwrite it
                cache.lengths[torch.tensor(list(ended), device=device)] = 0
        logits = decode(len(batch), batch.window(step), token)                # (R, V)
        batch.refill(list(ended), step, logits)
        due = batch.deadline() if checked else due
    if usage is not None:
        usage["tokens"] = usage.get("tokens", 0) + sum(len(t) for t, _ in results.values())
        usage["slots"] = usage.get("slots", 0) + slots
    return [results[i] for i in range(len(prompts))]


def main():
    parser = argparse.ArgumentParser(description="Chat with a Llama 3 checkpoint (Hugging Face folder).")
    parser.add_argument("--weights", required=True, help="folder with config.json, *.safetensors, tokenizer.json")
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], help="default: fp32 on CPU, bf16 on GPU")
    a = parser.parse_args()
    model = Transformer.from_pretrained(a.weights, a.device, a.dtype and getattr(torch, a.dtype)).eval()
    tok = Tokenizer.from_pretrained(a.weights)
    prompt = tok.encode_chat([{"role": "user", "content": a.prompt}])
    t0 = time.perf_counter()
    (reply, _), = generate(model, [prompt], a.max_new_tokens, Sampling(a.temperature, a.top_p, tok.stop_ids))
    dt = time.perf_counter() - t0
    print(f"{tok.decode(reply)}\n[{len(reply)} tokens in {dt:.2f}s: {len(reply) / dt:.1f} tokens/s]")


if __name__ == "__main__":
    main()
