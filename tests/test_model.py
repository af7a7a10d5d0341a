"""model.py: Llama 3 against an independent implementation, KV-cached sampling, loading errors, chat format."""
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import TINY_ARGS, write_checkpoint
from infra.checkpoints import save_model
from infra.decode import bucket, logits_fp32
from model import (PRESETS, KVCache, ModelArgs, Sampling, Tokenizer, Transformer, generate, rope_frequencies,
                   sample_next, stream_uniforms)


def hf_logits(path, tokens):
    transformers = pytest.importorskip("transformers")
    ref = transformers.LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    with torch.no_grad():
        return ref(tokens).logits


@pytest.mark.parametrize("overrides", [
    {},                                                   # GQA + llama3 rope scaling (original context 32)
    {"tie_word_embeddings": True},                        # Llama 3.2 1B/3B style
    {"n_kv_heads": 4, "rope_scaling": None},              # plain multi-head attention, unscaled RoPE
])
def test_logits_match_transformers_llama(make_checkpoint, overrides):
    path = make_checkpoint(**overrides)
    model = Transformer.from_pretrained(path).eval()
    tokens = torch.randint(0, 256, (2, 120))              # 120 positions: well past the original context of 32
    with torch.no_grad():
        ours = model(tokens)
    diff = (ours - hf_logits(path, tokens)).abs().max().item()
    assert diff <= 1e-4, diff


LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 32}


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("scaling", [LLAMA3_SCALING, None], ids=["llama3-rope", "plain-rope"])
def test_checkpoint_saved_by_transformers_loads_with_its_rope_settings(tmp_path, scaling, tied):
    # transformers 5 writes "rope_parameters": {"rope_theta", "rope_type", ...} and "dtype" where 4.x wrote
    # "rope_theta", "rope_scaling" and "torch_dtype": the checkpoint is written by transformers itself here,
    # not by this project's to_hf_config, so whatever layout the installed version uses is what is read.
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=264, max_position_embeddings=2048, rope_theta=500000.0, rope_scaling=scaling and dict(scaling),
        tie_word_embeddings=tied, initializer_range=0.1)
    torch.manual_seed(0)
    reference = transformers.LlamaForCausalLM(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    model = Transformer.from_pretrained(tmp_path / "hf").eval()
    tokens = torch.randint(0, 264, (2, 120))              # past the original context of 32
    with torch.no_grad():
        diff = (model(tokens) - reference(tokens).logits).abs().max().item()
    assert diff <= 1e-4, diff
    assert model.args.rope_theta == 500000.0 and model.args.rope_scaling == scaling
    assert model.args.tie_word_embeddings == tied


def test_a_tied_checkpoint_that_also_stores_its_head_loads(make_checkpoint):
    # Some tied checkpoints store lm_head.weight too (a copy of the embedding); transformers ignores it, and so
    # must we: the head is the embedding. A policy and a critic both load from such a folder.
    from safetensors.torch import load_file, save_file
    path = make_checkpoint("tied", tie_word_embeddings=True)
    tokens = torch.tensor([[5, 17, 99, 3]])
    with torch.no_grad():
        expected = Transformer.from_pretrained(path)(tokens)
    tensors = load_file(path / "model.safetensors")
    save_file({**tensors, "lm_head.weight": tensors["model.embed_tokens.weight"].clone()}, path / "model.safetensors")
    model = Transformer.from_pretrained(path)
    assert model.lm_head.weight is model.embed_tokens.weight
    with torch.no_grad():
        assert torch.equal(model(tokens), expected)
    assert Transformer.from_pretrained(path, value_head=True).lm_head.weight.shape == (1, TINY_ARGS.dim)


@pytest.mark.parametrize("layout", [
    {"rope_parameters": {"rope_theta": 10000.0, "rope_type": "yarn", "factor": 4.0}},       # transformers 5
    {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},        # transformers 4
    {"rope_theta": 10000.0, "rope_scaling": {"type": "linear", "factor": 2.0}},              # older 4.x spelling
], ids=["rope_parameters", "rope_scaling", "rope_scaling-type"])
def test_unknown_rope_types_are_refused_in_either_layout(tmp_path, layout):
    path = write_checkpoint(tmp_path / "r")
    cfg = {k: v for k, v in json.loads((path / "config.json").read_text()).items()
           if k not in ("rope_theta", "rope_scaling")}
    (path / "config.json").write_text(json.dumps({**cfg, **layout}))
    with pytest.raises(ValueError, match=r"rope type '(yarn|dynamic|linear)' is not supported.*'llama3'"):
        Transformer.from_pretrained(path)


def test_both_config_layouts_give_the_same_model_args():
    old = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "vocab_size": 264, "intermediate_size": 160, "rope_theta": 500000.0, "rope_scaling": LLAMA3_SCALING,
           "torch_dtype": "bfloat16"}
    new = {**{k: v for k, v in old.items() if k not in ("rope_theta", "rope_scaling", "torch_dtype")},
           "rope_parameters": {"rope_theta": 500000.0, **LLAMA3_SCALING}, "dtype": "bfloat16", "head_dim": 16}
    assert ModelArgs.from_hf_config(old) == ModelArgs.from_hf_config(new)
    assert ModelArgs.from_hf_config(new).rope_theta == 500000.0
    with pytest.raises(ValueError, match="head_dim=32, not hidden_size / num_attention_heads = 16"):
        ModelArgs.from_hf_config({**new, "head_dim": 32})


