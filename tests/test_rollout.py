"""InContextRLPipeline: loading, batched cached rollouts, envs, prompts, the cache against recomputing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import transformers
from datasets import Dataset
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import hf_ad
from hf_ad import ADConfig, ADModel, InContextRLPipeline, constants
from hf_ad.envs import optimal_return, task_split
from hf_ad.rollout import check_prompt, prompt_from_histories

TASKS = [(0, 0), (2, 7), (8, 3)]
WINDOW = 8  # transitions: shorter than one 20-step Dark Room episode, so streams run past the window


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny random-init Dark Room checkpoint whose held-out tasks are `TASKS`."""
    train_tasks, _ = task_split(constants.DARK_ROOM)
    torch.manual_seed(0)
    config = ADConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        sliding_window=WINDOW,
        max_context=256,
        initializer_range=0.2,  # sharper than the default 0.02: actions then depend on the far context
        env_id=constants.DARK_ROOM,
        train_tasks=[list(t) for t in train_tasks],
        test_tasks=[list(t) for t in TASKS],
    )
    path = tmp_path_factory.mktemp("ad") / "final"
    ADModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipe(folder):
    return InContextRLPipeline.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def pipe64(folder):
    """float64 weights: the cached and recomputed streams then agree far below any greedy near-tie."""
    return InContextRLPipeline.from_pretrained(folder, device="cpu", dtype=torch.float64)


def test_from_pretrained_plays_the_held_out_tasks(pipe):
    result = pipe(num_episodes=3, seed=0)
    assert result.returns.shape == (len(TASKS), 3)
    assert result.tasks == TASKS
    assert result.seed == 0
    expected = [optimal_return(constants.DARK_ROOM, task) for task in TASKS]
    np.testing.assert_array_equal(result.optimal_returns, expected)
    assert not pipe.model.training
    assert not any(p.requires_grad for p in pipe.model.parameters())


def test_returns_are_the_trajectory_rewards_per_episode(pipe):
    result = pipe(tasks=[(4, 4), (1, 1)], num_episodes=4, seed=1, return_trajectories=True)
    trajectories = result.trajectories
    assert trajectories.actions.shape == (2, 80)
    assert trajectories.observations.shape == (2, 80, 2)
    np.testing.assert_array_equal(trajectories.episodes[0], np.repeat(np.arange(4), 20))
    per_episode = trajectories.rewards.reshape(2, 4, 20).sum(axis=-1)
    np.testing.assert_allclose(result.returns, per_episode)
    # Every episode starts at the centre of the room: the env reset between episodes.
    np.testing.assert_array_equal(trajectories.observations[:, ::20], np.full((2, 4, 2), 4))


def test_seeded_runs_repeat_and_seeds_differ(pipe):
    first = pipe(num_episodes=3, seed=5, return_trajectories=True)
    again = pipe(num_episodes=3, seed=5, return_trajectories=True)
    other = pipe(num_episodes=3, seed=6, return_trajectories=True)
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_array_equal(first.trajectories.actions, again.trajectories.actions)
    assert (first.trajectories.actions != other.trajectories.actions).any()
    assert pipe(num_episodes=1).seed >= 0  # no seed: one is drawn and reported


def test_envs_list_plays_like_the_same_tasks(pipe):
    envs = [gym.make(constants.DARK_ROOM, goal=task) for task in TASKS]
    from_envs = pipe(envs=envs, num_episodes=2, seed=3, return_trajectories=True)
    from_tasks = pipe(tasks=TASKS, num_episodes=2, seed=3, return_trajectories=True)
    np.testing.assert_array_equal(from_envs.trajectories.actions, from_tasks.trajectories.actions)
    np.testing.assert_array_equal(from_envs.returns, from_tasks.returns)
    assert from_envs.optimal_returns is None and from_envs.tasks is None
    # A same-step-autoreset vector env is taken as it is.
    vector = SyncVectorEnv(
        [lambda: gym.make(constants.DARK_ROOM, goal=(1, 1))], autoreset_mode=AutoresetMode.SAME_STEP
    )
    assert pipe(envs=vector, num_episodes=1, seed=0).returns.shape == (1, 1)


def test_envs_with_other_spaces_raise_naming_both(pipe):
    with pytest.raises(ValueError, match="do not match") as error:
        pipe(envs=[gym.make(constants.DARK_ROOM, size=5)], num_episodes=1)
    assert "MultiDiscrete([5 5])" in str(error.value) and "[9, 9]" in str(error.value)
    with pytest.raises(ValueError, match="Discrete"):
        pipe(envs=[gym.make("CartPole-v1")], num_episodes=1)


