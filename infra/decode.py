"""Decoding fast: shape buckets, torch.compile and CUDA graphs for ``model.generate``'s decode step.

Nothing here changes what a decode step computes; it changes how often Python, the compiler and the graph
recorder run. ``model.generate`` is the reference: the same step runs eagerly on a CPU.

* Shapes come from a small fixed set (``bucket``): 1, 2, 3, 4, 6, 8, 12, 16, ... rows, and cache slots /
  attention windows of 64, 96, 128, 192, ... A row count or length rounded up wastes under a third.
* ``compile_blocks``: one torch.compile of the transformer block serves every bucket, its row and slot
  dimensions marked dynamic, so a whole run compiles at most three graphs (several rows, one row, a one-row
  cache) and never meets torch's recompile limit (8 per function), which per-shape compilation hit.
* ``DecodeSteps``: one CUDA graph per (rows, window) bucket of one KV cache, recorded the first time that
  bucket decodes and replayed after; a ``DecodePool`` keeps the cache, and so its graphs, across the
  ``generate`` calls of one sampling phase (the turns of a rollout).
* ``DecodeRows``: which prompt each row of the batch answers, refilled as responses end (continuous batching).

Also here: ``stream_uniforms``, the counter-based random numbers that give each prompt a stream of its own.
Nothing here imports model.py or rlef.py: the model, its cache and their types arrive as arguments.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch

# emulate_precision_casts: round to bf16 wherever eager rounds, so compiled and eager greedy tokens agree;
# coordinate_descent_tuning: tune the generated kernels' block sizes.
INDUCTOR_OPTIONS = {"emulate_precision_casts": True, "coordinate_descent_tuning": True}
COMPILE_BACKEND = "inductor"     # tests count compilations by putting a counting function here


# Top-p sorts only the most likely tokens (sorting rows x 128k values every step would dominate evaluation);
# if these hold less than top_p of the mass, it sorts them all (model.sample_next).
TOP_P_CANDIDATES = 1024
# Tokens prefilled in one call: a batched prefill's activations (8B: 0.9 GB per 16k tokens in bf16) stay small.
PREFILL_TOKENS = 16384


def bucket(n: int, smallest: int = 1) -> int:
    """The shape n is padded to: the least of smallest * (1, 2, 3, 4, 6, 8, 12, 16, ...) that is >= n."""
    power = smallest
    while 2 * power < n:
        power *= 2
    if power >= n:
        return power
    return power * 3 // 2 if power % 2 == 0 and power * 3 // 2 >= n else 2 * power


def nucleus(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Top-p: log-probs (B, V) renormalised over the smallest set of most likely tokens whose mass reaches
    ``top_p`` (-inf elsewhere). The set lies within the ``TOP_P_CANDIDATES`` most likely whenever those hold
    top_p of the mass, and sorting only them gives the full sort's result; if any row's do not, all are sorted
    (asking which waits for the device)."""
    sorted_lp, order = logprobs.topk(min(TOP_P_CANDIDATES, logprobs.shape[-1]), -1)       # (B, k), descending
    if sorted_lp.shape[-1] < logprobs.shape[-1] and bool((sorted_lp.exp().sum(-1) < top_p).any()):
        sorted_lp, order = logprobs.sort(-1, descending=True)                             # (B, V)
    outside = sorted_lp.exp().cumsum(-1) - sorted_lp.exp() >= top_p
    sorted_lp = sorted_lp.masked_fill(outside, float("-inf"))
    return torch.full_like(logprobs, float("-inf")).scatter(-1, order, sorted_lp).log_softmax(-1)


def cache_slots(positions: int) -> int:
    """The slots per row ``generate`` allocates for sequences of up to ``positions`` positions: one to spare
    for the CUDA graph's warm-up step, in a bucket (64, 96, 128, 192, ...) so that calls of similar length
    share a cache and its CUDA graphs, and one more so that no attention window (a bucket) spans a whole row:
    torch.compile would specialise on a window's view whose strides equal its sizes."""
    return bucket(positions + 1, 64) + 1


