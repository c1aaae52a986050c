"""InContextAgent: the context across episodes, the same numbers as the pipeline, misuse named."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import save_tiny_checkpoint

from hf_ad import InContextAgent, InContextRLPipeline, constants
from hf_ad.envs.dark_room import DarkRoomEnv

TASKS = [(0, 5), (1, 7), (8, 6)]
README = Path(__file__).resolve().parent.parent / "README.md"
SHIPPED = Path(__file__).resolve().parent.parent / "pretrained" / "ad-darkroom"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("agent") / "final", TASKS, initializer_range=0.2)


@pytest.fixture(scope="module")
def pipe(folder):
    return InContextRLPipeline.from_pretrained(folder, device="cpu")


def play(agent: InContextAgent, env: gym.vector.VectorEnv, num_episodes: int, seed: int) -> np.ndarray:
    """A user's own loop over a batched env: `(num_envs, num_episodes)` returns."""
    agent.reset(env.num_envs, seed=seed)
    returns = np.zeros((env.num_envs, num_episodes))
    obs, _ = env.reset(seed=seed)
    while agent.episodes.min() < num_episodes:
        episode = agent.episodes.copy()
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
        agent.observe(reward, terminated | truncated)
        live = episode < num_episodes
        returns[live, episode[live]] += reward[live]
    return returns


def test_a_users_loop_gives_the_pipelines_numbers(pipe):
    agent = InContextAgent(pipe.model)
    env = gym.make_vec(constants.DARK_ROOM, num_envs=len(TASKS), tasks=TASKS)
    returns = play(agent, env, num_episodes=4, seed=3)
    np.testing.assert_array_equal(returns, pipe(tasks=TASKS, num_episodes=4, seed=3).returns)


def test_the_context_runs_on_across_episodes_in_constant_memory(pipe):
    agent = InContextAgent(pipe.model, seed=0)
    agent.reset(2)
    obs = np.zeros((2, 2), dtype=np.int64)
    for _ in range(3 * 20):  # three episodes, longer than the window
        agent.act(obs)
        agent.observe([0.0, 1.0], [False, False])
    layer = agent.cache.layers[0]
    assert layer.keys.shape[2] == pipe.model.config.sliding_window  # (B, H, window, d): no growth
    assert layer.cumulative_length == 60
    assert agent.prev_reward.view(-1).tolist() == [0.0, 1.0]


def test_seeded_sampling_repeats_and_greedy_ignores_the_seed(pipe):
    def actions(seed, greedy=False):
        agent = InContextAgent(pipe.model, seed=seed, greedy=greedy)
        agent.reset(3)
        out = []
        for step in range(30):
            out.append(agent.act(np.full((3, 2), step % 9)))
            agent.observe(np.zeros(3))
        return np.stack(out)

    np.testing.assert_array_equal(actions(1), actions(1))
    assert not np.array_equal(actions(1), actions(2))
    np.testing.assert_array_equal(actions(1, greedy=True), actions(2, greedy=True))


def test_streams_played_in_parts_act_as_in_one_run(pipe):
    """Each process of a launch plays a block of the streams: together they replay the whole run."""
    tasks = TASKS * 3  # 9 streams
    whole = pipe(tasks=tasks, num_episodes=4, seed=5).returns
    parts = [
        pipe(tasks=tasks[start:stop], num_episodes=4, seed=5, first_stream=start, total_streams=len(tasks))
        for start, stop in ((0, 4), (4, 9))
    ]
    np.testing.assert_array_equal(np.concatenate([part.returns for part in parts]), whole)
    assert not np.array_equal(pipe(tasks=tasks[4:], num_episodes=4, seed=5).returns, whole[4:])
    agent = InContextAgent(pipe.model)
    with pytest.raises(ValueError, match=r"streams \[3, 5\) are not part of a run of 4 streams"):
        agent.reset(2, first_stream=3, total_streams=4)


