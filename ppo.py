"""PPO with a turn-level value: the learning rule of RLEF.

Gehring et al., "RLEF: Grounding Code LLMs in Execution Feedback with Reinforcement Learning", ICML 2025
(arXiv 2410.02089), §2.2 (the learning rule) and App. A.1 (its settings).

A multi-turn episode is ONE token sequence (prompt, response 0, feedback, response 1, ...). Every per-token
tensor in this file is indexed by token position i and lines up with `tokens`:
    logprobs[:, i] = log pi(tokens[:, i] | tokens[:, :i])      (column 0 is 0; it is never an action)
    action_mask[:, i] = 1 on sampled assistant tokens only     (prompt, headers and feedback are never trained)
Values: critic(tokens)[:, j] = V(tokens[:, :j+1]). The turn-level critic of §2.2 reads it at value_positions[t],
the last token before response t (V(c_t)); the token-level ablation uses V(tokens[:, :i]) for action token i.
Shapes: B episodes, T tokens (the longest episode), N turns (the most turns of an episode).

The maths are small pure functions over tensors and masks (tested on CPU in tests/test_ppo.py); masked
positions are removed with torch.where, never multiplied by 0, so even inf/NaN there changes nothing.
"""
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F

from infra.parallel import clip_grad_norm


@dataclass
class Episode:
    """One episode as PPO reads it (rlef.Dialogue is one); the per-token lists line up with ``tokens``."""
    # the whole dialogue as one token sequence: prompt, responses, feedback
    tokens: list[int] = field(default_factory=list)
    # 1 on sampled assistant tokens (incl. the closing <|eot_id|>), 0 elsewhere
    action_mask: list[int] = field(default_factory=list)
    # response index t = 0, 1, 2... on action tokens, -1 elsewhere
    turn_ids: list[int] = field(default_factory=list)
    # per turn t: index of the token just before response t's first sampled token, where V(c_t) is read
    value_positions: list[int] = field(default_factory=list)
    # execution reward r per turn: -0.2 if no code; the last turn also +1 or -1
    turn_rewards: list[float] = field(default_factory=list)
    # per token: log-prob under the behaviour policy (0 where action_mask is 0)
    sampler_logprobs: list[float] = field(default_factory=list)


