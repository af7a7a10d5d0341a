"""ppo.py as a specification: each formula against numbers written out by hand or a direct loop.

Conventions (see ppo.py): per-token tensors are indexed by token position i; logprobs[:, i] is the log-prob
of tokens[:, i] given tokens[:, :i]. beta = 0.05, eps = 0.2 and value clip 0.2 unless a test says otherwise.
"""
import copy
import math
import os
import random
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ppo  # noqa: E402
from ppo import Episode  # noqa: E402

try:
    import model
except ImportError:  # model.py is another file's job; the pure-tensor tests below do not need it
    model = None
needs_model = pytest.mark.skipif(model is None, reason="model.py not importable")

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------

def tiny_models(dtype=torch.float64, seed=0, vocab=64):
    """A real (tiny) Llama policy, frozen reference and critic, as model.py builds them."""
    args = model.ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab, hidden_dim=64,
                           rope_theta=10000.0, max_seq_len=256)
    torch.manual_seed(seed)
    policy = model.Transformer(args).init_weights(0.1).to(dtype)
    ref = model.Transformer(args).init_weights(0.1).to(dtype)
    critic = model.Transformer(args, value_head=True).init_weights(0.1).to(dtype)
    return policy, ref, critic


def make_episode(rng, prompt_len, response_lens, feedback_len, turn_rewards, vocab=64):
    """prompt, response 0, feedback, response 1, ... with random tokens and sampler log-probs."""
    tokens = [rng.randrange(1, vocab) for _ in range(prompt_len)]
    action, turn_ids, value_positions = [0] * prompt_len, [-1] * prompt_len, []
    for t, n in enumerate(response_lens):
        if t > 0:
            tokens += [rng.randrange(1, vocab) for _ in range(feedback_len)]
            action += [0] * feedback_len
            turn_ids += [-1] * feedback_len
        value_positions.append(len(tokens) - 1)
        tokens += [rng.randrange(1, vocab) for _ in range(n)]
        action += [1] * n
        turn_ids += [t] * n
    sampler = [-rng.uniform(3.5, 4.8) if a else 0.0 for a in action]
    return Episode(tokens, action, turn_ids, value_positions, list(turn_rewards), sampler)


def four_episodes(seed=0):
    """Four episodes of different lengths (so micro-batches of one are trimmed to unequal lengths)."""
    rng = random.Random(seed)
    return [make_episode(rng, 5, [4, 3, 6], 4, [-0.2, 0.0, 1.0]),
            make_episode(rng, 7, [5], 0, [-1.0]),
            make_episode(rng, 3, [6, 2], 3, [0.0, 1.0]),
            make_episode(rng, 4, [2, 2, 3], 2, [-0.2, -0.2, -1.2])]


# ------------------------------------------------------------------------------------------------------
# layout: collate and log-prob alignment
# ------------------------------------------------------------------------------------------------------

def test_collate_right_pads_with_pad_id_and_masks_padding():
    e1 = Episode([7, 8, 9, 10, 11], [0, 0, 1, 1, 0], [-1, -1, 0, 0, -1], [1], [1.0], [0, 0, -0.5, -0.7, 0])
    e2 = Episode([5, 6, 7], [0, 1, 1], [-1, 0, 0], [0], [-1.0], [0, -0.1, -0.2])
    b = ppo.collate([e1, e2])
    assert b["tokens"].tolist() == [[7, 8, 9, 10, 11], [5, 6, 7, 0, 0]]
    assert b["action_mask"].tolist() == [[False, False, True, True, False], [False, True, True, False, False]]
    assert b["turn_ids"].tolist() == [[-1, -1, 0, 0, -1], [-1, 0, 0, -1, -1]]
    assert b["value_positions"].tolist() == [[1], [0]]
    assert b["lengths"].tolist() == [5, 3]


def test_collate_rejects_action_token_without_turn():
    bad = Episode([1, 2, 3], [0, 1, 1], [-1, 0, -1], [0], [1.0], [0, 0, 0])
    with pytest.raises(AssertionError, match="disagree"):
        ppo.collate([bad])


def test_collate_rejects_value_position_not_just_before_the_response():
    bad = Episode([1, 2, 3, 4], [0, 0, 1, 1], [-1, -1, 0, 0], [0], [1.0], [0, 0, 0, 0])  # should be [1]
    with pytest.raises(AssertionError, match="value_positions"):
        ppo.collate([bad])


@needs_model
def test_sequence_logprobs_score_token_i_at_index_i():
    policy, _, _ = tiny_models()
    tokens = torch.tensor([[3, 9, 4, 1, 5, 9], [2, 6, 5, 3, 5, 8]])
    logprobs, entropy = ppo.sequence_logprobs(policy, tokens)
    full = policy(tokens).log_softmax(-1)  # (B, T, V): position j predicts token j+1
    assert logprobs.shape == entropy.shape == tokens.shape
    assert (logprobs[:, 0] == 0).all() and (entropy[:, 0] == 0).all()
    for i in range(1, tokens.shape[1]):
        torch.testing.assert_close(logprobs[:, i], full[:, i - 1].gather(-1, tokens[:, i:i + 1]).squeeze(-1))
        torch.testing.assert_close(entropy[:, i], -(full[:, i - 1].exp() * full[:, i - 1]).sum(-1))