def test_next_step_autoreset_plays_like_the_native_same_step_env(pipe):
    # gymnasium's default sync vector env resets a sub-env on the step after its episode ended; each
    # sub-env draws its goal from its reset seed (seed + i).
    sync = gym.make_vec(constants.DARK_ROOM, num_envs=3, vectorization_mode="sync")
    assert sync.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    next_step = pipe(envs=sync, num_episodes=3, seed=4, return_trajectories=True)
    goals = [sub.unwrapped.goal for sub in sync.envs]
    native = pipe(tasks=goals, num_episodes=3, seed=4, return_trajectories=True)
    np.testing.assert_array_equal(next_step.returns, native.returns)
    for name in ("observations", "actions", "rewards", "episodes"):
        np.testing.assert_array_equal(
            getattr(next_step.trajectories, name), getattr(native.trajectories, name)
        )
    # Episodes that end on different steps cannot be played on a next-step env: the error says what to do.
    uneven = SyncVectorEnv(
        [lambda steps=steps: gym.make(constants.DARK_ROOM, max_episode_steps=steps) for steps in (5, 7)]
    )
    with pytest.raises(RuntimeError, match=r"sub-envs \[0\] of 2 ended .*pass the envs as a list"):
        pipe(envs=uneven, num_episodes=2, seed=0)


def test_progress_bar_counts_episodes_only_when_asked(pipe, capsys):
    pipe(num_episodes=3, seed=0)
    assert capsys.readouterr().err == ""
    pipe(num_episodes=3, seed=0, progress=True)
    assert "3/3" in capsys.readouterr().err


def test_bad_arguments_raise(pipe):
    disabled = SyncVectorEnv([lambda: gym.make(constants.DARK_ROOM)], autoreset_mode=AutoresetMode.DISABLED)
    with pytest.raises(ValueError, match="autoreset_mode"):
        pipe(envs=disabled, num_episodes=1)
    with pytest.raises(ValueError, match="either tasks or envs"):
        pipe(tasks=TASKS, envs=[gym.make(constants.DARK_ROOM)], num_episodes=1)
    with pytest.raises(ValueError, match="num_episodes"):
        pipe(num_episodes=0)
    with pytest.raises(ValueError, match="seed"):
        pipe(num_episodes=1, seed=-1)
    with pytest.raises(ValueError, match="goal"):
        pipe(tasks=[(9, 9)], num_episodes=1)


def test_cached_rollout_equals_recomputing_the_whole_stream(pipe64):
    # 3 episodes = 60 transitions, far past the 8-transition window: the cache must slide exactly as
    # the sliding-window attention over the whole stream does.
    cached = pipe64(num_episodes=3, seed=0, sample=False, return_trajectories=True)
    recomputed = pipe64(num_episodes=3, seed=0, sample=False, use_cache=False, return_trajectories=True)
    np.testing.assert_array_equal(cached.trajectories.actions, recomputed.trajectories.actions)
    np.testing.assert_array_equal(cached.returns, recomputed.returns)
    # The test has power: recomputing only the last window (what caches nothing across steps) differs,
    # because the deeper layers carry information from beyond the window.
    window_only = pipe64(
        num_episodes=3, seed=0, sample=False, use_cache=False, context_length=WINDOW, return_trajectories=True
    )
    assert (window_only.trajectories.actions != cached.trajectories.actions).any()
    # Sampling draws the same numbers from the same generator: the same actions again.
    cached = pipe64(num_episodes=3, seed=1, return_trajectories=True)
    recomputed = pipe64(num_episodes=3, seed=1, use_cache=False, return_trajectories=True)
    np.testing.assert_array_equal(cached.trajectories.actions, recomputed.trajectories.actions)


def _prompt(length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.integers(0, 9, size=(length, 2)),
        "actions": rng.integers(0, 5, size=length),
        "rewards": (rng.random(length) < 0.3).astype(np.float32),
    }


def test_prompt_prefill_changes_the_first_actions(pipe64):
    plain = pipe64(num_episodes=1, seed=0, sample=False, return_trajectories=True)
    prompted = pipe64(num_episodes=1, seed=0, sample=False, prompt=_prompt(12), return_trajectories=True)
    assert (plain.trajectories.actions[:, :5] != prompted.trajectories.actions[:, :5]).any()
    # The prompt is one cached forward: the same as recomputing prompt + stream at every step.
    recomputed = pipe64(
        num_episodes=2, seed=0, sample=False, prompt=_prompt(12), use_cache=False, return_trajectories=True
    )
    prompted = pipe64(num_episodes=2, seed=0, sample=False, prompt=_prompt(12), return_trajectories=True)
    np.testing.assert_array_equal(prompted.trajectories.actions, recomputed.trajectories.actions)


