"""hf_ad: Algorithm Distillation (Laskin et al., ICLR 2023), native to the Hugging Face ecosystem.

Importing the package registers the environments with gymnasium (`hf_ad/DarkRoom-v0`, ...),
`ADConfig`/`ADModel` and the RL² baseline's `RL2Config`/`RL2Model` with `AutoConfig`/`AutoModel`, and
the `in-context-rl` pipeline task.
"""

from transformers import AutoConfig, AutoModel

from hf_ad import constants, envs  # envs: registers the gymnasium envs on import
from hf_ad.agent import InContextAgent
from hf_ad.configuration_ad import ADConfig
from hf_ad.configuration_rl2 import RL2Config
from hf_ad.modeling_ad import ADModel, ADOutput
from hf_ad.modeling_rl2 import RL2Model
from hf_ad.rollout import InContextRLPipeline, RolloutResult, register_pipeline

AutoConfig.register(ADConfig.model_type, ADConfig, exist_ok=True)
AutoModel.register(ADConfig, ADModel, exist_ok=True)
AutoConfig.register(RL2Config.model_type, RL2Config, exist_ok=True)
AutoModel.register(RL2Config, RL2Model, exist_ok=True)
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
    "RL2Config",
    "RL2Model",
    "RolloutResult",
    "__version__",
]
