"""Experiment `prompting` (the paper's figure 6): AD and ED prompted with one demonstration episode.

Demonstrations come from learning histories on the held-out goals themselves: Q-learning from scratch (the
Dark Room source, its recipe options; one learner per goal, seeded with `seed`) runs `DEMO_EPISODES`
episodes on every held-out goal, and for each quality q in `QUALITIES` the demonstration of a goal is the
first episode of its history whose return is nearest to q x the goal's optimal return (the shipped histories
hold the training goals only). The prompt, one episode of 20 transitions, is prefilled into the context of
every stream of its goal (`InContextAgent.prefill`); then the model plays `episodes` episodes on that goal.
The paper's claim: AD improves beyond its prompt, ED stays near its prompt's level. AD and ED without a
prompt are the reference.

    hf-ad experiment prompting --out docs/evidence/prompting
"""

from __future__ import annotations

import numpy as np

from hf_ad.experiments.common import (
    ExperimentConfig,
    Setting,
    curves,
    finish,
    learn_from_scratch,
    load_agent,
    play,
    setting,
)
from hf_ad.plotting import Band, Level, save_band_plot

NAME = "prompting"
EPISODES = 50
QUALITIES = (0.05, 0.5, 1.0)  # the demonstration's return as a fraction of the goal's optimal return
DEMO_EPISODES = 200  # the length of the learning history the demonstrations are taken from


def demonstrations(
    held_out: Setting, seed: int
) -> tuple[dict[float, dict[str, np.ndarray]], dict[float, list]]:
    """One prompt per quality, per stream (`(streams, L, ...)` arrays), and each goal's prompt return."""
    histories = list(learn_from_scratch(held_out, held_out.tasks, DEMO_EPISODES, seed))
    returns = np.stack([block.returns for block in histories], axis=1)  # (tasks, E)
    optimal = np.array([held_out.oracle([task]) for task in held_out.tasks])  # (tasks,)
    prompts, prompt_returns = {}, {}
    for quality in QUALITIES:
        chosen = np.abs(returns - quality * optimal[:, None]).argmin(axis=1)  # (tasks,) first nearest episode
        blocks = [histories[episode] for episode in chosen]
        tasks = np.arange(len(held_out.tasks))
        prompt = {
            "observations": np.stack([block.observations[k] for k, block in zip(tasks, blocks, strict=True)]),
            "actions": np.stack([block.actions[k] for k, block in zip(tasks, blocks, strict=True)]),
            "rewards": np.stack([block.rewards[k] for k, block in zip(tasks, blocks, strict=True)]),
        }  # (tasks, L, ...) each
        prompts[quality] = {key: np.concatenate([value] * held_out.seeds) for key, value in prompt.items()}
        prompt_returns[quality] = returns[tasks, chosen].tolist()
    return prompts, prompt_returns


def run(config: ExperimentConfig, command: str) -> dict:
    config = config.resolved(NAME, EPISODES)
    held_out = setting(config)
    episodes, seed = config.episodes, config.seed
    prompts, prompt_returns = demonstrations(held_out, seed)
    oracle = held_out.oracle()
    methods, bands = {}, {"AD": [], "ED": []}
    for model_label, path in (("AD", config.model), ("ED", config.ed_model)):
        agent = load_agent(path, config)
        unprompted = curves(play(agent, held_out, episodes, seed), held_out.seeds)
        methods[f"{model_label}, no prompt"] = unprompted
        bands[model_label].append(
            Band(np.arange(1, episodes + 1), unprompted["mean"], unprompted["std"], "no prompt")
        )
        for quality in QUALITIES:
            curve = curves(play(agent, held_out, episodes, seed, prompt=prompts[quality]), held_out.seeds)
            prompt_return = float(np.mean(prompt_returns[quality]))
            methods[f"{model_label}, prompt {quality:g}"] = curve | {
                "prompt_quality": quality,
                "prompt_return": prompt_return,
                "prompt_return_per_task": prompt_returns[quality],
            }
            label = f"prompt at {quality:g} x optimal"
            bands[model_label].append(
                Band(
                    np.arange(1, episodes + 1),
                    curve["mean"],
                    curve["std"],
                    label,
                    prompt_return,
                    "its prompt",
                )
            )
    for model_label, model_bands in bands.items():
        save_band_plot(
            f"{config.out}/{model_label.lower()}.png",
            model_bands,
            f"{model_label} prompted with one demonstration episode (held-out goals, {config.seeds} seeds)",
            levels=[Level(oracle, "oracle", "black", ":")],
        )
    results = {
        "qualities": list(QUALITIES),
        "demo_episodes": DEMO_EPISODES,
        "oracle": oracle,
        "methods": methods,
    }
    return finish(NAME, command, config, held_out, results)