@needs_model
def test_chunked_logprobs_equal_log_softmax_gather_with_gradients_and_entropy_without():
    torch.manual_seed(0)
    hidden = torch.randn(2, 37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(300, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 300, (2, 37))
    lp, ent = model.chunked_logprobs(hidden, weight, targets, chunk_size=8)  # 37 = 4 chunks of 8 + 5
    full = F.log_softmax(hidden @ weight.T, -1)
    torch.testing.assert_close(lp, full.gather(-1, targets[..., None]).squeeze(-1))
    torch.testing.assert_close(ent, -(full.exp() * full).sum(-1))
    # The entropy is a statistic without a graph: a graph that no loss uses would keep the chunk's
    # recomputed logits (B, c, V) alive for as long as the entropy tensor lives.
    assert not ent.requires_grad
    g_chunked = torch.autograd.grad((lp * 1.3).sum(), [hidden, weight])
    g_full = torch.autograd.grad((full.gather(-1, targets[..., None]).squeeze(-1) * 1.3).sum(), [hidden, weight])
    for a, b in zip(g_chunked, g_full):  # fp64 in, fp64 logits: exact up to rounding
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------------------------------
# rewards and advantages
# ------------------------------------------------------------------------------------------------------

def test_turn_reward_is_r_minus_beta_mean_token_log_ratio_including_no_code_penalty():
    turn_ids = torch.tensor([[-1, 0, 0, -1, 1, 1, 1]])
    log_ratio = torch.tensor([[9.0, 0.2, 0.4, 9.0, 0.1, 0.1, 0.4]])  # 9.0 sits on prompt/feedback: ignored
    r = torch.tensor([[-0.2, 1.0]])  # turn 0 had no code; turn 1 passed all tests
    R = ppo.turn_rewards_with_kl(r, log_ratio, torch.zeros_like(log_ratio), turn_ids, beta=0.05)
    # turn 0: mean log-ratio (0.2 + 0.4) / 2 = 0.3;  turn 1: (0.1 + 0.1 + 0.4) / 3 = 0.2
    torch.testing.assert_close(R, torch.tensor([[-0.2 - 0.05 * 0.3, 1.0 - 0.05 * 0.2]]))


def test_turn_advantage_is_reward_to_go_minus_turn_value_before_normalising():
    rewards = torch.tensor([[-0.215, 0.99], [-1.0, 5.0]])
    values = torch.tensor([[0.1, 0.5], [-0.3, 99.0]])
    turn_mask = torch.tensor([[True, True], [True, False]])  # episode 2 has one turn; column 2 is padding
    adv, returns = ppo.turn_advantages(rewards, values, turn_mask, normalize=False)
    torch.testing.assert_close(returns[turn_mask], torch.tensor([0.775, 0.99, -1.0]))
    torch.testing.assert_close(adv, torch.tensor([[0.675, 0.49], [-0.7, 0.0]]))


def test_turn_advantages_are_normalised_over_valid_turns_only():
    rewards = torch.tensor([[-0.215, 0.99], [-1.0, 5.0]])
    values = torch.tensor([[0.1, 0.5], [-0.3, 99.0]])
    turn_mask = torch.tensor([[True, True], [True, False]])
    adv, _ = ppo.turn_advantages(rewards, values, turn_mask)
    raw = [0.675, 0.49, -0.7]
    mean = sum(raw) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in raw) / 3)
    torch.testing.assert_close(adv, torch.tensor([[(0.675 - mean) / std, (0.49 - mean) / std],
                                                  [(-0.7 - mean) / std, 0.0]]))


def test_padded_turns_change_no_turn_advantage():
    rewards = torch.tensor([[-0.215, 0.99], [-1.0, 5.0]])
    values = torch.tensor([[0.1, 0.5], [-0.3, 99.0]])
    turn_mask = torch.tensor([[True, True], [True, False]])
    a1, r1 = ppo.turn_advantages(rewards, values, turn_mask)
    rewards[1, 1], values[1, 1] = NAN, INF
    a2, r2 = ppo.turn_advantages(rewards, values, turn_mask)
    assert torch.equal(a1, a2) and torch.equal(r1[turn_mask], r2[turn_mask])


@needs_model
def test_prepare_batch_broadcasts_each_turn_advantage_to_its_action_tokens_only():
    policy, ref, critic = tiny_models()
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=3))
    rewards = ppo.turn_rewards_with_kl(batch["turn_rewards"], batch["old_logprobs"], batch["ref_logprobs"],
                                       batch["turn_ids"], 0.05)
    turn_adv, _ = ppo.turn_advantages(rewards, batch["old_values"], batch["turn_mask"])
    for b in range(4):
        for i, t in enumerate(batch["turn_ids"][b].tolist()):
            expected = turn_adv[b, t] if t >= 0 else 0.0
            assert batch["advantages"][b, i].item() == pytest.approx(float(expected), abs=1e-12)
    # V(c_t) is the critic's output at the last token before response t
    full_values = critic(batch["tokens"])
    torch.testing.assert_close(batch["old_values"][0], full_values[0, batch["value_positions"][0]].double())


