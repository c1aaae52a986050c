"""Data: learning-history datasets and, cut from them at load time, training windows.

`generate` runs source learners into a dataset folder; `histories` is the format (features,
validation, reading): `hf_ad.data.load_histories("org/name" or folder)` returns
`(datasets.Dataset, metadata)`; `windows` cuts training windows from it.
"""

from hf_ad.data.generate import DEFAULTS, GenerateConfig, generate_histories
from hf_ad.data.histories import history_features, load_histories, validate_histories

__all__ = [
    "DEFAULTS",
    "GenerateConfig",
    "generate_histories",
    "history_features",
    "load_histories",
    "validate_histories",
]
