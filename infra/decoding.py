"""The decode step of ``model.generate``, made fast without changing what it computes: ``decoder`` records it
into a CUDA graph and/or compiles its blocks; ``decode_mode`` fills in the defaults of ``model.Sampling``'s
``cuda_graph`` and ``check_every`` for the model's device. The model and its KV cache arrive as arguments.
"""
import torch


def decode_mode(model, cuda_graph: bool | None, check_every: int | None) -> tuple[bool, int]:
    """(cuda_graph, check_every) with their defaults: a CUDA graph on a GPU unless the model is FSDP-sharded
    (its hooks cannot be recorded); ask whether rows stopped every 16 steps on a GPU, every step on a CPU:
    asking means waiting for the GPU, and a GPU that waits for the host each token runs half idle."""
    device = model.embed_tokens.weight.device
    on_gpu = device.type == "cuda"
    cuda_graph = (on_gpu and not hasattr(model, "unshard")) if cuda_graph is None else cuda_graph
    if cuda_graph and not on_gpu:
        raise ValueError(f"cuda_graph=True needs the model on a CUDA device; it is on {device}")
    return cuda_graph, check_every or (16 if on_gpu else 1)


def decoder(model, cache, batch_size: int, cuda_graph: bool, compile: bool):
    """The decode step as a function: token (B,) -> logits (B, V) of the next position, advancing ``cache``.

    On a GPU one decode step of a small batch is hundreds of tiny kernels, and launching them from Python
    takes longer than running them (8B at batch 1 must only stream ~16 GB of weights: ~5 ms on an H100).
    Two remedies, neither of which changes what is computed:
    * ``compile``: torch.compile each transformer block (one compilation serves all of them, as they are
      the same code) so that Inductor fuses the elementwise work (RMSNorm, RoPE, SiLU) into few kernels;
    * ``cuda_graph``: record the whole step once into a CUDA graph and replay it each token: one launch.
      This is possible because every tensor the step touches has a static shape and address (``KVCache``).
    """
    # emulate_precision_casts: round to bf16 wherever eager rounds, so compiled and eager greedy tokens agree;
    # coordinate_descent_tuning: tune the generated kernels' block sizes (8B batch 1: 5.55 -> 4.62 ms/token).
    options = {"emulate_precision_casts": True, "coordinate_descent_tuning": True}
    blocks = ([torch.compile(b, fullgraph=True, dynamic=False, options=options) for b in model.layers]
              if compile else None)

    def step(token):
        return model(token[:, None], cache=cache, blocks=blocks)[:, -1]

    if not cuda_graph:
        return step
    static_token = torch.zeros(batch_size, dtype=torch.long, device=cache.lengths.device)
    # Warm up on a side stream (compilation, cuBLAS handles, the allocator), as CUDA graph capture requires.
    # The warm-up steps write K/V into slots that the real steps overwrite before anything reads them, so
    # putting ``lengths`` back is all the undoing needed. Capturing runs nothing: it only records.
    filled = cache.lengths.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(static_token)
    torch.cuda.current_stream().wait_stream(side)
    cache.lengths.copy_(filled)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = step(static_token)

    def replay(token):
        static_token.copy_(token)
        graph.replay()
        return static_logits      # overwritten by the next replay: the caller samples from it first
    return replay