@needs_model
def test_prepare_batch_recomputes_old_logprobs_and_reports_sampler_gap():
    policy, ref, critic = tiny_models()
    episodes = four_episodes()
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    full, _ = ppo.sequence_logprobs(policy, batch["tokens"])
    m = batch["action_mask"]
    torch.testing.assert_close(batch["old_logprobs"][m], full[m].double())  # the trainer's, not the sampler's
    gap = (batch["old_logprobs"] - batch["sampler_logprobs"]).abs()[m].mean().item()
    assert batch["stats"]["logprob_gap"] == pytest.approx(gap)
    # sampler log-probs at masked positions are never read
    for e in episodes:
        e.sampler_logprobs = [s if a else 123.0 for s, a in zip(e.sampler_logprobs, e.action_mask)]
    again = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    assert again["stats"]["logprob_gap"] == batch["stats"]["logprob_gap"]
    assert torch.equal(again["advantages"], batch["advantages"])


@needs_model
@pytest.mark.parametrize("temperature", [0.7, 0.2])
def test_trainer_scores_tokens_under_the_distribution_the_sampler_drew_them_from(temperature):
    # The sampler records log q(a), q = softmax(logits / T); old log-probs, the update's log-probs and hence
    # the importance weight min(pi / pi_b, 1) must refer to that same q, or the weight measures the
    # temperature instead of the sampler's staleness (which is zero here: same weights).
    policy, ref, critic = tiny_models(dtype=torch.float32)
    prompts = [[1, 2, 3, 4, 5], [6, 7, 8]]
    outs = model.generate(policy, prompts, 12, model.Sampling(temperature=temperature, top_p=1.0),
                          generator=torch.Generator().manual_seed(0))
    episodes = [Episode(p + new, [0] * len(p) + [1] * len(new), [-1] * len(p) + [0] * len(new), [len(p) - 1], [1.0],
                        [0.0] * len(p) + lps) for p, (new, lps) in zip(prompts, outs)]
    batch = ppo.prepare_batch(episodes, policy, ref, critic,
                              ppo.PPOSettings(micro_batch_size=2, temperature=temperature))
    m = batch["action_mask"]
    assert batch["stats"]["logprob_gap"] < 1e-5
    weight = torch.exp(batch["old_logprobs"] - batch["sampler_logprobs"]).clamp(max=1.0)[m]
    torch.testing.assert_close(weight, torch.ones_like(weight), atol=1e-5, rtol=0)
    # Scored at temperature 1 (as before), the same fresh samples looked stale by whole fractions of a nat.
    assert ppo.prepare_batch(episodes, policy, ref, critic,
                             ppo.PPOSettings(micro_batch_size=2))["stats"]["logprob_gap"] > 0.1
    # The update scores at the batch's temperature too: before its first step pi_theta = pi_old, nothing clips.
    p_opt, _ = ppo.make_optimizer(policy)
    v_opt, _ = ppo.make_optimizer(critic)
    stats = ppo.ppo_update(policy, critic, p_opt, v_opt, batch, ppo.PPOSettings(minibatches=1, micro_batch_size=2))
    assert stats["approx_kl"] < 1e-10 and stats["clip_fraction"] == 0.0


def test_token_rewards_spread_turn_kl_and_put_r_on_the_turn_last_token():
    turn_ids = torch.tensor([[-1, 0, 0, -1, 1, 1]])
    log_ratio = torch.tensor([[7.0, 0.2, 0.4, 7.0, 0.1, 0.3]])
    r = torch.tensor([[-0.2, 1.0]])
    rewards = ppo.token_rewards(r, log_ratio, torch.zeros_like(log_ratio), turn_ids, beta=0.05)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, -0.005, -0.01 - 0.2, 0.0, -0.0025, -0.0075 + 1.0]]))
    # a turn's token rewards sum to the paper's turn reward R_t
    R = ppo.turn_rewards_with_kl(r, log_ratio, torch.zeros_like(log_ratio), turn_ids, beta=0.05)
    torch.testing.assert_close(torch.stack([rewards[0, 1:3].sum(), rewards[0, 4:].sum()]), R[0])


def test_gae_by_hand_skips_masked_positions():
    mask = torch.tensor([[True, False, True]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.0, 0.2]])
    adv, ret = ppo.gae_advantages(rewards, values, mask, gamma=0.5, lam=0.5, normalize=False)
    # index 2: delta = 1 - 0.2 = 0.8.  index 0: delta = 0 + 0.5 * 0.2 - 0.5 = -0.4; A = -0.4 + 0.25 * 0.8 = -0.2
    torch.testing.assert_close(adv, torch.tensor([[-0.2, 0.0, 0.8]]))
    torch.testing.assert_close(ret, torch.tensor([[0.3, 0.0, 1.0]]))
    # gamma = lambda = 1: A = sum of rewards to go - V
    adv, _ = ppo.gae_advantages(rewards, values, mask, normalize=False)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.0, 0.8]]))