def matmul_fp32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (..., n, k) @ b (..., k, m) in fp32, never rounded to a's dtype: on a GPU, a bf16 GEMM's fp32
    accumulator is written out as it is (``out_dtype``); elsewhere the inputs are upcast. No autograd
    (``out_dtype`` has no derivative): for sampling, not for training."""
    if not (a.is_cuda and a.dtype in (torch.bfloat16, torch.float16)):
        return a.float() @ b.float()
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]), out_dtype=torch.float32)
    return out.view(*a.shape[:-1], b.shape[-1])


class _LogitsFP32(torch.autograd.Function):
    """h (N, dim) @ weight (V, dim).T as fp32 logits (N, V) from bf16 / fp16 inputs (``matmul_fp32``); the
    backward is the rounded product's: gradients in the inputs' dtype, from the bf16 GEMMs autograd would run."""

    @staticmethod
    def forward(ctx, h, weight):
        ctx.save_for_backward(h, weight)
        return matmul_fp32(h[None], weight.t()[None])[0]

    @staticmethod
    def backward(ctx, grad):
        h, weight = ctx.saved_tensors
        grad = grad.to(h.dtype)                                              # (N, V)
        return grad @ weight, grad.t() @ h


def logits_fp32(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Logits h (..., dim) @ weight.T -> (..., V) in fp32 (fp64 stays fp64), never rounded to bf16 on the way:
    the sampler's and the trainer's log-probs then differ by the order of fp32 sums only, which is what PPO's
    ratio and the KL see (paper §2.2)."""
    if h.dtype not in (torch.bfloat16, torch.float16):
        return (h @ weight.t()).to(torch.promote_types(h.dtype, torch.float32))
    return _LogitsFP32.apply(h.reshape(-1, h.shape[-1]), weight).view(*h.shape[:-1], weight.shape[0])


def compile_blocks(layers) -> list[Callable]:
    """torch.compile each transformer block (one compilation serves all of them, as they are the same code),
    so that Inductor fuses the elementwise work (RMSNorm, RoPE, SiLU) into few kernels. Each call marks the
    row dimension of every input and the slot dimension of K/V and mask dynamic: a new bucket reuses the graph.
    A block is called as ``block(x, cos, sin, kv=(k, v, write), mask)``."""
    options = INDUCTOR_OPTIONS if COMPILE_BACKEND == "inductor" else None
    compiled = [torch.compile(b, fullgraph=True, backend=COMPILE_BACKEND, options=options) for b in layers]

    def marked(block):
        def run(x, cos, sin, kv, mask):
            k, v, write = kv
            for t, dims in ((x, (0,)), (cos, (0,)), (sin, (0,)), (write, (0,)), (k, (0, 2)), (v, (0, 2)),
                            (mask, (0, 3))):
                for d in dims:
                    torch._dynamo.maybe_mark_dynamic(t, d)
            return block(x, cos, sin, kv, mask)
        return run
    return [marked(b) for b in compiled]


def record_graph(step: Callable, token: torch.Tensor, lengths: torch.Tensor) -> Callable:
    """``step`` (token (B,) -> logits (B, V), advancing ``lengths``) recorded into one CUDA graph; returns the
    replay function (same signature). Every tensor the step touches must keep its shape and address.
    Warm-up runs on a side stream (compilation, cuBLAS handles, the allocator), as capture requires; its
    steps write K/V into slots that real steps overwrite before anything reads them, so putting ``lengths``
    back is all the undoing needed. Capturing runs nothing: it only records."""
    static_token = token.clone()
    filled = lengths.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(static_token)
    torch.cuda.current_stream().wait_stream(side)
    lengths.copy_(filled)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = step(static_token)

    def replay(token):
        static_token.copy_(token)
        graph.replay()
        return static_logits      # overwritten by the next replay: the caller samples from it first
    return replay