@dataclass
class PPOSettings:
    """The settings of the learning rule, as ``prepare_batch`` and ``ppo_update`` read them. Defaults are the
    paper's (§2.2, App. A.1) where it gives one."""
    beta: float = 0.05                  # KL penalty towards the reference policy rho, per turn
    advantage_mode: str = "turn"        # "turn": the paper's turn-level value; "token": the GAE ablation
    temperature: float = 1.0            # the rollouts' sampling temperature: every log-prob is taken at it
    clip_eps: float = 0.2               # PPO ratio clipping
    value_clip: float = 0.2             # value clipping around the old value
    max_grad_norm: float = 1.0          # gradient-norm clipping (our choice)
    minibatches: int = 4                # optimiser steps per batch and epoch (paper: 4 updates of 256)
    micro_batch_size: int = 4           # episodes per forward/backward; gradients accumulate over them
    epochs: int = 1                     # passes over each batch
    gamma: float = 1.0                  # token-level ablation only: GAE's discount and lambda
    lam: float = 1.0
    # min(pi / pi_b, 1) for a stale sampler (§2.2). rlef.py samples with the current weights (pi_b = pi_old):
    # there the weight would read rounding as staleness and, past the clip, zero tokens' gradients.
    importance_correction: bool = False


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of x where mask is true; whatever sits at masked positions (even inf/NaN) is ignored."""
    return torch.where(mask.bool(), x, torch.zeros_like(x)).sum()


def collate(episodes: list[Episode], pad_id: int = 0) -> dict:
    """Right-pad episodes into tensors: per-token (B, T) and per-turn (B, N), N = most turns in the batch."""
    B, T, N = len(episodes), max(len(e.tokens) for e in episodes), max(len(e.turn_rewards) for e in episodes)
    out = dict(tokens=torch.full((B, T), pad_id, dtype=torch.long), action_mask=torch.zeros(B, T, dtype=torch.bool),
               turn_ids=torch.full((B, T), -1, dtype=torch.long), sampler_logprobs=torch.zeros(B, T),
               value_positions=torch.zeros(B, N, dtype=torch.long), turn_mask=torch.zeros(B, N, dtype=torch.bool),
               turn_rewards=torch.zeros(B, N), lengths=torch.tensor([len(e.tokens) for e in episodes]))
    for b, e in enumerate(episodes):
        L, n = len(e.tokens), len(e.turn_rewards)
        assert len(e.action_mask) == len(e.turn_ids) == len(e.sampler_logprobs) == L and len(e.value_positions) == n
        out["tokens"][b, :L] = torch.tensor(e.tokens)
        out["action_mask"][b, :L] = torch.tensor(e.action_mask, dtype=torch.bool)
        out["turn_ids"][b, :L] = torch.tensor(e.turn_ids)
        out["sampler_logprobs"][b, :L] = torch.tensor(e.sampler_logprobs)
        out["value_positions"][b, :n] = torch.tensor(e.value_positions)
        out["turn_mask"][b, :n] = True
        out["turn_rewards"][b, :n] = torch.tensor(e.turn_rewards)
    # The layout contract: a token is trained iff it belongs to a turn (only the model's own tokens are actions,
    # §2.2), and V(c_t) is read on the untrained token right before response t's first token.
    assert torch.equal(out["action_mask"], out["turn_ids"] >= 0), "action_mask and turn_ids disagree"
    vp, turn = out["value_positions"], torch.arange(N).expand(B, N)
    assert ((out["turn_ids"].gather(1, vp + 1) == turn) & ~out["action_mask"].gather(1, vp))[out["turn_mask"]].all(), \
        "value_positions[t] must be the token just before response t"
    return out


def sequence_logprobs(policy, tokens: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(tokens[:, i] | tokens[:, :i]) and the entropy of that distribution, at index i (column 0 = 0).

    Token i is predicted at position i-1, so the model sees tokens[:, :-1] with targets tokens[:, 1:]; the model
    computes both chunk by chunk over T (full fp32 (T, 128k) logits would take GBs per sequence). pi is the
    policy at ``temperature``, softmax(logits / temperature): the distribution the rollouts were sampled from.
    """
    logprobs, entropy = policy(tokens[:, :-1], targets=tokens[:, 1:], temperature=temperature)  # (B, T-1) each
    return F.pad(logprobs, (1, 0)), F.pad(entropy, (1, 0))              # (B, T), aligned with tokens


def turn_mean(x: torch.Tensor, turn_ids: torch.Tensor, n_turns: int) -> torch.Tensor:
    """Mean of per-token x over each turn's action tokens: (B, T) -> (B, N)."""
    action, idx = turn_ids >= 0, turn_ids.clamp(min=0)
    sums = x.new_zeros(x.shape[0], n_turns).scatter_add_(1, idx, torch.where(action, x, torch.zeros_like(x)))
    counts = x.new_zeros(x.shape[0], n_turns).scatter_add_(1, idx, action.to(x.dtype))
    return sums / counts.clamp(min=1)