def test_gae_equals_plain_gae_on_the_action_tokens_alone():
    torch.manual_seed(0)
    B, T, gamma, lam = 3, 12, 0.9, 0.8
    mask = torch.rand(B, T) < 0.6
    rewards, values = torch.randn(B, T, dtype=torch.float64), torch.randn(B, T, dtype=torch.float64)
    adv, ret = ppo.gae_advantages(rewards, values, mask, gamma, lam, normalize=False)
    for b in range(B):
        pos = mask[b].nonzero().flatten().tolist()
        r, v = rewards[b, pos].tolist(), values[b, pos].tolist()
        expected, running = [0.0] * len(pos), 0.0
        for k in reversed(range(len(pos))):  # textbook GAE on the compressed action sequence
            next_v = v[k + 1] if k + 1 < len(pos) else 0.0
            running = r[k] + gamma * next_v - v[k] + gamma * lam * running
            expected[k] = running
        torch.testing.assert_close(adv[b, pos], torch.tensor(expected, dtype=torch.float64))
        torch.testing.assert_close(ret[b, pos], adv[b, pos] + values[b, pos])


def test_values_and_rewards_at_masked_positions_change_no_gae_advantage():
    torch.manual_seed(1)
    mask = torch.rand(2, 10) < 0.5
    rewards, values = torch.randn(2, 10), torch.randn(2, 10)
    a1, r1 = ppo.gae_advantages(rewards, values, mask, 0.9, 0.95)
    rewards[~mask], values[~mask] = NAN, INF
    a2, r2 = ppo.gae_advantages(rewards, values, mask, 0.9, 0.95)
    assert torch.equal(a1, a2) and torch.equal(r1, r2)


# ------------------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------------------

def test_policy_loss_clips_on_both_sides_of_one_for_both_advantage_signs():
    ratios = torch.tensor([[1.5, 0.5, 0.5, 1.5, 1.1]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 2.0]])
    logprobs = ratios.log().requires_grad_()
    old = torch.zeros_like(ratios)
    loss, n_clipped = ppo.policy_loss_sum(logprobs, old, old, adv, torch.ones_like(adv, dtype=torch.bool),
                                          clip_eps=0.2, importance_correction=False)
    # A>0, r=1.5: -min(1.5, 1.2) = -1.2 (clipped)     A>0, r=0.5: -min(0.5, 0.8) = -0.5
    # A<0, r=0.5: -min(-0.5, -0.8) = 0.8 (clipped)    A<0, r=1.5: -min(-1.5, -1.2) = 1.5
    # inside the trust region r=1.1, A=2: -2.2
    assert loss.item() == pytest.approx(-1.2 - 0.5 + 0.8 + 1.5 - 2.2)
    assert n_clipped.item() == 2
    loss.backward()
    # d(-r A)/d log pi = -r A where unclipped; 0 where the clipped branch is taken
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, -0.5, 0.0, 1.5, -2.2]]))


def test_importance_correction_is_truncated_and_carries_no_gradient():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    old = torch.zeros(1, 2)
    sampler = torch.tensor([[math.log(2.0), math.log(0.5)]])  # pi/pi_b = 0.5 and 2 -> weights 0.5 and 1
    adv, mask = torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool)
    loss, _ = ppo.policy_loss_sum(logprobs, old, sampler, adv, mask, importance_correction=True)
    assert loss.item() == pytest.approx(-0.5 - 1.0)  # r = 1 * 0.5 (below 0.8, but the min picks r A) and 1 * 1
    loss.backward()
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-0.5, -1.0]]))  # the weight is a constant
    uncorrected, _ = ppo.policy_loss_sum(logprobs, old, sampler, adv, mask, importance_correction=False)
    assert uncorrected.item() == pytest.approx(-2.0)


@needs_model
def test_on_policy_update_ignores_the_samplers_rounding_by_default():
    # rlef.py samples with the current weights, so pi_b = pi_old (§2.2) and the sampler's log-probs differ
    # from the trainer's by rounding only. The default update must not read that as staleness: with the
    # weight on, a sampler 0.3 nats above the trainer (weight 0.74, below 1 - 0.2) zeroes the gradient of
    # every negative-advantage token.
    policy, ref, critic = tiny_models(torch.float64)
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    exact, _ = _grads_after_update(policy, critic, batch, micro_batch_size=4)
    batch["sampler_logprobs"] = batch["old_logprobs"] + 0.3
    rounded, stats = _grads_after_update(policy, critic, batch, micro_batch_size=4)
    assert all(torch.equal(a, b) for a, b in zip(exact, rounded)) and stats["clip_fraction"] == 0


