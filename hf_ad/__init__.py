"""hf_ad: Algorithm Distillation (Laskin et al., ICLR 2023), native to the Hugging Face ecosystem.

Importing the package registers the environments with gymnasium (`hf_ad/DarkRoom-v0`, ...),
`ADConfig`/`ADModel` with `AutoConfig`/`AutoModel`, and the `in-context-rl` pipeline task.
"""

from transformers import AutoConfig, AutoModel

from hf_ad import constants, envs  # envs: registers the gymnasium envs on import
from hf_ad.agent import InContextAgent
from hf_ad.configuration_ad import ADConfig
from hf_ad.modeling_ad import ADModel, ADOutput
from hf_ad.rollout import InContextRLPipeline, RolloutResult, register_pipeline

AutoConfig.register(ADConfig.model_type, ADConfig, exist_ok=True)
AutoModel.register(ADConfig, ADModel, exist_ok=True)
register_pipeline()  # transformers.pipeline("in-context-rl", model=...)

__version__ = constants.VERSION

__all__ = [
    "constants",
    "envs",
    "ADConfig",
    "ADModel",
    "ADOutput",
    "InContextAgent",
    "InContextRLPipeline",
    "RolloutResult",
    "__version__",
]
