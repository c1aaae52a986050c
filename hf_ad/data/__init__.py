"""Data: learning-history datasets (`histories`) and, cut from them at load time, training windows.

`hf_ad.data.load_histories("org/name" or folder)` returns `(datasets.Dataset, metadata)`.
"""

from hf_ad.data.histories import (
    DEFAULTS,
    GenerateConfig,
    generate_histories,
    history_features,
    load_histories,
    validate_histories,
)

__all__ = [
    "DEFAULTS",
    "GenerateConfig",
    "generate_histories",
    "history_features",
    "load_histories",
    "validate_histories",
]