def test_value_loss_is_half_max_of_unclipped_and_clipped_squared_error():
    values = torch.tensor([[0.5, 0.1, 1.5]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 1.0]])
    returns = torch.ones(1, 3)
    loss = ppo.value_loss_sum(values, old, returns, torch.ones(1, 3, dtype=torch.bool), value_clip=0.2)
    # V=0.5 clipped to 0.2: max(0.25, 0.64)/2 = 0.32   V=0.1 within: 0.81/2 = 0.405
    # V=1.5 clipped to 1.2: max(0.25, 0.04)/2 = 0.125 (moving away from R is not forgiven)
    assert loss.item() == pytest.approx(0.32 + 0.405 + 0.125)
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, -0.9, 0.5]]))


def test_masked_positions_change_no_loss_or_gradient():
    torch.manual_seed(0)
    mask = torch.rand(3, 8) < 0.5
    lp, old, smp, adv, v, v_old, ret = (torch.randn(3, 8, dtype=torch.float64) * 0.3 for _ in range(7))

    def losses(lp, old, smp, adv, v, v_old, ret):
        lp, v = lp.clone().requires_grad_(), v.clone().requires_grad_()
        pl, n = ppo.policy_loss_sum(lp, old, smp, adv, mask)
        vl = ppo.value_loss_sum(v, v_old, ret, mask)
        (pl + vl).backward()
        return pl.detach(), n, vl.detach(), lp.grad, v.grad

    before = losses(lp, old, smp, adv, v, v_old, ret)
    for x, junk in zip((lp, old, smp, adv, v, v_old, ret), (INF, NAN, -INF, NAN, INF, 1e30, NAN)):
        x[~mask] = junk
    after = losses(lp, old, smp, adv, v, v_old, ret)
    for a, b in zip(before, after):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------------
# the update step
# ------------------------------------------------------------------------------------------------------

def _grads_after_update(policy, critic, batch, micro_batch_size, max_grad_norm=1e9):
    policy, critic = copy.deepcopy(policy), copy.deepcopy(critic)
    p_opt, _ = ppo.make_optimizer(policy)
    v_opt, _ = ppo.make_optimizer(critic)
    settings = ppo.PPOSettings(minibatches=1, micro_batch_size=micro_batch_size, max_grad_norm=max_grad_norm)
    stats = ppo.ppo_update(policy, critic, p_opt, v_opt, batch, settings)
    grads = [p.grad.clone() for p in policy.parameters()] + [p.grad.clone() for p in critic.parameters()]
    return grads, stats


@pytest.mark.parametrize("mode", ["turn", "token"])
@needs_model
def test_gradient_is_the_same_for_one_micro_batch_or_four_of_unequal_lengths(mode):
    policy, ref, critic = tiny_models(torch.float64)
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(advantage_mode=mode,
                                                                                    micro_batch_size=4))
    assert len(set(batch["lengths"].tolist())) == 4  # micro-batches of one are trimmed to 4 different lengths
    # move away from pi_old so that some ratios are clipped and the gradient is not a plain policy gradient
    batch["old_logprobs"] += 0.3 * torch.randn_like(batch["old_logprobs"], generator=torch.Generator().manual_seed(0))
    g1, s1 = _grads_after_update(policy, critic, batch, micro_batch_size=4)
    g4, s4 = _grads_after_update(policy, critic, batch, micro_batch_size=1)
    assert s1["clip_fraction"] > 0
    for a, b in zip(g1, g4):
        assert a.abs().max() > 0
        assert ((a - b).norm() / a.norm()).item() <= 1e-6
    assert s1["policy_loss"] == pytest.approx(s4["policy_loss"], rel=1e-9)
    assert s1["value_loss"] == pytest.approx(s4["value_loss"], rel=1e-9)


@needs_model
def test_first_on_policy_step_has_zero_kl_and_no_clipping():
    policy, ref, critic = tiny_models(torch.float64)
    episodes = four_episodes()
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(micro_batch_size=2))
    batch["sampler_logprobs"] = batch["old_logprobs"].clone()  # the trainer sampled the rollouts itself
    _, stats = _grads_after_update(policy, critic, batch, micro_batch_size=2)
    assert set(stats) == {"policy_loss", "value_loss", "clip_fraction", "approx_kl", "ref_kl", "entropy",
                          "policy_grad_norm", "value_grad_norm"}
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-12) and stats["clip_fraction"] == 0.0
    assert stats["ref_kl"] == pytest.approx(batch["stats"]["kl_penalty"])
    assert stats["policy_loss"] == pytest.approx(-batch["advantages"][batch["action_mask"]].mean().item())


