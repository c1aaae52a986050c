"""Source algorithms: batched learners that produce learning histories (one file per learner).

`SOURCES[name] -> (learn, ConfigClass)`; see `hf_ad.sources.base` for the contract. The registry
imports a source's module only when that source is looked up, so that one source's import error
(e.g. a missing optional dependency of a future source) never hides the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from hf_ad.sources.base import EpisodeBlock, LearnFn, SourceConfig

# name -> (module, learn function, config class). Each module defines both attributes.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "q_learning": ("hf_ad.sources.q_learning", "learn", "QLearningConfig"),
    "actor_critic": ("hf_ad.sources.actor_critic", "learn", "ActorCriticConfig"),
    "ucb": ("hf_ad.sources.bandits", "learn_ucb", "UCBConfig"),
    "thompson": ("hf_ad.sources.bandits", "learn_thompson", "ThompsonConfig"),
    "expert": ("hf_ad.sources.experts", "learn", "ExpertConfig"),
    "explorer": ("hf_ad.sources.explorer", "learn", "ExplorerConfig"),
}


class _SourceRegistry(Mapping):
    """Read-only mapping name -> (learn function, config class), importing lazily."""

    def __getitem__(self, name: str) -> tuple[LearnFn, type[SourceConfig]]:
        if name not in _REGISTRY:
            raise ValueError(f"unknown source {name!r}; expected one of {sorted(_REGISTRY)}")
        module_name, learn_name, config_name = _REGISTRY[name]
        module = importlib.import_module(module_name)
        return getattr(module, learn_name), getattr(module, config_name)

    def __iter__(self) -> Iterator[str]:
        return iter(_REGISTRY)

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY


SOURCES = _SourceRegistry()
SOURCE_NAMES = tuple(_REGISTRY)

__all__ = ["SOURCES", "SOURCE_NAMES", "EpisodeBlock", "LearnFn", "SourceConfig"]
