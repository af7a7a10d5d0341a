"""Decoding fast: shape buckets, torch.compile and CUDA graphs for ``model.generate``'s decode step.

Nothing here changes what a decode step computes; it changes how often Python, the compiler and the graph
recorder run. ``model.generate`` is the reference: the same step runs eagerly on a CPU.

* Shapes come from a small fixed set (``bucket``): 1, 2, 3, 4, 6, 8, 12, 16, ... rows, and cache slots /
  attention windows of 64, 96, 128, 192, ... A row count or length rounded up wastes under a third.
* ``compile_blocks``: one torch.compile of the transformer block serves every bucket, its row and slot
  dimensions marked dynamic, so a whole run compiles two graphs (one row, many rows) and never meets torch's
  recompile limit (8 graphs per function), which per-shape compilation hit on the 9th shape.
* ``DecodeSteps``: one CUDA graph per (rows, window) bucket of one KV cache, recorded the first time that
  bucket decodes and replayed after; a ``DecodePool`` keeps the cache, and so its graphs, across the
  ``generate`` calls of one sampling phase (the turns of a rollout).

Nothing here imports model.py or rlef.py: the step to run arrives as a function.
"""
from __future__ import annotations

from typing import Callable

import torch

# emulate_precision_casts: round to bf16 wherever eager rounds, so compiled and eager greedy tokens agree;
# coordinate_descent_tuning: tune the generated kernels' block sizes.
INDUCTOR_OPTIONS = {"emulate_precision_casts": True, "coordinate_descent_tuning": True}
COMPILE_BACKEND = "inductor"     # tests count compilations by putting a counting function here


def bucket(n: int, smallest: int = 1) -> int:
    """The shape n is padded to: the least of smallest * (1, 2, 3, 4, 6, 8, 12, 16, ...) that is >= n."""
    power = smallest
    while 2 * power < n:
        power *= 2
    if power >= n:
        return power
    return power * 3 // 2 if power % 2 == 0 and power * 3 // 2 >= n else 2 * power


def matmul_fp32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (..., n, k) @ b (k, m) or (..., k, m) in fp32, never rounded to a's dtype: on a GPU, a bf16 GEMM's
    fp32 accumulator is written out as it is (``out_dtype``); elsewhere the inputs are upcast. No autograd
    (``out_dtype`` has no derivative): for sampling, not for training."""
    if not (a.is_cuda and a.dtype in (torch.bfloat16, torch.float16)):
        return a.float() @ b.float()
    if b.dim() == 2:
        return torch.mm(a.reshape(-1, a.shape[-1]), b, out_dtype=torch.float32).view(*a.shape[:-1], b.shape[-1])
    b = b.expand(*a.shape[:-2], *b.shape[-2:])
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]), out_dtype=torch.float32)
    return out.view(*a.shape[:-1], b.shape[-1])


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
