"""Tests for hf_ad.random_states: every global generator saved and restored without pickle."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from hf_ad.random_states import RandomStates, random_states_name


def draws() -> tuple:
    """A few numbers from each global generator, Gaussian caches included."""
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.standard_normal(),
        torch.rand(3).tolist(),
        torch.nn.functional.dropout(torch.ones(8), 0.5).tolist(),
    )


def test_restored_generators_draw_the_same_numbers(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.standard_normal()  # leave a cached Gaussian in each
    path = tmp_path / random_states_name(0)
    RandomStates.capture().save(path)
    expected = draws()
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    RandomStates.load(path).restore()
    assert draws() == expected
    assert not list(tmp_path.glob(".*"))  # written atomically, no temporary file left


def test_unreadable_files_are_named(tmp_path):
    path = tmp_path / random_states_name(1)
    with pytest.raises(ValueError, match=r"random_states_1.safetensors' is missing"):
        RandomStates.load(path)
    RandomStates.capture().save(path)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ValueError, match=r"random_states_1.safetensors' is not a readable safetensors file"):
        RandomStates.load(path)
    save_file({"weight": np.zeros(2, np.float32)}, str(path))  # some other safetensors file
    with pytest.raises(ValueError, match="not an hf_ad random-states file"):
        RandomStates.load(path)