class DecodeSteps:
    """The decode step of one KV cache at each (rows, window) bucket: ``steps(rows, window, token)``.

    ``step(rows, window, blocks)`` builds the eager step (token (rows,) -> logits (rows, V)) over the first
    ``rows`` rows of the cache and its first ``window`` slots. With ``cuda_graph`` each bucket is recorded once
    (``record``) and replayed from then on; ``recorded`` counts the recordings."""

    def __init__(self, step: Callable, lengths: torch.Tensor, cuda_graph: bool, compile: bool,
                 layers=None, record: Callable = record_graph):
        self.step, self.lengths, self.cuda_graph, self.record = step, lengths, cuda_graph, record
        self.blocks = compile_blocks(layers) if compile else None
        self.graphs: dict[tuple[int, int], Callable] = {}
        self.recorded = 0

    def __call__(self, rows: int, window: int, token: torch.Tensor) -> torch.Tensor:
        key = (rows, window)
        if key not in self.graphs:
            step = self.step(rows, window, self.blocks)
            if self.cuda_graph:
                step = self.record(step, token, self.lengths[:rows])
                self.recorded += 1
            self.graphs[key] = step
        return self.graphs[key](token)


class DecodePool:
    """A KV cache and its ``DecodeSteps``, kept across ``generate`` calls (one sampling phase: the turns of a
    rollout), so that CUDA graphs are recorded once per bucket, not once per call. It holds one cache at a
    time, reused by every call it is large enough for; a larger one replaces it. Drop the pool to free the
    memory (training needs it)."""

    def __init__(self, record: Callable = record_graph):
        self.record, self.tag, self.cache, self.steps = record, None, None, None

    def get(self, tag, rows: int, slots: int, make_cache: Callable, make_steps: Callable):
        """A cache of at least ``rows`` x ``slots`` made by ``make_cache()`` for the same ``tag`` (model, dtype,
        modes) and its steps (``make_steps(cache, record)``): the pool's, or new ones."""
        if tag != self.tag or len(self.cache.lengths) < rows or self.cache.max_len < slots:
            self.tag, self.cache, self.steps = None, None, None     # free the old cache before the new one
            self.cache = make_cache()
            self.steps, self.tag = make_steps(self.cache, self.record), tag
        return self.cache, self.steps


def prefill_groups(rows: list[int], lengths: list[int], max_tokens: int):
    """``rows`` in consecutive groups prefilled in one call each: as many as fit ``max_tokens`` padded tokens
    (the longest prompt's length per row), one row at least."""
    while rows:
        n = next((n for n in range(len(rows), 1, -1) if n * max(lengths[:n]) <= max_tokens), 1)
        yield rows[:n]
        rows, lengths = rows[n:], lengths[n:]