def test_prefill_equals_the_pipelines_prompt(pipe):
    prompt = {
        "observations": np.array([[4, 4], [5, 4], [5, 5]]),
        "actions": np.array([1, 3, 4]),
        "rewards": np.array([0.0, 0.0, 1.0], dtype=np.float32),
    }
    agent = InContextAgent(pipe.model)
    agent.reset(len(TASKS), seed=5)
    agent.prefill(prompt)
    assert agent.prev_action.view(-1).tolist() == [4] * len(TASKS)
    env = gym.make_vec(constants.DARK_ROOM, num_envs=len(TASKS), tasks=TASKS)
    returns = np.zeros((len(TASKS), 2))
    obs, _ = env.reset(seed=5)
    while agent.episodes.min() < 2:
        episode = agent.episodes.copy()
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
        agent.observe(reward, terminated | truncated)
        returns[np.arange(len(TASKS)), np.minimum(episode, 1)] += reward * (episode < 2)
    expected = pipe(tasks=TASKS, num_episodes=2, seed=5, prompt=prompt).returns
    np.testing.assert_array_equal(returns, expected)


def test_misuse_is_named(pipe):
    agent = InContextAgent(pipe.model)
    with pytest.raises(RuntimeError, match=r"act\(\) before reset\(\)"):
        agent.act(np.zeros((1, 2), dtype=np.int64))
    agent.reset(2)
    with pytest.raises(RuntimeError, match=r"observe\(\) without act\(\)"):
        agent.observe([0.0, 0.0])
    with pytest.raises(ValueError, match=r"observations must have shape \(2, 2\).*got \(1, 2\)"):
        agent.act(np.zeros((1, 2), dtype=np.int64))
    agent.act(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(RuntimeError, match=r"act\(\) twice without observe\(\)"):
        agent.act(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"rewards must have shape \(2,\)"):
        agent.observe([0.0])
    with pytest.raises(ValueError, match="rewards must be finite"):
        agent.observe([0.0, float("nan")])
    with pytest.raises(ValueError, match="num_streams must be a positive integer"):
        agent.reset(0)


def test_nan_in_a_prompt_is_refused(pipe):
    agent = InContextAgent(pipe.model)
    agent.reset(1)
    prompt = {"observations": np.zeros((2, 2), np.int64), "actions": [0, 1], "rewards": [0.0, float("inf")]}
    with pytest.raises(ValueError, match="prompt rewards must be finite"):
        agent.prefill(prompt)


def test_an_env_that_never_ends_an_episode_stops_with_advice(pipe):
    endless = [DarkRoomEnv(goal=task) for task in TASKS]  # no TimeLimit: the episode never ends
    with pytest.raises(
        RuntimeError, match=r"played 21 steps without ending an episode.*max_episode_steps=20"
    ):
        pipe(envs=endless, num_episodes=2, seed=0)


def test_an_explicit_episode_cap_is_used(pipe):
    endless = [DarkRoomEnv(goal=TASKS[0])]
    with pytest.raises(RuntimeError, match=r"played 6 steps.*max_episode_steps=5"):
        pipe(envs=endless, num_episodes=1, seed=0, max_episode_steps=5)


def test_the_same_env_object_twice_is_refused(pipe):
    env = gym.make(constants.DARK_ROOM, goal=TASKS[0])
    with pytest.raises(ValueError, match="the same env object more than once"):
        pipe(envs=[env, env], num_episodes=1, seed=0)


def test_an_env_of_another_id_warns(pipe):
    gym.register("test/OtherRoom-v0", entry_point=DarkRoomEnv, max_episode_steps=20)
    try:
        envs = [gym.make("test/OtherRoom-v0", goal=task) for task in TASKS]
        with pytest.warns(
            UserWarning, match=r"trained on 'hf_ad/DarkRoom-v0' but plays \['test/OtherRoom-v0'\]"
        ):
            pipe(envs=envs, num_episodes=1, seed=0)
    finally:
        gym.registry.pop("test/OtherRoom-v0")


def readme_agent_loop() -> str:
    section = README.read_text().split("### Your own env loop", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readmes_agent_loop_runs_and_matches_the_pipeline(capsys, monkeypatch):
    monkeypatch.chdir(README.parent)
    torch.manual_seed(0)
    exec(readme_agent_loop(), {})
    printed = capsys.readouterr().out
    first, last = (float(x) for x in re.findall(r"\d+\.\d", printed))
    pipe = InContextRLPipeline.from_pretrained(SHIPPED, device="cpu")
    returns = pipe(envs=[gym.make(constants.DARK_ROOM, goal=(1, 7))], num_episodes=50, seed=0).returns[0]
    assert (first, last) == (round(returns[:10].mean(), 1), round(returns[-10:].mean(), 1))
    assert last > first  # it learns in context


def test_hf_ads_loaders_print_no_loading_bar_and_leave_the_users_bars_on(folder, capsys):
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    InContextAgent.from_pretrained(folder)
    InContextRLPipeline.from_pretrained(folder, device="cpu")
    assert "Loading weights" not in capsys.readouterr().err
    assert transformers_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    AutoModel.from_pretrained(folder)  # the user's own call keeps transformers' bar
    assert "Loading weights" in capsys.readouterr().err


def test_image_observations_reach_the_model_as_in_training():
    """Training windows feed uint8 frames, which the encoder scales to [0, 1] (floats it takes as given):
    the agent must feed the same, never floats of 0-255, or a pixel model acts on images it never saw."""
    from test_modeling_ad import random_stream, tiny_model

    model = tiny_model("image")
    stream = random_stream(model.config, batch=2, steps=4)  # uint8 frames, as `HistoryWindows` gathers them
    seen = []
    model.observation_encoder.register_forward_hook(lambda module, args, out: seen.append(args[0].dtype))
    agent = InContextAgent(model, greedy=True)
    agent.reset(2)
    actions = []
    for t in range(4):
        actions.append(agent.act(stream["observations"][:, t].numpy()))
        agent.observe(stream["prev_rewards"][:, t + 1].numpy() if t < 3 else [0.0, 0.0])
    actions = torch.as_tensor(np.stack(actions, axis=1))  # (B, T) the agent's greedy actions
    prev_actions = torch.cat([torch.full((2, 1), model.config.num_actions), actions[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model(stream["observations"], prev_actions, stream["prev_rewards"]).logits  # (B, T, A)
    assert set(seen) == {torch.uint8}
    torch.testing.assert_close(logits.argmax(-1), actions)


def test_marked_episode_starts_stream_as_the_training_windows_gather_them(tmp_path):
    """A model trained with `mark_episode_starts` sees "no previous action" at every episode's first step:
    the agent's greedy actions over three episodes are the argmax of one forward pass over the window
    `HistoryWindows` gathers from the same transitions."""
    from hf_ad.data.windows import HistoryWindows

    folder = save_tiny_checkpoint(tmp_path / "marked", TASKS, initializer_range=0.2, mark_episode_starts=True)
    agent = InContextAgent.from_pretrained(folder, greedy=True)
    env = gym.make(constants.DARK_ROOM, goal=TASKS[0])
    agent.reset(1)
    obs, _ = env.reset(seed=0)
    names = (constants.OBSERVATION, constants.ACTION, constants.REWARD, constants.STEP)
    columns = {name: [] for name in names}
    step = 0
    while agent.episodes[0] < 3:
        action = agent.act(obs[None])
        columns[constants.OBSERVATION].append(obs)
        columns[constants.STEP].append(step)
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        columns[constants.ACTION].append(int(action[0]))
        columns[constants.REWARD].append(reward)
        agent.observe([reward], [terminated or truncated])
        step = 0 if terminated or truncated else step + 1
        if terminated or truncated:
            obs, _ = env.reset()
    length = len(columns[constants.ACTION])
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    arrays.update({constants.HISTORY_ID: np.zeros(length, int), constants.TASK: np.zeros((length, 2), int)})
    windows = HistoryWindows(arrays, length, agent.config.num_actions, mark_episode_starts=True)
    batch = windows.gather(np.array([0]))
    assert (batch["prev_actions"][0, arrays[constants.STEP] == 0] == agent.config.num_actions).all()
    with torch.no_grad():
        logits = agent.model(batch["observations"], batch["prev_actions"], batch["prev_rewards"]).logits
    np.testing.assert_array_equal(logits[0].argmax(-1).numpy(), arrays[constants.ACTION])
    agent.act(obs[None])
    with pytest.raises(ValueError, match="mark_episode_starts"):
        agent.observe([0.0])  # without the episode ends
    with pytest.raises(ValueError, match="marks episode starts"):
        agent.reset(1)
        agent.prefill({"observations": [[4, 4]], "actions": [0], "rewards": [0.0]})
