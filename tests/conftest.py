"""Shared test helpers."""

from __future__ import annotations

import torch

from hf_ad import ADConfig, ADModel, constants


def save_tiny_checkpoint(path, test_tasks, seed: int = 0, **overrides) -> str:
    """Save a tiny random-init Dark Room checkpoint with held-out tasks `test_tasks`; returns its path."""
    torch.manual_seed(seed)
    env_id = overrides.pop("env_id", constants.DARK_ROOM)
    options = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config = ADConfig(
        **{**options, "sliding_window": 8, **overrides},
        env_id=env_id,
        train_tasks=[[4, 4]],
        test_tasks=[list(task) for task in test_tasks],
    )
    ADModel(config).save_pretrained(path)
    return str(path)