class DecodeRows:
    """The rows of ``model.generate``'s batch (continuous batching): on the device, the KV cache and what each
    step writes per row; on the host, which prompt each row answers (-1: idle) since which step. The first
    ``len(self)`` rows decode (a bucket); the cache may have more. ``generate``'s loop reads as the algorithm:
    refill free rows, sample, record, retire ended rows, keep the busy ones, decode; the bookkeeping is here."""

    def __init__(self, model, prompts: list[list[int]], keys, cache, width: int, budgets: list[int]):
        device = model.embed_tokens.weight.device
        self.model, self.prompts, self.prompt_keys, self.cache = model, prompts, keys, cache  # keys: (N,) per prompt
        self.waiting = list(range(len(prompts)))[::-1]                                       # next prompt last
        self.tokens = torch.zeros(width, max(budgets), dtype=torch.long, device=device)    # (R, W) responses so far
        self.logprobs = torch.zeros(width, max(budgets), device=device)                     # (R, W)
        self.made = torch.zeros(width, dtype=torch.long, device=device)                     # (R,) tokens in each
        self.keys = torch.zeros(width, dtype=torch.long, device=device)                     # (R,) each one's stream
        self.stopped = torch.zeros(width, dtype=torch.bool, device=device)                  # (R,) stop token seen
        self.prompt, self.start, self.budgets = [-1] * width, [0] * width, budgets

    def __len__(self) -> int:
        return len(self.prompt)

    def refill(self, free, step: int, logits):
        """Prefill waiting prompts into the ``free`` rows, writing each one's next-token logits into ``logits``
        (R, V); rows left without a prompt go idle (their lengths set to 0 before this step's decode)."""
        for r in free:
            self.prompt[r], self.start[r] = self.waiting.pop() if self.waiting else -1, step
        rows = [r for r in free if self.prompt[r] >= 0]
        for group in prefill_groups(rows, [len(self.prompts[self.prompt[r]]) for r in rows], PREFILL_TOKENS):
            self.prefill(group, logits)

    def prefill(self, rows: list[int], logits):
        """One batched prefill of ``rows``' prompts, right-padded, into an empty cache then copied into those rows;
        the tokens travel from pinned host memory, so the copy does not wait for the GPU."""
        prompts = [self.prompts[self.prompt[r]] for r in rows]
        width, device = max(map(len, prompts)), logits.device
        host = torch.tensor([p + [0] * (width - len(p)) + [len(p)] for p in prompts])   # (n, T + 1): its length last
        host = host.pin_memory() if device.type == "cuda" else host
        tokens = host.to(device, non_blocking=True)
        index = torch.tensor(rows, device=device)
        self.keys[index] = self.prompt_keys[torch.tensor([self.prompt[r] for r in rows], device=device)]
        self.made[index], self.stopped[index] = 0, False
        fill = type(self.cache)(self.model.args, len(rows), width, device, self.cache.k[0].dtype, self.model.kv_heads)
        logits[index] = self.model(tokens[:, :-1], cache=fill, lengths=tokens[:, -1])[:, -1]
        self.cache.put(index, fill)

    def window(self, step: int) -> int:
        """Slots the decode step at ``step`` attends to: the longest busy row's (idle rows restart at 0, so are
        shorter) and one for a CUDA graph's warm-up, in a bucket."""
        longest = max((len(self.prompts[i]) + step - s for i, s in zip(self.prompt, self.start) if i >= 0), default=0)
        return min(self.cache.max_len, bucket(longest + 1, 64))

    def record(self, token, logprob, stop):
        """Append this step's token (R,) to every row's response; nothing waits for the device."""
        at = self.made.clamp(max=self.tokens.shape[1] - 1)[:, None]                 # (R, 1) idle rows: anywhere
        self.tokens.scatter_(1, at, token[:, None])
        self.logprobs.scatter_(1, at, logprob[:, None])
        self.made += 1
        self.stopped |= torch.isin(token, stop)

    def deadline(self) -> int | None:
        """The step at which the first busy row has sampled its last allowed token."""
        due = [s + self.budgets[i] for i, s in zip(self.prompt, self.start) if i >= 0]
        return min(due) if due else None

    def ended(self, step: int, stop_ids) -> dict[int, tuple[list[int], list[float]]]:
        """Busy rows whose response has ended by ``step`` (a stop token, or the budget used up), each with its
        response cut after the first stop token. Waits for the device."""
        stopped = self.stopped.tolist()
        rows = [r for r, i in enumerate(self.prompt)
                if i >= 0 and (stopped[r] or step >= self.start[r] + self.budgets[i])]
        out = {}
        for r, toks, lps in zip(rows, self.tokens[rows].tolist(), self.logprobs[rows].tolist()):
            n = min(step - self.start[r], next((k + 1 for k, t in enumerate(toks) if t in stop_ids), len(toks)))
            out[r] = toks[:n], lps[:n]
        return out

    def keep(self, rows: list[int], token):
        """Move ``rows`` (and their entries of this step's ``token``) to the front, then decode only the
        bucket of rows that holds them (the rest idle). Returns the tokens of the rows kept."""
        n, width, index = len(rows), bucket(len(rows)), torch.tensor(rows, device=token.device)
        for t in [*self.cache.k, *self.cache.v, self.cache.lengths, self.tokens, self.logprobs, self.made, self.keys,
                  self.stopped, token]:
            t[:n] = t[index]
        self.cache.lengths[n:width] = 0
        self.tokens, self.logprobs, self.made, self.keys, self.stopped = (
            t[:width] for t in (self.tokens, self.logprobs, self.made, self.keys, self.stopped))
        self.prompt = [self.prompt[r] for r in rows] + [-1] * (width - n)
        self.start = [self.start[r] for r in rows] + [0] * (width - n)
        return token[:width]