def test_llama31_rope_scaling_changes_only_low_frequencies():
    args = PRESETS["8b"]
    plain = rope_frequencies(ModelArgs(**{**args.__dict__, "rope_scaling": None}))
    scaled = rope_frequencies(args)
    wavelen = 2 * torch.pi / plain
    assert torch.equal(scaled[wavelen < 8192 / 4], plain[wavelen < 8192 / 4])           # high frequencies kept
    assert torch.allclose(scaled[wavelen > 8192], plain[wavelen > 8192] / 8)            # low ones slowed 8x
    assert scaled.dtype == torch.float32


def test_rope_tables_stay_fp32_after_casting_the_model(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).to(torch.bfloat16)
    assert model.rope(torch.device("cpu")).dtype == torch.float32


def test_kv_cached_decode_equals_full_forward(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    torch.manual_seed(1)
    prompts = [torch.randint(0, 256, (n,)).tolist() for n in (7, 19, 12)]
    continuation = torch.randint(0, 256, (3, 6))
    cache = KVCache(model.args, 3, 19 + 6)
    with torch.no_grad():
        # Each prompt is prefilled into its own row; then the rows decode together, each from its own length.
        first = [model(torch.tensor([p]), cache=cache.rows(b, b + 1))[0, -1] for b, p in enumerate(prompts)]
        steps = [torch.stack(first)]
        for i in range(6):
            steps.append(model(continuation[:, i:i + 1], cache=cache)[:, -1])
        assert cache.lengths.tolist() == [7 + 6, 19 + 6, 12 + 6]
        for b, p in enumerate(prompts):
            full = model(torch.tensor([p + continuation[b].tolist()]))[0]              # no cache
            cached = torch.stack([s[b] for s in steps])                                 # (7, V)
            assert (cached - full[len(p) - 1:]).abs().max() <= 1e-4


def test_batched_greedy_equals_one_by_one(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    tok = Tokenizer.from_pretrained(tiny_checkpoint)
    prompts = [tok.encode_chat([{"role": "user", "content": text}]) for text in
               ["hi", "a much longer prompt, to force left padding of the others", "print(1+1)"]]
    batched = generate(model, prompts, 24, Sampling(temperature=0))
    for prompt, (tokens, logprobs) in zip(prompts, batched):
        (alone_tokens, alone_logprobs), = generate(model, [prompt], 24, Sampling(temperature=0))
        assert tokens == alone_tokens
        assert torch.allclose(torch.tensor(logprobs), torch.tensor(alone_logprobs), atol=1e-4)


def test_generate_stops_each_row_at_its_stop_token(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    prompts = [[1, 2, 3], [4, 5]]
    free = generate(model, prompts, 8, Sampling(temperature=0))
    stop = free[0][0][2]                                           # row 0's third greedy token becomes a stop id
    stopped = generate(model, prompts, 8, Sampling(temperature=0, stop_ids=[stop]))
    for b in range(2):
        n = free[b][0].index(stop) + 1 if stop in free[b][0] else 8
        assert stopped[b][0] == free[b][0][:n]


def test_sampled_logprobs_are_those_of_the_sampling_distribution(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    prompt = [5, 6, 7, 8]
    (tokens, logprobs), = generate(model, [prompt], 5, Sampling(temperature=0.7),
                                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens]))[0, len(prompt) - 1:-1] / 0.7
    expected = logits.log_softmax(-1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
    assert torch.allclose(torch.tensor(logprobs), expected, atol=1e-4)


def test_bf16_logits_and_their_gradients_are_those_of_fp32_maths_on_the_bf16_weights(tiny_checkpoint):
    # The head's product is never rounded to bf16 (infra/decode.logits_fp32): the trainer's log-probs and the
    # logits the sampler draws from (the head's output) equal fp64 maths on the bf16 weights and hidden states up
    # to fp32 sums, while rounding the logits to bf16 (the plain product) would move them by about 1e-2.
    model = Transformer.from_pretrained(tiny_checkpoint, dtype=torch.bfloat16).eval()
    seq = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(0))
    targets = torch.cat([seq[:, 1:], seq[:, :1]], 1)
    hidden = {}
    model.norm.register_forward_hook(lambda m, i, out: hidden.update(h=out))
    trained, _ = model(seq, targets=targets)                                  # (1, T): log pi(tokens[t + 1])
    reference = (hidden["h"].double() @ model.lm_head.weight.double().t()).log_softmax(-1)
    reference = reference.gather(-1, targets[..., None]).squeeze(-1)
    rounded = (hidden["h"] @ model.lm_head.weight.t()).float().log_softmax(-1).gather(-1, targets[..., None])
    assert torch.allclose(trained.double(), reference, atol=2e-5)
    assert (rounded.squeeze(-1).double() - reference).abs().max() > 1e-3      # what the plain product would do
    head = model.lm_head(hidden["h"])                                         # what generate samples from
    assert head.dtype == torch.float32
    assert torch.allclose(head.double(), hidden["h"].double() @ model.lm_head.weight.double().t(), atol=1e-4)
    # Gradients: those of the fp32 product, in bf16.
    h = hidden["h"].detach().requires_grad_()
    w = model.lm_head.weight.detach().requires_grad_()
    h32, w32 = h.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    upstream = torch.randn(*h.shape[:-1], w.shape[0])
    (logits_fp32(h, w) * upstream).sum().backward()
    (h32 @ w32.t() * upstream).sum().backward()
    assert h.grad.dtype == w.grad.dtype == torch.bfloat16
    assert torch.allclose(h.grad.float(), h32.grad, rtol=2e-2, atol=2e-2)
    assert torch.allclose(w.grad.float(), w32.grad, rtol=2e-2, atol=2e-2)


def test_top_p_keeps_only_the_nucleus(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        probs = model(torch.tensor([[9, 10, 11]]))[0, -1].softmax(-1)
    top = probs.argmax().item()
    p_top = probs.max().item()
    # A nucleus smaller than the top token's own mass leaves only that token.
    outs = generate(model, [[9, 10, 11]] * 8, 1, Sampling(temperature=1.0, top_p=p_top * 0.9), generator=gen)
    assert all(t == [top] and abs(lp) < 1e-6 for t, lp in ((o[0], o[1][0]) for o in outs))


def test_sampling_draws_each_token_with_its_probability():
    # sample_next inverts the cumulative distribution at a uniform number; the frequencies must be the softmax's.
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log().expand(40000, 4)
    uniforms = torch.rand(40000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tokens, logprobs = sample_next(logits, 1.0, 1.0, uniforms)
    freq = torch.bincount(tokens, minlength=4) / len(tokens)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.01)   # 4 sigma ~ 0.01
    assert torch.allclose(logprobs, logits[0].log_softmax(-1)[tokens])


def test_checking_for_stops_every_few_steps_changes_nothing(tiny_checkpoint):
    # On a GPU, generate asks "has every row stopped?" only every 16 steps; the rows past their stop token
    # go on decoding for a while, and what they sample then must be dropped.
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    prompts = [[1, 2, 3], [4, 5], [6]]
    free = generate(model, prompts, 12, Sampling(temperature=0))
    stop = free[0][0][1]
    each = generate(model, prompts, 12, Sampling(temperature=0, stop_ids=[stop]))
    every5 = generate(model, prompts, 12, Sampling(temperature=0, stop_ids=[stop], check_every=5))
    assert each == every5
    assert any(len(t) < 12 for t, _ in each)          # some row did stop early


def test_rows_refilled_and_compacted_give_every_prompt_its_own_greedy_tokens(tiny_checkpoint):
    # With fewer rows than prompts, a row whose response ended takes the next prompt; in the tail the busy rows
    # move to the front. Greedy tokens must be each prompt's alone, also when stops are noticed every few steps.
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    torch.manual_seed(3)
    prompts = [torch.randint(0, 256, (n,)).tolist() for n in (5, 17, 9, 30, 2, 11, 23)]
    free = [generate(model, [p], 10, Sampling(temperature=0))[0][0] for p in prompts]
    stop = Counter(t for toks in free for t in toks[1:6]).most_common(1)[0][0]
    alone = [generate(model, [p], 10, Sampling(temperature=0, stop_ids=[stop]))[0] for p in prompts]
    assert len({len(t) for t, _ in alone}) > 2                        # responses of several lengths
    for rows, check_every in ((None, 1), (1, 1), (2, 1), (3, 4), (None, 3)):
        usage = {}
        batched = generate(model, prompts, 10, Sampling(temperature=0, stop_ids=[stop], rows=rows,
                                                        check_every=check_every), usage=usage)
        assert [t for t, _ in batched] == [t for t, _ in alone]
        for (_, a), (_, b) in zip(batched, alone):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
        assert usage["tokens"] == sum(len(t) for t, _ in alone)
        if check_every == 1:
            assert usage["slots"] == expected_slots([len(t) for t, _ in alone], rows or len(prompts))


def expected_slots(lengths, rows):
    """Rows computed, summed over steps, by the schedule generate documents, stops noticed at once: a row that
    comes free takes the next waiting prompt; with none waiting and at most half the rows busy, the batch
    shrinks to the bucket of rows that holds the busy ones."""
    left, waiting, width, slots = [], list(lengths), rows, 0        # left: tokens still to come, per row
    while waiting and len(left) < rows:
        left.append(waiting.pop(0))
    while any(left):
        slots += width
        left = [n - 1 for n in left]
        if not waiting and sum(n > 0 for n in left) <= width // 2:
            left = [n for n in left if n > 0]
            width = bucket(len(left))               # padded with idle rows to a bucket (infra/decode.py)
            left += [0] * (width - len(left))
        for r, n in enumerate(left):
            if n == 0 and waiting:
                left[r] = waiting.pop(0)
    return slots


def test_a_prompts_samples_depend_on_neither_rows_nor_neighbours(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    prompts = [[1, 2, 3], [40, 41, 42, 43, 44, 45], [7], [9, 9, 9, 9]]

    def sample(prompts, **kw):
        sampling = Sampling(temperature=1.0, stop_ids=[0, 1, 2, 3, 4, 5, 6, 7], **kw)
        return [t for t, _ in generate(model, prompts, 12, sampling, generator=torch.Generator().manual_seed(5))]
    alone = sample(prompts)
    assert sample(prompts, rows=1) == alone == sample(prompts, rows=3, check_every=5)
    assert sample([prompts[0], [200] * 9, [100]])[0] == alone[0]      # prompt 0 with other neighbours
    assert len({tuple(t) for t in sample([prompts[0]] * 6, rows=2)}) > 1   # yet each prompt has its own stream
    other_seed = generate(model, prompts, 12, Sampling(temperature=1.0, stop_ids=[0, 1, 2, 3, 4, 5, 6, 7]),
                          generator=torch.Generator().manual_seed(6))
    assert alone != [t for t, _ in other_seed]


def test_stream_uniforms_are_the_splitmix64_generators_outputs():
    def splitmix64(seed, n):                          # the reference (Steele, Lea & Flood 2014), in Python ints
        out, mask = [], (1 << 64) - 1
        for _ in range(n):
            seed = (seed + 0x9E3779B97F4A7C15) & mask
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            out.append(z ^ (z >> 31))
        return out
    for seed in (0, 12345, (1 << 64) - 7):
        key = torch.tensor([seed - (1 << 64) if seed >= 1 << 63 else seed] * 5)
        ours = stream_uniforms(key, torch.arange(5))
        assert ours.tolist() == [((z >> 11) + 0.5) * 2.0 ** -53 for z in splitmix64(seed, 5)]


def test_usage_counts_the_rows_computed_at_each_step(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    prompts, budgets = [[1, 2], [3], [4, 5, 6], [7], [8]], [8, 2, 2, 2, 2]   # no stop tokens: lengths = budgets
    cases = {None: 5 * 2 + 1 * 6,   # 5 rows for 2 steps, then prompt 0 alone
             2: 2 * 8,              # row 0: prompt 0; row 1: prompts 1-4 in turn
             4: 4 * 3 + 2 * 1 + 1 * 4}   # 4 rows (prompt 4 follows 1); 2 rows: prompts 0 and 4; prompt 0 alone
    for rows, slots in cases.items():
        usage = {}
        out = generate(model, prompts, budgets, Sampling(temperature=0, rows=rows), usage=usage)
        assert [len(t) for t, _ in out] == budgets
        assert usage == {"tokens": 16, "slots": slots}
        assert expected_slots(budgets, rows or 5) == slots


def test_cuda_graph_without_a_gpu_is_a_clear_error(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    with pytest.raises(ValueError, match="CUDA device"):
        generate(model, [[1, 2]], 4, Sampling(temperature=0, cuda_graph=True))


def _heldout_prompts(n):
    from data import load_problems
    from data.prompts import initial_prompt
    root = Path(__file__).resolve().parents[1] / "data" / "tiny"
    tok = Tokenizer.from_pretrained(root / "policy")
    problems = load_problems(root / "heldout.jsonl")[:n]
    return root / "policy", tok, [tok.encode_chat([{"role": "user", "content": initial_prompt(p)}]) for p in problems]


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on a CPU needs a C compiler")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_decoding_gives_eager_greedy_tokens(dtype):
    # The trained tiny policy (a random model's near-tied logits would flip on last-bit differences).
    weights, tok, prompts = _heldout_prompts(12)
    model = Transformer.from_pretrained(weights, dtype=dtype).eval()
    eager = generate(model, prompts, 40, Sampling(temperature=0, stop_ids=tok.stop_ids))
    compiled = generate(model, prompts, 40, Sampling(temperature=0, stop_ids=tok.stop_ids, compile=True))
    assert [t for t, _ in compiled] == [t for t, _ in eager]
    assert all(len(t) > 5 for t, _ in eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_decoding_gives_eager_tokens_on_a_gpu():
    weights, tok, prompts = _heldout_prompts(16)
    model = Transformer.from_pretrained(weights, device="cuda", dtype=torch.bfloat16).eval()
    runs = [generate(model, prompts, 40, Sampling(temperature=0, stop_ids=tok.stop_ids, cuda_graph=g))
            for g in (False, True)]
    assert [t for t, _ in runs[0]] == [t for t, _ in runs[1]]


def test_chunked_targets_equal_full_log_softmax(tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint).eval()
    tokens = torch.randint(0, 256, (2, 50))
    with torch.no_grad():
        logits = model(tokens[:, :-1]).float()
        logprobs, entropy = model(tokens[:, :-1], targets=tokens[:, 1:], chunk_size=7)
    full = logits.log_softmax(-1)
    assert torch.allclose(logprobs, full.gather(-1, tokens[:, 1:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1), atol=1e-5)


def test_value_head_loads_the_trunk_and_returns_one_value_per_position(tiny_checkpoint):
    policy = Transformer.from_pretrained(tiny_checkpoint)
    critic = Transformer.from_pretrained(tiny_checkpoint, value_head=True)
    assert torch.equal(critic.layers[1].mlp.up_proj.weight, policy.layers[1].mlp.up_proj.weight)
    assert critic.lm_head.weight.shape == (1, TINY_ARGS.dim)
    assert critic(torch.randint(0, 256, (3, 11))).shape == (3, 11)


def test_sharded_checkpoint_loads_identically(tmp_path):
    one = write_checkpoint(tmp_path / "one")
    sharded = write_checkpoint(tmp_path / "sharded", max_shard_bytes=60_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    tokens = torch.randint(0, 256, (1, 30))
    with torch.no_grad():
        assert torch.equal(Transformer.from_pretrained(one)(tokens), Transformer.from_pretrained(sharded)(tokens))


def test_presets_build_on_meta_without_memory():
    with torch.device("meta"):
        model = Transformer(PRESETS["70b"])
    n = sum(p.numel() for p in model.parameters())
    assert 70.0e9 < n < 71.0e9
    with torch.device("meta"):
        assert 8.0e9 < sum(p.numel() for p in Transformer(PRESETS["8b"]).parameters()) < 8.1e9
        assert 1.2e9 < sum(p.numel() for p in Transformer(PRESETS["1b"]).parameters()) < 1.3e9   # tied head


# ---- bad input: one clear error naming the file and the tensor --------------------------------------------

def test_missing_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json in .*nowhere.*Hugging Face model folder"):
        Transformer.from_pretrained(tmp_path / "nowhere")


def test_missing_shard_is_named(tmp_path):
    path = write_checkpoint(tmp_path / "s", max_shard_bytes=60_000)
    (path / "model-00002-of-00010.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00010.safetensors is listed .* but missing"):
        Transformer.from_pretrained(path)


def test_missing_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file
    path = write_checkpoint(tmp_path / "m")
    state = load_file(path / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['model.layers.1.mlp.up_proj.weight'\]"):
        Transformer.from_pretrained(path)


def test_unexpected_tensor_is_named(tmp_path):
    from safetensors.torch import load_file, save_file
    path = write_checkpoint(tmp_path / "u")
    state = load_file(path / "model.safetensors")
    state["model.layers.7.self_attn.q_proj.weight"] = torch.zeros(2, 2)
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match=r"model.safetensors: unexpected tensor 'model.layers.7.self_attn.q_proj"):
        Transformer.from_pretrained(path)


def test_shape_mismatch_names_tensor_and_shapes(tmp_path):
    path = write_checkpoint(tmp_path / "w")
    cfg = json.loads((path / "config.json").read_text())
    cfg["intermediate_size"] = 128                                       # weights were written with 160
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model.safetensors: tensor 'model.layers.0.mlp.\w+_proj.weight' has "
                                         r"shape \(\d+, \d+\), config.json implies"):
        Transformer.from_pretrained(path)


def test_corrupt_shard_says_redownload(tmp_path):
    path = write_checkpoint(tmp_path / "c")
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file.*re-download"):
        Transformer.from_pretrained(path)


def test_unsupported_config_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "b")
    cfg = json.loads((path / "config.json").read_text())
    cfg["mlp_bias"] = True
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="mlp_bias=true; Llama 3 has no biases"):
        Transformer.from_pretrained(path)


# ---- the Llama 3 dialog format ----------------------------------------------------------------------------

def test_encode_chat_is_metas_format_token_by_token(tiny_checkpoint):
    tok = Tokenizer.from_pretrained(tiny_checkpoint)
    BOS, START, END, EOT = 256, 258, 259, 260        # byte tokenizer: special tokens follow the 256 bytes
    b = lambda s: list(s.encode())                   # byte-level: one token per byte
    ids = tok.encode_chat([{"role": "user", "content": "  Hi!\n"},
                           {"role": "assistant", "content": "```python\nprint(1)\n```"},
                           {"role": "user", "content": "again"}])
    assert ids == ([BOS]
                   + [START] + b("user") + [END] + b("\n\n") + b("Hi!") + [EOT]             # content stripped
                   + [START] + b("assistant") + [END] + b("\n\n") + b("```python\nprint(1)\n```") + [EOT]
                   + [START] + b("user") + [END] + b("\n\n") + b("again") + [EOT]
                   + [START] + b("assistant") + [END] + b("\n\n"))                       # generation prompt
    assert tok.encode_chat([{"role": "user", "content": "x"}], add_generation_prompt=False)[-1] == EOT
    assert tok.stop_ids == [260, 261, 257]           # <|eot_id|>, <|eom_id|>, <|end_of_text|>


def test_special_token_text_in_content_stays_plain_text(tiny_checkpoint):
    tok = Tokenizer.from_pretrained(tiny_checkpoint)
    assert tok.encode("<|eot_id|>") == list(b"<|eot_id|>")
    assert tok.decode(tok.encode("héllo ✓")) == "héllo ✓"


def test_saved_model_reloads_to_identical_logits(tmp_path, tiny_checkpoint):
    model = Transformer.from_pretrained(tiny_checkpoint)
    save_model(model, tmp_path / "again")
    tokens = torch.randint(0, 256, (1, 20))
    with torch.no_grad():
        assert torch.equal(model(tokens), Transformer.from_pretrained(tmp_path / "again")(tokens))


def test_saved_critic_reloads_its_trained_head(tmp_path, tiny_checkpoint):
    critic = Transformer.from_pretrained(tiny_checkpoint, value_head=True)
    save_model(critic, tmp_path / "critic")
    again = Transformer.from_pretrained(tmp_path / "critic", value_head=True)
    assert torch.equal(again.lm_head.weight, critic.lm_head.weight)


def test_model_cli_prints_the_reply_and_speed(tiny_checkpoint):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "model.py", "--weights", str(tiny_checkpoint), "--prompt", "hi",
                          "--max-new-tokens", "5"], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert "tokens/s]" in out.stdout