@needs_model
def test_ppo_update_steps_once_per_mini_batch_and_changes_the_policy():
    policy, ref, critic = tiny_models(torch.float32)
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    p_opt, p_sched = ppo.make_optimizer(policy, lr=1e-3, warmup_updates=1)
    v_opt, v_sched = ppo.make_optimizer(critic, lr=1e-3, warmup_updates=1)
    before = [p.detach().clone() for p in policy.parameters()]
    ppo.ppo_update(policy, critic, p_opt, v_opt, batch, ppo.PPOSettings(minibatches=2, micro_batch_size=1, epochs=2),
                   schedulers=[p_sched, v_sched])
    assert p_sched.last_epoch == 4 and v_sched.last_epoch == 4  # 2 epochs x 2 mini-batches
    assert p_opt.state[next(policy.parameters())]["step"].item() == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))


@needs_model
def test_make_optimizer_warms_up_linearly_and_decays_only_matrices():
    policy, _, _ = tiny_models(torch.float32)
    opt, sched = ppo.make_optimizer(policy, lr=2e-7, weight_decay=0.1, warmup_updates=50)
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in opt.param_groups[0]["params"])
    assert all(p.dim() == 1 for p in opt.param_groups[1]["params"])  # RMSNorm weights
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2e-7 / 50) and lrs[24] == pytest.approx(2e-7 * 25 / 50)
    assert lrs[49] == pytest.approx(2e-7) and lrs[59] == pytest.approx(2e-7)


# ------------------------------------------------------------------------------------------------------
# data parallel: 2 gloo ranks with DDP see the same advantages and gradient as one process
# ------------------------------------------------------------------------------------------------------

def _ddp_worker(rank, world, port, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    policy, ref, critic = tiny_models(torch.float64)
    policy, critic = DDP(policy), DDP(critic)
    episodes = four_episodes()[rank::world]
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(micro_batch_size=1))
    p_opt, _ = ppo.make_optimizer(policy)
    v_opt, _ = ppo.make_optimizer(critic)
    ppo.ppo_update(policy, critic, p_opt, v_opt, batch, ppo.PPOSettings(minibatches=1, micro_batch_size=1,
                                                                        max_grad_norm=1e9))
    grads = [p.grad for p in policy.parameters()] + [p.grad for p in critic.parameters()]
    torch.save({"grads": grads, "advantages": batch["advantages"]}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@needs_model
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_data_parallel_ranks_give_the_single_process_gradient(tmp_path):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2)
    policy, ref, critic = tiny_models(torch.float64)
    episodes = four_episodes()
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    single, _ = _grads_after_update(policy, critic, batch, micro_batch_size=4)
    for rank in range(2):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        rows = list(range(rank, 4, 2))
        L = out["advantages"].shape[1]
        torch.testing.assert_close(out["advantages"], batch["advantages"][rows, :L])  # whitened across ranks
        for a, b in zip(single, out["grads"]):
            assert ((a - b).norm() / a.norm()).item() <= 1e-6


# ------------------------------------------------------------------------------------------------------
# the direction of learning: one update, measured from outside the update code
# ------------------------------------------------------------------------------------------------------

def two_answers_to_one_prompt():
    """The same 5-token prompt answered twice: one response solved the problem (+1), the other did not (-1).
    On-policy (sampler log-probs = the policy's), so every ratio starts at 1 and nothing is clipped."""
    prompt = [3, 9, 4, 1, 5]
    good, bad = [7, 7, 2, 8], [6, 1, 6, 1]
    return [Episode(prompt + resp, [0] * 5 + [1] * 4, [-1] * 5 + [0] * 4, [4], [reward], [0.0] * 9)
            for resp, reward in ((good, 1.0), (bad, -1.0))]


def response_logprob(policy, batch, row):
    """Sum of log pi over the action tokens of one episode, computed here by log_softmax and gather."""
    tokens = batch["tokens"][row:row + 1]
    with torch.no_grad():
        logp = policy(tokens[:, :-1]).log_softmax(-1).gather(-1, tokens[:, 1:, None])[0, :, 0]   # (T-1,)
    return logp[batch["action_mask"][row, 1:]].sum().item()


def critic_squared_error(critic, batch):
    """sum_t (V(c_t) - G_t)^2 over the batch's turns, V read at value_positions by indexing the critic's output."""
    with torch.no_grad():
        v = critic(batch["tokens"])                                          # (B, T)
    values = v.gather(1, batch["value_positions"])                           # (B, N)
    return ((values - batch["returns"]) ** 2)[batch["turn_mask"]].sum().item()