def decode_steps(model, cache, cuda_graph: bool, compile: bool, record: Callable = record_graph) -> DecodeSteps:
    """The decode step of ``model`` (a ``model.Transformer``) over the first ``rows`` rows of ``cache`` (its
    ``KVCache``) and their first ``window`` slots, as ``steps(rows, window, token (rows,)) -> logits (rows, V)``.

    On a GPU one decode step of a small batch is hundreds of tiny kernels, and launching them from Python
    takes longer than running them. Two remedies, neither of which changes what is computed:
    * ``compile``: torch.compile the transformer blocks, so that Inductor fuses the elementwise work;
    * ``cuda_graph``: record the whole step once per (rows, window) into a CUDA graph and replay it each token:
      one launch. This is possible because every tensor the step touches has a static shape and address.
    """
    def step(rows: int, window: int, blocks):
        view = cache.rows(0, rows, window)
        return lambda token: model(token[:, None], cache=view, blocks=blocks)[:, -1]
    return DecodeSteps(step, cache.lengths, cuda_graph, compile, model.layers, record)


def decoder(model, cache, batch_size: int, cuda_graph: bool, compile: bool) -> Callable:
    """One decode step over the first ``batch_size`` rows and all slots of ``cache``: token (B,) -> logits (B, V)."""
    return partial(decode_steps(model, cache, cuda_graph, compile), batch_size, cache.max_len)


def cache_and_steps(model, cache_type, rows: int, slots: int, modes: tuple, pool: DecodePool | None):
    """A ``cache_type`` (``model.KVCache``) of at least ``rows`` x ``slots`` for ``model`` and its decode steps
    (``modes``: cuda_graph (None: on a GPU), compile): ``pool``'s if it has one that large, else new ones (then
    kept in ``pool``)."""
    device, dtype = model.embed_tokens.weight.device, model.embed_tokens.weight.dtype
    on_gpu = device.type == "cuda"           # a CUDA graph cannot record the hooks of an FSDP-sharded model
    # nor, until a GPU has run it (docs/PERFORMANCE.md), a tensor-parallel step's NCCL collectives
    tensor_parallel = model.kv_heads != model.args.n_kv_heads
    cuda_graph = (on_gpu and not hasattr(model, "unshard") and not tensor_parallel) if modes[0] is None else modes[0]
    if cuda_graph and not on_gpu:
        raise ValueError(f"cuda_graph=True needs the model on a CUDA device; it is on {device}")
    modes = (cuda_graph, modes[1])

    def new_cache():
        return cache_type(model.args, rows, slots, device, dtype, model.kv_heads)
    if pool is None:
        cache = new_cache()
        return cache, decode_steps(model, cache, *modes)
    return pool.get((id(model), dtype, modes), rows, slots, new_cache,
                    lambda cache, record: decode_steps(model, cache, *modes, record=record))


def _unsigned_as_int64(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN, _MIX1, _MIX2 = map(_unsigned_as_int64, (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shift_right(x, n: int):
    """Logical right shift of int64 ``x`` (torch's ``>>`` copies the sign bit in)."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def stream_uniforms(keys, counters):
    """Uniform numbers in (0, 1), float64 (B,): the ``counters[b]``-th output of the splitmix64 generator
    seeded with ``keys[b]`` (both int64 (B,)). A pure function of (key, counter), computed on the device;
    int64 arithmetic wraps modulo 2^64, as the generator's unsigned arithmetic does."""
    z = keys + (counters + 1) * _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    z = z ^ _shift_right(z, 31)
    return (_shift_right(z, 11).double() + 0.5) * 2.0 ** -53                   # the top 53 bits