def turn_rewards_with_kl(turn_rewards, logprobs, ref_logprobs, turn_ids, beta: float = 0.05) -> torch.Tensor:
    """R_t = r_t - beta * log(pi(a_t|c_t) / rho(a_t|c_t)), pi(a_t|c_t) the geometric mean of token probabilities.

    The paper's reward (§2.2): the KL term is beta times the MEAN per-token log-ratio over turn t's action
    tokens, which avoids a bias towards short responses. turn_rewards (B, N), logprobs (B, T) -> (B, N).
    """
    return turn_rewards - beta * turn_mean(logprobs - ref_logprobs, turn_ids, turn_rewards.shape[1])


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the valid entries of the whole batch, across data-parallel ranks when distributed.

    The paper normalises advantages; we use the population std over all valid entries of all ranks, so the
    result does not depend on how the batch is split. Masked entries are set to 0.
    """
    stats = torch.stack([masked_sum(x, mask), mask.sum().to(x.dtype)])
    total, count = _all_reduce_sum(stats).unbind()
    mean = total / count
    var = _all_reduce_sum(masked_sum((x - mean) ** 2, mask).reshape(1))[0] / count
    return torch.where(mask.bool(), (x - mean) * torch.rsqrt(var + eps), torch.zeros_like(x))


def turn_advantages(rewards, values, turn_mask, normalize: bool = True):
    """Turn-level advantages: returns G_t = sum_{i>=t} R_i (gamma = 1) and A_t = G_t - V(c_t), normalised.

    rewards, values, turn_mask: (B, N) -> (advantages, returns), each (B, N). Paper §2.2 (no GAE).
    """
    rewards = torch.where(turn_mask, rewards, torch.zeros_like(rewards))
    returns = rewards.flip(1).cumsum(1).flip(1)  # reward-to-go; padded turns add 0 and are masked anyway
    advantages = torch.where(turn_mask, returns - values, torch.zeros_like(returns))
    return (whiten(advantages, turn_mask) if normalize else advantages), returns


def token_rewards(turn_rewards, logprobs, ref_logprobs, turn_ids, beta: float = 0.05) -> torch.Tensor:
    """Per-token rewards for the token-level value ablation (the paper does not spell them out: our choice).

    Token i of turn t gets -beta * (log pi - log rho)_i / n_t, and turn t's last action token also gets r_t.
    So the rewards of a turn sum exactly to the paper's R_t (mean-token KL), and with gamma = lambda = 1
    the token-level return at a turn's first token equals the turn-level return. (B, T) -> (B, T).
    """
    action = turn_ids >= 0
    idx = turn_ids.clamp(min=0)
    n = turn_rewards.new_zeros(turn_rewards.shape).scatter_add_(1, idx, action.to(turn_rewards.dtype))
    kl = torch.where(action, logprobs - ref_logprobs, torch.zeros_like(logprobs))
    rewards = -beta * kl / n.gather(1, idx).clamp(min=1)
    pos = torch.arange(turn_ids.shape[1], device=turn_ids.device).expand_as(turn_ids)
    last = idx.new_zeros(turn_rewards.shape).scatter_reduce_(1, idx, torch.where(action, pos, 0), "amax")  # (B, N)
    is_last = action & (pos == last.gather(1, idx))
    return rewards + torch.where(is_last, turn_rewards.gather(1, idx), torch.zeros_like(rewards))


def gae_advantages(rewards, values, action_mask, gamma: float = 1.0, lam: float = 1.0, normalize: bool = True):
    """GAE(gamma, lambda) over action tokens only (Schulman et al. 2016), for the token-level value ablation.

    Masked (prompt/feedback) positions are skipped: the next value and the running advantage are carried
    across them unchanged, exactly like verl's multi-turn GAE, so a feedback span is not a time step and
    values/rewards there change nothing. rewards, values, action_mask: (B, T) -> (B, T) each.
    """
    next_value = values.new_zeros(values.shape[0])  # (B,)
    last_gae = values.new_zeros(values.shape[0])
    advantages = torch.zeros_like(values)
    for i in reversed(range(values.shape[1])):
        m = action_mask[:, i]
        delta = rewards[:, i] + gamma * next_value - values[:, i]
        next_value = torch.where(m, values[:, i], next_value)
        last_gae = torch.where(m, delta + gamma * lam * last_gae, last_gae)
        advantages[:, i] = last_gae
    advantages = torch.where(action_mask, advantages, torch.zeros_like(advantages))
    returns = torch.where(action_mask, advantages + values, torch.zeros_like(advantages))
    return (whiten(advantages, action_mask) if normalize else advantages), returns


def policy_loss_sum(logprobs, old_logprobs, sampler_logprobs, advantages, mask, clip_eps: float = 0.2,
                    importance_correction: bool = False):
    """SUM over action tokens of the PPO clipped surrogate -min(r A, clip(r, 1-eps, 1+eps) A) (§2.2).

    r = pi_theta/pi_old * stopgrad(min(pi_theta/pi_b, 1)) with ``importance_correction`` (the truncated weight
    corrects for a stale behaviour policy pi_b), else pi_theta/pi_old: on-policy, pi_b = pi_old. All (B, T).
    Returns (loss_sum, clipped_count); divide by the mini-batch's action-token count (see ppo_update).
    """
    # zero masked entries first (not only at the end) so that inf/NaN there cannot turn a gradient into NaN
    logprobs, old_logprobs, sampler_logprobs, advantages = (
        torch.where(mask.bool(), x, 0.0) for x in (logprobs, old_logprobs, sampler_logprobs, advantages))
    ratio = torch.exp(logprobs - old_logprobs)
    if importance_correction:
        ratio = ratio * torch.exp(logprobs.detach() - sampler_logprobs).clamp(max=1.0)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    return masked_sum(torch.maximum(unclipped, clipped), mask), masked_sum((clipped > unclipped).float(), mask)


def value_loss_sum(values, old_values, returns, mask, value_clip: float = 0.2) -> torch.Tensor:
    """SUM over valid entries of 1/2 max((V - R)^2, (clip(V, V_old - a, V_old + a) - R)^2), a = 0.2 (§2.2).

    (B, N) for the turn-level critic, (B, T) for the token-level one.
    """
    values, old_values, returns = (torch.where(mask.bool(), x, 0.0) for x in (values, old_values, returns))
    clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
    return 0.5 * masked_sum(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def _values(critic, tokens, value_positions, mode: str) -> torch.Tensor:
    """V(c_t) at value_positions (B, N) for mode 'turn'; V(tokens[:, :i]) at each index i (B, T) for 'token'."""
    v = critic(tokens)  # (B, T): V(tokens[:, :j+1]) at j
    return v.gather(1, value_positions) if mode == "turn" else F.pad(v[:, :-1], (1, 0))


def _micro_batches(rows: torch.Tensor, lengths: torch.Tensor, micro_batch_size: int):
    """Yield (row indices, L): the rows shortest first, so that episodes of similar length share a micro-batch,
    whose trailing padding is trimmed to its longest episode. (Unsorted, a micro-batch is as long as its
    longest episode, and the padding's compute, quadratic in attention, can exceed the episodes'.) The
    order of the rows does not change what is computed: scores are written back per row, and gradients are
    sums over the whole mini-batch."""
    rows = rows[torch.sort(lengths[rows], stable=True).indices]
    for s in range(0, len(rows), micro_batch_size):
        idx = rows[s:s + micro_batch_size]
        yield idx, int(lengths[idx].max())


@torch.no_grad()
def prepare_batch(episodes, policy, ref_policy, critic, settings: PPOSettings) -> dict:
    """Score a batch: old/reference log-probs, old values, rewards, returns and advantages (paper §2.2).

    Old log-probs are recomputed by the trainer's policy, not taken from the sampler (whose numerics differ:
    taking them would make PPO silently off-policy); the gap mean |old - sampler| over action tokens is
    returned as batch['stats']['logprob_gap']. The KL penalty of the reward uses these recomputed log-probs;
    ref_policy=None means rho = pi_old (no KL penalty).

    ``settings.temperature`` is the one the rollouts were sampled at, and every log-prob here (and in ``ppo_update``)
    is taken at it, so that pi_theta, pi_old and the sampler's pi_b are one distribution, softmax(logits / T),
    and the importance weight min(pi_theta / pi_b, 1), when used, measures how stale the sampler's weights were.
    Why the trainer takes the sampler's temperature rather than the sampler recording untempered log-probs:
    the tokens ARE drawn from the tempered policy, and a policy gradient E_a[A grad log pi(a)] is unbiased
    only for the distribution that drew a; PPO's ratio and clipping also bound the change of that
    distribution. Untempered pi_b would keep the ratio at 1 but train softmax(logits) on samples of another
    distribution with no correction at all. At the paper's training temperature, 1.0 with no top-p, the
    two readings coincide. The reference rho is scored at the same temperature, so that the KL penalty
    compares the two policies as they are sampled.
    """
    advantage_mode, temperature, beta = settings.advantage_mode, settings.temperature, settings.beta
    assert advantage_mode in ("turn", "token")
    param = next(policy.parameters())
    # Everything stays on the policy's device (NCCL all-reduces need it); fp64 models keep fp64 statistics.
    batch = {k: v.to(param.device) for k, v in collate(episodes).items()}
    tokens, mask, turn_ids = batch["tokens"], batch["action_mask"], batch["turn_ids"]
    dtype = torch.promote_types(param.dtype, torch.float32)
    old = torch.zeros(tokens.shape, dtype=dtype, device=param.device)  # (B, T)
    ref = torch.zeros_like(old)
    values = torch.zeros(batch["value_positions"].shape if advantage_mode == "turn" else tokens.shape, dtype=dtype,
                         device=param.device)  # (B, N) or (B, T)
    for idx, L in _micro_batches(torch.arange(len(episodes), device=param.device), batch["lengths"],
                                  settings.micro_batch_size):
        old[idx, :L] = sequence_logprobs(policy, tokens[idx, :L], temperature)[0].to(dtype)
        ref[idx, :L] = sequence_logprobs(ref_policy if ref_policy is not None else policy, tokens[idx, :L],
                                         temperature)[0].to(dtype)
        v = _values(critic, tokens[idx, :L], batch["value_positions"][idx], advantage_mode).to(dtype)
        values[idx, :v.shape[1]] = v
    rewards = turn_rewards_with_kl(batch["turn_rewards"], old, ref, turn_ids, beta)  # (B, N)
    if advantage_mode == "turn":
        turn_adv, returns = turn_advantages(rewards, values, batch["turn_mask"])
        advantages = torch.where(mask, turn_adv.gather(1, turn_ids.clamp(min=0)), 0.0)  # (B, T): shared per turn
    else:
        tok_rewards = token_rewards(batch["turn_rewards"], old, ref, turn_ids, beta)
        advantages, returns = gae_advantages(tok_rewards, values, mask, settings.gamma, settings.lam)
    n = mask.sum().clamp(min=1)
    stats = dict(logprob_gap=(masked_sum((old - batch["sampler_logprobs"]).abs(), mask) / n).item(),
                 kl_penalty=(masked_sum(old - ref, mask) / n).item(),
                 episode_return=(masked_sum(rewards, batch["turn_mask"]) / len(episodes)).item())
    batch.update(old_logprobs=old, ref_logprobs=ref, old_values=values, returns=returns, rewards=rewards,
                 advantages=advantages, advantage_mode=advantage_mode, temperature=temperature, stats=stats)
    return batch


def make_optimizer(model, lr: float = 2e-7, weight_decay: float = 0.1, warmup_updates: int = 50,
                   betas: tuple[float, float] = (0.9, 0.95)):
    """AdamW with linear warm-up over optimiser updates (paper §2.2, App. A.1: lr 2e-7, weight decay 0.1, 50 warm-up
    steps).

    Our choices: weight decay only on >=2-D weights (matrices, embeddings), not on norms/biases; betas
    (0.9, 0.95) as in Llama training, since the paper does not state them; constant lr after warm-up.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [dict(params=[p for p in params if p.dim() >= 2], weight_decay=weight_decay),
              dict(params=[p for p in params if p.dim() < 2], weight_decay=0.0)]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / max(1, warmup_updates)))
    return opt, sched


