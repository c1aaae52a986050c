"""hf_ad: Algorithm Distillation (Laskin et al., ICLR 2023), native to the Hugging Face ecosystem.

Importing the package registers the environments with gymnasium (`hf_ad/DarkRoom-v0`, ...),
`ADConfig`/`ADModel` with `AutoConfig`/`AutoModel`, and the `in-context-rl` pipeline task.
"""

from hf_ad import constants, envs  # envs: registers the gymnasium envs on import

__version__ = "0.1.0"

__all__ = ["constants", "envs", "__version__"]
