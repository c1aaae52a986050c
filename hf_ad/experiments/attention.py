"""Experiment `attention`: where AD looks. Last-layer attention from the current step to the transitions
in its window, split by whether the earlier transition carried a reward.

AD plays every held-out goal for `episodes` episodes (`seeds` seeds, sampled) while its transitions are
recorded. For two phases, the 80 steps of episodes `EARLY_END - 3 .. EARLY_END` (while AD is still
finding the goal) and of the last four episodes, the recorded stream is fed again through a fresh cache up
to the phase (`InContextAgent.prefill`, exactly the streaming computation of the rollout) and the phase's
transitions in one cached call with `output_attentions=True` (the model loaded with eager attention; the
same logits). Each query (a step of the phase) sees the last `sliding_window` transitions; a key is
*rewarded* when its token carries reward 1 (`prev_reward`: the move into it paid, i.e. the agent had just
stepped onto the goal). Reported per phase: the mean attention weight per key by distance back (heads
averaged; a uniform spread is 1 / window), separately for rewarded and unrewarded keys, and the share of
the attention mass on rewarded keys next to their share of the keys.

    hf-ad experiment attention --out docs/evidence/attention
"""

from __future__ import annotations

import numpy as np
import torch

from hf_ad.experiments.common import ExperimentConfig, finish, load_agent, play, setting
from hf_ad.plotting import Band, Level, save_band_plot

NAME = "attention"
EPISODES = 40
EARLY_END = 12  # the early phase: the four episodes ending with this one (1-based)


def as_tensor(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), device=device).to(dtype)


def phase_attention(agent, observations, actions, rewards, start: int, length: int) -> np.ndarray:
    """Last-layer attention (heads averaged) of the steps `start .. start + length - 1` of the recorded
    streams: `(B, length, keys)`, keys in time order ending at the last step (the prefix goes through the
    cache first)."""
    agent.reset(num_streams=len(actions))
    prefix = slice(0, start)
    agent.prefill(
        {
            "observations": observations[:, prefix],
            "actions": actions[:, prefix],
            "rewards": rewards[:, prefix],
        }
    )
    phase = slice(start, start + length)
    before = slice(start - 1, start + length - 1)  # the previous action and reward of each step
    with torch.inference_mode():
        output = agent.model(
            as_tensor(observations[:, phase], torch.long, agent.device),  # (B, T, 2)
            as_tensor(actions[:, before], torch.long, agent.device),  # (B, T)
            as_tensor(rewards[:, before], agent.model.dtype, agent.device),  # (B, T)
            past_key_values=agent.cache,
            use_cache=True,
            output_attentions=True,
        )
    return output.attentions[-1].float().mean(dim=1).cpu().numpy()  # (B, T, keys)


def by_distance(weights: np.ndarray, rewarded_keys: np.ndarray, window: int) -> dict:
    """Mean attention per key at each distance back (0 = the step itself), for rewarded and unrewarded keys,
    per stream then averaged over streams (streams without such a key at that distance left out)."""
    queries, keys = weights.shape[1:]
    distance = np.arange(queries)[:, None] + (keys - queries) - np.arange(keys)[None, :]  # (T, keys)
    groups = {}
    for group, member in (("rewarded", rewarded_keys), ("unrewarded", ~rewarded_keys)):
        means = np.full((len(weights), window), np.nan)  # (B, window)
        for back in range(window):
            at = (distance == back)[None] & member[:, None, :]  # (B, T, keys)
            count = at.sum(axis=(1, 2))  # (B,)
            total = (weights * at).sum(axis=(1, 2))  # (B,)
            means[:, back] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        groups[group] = {
            "mean": np.nanmean(means, axis=0).tolist(),
            "std": np.nanstd(means, axis=0).tolist(),
            "streams": (~np.isnan(means)).sum(axis=0).tolist(),
        }
    valid = (distance >= 0) & (distance < window)  # (T, keys)
    key_share = (valid[None] & rewarded_keys[:, None, :]).sum(axis=(1, 2)) / valid.sum()  # (B,)
    mass_share = (weights * rewarded_keys[:, None, :]).sum(axis=(1, 2)) / queries  # (B,)
    return groups | {
        "rewarded_key_share": float(key_share.mean()),
        "rewarded_attention_share": float(mass_share.mean()),
    }


def run(config: ExperimentConfig, command: str) -> dict:
    config = config.resolved(NAME, EPISODES)
    held_out = setting(config)
    agent = load_agent(config.model, config, attn_implementation="eager")
    window = agent.config.sliding_window
    record: list = []
    returns = play(agent, held_out, config.episodes, config.seed, record=record)
    observations, actions, rewards = (
        np.stack(column, axis=1) for column in zip(*record, strict=True)
    )  # (B, S, ...)
    steps_per_episode = actions.shape[1] // config.episodes
    phases = {}
    for last_episode in dict.fromkeys((min(EARLY_END, config.episodes), config.episodes)):
        end = last_episode * steps_per_episode
        start = max(end - window, 1)
        label = f"episodes {start // steps_per_episode + 1}-{last_episode}"
        weights = phase_attention(agent, observations, actions, rewards, start, end - start)
        first_key = start - (weights.shape[2] - (end - start))  # the position of key 0
        key_positions = np.arange(first_key, end)  # (keys,)
        rewarded_keys = rewards[:, np.maximum(key_positions - 1, 0)] > 0  # (B, keys): the token's prev_reward
        rewarded_keys[:, key_positions == 0] = False
        phases[label] = by_distance(weights, rewarded_keys, window) | {
            "mean_return": float(returns[:, start // steps_per_episode : last_episode].mean())
        }
    distances = np.arange(window)
    bands = [
        Band(distances, phase[group]["mean"], phase[group]["std"], f"{label}, {group} keys")
        for label, phase in phases.items()
        for group in ("rewarded", "unrewarded")
    ]
    save_band_plot(
        f"{config.out}/attention.png",
        bands,
        f"AD's last-layer attention per key (held-out goals, {config.seeds} seeds)",
        levels=[Level(1 / window, f"uniform (1/{window})", "black", ":")],
        xlabel="transitions back from the current step",
        ylabel="mean attention weight per key",
    )
    results = {"window": window, "phases": phases, "mean_return": returns.mean(axis=0).tolist()}
    return finish(NAME, command, config, held_out, results)
