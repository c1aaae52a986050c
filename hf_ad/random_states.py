"""The random number generators of one training process, saved and restored without pickle.

A resumed run is exact only if dropout and token masking draw the same numbers as in the
uninterrupted run, so every checkpoint holds, per process rank, the state of each global generator:
python's `random`, numpy's legacy global `RandomState`, torch's CPU generator and, where CUDA is
available, every CUDA device's generator. They go into one safetensors file (the state arrays) whose
string metadata holds the few scalars (python's and numpy's Gaussian caches, numpy's position), so a
checkpoint is read with safetensors and JSON only, never unpickled.

Note: accelerate's `save_state` writes the same states as a torch pickle and `load_state` skips that
file with an INFO log when it is missing or unreadable, which made resumes silently inexact; here a
missing or unreadable file raises `ValueError` naming it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from hf_ad.files import atomic_path

FORMAT = "hf_ad.random_states/1"
PYTHON, NUMPY, TORCH_CPU, CUDA_PREFIX = "python", "numpy", "torch_cpu", "torch_cuda_"


def random_states_name(rank: int) -> str:
    """The file of process `rank` in a checkpoint folder (accelerate names its pickle the same, `.pkl`)."""
    return f"random_states_{rank}.safetensors"


@dataclass
class RandomStates:
    """Every global generator's state: arrays (as safetensors stores them) and scalars (as JSON)."""

    arrays: dict[str, np.ndarray]
    scalars: dict[str, object]

    @classmethod
    def capture(cls) -> RandomStates:
        """The states of this process's generators now."""
        python_version, python_words, python_gauss = random.getstate()
        _, numpy_key, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
        arrays = {
            PYTHON: np.asarray(python_words, dtype=np.uint32),  # (625,): 624 words + position
            NUMPY: np.asarray(numpy_key, dtype=np.uint32),  # (624,)
            TORCH_CPU: torch.get_rng_state().numpy(),  # (5056,) uint8
        }
        if torch.cuda.is_available():
            for device, state in enumerate(torch.cuda.get_rng_state_all()):
                arrays[f"{CUDA_PREFIX}{device}"] = state.numpy()
        scalars = {
            "python_version": python_version,
            "python_gauss": python_gauss,
            "numpy_pos": int(numpy_pos),
            "numpy_has_gauss": int(numpy_has_gauss),
            "numpy_gauss": float(numpy_gauss),
        }
        return cls(arrays, scalars)

    def save(self, path: str | Path) -> None:
        """Write the states to `path` (safetensors, atomically)."""
        metadata = {"format": FORMAT, "scalars": json.dumps(self.scalars)}
        with atomic_path(path) as tmp:
            save_file(self.arrays, str(tmp), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path) -> RandomStates:
        """Read states written by `save`.

        Raises:
            ValueError: the file is missing, truncated, not such a file, or lacks a generator's state,
                naming the file and what is wrong with it.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{str(path)!r} is missing")
        try:
            with safe_open(str(path), framework="np") as file:
                metadata = file.metadata() or {}
                arrays = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err})") from err
        if metadata.get("format") != FORMAT:
            raise ValueError(
                f"{str(path)!r} is not an hf_ad random-states file (format {metadata.get('format')!r})"
            )
        missing = [name for name in (PYTHON, NUMPY, TORCH_CPU) if name not in arrays]
        if missing:
            raise ValueError(f"{str(path)!r} lacks the states of {missing}")
        return cls(arrays, json.loads(metadata["scalars"]))

    def restore(self, source: str = "the checkpoint") -> None:
        """Set this process's generators to these states.

        Raises:
            ValueError: the states were saved with a different number of CUDA devices than this machine has.
        """
        saved_devices = sorted(name for name in self.arrays if name.startswith(CUDA_PREFIX))
        devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if len(saved_devices) != devices:
            raise ValueError(
                f"{source} holds the random states of {len(saved_devices)} CUDA devices, this machine has "
                f"{devices}; resume on a machine like the one that wrote it"
            )
        python_words = tuple(int(word) for word in self.arrays[PYTHON])
        random.setstate((self.scalars["python_version"], python_words, self.scalars["python_gauss"]))
        np.random.set_state(
            (
                "MT19937",
                self.arrays[NUMPY],
                self.scalars["numpy_pos"],
                self.scalars["numpy_has_gauss"],
                self.scalars["numpy_gauss"],
            )
        )
        torch.set_rng_state(torch.from_numpy(self.arrays[TORCH_CPU].copy()))
        if devices:
            torch.cuda.set_rng_state_all(
                [torch.from_numpy(self.arrays[f"{CUDA_PREFIX}{device}"].copy()) for device in range(devices)]
            )


__all__ = ["RandomStates", "random_states_name"]