def ppo_update(policy, critic, policy_opt, critic_opt, batch: dict, settings: PPOSettings, schedulers=None) -> dict:
    """PPO epochs over ``settings.minibatches`` contiguous mini-batches of a prepared batch; one step each.

    Gradients accumulate over micro-batches of ``settings.micro_batch_size`` episodes (each trimmed to its length).
    Each micro-batch's loss is a SUM divided by the count of action tokens (turns, for the turn-level value)
    of the WHOLE mini-batch on ALL ranks, times world_size because DDP/FSDP average gradients over ranks: so
    the gradient is the exact token mean of the mini-batch however it is split (averaging per micro-batch
    would weight a short micro-batch's tokens more: x1/n1 + x2/n2 is not (x1 + x2)/(n1 + n2)).
    Every rank must hold the same number of episodes (same number of forward/backward calls for DDP).
    Statistics are token means over this rank's data (policy/value loss: mean over mini-batches).
    """
    value_mask = batch["turn_mask"] if batch["advantage_mode"] == "turn" else batch["action_mask"]  # (B, N) / (B, T)
    sums = dict.fromkeys(["policy_loss", "value_loss", "policy_grad_norm", "value_grad_norm"], 0.0)
    token_sums = dict.fromkeys(["clip_fraction", "approx_kl", "ref_kl", "entropy", "tokens"], 0.0)
    steps = 0
    for _ in range(settings.epochs):
        for rows in torch.arange(len(batch["tokens"]), device=batch["tokens"].device).chunk(settings.minibatches):
            policy_opt.zero_grad(set_to_none=True)
            critic_opt.zero_grad(set_to_none=True)
            counts = torch.stack([batch["action_mask"][rows].sum(), value_mask[rows].sum()]).double()
            n_tok, n_val = _all_reduce_sum(counts).clamp(min=1).tolist()  # whole mini-batch, all ranks
            for idx, L in _micro_batches(rows, batch["lengths"], settings.micro_batch_size):
                losses, micro_sums = _micro_batch_backward(policy, critic, batch, idx, L, value_mask,
                                                           (n_tok, n_val), settings)
                for k in losses:
                    sums[k] += losses[k]
                for k in micro_sums:
                    token_sums[k] += micro_sums[k]
            sums["policy_grad_norm"] += float(clip_grad_norm(policy.parameters(), settings.max_grad_norm))
            sums["value_grad_norm"] += float(clip_grad_norm(critic.parameters(), settings.max_grad_norm))
            policy_opt.step()
            critic_opt.step()
            for s in schedulers or ():
                s.step()
            steps += 1
    stats = {k: v / steps for k, v in sums.items()}
    n_seen = token_sums.pop("tokens")
    stats.update({k: v / max(1, n_seen) for k, v in token_sums.items()})
    return stats


