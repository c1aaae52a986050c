"""Registering the envs with gymnasium, and looking up their specs by id."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from hf_ad.constants import BANDIT, DARK_KEY_TO_DOOR, DARK_ROOM, DARK_ROOM_HARD, ENV_IDS, PIXEL_WATERMAZE

# id -> keyword arguments of `gymnasium.register`. `gymnasium.make_vec(id, num_envs=N)` builds the native
# batched env through `hf_ad.envs.vector.make_vector_env` (tasks default to N held-out tasks).
REGISTRATIONS: dict[str, dict] = {
    DARK_ROOM: dict(
        entry_point="hf_ad.envs.dark_room:DarkRoomEnv",
        vector_entry_point="hf_ad.envs.vector:make_dark_room",
        max_episode_steps=20,
    ),
    DARK_ROOM_HARD: dict(
        entry_point="hf_ad.envs.dark_room:DarkRoomEnv",
        vector_entry_point="hf_ad.envs.vector:make_dark_room_hard",
        max_episode_steps=20,
        kwargs={"size": 17, "reward_once": True},
    ),
    DARK_KEY_TO_DOOR: dict(
        entry_point="hf_ad.envs.key_to_door:DarkKeyToDoorEnv",
        vector_entry_point="hf_ad.envs.vector:make_dark_key_to_door",
        max_episode_steps=50,
    ),
    # Every pull ends its one-step episode (terminated), so no time limit: a `TimeLimit` of 1 would
    # also mark every pull truncated.
    BANDIT: dict(
        entry_point="hf_ad.envs.bandit:BanditEnv",
        vector_entry_point="hf_ad.envs.vector:make_bandit",
        kwargs={"num_arms": 10},
    ),
    PIXEL_WATERMAZE: dict(
        entry_point="hf_ad.envs.pixel_watermaze:PixelWatermazeEnv",
        vector_entry_point="hf_ad.envs.vector:make_pixel_watermaze",
        max_episode_steps=50,
    ),
}


def register_envs() -> None:
    """Register every hf_ad env with gymnasium (idempotent: ids already registered are left alone)."""
    for env_id, registration in REGISTRATIONS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **registration)


def env_spec(env_id: str) -> EnvSpec:
    """The registered spec of one of the hf_ad envs, or `ValueError` naming the allowed ids."""
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown env id {env_id!r}; expected one of {list(ENV_IDS)}")
    register_envs()
    return gym.spec(env_id)