@needs_model
def test_one_update_raises_positive_advantage_tokens_lowers_negative_ones_and_fits_the_critic():
    # What training is for, checked outside the loss code: one PPO step on a tiny model with a large
    # learning rate makes the solved answer more likely and the failed one less likely, and moves the
    # critic's V(c_t) towards the returns G_t. A sign flipped anywhere between the losses and .backward()
    # (policy or critic) reverses one of these, while every gradient-equality test still passes.
    policy, ref, critic = tiny_models(torch.float64)
    batch = ppo.prepare_batch(two_answers_to_one_prompt(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=2))
    batch["sampler_logprobs"] = batch["old_logprobs"].clone()
    adv = batch["advantages"][batch["action_mask"]].view(2, 4)
    assert (adv[0] > 0).all() and (adv[1] < 0).all()                         # +1 vs -1: whitened to +1 / -1
    good_before, bad_before = response_logprob(policy, batch, 0), response_logprob(policy, batch, 1)
    error_before = critic_squared_error(critic, batch)
    p_opt, _ = ppo.make_optimizer(policy, lr=1e-3, weight_decay=0.0, warmup_updates=1)
    v_opt, _ = ppo.make_optimizer(critic, lr=1e-3, weight_decay=0.0, warmup_updates=1)
    ppo.ppo_update(policy, critic, p_opt, v_opt, batch, ppo.PPOSettings(minibatches=1, micro_batch_size=2,
                                                                        max_grad_norm=1e9))
    good_after, bad_after = response_logprob(policy, batch, 0), response_logprob(policy, batch, 1)
    assert good_after - good_before > 0.5                                    # nats, over the 4 tokens (~+1.1)
    assert bad_after - bad_before < -0.5                                     # (~-1.9)
    assert critic_squared_error(critic, batch) < 0.75 * error_before         # (~0.48x)


@needs_model
def test_reference_log_probs_come_from_the_reference_and_give_the_kl_an_independent_computation_gives():
    # The reference rho differs from the policy (another seed): the KL penalty is not 0, and batch's
    # ref_logprobs, kl_penalty and rewards equal what log_softmax on each model gives, per turn by hand.
    policy, _, critic = tiny_models(torch.float64, seed=0)
    _, ref, _ = tiny_models(torch.float64, seed=1)
    episodes = four_episodes()
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(beta=0.05, micro_batch_size=3))
    kl_sum, n_tokens = 0.0, 0
    for b, e in enumerate(episodes):
        tokens = torch.tensor([e.tokens])
        with torch.no_grad():
            lp_pi = policy(tokens[:, :-1]).log_softmax(-1).gather(-1, tokens[:, 1:, None])[0, :, 0].tolist()
            lp_rho = ref(tokens[:, :-1]).log_softmax(-1).gather(-1, tokens[:, 1:, None])[0, :, 0].tolist()
        for t, r in enumerate(e.turn_rewards):
            idx = [i for i, tid in enumerate(e.turn_ids) if tid == t]        # token i is scored at i - 1
            assert batch["ref_logprobs"][b, idx].tolist() == pytest.approx([lp_rho[i - 1] for i in idx], abs=1e-10)
            log_ratio = [lp_pi[i - 1] - lp_rho[i - 1] for i in idx]
            expected_reward = r - 0.05 * sum(log_ratio) / len(idx)           # the turn's MEAN log-ratio (§2.2)
            assert batch["rewards"][b, t].item() == pytest.approx(expected_reward, abs=1e-7)   # r is stored in fp32
            kl_sum, n_tokens = kl_sum + sum(log_ratio), n_tokens + len(idx)
    assert abs(kl_sum / n_tokens) > 0.01                                     # the two models really differ
    assert batch["stats"]["kl_penalty"] == pytest.approx(kl_sum / n_tokens, abs=1e-10)
    # The update reports the same KL to the reference (first step: pi_theta = pi_old).
    _, stats = _grads_after_update(policy, critic, batch, micro_batch_size=2)
    assert stats["ref_kl"] == pytest.approx(kl_sum / n_tokens, abs=1e-10)
    # Without a reference (rho = pi_old) the penalty is exactly 0 and the rewards are the execution rewards.
    no_ref = ppo.prepare_batch(episodes, policy, None, critic, ppo.PPOSettings(micro_batch_size=3))
    assert no_ref["stats"]["kl_penalty"] == 0.0
    assert torch.equal(no_ref["rewards"][no_ref["turn_mask"]], no_ref["turn_rewards"][no_ref["turn_mask"]])


@needs_model
@pytest.mark.parametrize("mode", ["turn", "token"])
def test_values_are_read_where_the_paper_reads_them(mode):
    # Turn-level (§2.2): V(c_t) is the critic's output at the last context token before response t.
    # Token-level (the GAE ablation): the value of action token i is V(tokens[:, :i]), the output at i - 1.
    # Checked against the critic's whole output, indexed here; and the update's first-step value loss is
    # 1/2 mean (V_old - G)^2 over the same positions (values = old values before any step, so no clipping).
    policy, ref, critic = tiny_models(torch.float64)
    episodes = four_episodes()
    batch = ppo.prepare_batch(episodes, policy, ref, critic, ppo.PPOSettings(advantage_mode=mode, micro_batch_size=3))
    squared, count = 0.0, 0
    for b, e in enumerate(episodes):
        with torch.no_grad():
            v = critic(torch.tensor([e.tokens]))[0]                           # (T_b,): V(tokens[:j+1]) at j
        if mode == "turn":
            expected = [v[p].item() for p in e.value_positions]
            got = batch["old_values"][b, :len(expected)].tolist()
            ret = batch["returns"][b, :len(expected)].tolist()
        else:
            actions = [i for i, a in enumerate(e.action_mask) if a]
            expected = [v[i - 1].item() for i in actions]
            got = batch["old_values"][b, actions].tolist()
            ret = batch["returns"][b, actions].tolist()
        assert got == pytest.approx(expected, abs=1e-10)
        squared += sum((x - g) ** 2 for x, g in zip(expected, ret))
        count += len(expected)
    _, stats = _grads_after_update(policy, critic, batch, micro_batch_size=2)
    assert stats["value_loss"] == pytest.approx(0.5 * squared / count, rel=1e-9)


