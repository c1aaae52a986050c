"""Data: learning-history datasets and, cut from them at load time, training windows.

`hf_ad.data.generate` runs source learners into a dataset folder; `hf_ad.data.histories` is the
format (features, validation, reading): `hf_ad.data.load_histories("org/name" or folder)` returns
`(datasets.Dataset, metadata)`; `hf_ad.data.windows` cuts training windows from it. Only the format
is re-exported here, so reading a dataset never imports the generation code.
"""

from hf_ad.data.histories import history_features, load_histories, validate_histories

__all__ = [
    "history_features",
    "load_histories",
    "validate_histories",
]