def _micro_batch_backward(policy, critic, batch: dict, idx, L: int, value_mask, counts: tuple[float, float],
                          settings: PPOSettings):
    """Accumulate one micro-batch's gradients (rows idx, trimmed to L tokens): the policy's loss sum times
    world / n_tok, then the critic's times world / n_val (``counts``: the whole mini-batch's n_tok, n_val; see
    ppo_update; one backward each, so the policy's graph is freed before the critic runs). Returns those losses
    and statistics' sums over its action tokens."""
    micro_batch = {k: batch[k][idx, :L] for k in ("tokens", "action_mask", "old_logprobs", "ref_logprobs",
                                                  "sampler_logprobs", "advantages")}   # (B_mb, L) each
    mask = micro_batch["action_mask"]
    logprobs, entropy = sequence_logprobs(policy, micro_batch["tokens"], batch.get("temperature", 1.0))  # (B_mb, L)
    pl, n_clip = policy_loss_sum(logprobs, micro_batch["old_logprobs"], micro_batch["sampler_logprobs"],
                                 micro_batch["advantages"], mask, settings.clip_eps,
                                 settings.importance_correction)
    (n_tok, n_val), world = counts, dist.get_world_size() if _distributed() else 1
    (pl * world / n_tok).backward()
    values = _values(critic, micro_batch["tokens"], batch["value_positions"][idx], batch["advantage_mode"])
    cols = slice(None) if batch["advantage_mode"] == "turn" else slice(0, L)  # turn (B_mb, N) or token (B_mb, L)
    vl = value_loss_sum(values, batch["old_values"][idx, cols], batch["returns"][idx, cols], value_mask[idx, cols],
                        settings.value_clip)
    (vl * world / n_val).backward()
    with torch.no_grad():
        log_ratio = logprobs - micro_batch["old_logprobs"]   # (B_mb, L)
        # x world: the mean over ranks of these losses is the global loss
        losses = {"policy_loss": pl.item() * world / n_tok, "value_loss": vl.item() * world / n_val}
        token_sums = {"clip_fraction": n_clip.item(),
                      # k3 estimator of KL(pi_old || pi_theta): unbiased, always >= 0 (Schulman, "Approximating KL")
                      "approx_kl": masked_sum(torch.expm1(log_ratio) - log_ratio, mask).item(),
                      "ref_kl": masked_sum(logprobs - micro_batch["ref_logprobs"], mask).item(),
                      "entropy": masked_sum(entropy, mask).item(),
                      "tokens": int(mask.sum())}
    return losses, token_sums