def test_per_task_prompts(pipe64):
    keys = ("observations", "actions", "rewards")
    per_task = {key: np.stack([_prompt(10, seed)[key] for seed in range(3)]) for key in keys}
    shared = pipe64(num_episodes=1, seed=0, sample=False, prompt=_prompt(10, 0), return_trajectories=True)
    separate = pipe64(num_episodes=1, seed=0, sample=False, prompt=per_task, return_trajectories=True)
    # Task 0 got the same prompt both times; the other tasks got other prompts.
    np.testing.assert_array_equal(shared.trajectories.actions[0], separate.trajectories.actions[0])
    assert (shared.trajectories.actions[1:, :5] != separate.trajectories.actions[1:, :5]).any()


def test_prompt_longer_than_max_context_is_fed_in_pieces(pipe64, monkeypatch):
    whole = pipe64(num_episodes=1, seed=0, sample=False, prompt=_prompt(200), return_trajectories=True)
    monkeypatch.setattr(pipe64.model.config, "max_context", 64)  # 200 = 64 + 64 + 64 + 8
    pieces = pipe64(num_episodes=1, seed=0, sample=False, prompt=_prompt(200), return_trajectories=True)
    np.testing.assert_array_equal(whole.trajectories.actions, pieces.trajectories.actions)


def test_check_prompt_rejects_bad_prompts(folder):
    config = ADConfig.from_pretrained(folder)
    with pytest.raises(ValueError, match="missing"):
        check_prompt({"observations": np.zeros((3, 2), int)}, config, 2)
    bad_shape = {**_prompt(4), "observations": np.zeros((4, 3), int)}
    with pytest.raises(ValueError, match="observations must have shape"):
        check_prompt(bad_shape, config, 2)
    with pytest.raises(ValueError, match="per task"):
        check_prompt({key: np.stack([value] * 3) for key, value in _prompt(4).items()}, config, 2)
    with pytest.raises(ValueError, match="actions must be integers in 0..4"):
        check_prompt({**_prompt(4), "actions": np.array([0, 1, 5, 2])}, config, 2)
    prompt = check_prompt(_prompt(4), config, 2)
    assert prompt["observations"].shape == (2, 4, 2) and prompt["actions"].shape == (2, 4)


def test_prompt_from_histories():
    rows = [(history, episode, step) for history in (0, 1) for episode in range(3) for step in range(2)]
    histories = Dataset.from_dict(
        {
            constants.HISTORY_ID: [h for h, _, _ in rows],
            constants.EPISODE: [e for _, e, _ in rows],
            constants.OBSERVATION: [[h, s] for h, _, s in rows],
            constants.ACTION: [e for _, e, _ in rows],
            constants.REWARD: [float(h) for h, _, _ in rows],
        }
    )
    prompt = prompt_from_histories(histories, 1, episodes=[1, 2])
    np.testing.assert_array_equal(prompt["actions"], [1, 1, 2, 2])
    np.testing.assert_array_equal(prompt["observations"], [[1, 0], [1, 1]] * 2)
    np.testing.assert_array_equal(prompt["rewards"], [1.0] * 4)
    both = prompt_from_histories(histories, [0, 1])
    assert both["observations"].shape == (2, 6, 2)
    with pytest.raises(ValueError, match="history 7"):
        prompt_from_histories(histories, 7)


def test_transformers_pipeline_task(folder, pipe):
    assert constants.PIPELINE_TASK in transformers.pipelines.PIPELINE_REGISTRY.get_supported_tasks()
    from_task = transformers.pipeline(constants.PIPELINE_TASK, model=str(folder), device="cpu")
    assert isinstance(from_task, hf_ad.InContextRLPipeline)
    np.testing.assert_array_equal(
        from_task(num_episodes=2, seed=0).returns, pipe(num_episodes=2, seed=0).returns
    )
    # Call defaults given at construction are kept, as in any transformers pipeline.
    with_defaults = transformers.pipeline(
        constants.PIPELINE_TASK, model=str(folder), device="cpu", num_episodes=2
    )
    assert with_defaults(seed=0).returns.shape == (len(TASKS), 2)