@needs_model
def test_the_update_clips_ratios_at_the_papers_0_2_by_default():
    # Every token's ratio pi_theta / pi_old is 1.25 (old log-probs lowered by log 1.25; the sampler's equal
    # the old ones, so the importance weight min(pi / pi_b, 1) is 1): beyond 1 + 0.2, so the clipped branch
    # is taken on every token with a positive advantage, and on none with a negative one (there the
    # unclipped -A r is the larger loss). At ratio 1.15 nothing is clipped.
    policy, ref, critic = tiny_models(torch.float64)
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))
    mask = batch["action_mask"]
    positive_share = ((batch["advantages"] > 0) & mask).sum().item() / mask.sum().item()
    assert 0.2 < positive_share < 0.8
    for ratio, clipped in ((1.25, positive_share), (1.15, 0.0)):
        shifted = dict(batch, old_logprobs=batch["old_logprobs"] - math.log(ratio))
        shifted["sampler_logprobs"] = shifted["old_logprobs"]
        p_opt, _ = ppo.make_optimizer(copy.deepcopy(policy))
        v_opt, _ = ppo.make_optimizer(copy.deepcopy(critic))
        stats = ppo.ppo_update(copy.deepcopy(policy), copy.deepcopy(critic), p_opt, v_opt, shifted,
                               ppo.PPOSettings(minibatches=1, micro_batch_size=4))
        assert stats["clip_fraction"] == pytest.approx(clipped), ratio


def rows_of(batch: dict, rows: slice) -> dict:
    """The prepared batch restricted to some episodes (per-episode tensors sliced, the rest kept)."""
    B = len(batch["tokens"])
    return {k: v[rows] if isinstance(v, torch.Tensor) and v.dim() and len(v) == B else v for k, v in batch.items()}


@needs_model
def test_each_mini_batch_step_uses_only_its_own_gradient():
    # Two mini-batches, learning rate 0 (the weights stay put): the gradient left after the update is the
    # second mini-batch's alone, exactly what an update on its episodes only leaves. Gradients carried over
    # from the first mini-batch (a missing zero_grad) would be added to it.
    policy, ref, critic = tiny_models(torch.float64)
    batch = ppo.prepare_batch(four_episodes(), policy, ref, critic, ppo.PPOSettings(micro_batch_size=4))

    def grads_left(batch, minibatches):
        p, c = copy.deepcopy(policy), copy.deepcopy(critic)
        p_opt, _ = ppo.make_optimizer(p, lr=0.0)
        v_opt, _ = ppo.make_optimizer(c, lr=0.0)
        ppo.ppo_update(p, c, p_opt, v_opt, batch, ppo.PPOSettings(minibatches=minibatches, micro_batch_size=1,
                                                                  max_grad_norm=1e9))
        return [q.grad for q in p.parameters()] + [q.grad for q in c.parameters()]
    for a, b in zip(grads_left(batch, 2), grads_left(rows_of(batch, slice(2, 4)), 1)):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b)


def test_clip_grad_norm_scales_the_global_norm_down_to_max_norm_only():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([12.0])            # global norm sqrt(9+16+144) = 13
    assert ppo.clip_grad_norm([a, b], max_norm=6.5).item() == pytest.approx(13.0)
    torch.testing.assert_close(a.grad, torch.tensor([1.5, 2.0]), rtol=1e-6, atol=0)   # halved: norm 6.5
    torch.testing.assert_close(b.grad, torch.tensor([6.0]), rtol=1e-6, atol=0)
    assert ppo.clip_grad_norm([a, b], max_norm=100.0).item() == pytest.approx(6.5)
    torch.testing.assert_close(a.grad, torch.tensor([1.5, 2.0]), rtol=1e-6, atol=0)   # below max_norm: untouched


def test_micro_batches_group_episodes_of_similar_length():
    # Each micro-batch is as long as its longest episode: grouping the short episodes together (and the long
    # ones) computes 2x12 + 2x100 token slots here, not 2x100 + 2x98 as rows in order would. Every row is
    # used exactly once, and only rows of the mini-batch given.
    lengths = torch.tensor([10, 100, 12, 98, 50])
    batches = list(ppo._micro_batches(torch.tensor([0, 1, 2, 3]), lengths, micro_batch_size=2))
    assert sorted(int(i) for idx, _ in batches for i in idx) == [0, 1, 2, 3]
    assert [(sorted(idx.tolist()), L) for idx, L in batches] == [([0, 2], 12), ([1, 3], 100)]
