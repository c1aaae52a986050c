"""The paper's environments as gymnasium envs, their batched versions, task splits and oracles.

Importing this package registers `hf_ad/DarkRoom-v0`, `hf_ad/DarkRoomHard-v0`,
`hf_ad/DarkKeyToDoor-v0`, `hf_ad/Bandit-v0` and `hf_ad/PixelWatermaze-v0` (ids in `hf_ad.constants`).
"""

from hf_ad.envs.bandit import BANDIT_DISTRIBUTIONS, BanditEnv
from hf_ad.envs.dark_room import DarkRoomEnv
from hf_ad.envs.grid import ACTION_NAMES, draw_path, greedy_action
from hf_ad.envs.key_to_door import DarkKeyToDoorEnv
from hf_ad.envs.pixel_watermaze import PixelWatermazeEnv
from hf_ad.envs.registration import env_spec, register_envs
from hf_ad.envs.task_env import STATE_INFO
from hf_ad.envs.tasks import (
    REGION_ENVS,
    TASK_SPLIT_KINDS,
    all_tasks,
    draw_test_tasks,
    in_training_region,
    optimal_return,
    random_return,
    sample_bandit_tasks,
    subset_tasks,
    task_split,
)
from hf_ad.envs.vector import (
    BanditVectorEnv,
    DarkKeyToDoorVectorEnv,
    DarkRoomVectorEnv,
    PixelWatermazeVectorEnv,
    make_vector_env,
)

register_envs()

__all__ = [
    "ACTION_NAMES",
    "BANDIT_DISTRIBUTIONS",
    "BanditEnv",
    "BanditVectorEnv",
    "DarkKeyToDoorEnv",
    "DarkKeyToDoorVectorEnv",
    "DarkRoomEnv",
    "DarkRoomVectorEnv",
    "PixelWatermazeEnv",
    "PixelWatermazeVectorEnv",
    "STATE_INFO",
    "all_tasks",
    "draw_path",
    "draw_test_tasks",
    "env_spec",
    "greedy_action",
    "make_vector_env",
    "optimal_return",
    "random_return",
    "register_envs",
    "sample_bandit_tasks",
    "task_split",
    "subset_tasks",
    "in_training_region",
    "REGION_ENVS",
    "TASK_SPLIT_KINDS",
]
