"""Gymnasium spaces <-> the observation and action spec of an `ADConfig`.

The training loop calls `check_spaces` to refuse a dataset whose env does not match the model, the
rollout to refuse envs that do not match; `config_kwargs_from_spaces` fills a new config from an env.

Supported: observations `Discrete(n)`, `MultiDiscrete(nvec)` (1-D), `Box` of shape `(d,)` (vector) or
`(H, W, C)` (image); actions `Discrete(n)`. Discrete spaces must start at 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .configuration_ad import ADConfig  # relative: this file ships as remote code (see rollout.py)

SPEC_KEYS = ("observation_type", "observation_nvec", "observation_shape", "num_actions")


def _observation_spec(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(f"Discrete observation spaces must start at 0, got {space}")
        return {"observation_type": "discrete", "observation_nvec": [int(space.n)], "observation_shape": []}
    if isinstance(space, spaces.MultiDiscrete):
        if space.nvec.ndim != 1 or np.any(space.start != 0):
            raise ValueError(f"MultiDiscrete observation spaces must be 1-D and start at 0, got {space}")
        nvec = [int(size) for size in space.nvec]
        return {
            "observation_type": "multi_discrete",
            "observation_nvec": nvec,
            "observation_shape": [len(nvec)],
        }
    if isinstance(space, spaces.Box) and len(space.shape) in (1, 3):
        kind = "vector" if len(space.shape) == 1 else "image"
        return {"observation_type": kind, "observation_nvec": None, "observation_shape": list(space.shape)}
    raise ValueError(
        f"unsupported observation space {space}; allowed: Discrete(n), MultiDiscrete(nvec) (1-D), "
        "Box of shape (d,) or (H, W, C)"
    )


def config_kwargs_from_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> dict[str, Any]:
    """The `ADConfig` keyword arguments that describe these spaces.

    Args:
        observation_space: one env's observation space (for a vector env, its `single_observation_space`).
        action_space: one env's action space; must be `Discrete(n)` starting at 0.

    Returns:
        `observation_type`, `observation_nvec`, `observation_shape` and `num_actions`.

    Raises:
        ValueError: a space the model cannot read, named with what is allowed.
    """
    if not isinstance(action_space, spaces.Discrete) or int(action_space.start) != 0:
        raise ValueError(f"the action space must be Discrete(n) starting at 0, got {action_space}")
    return {**_observation_spec(observation_space), "num_actions": int(action_space.n)}


def check_spaces(config: ADConfig, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """Raise a `ValueError` unless the spaces are exactly those the model `config` was built for.

    The message names the config's spec and the given spaces.
    """
    expected = {key: getattr(config, key) for key in SPEC_KEYS}
    try:
        given = config_kwargs_from_spaces(observation_space, action_space)
    except ValueError as error:
        raise ValueError(f"the model expects {expected}, but {error}") from error
    if given != expected:
        raise ValueError(
            f"spaces do not match the model: the model expects {expected}, got observation space "
            f"{observation_space} and action space {action_space} ({given})"
        )
