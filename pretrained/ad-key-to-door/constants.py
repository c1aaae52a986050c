"""Names shared across the package: env ids, dataset columns, file names.

Every string that more than one module needs lives here, so that a column or a file is never
spelled two ways.
"""

VERSION = "0.1.0"  # `hf_ad.__version__`; here so that modules below the package root can read it

# Environment ids (registered on `import hf_ad`).
DARK_ROOM = "hf_ad/DarkRoom-v0"
DARK_ROOM_HARD = "hf_ad/DarkRoomHard-v0"
DARK_KEY_TO_DOOR = "hf_ad/DarkKeyToDoor-v0"
BANDIT = "hf_ad/Bandit-v0"
PIXEL_WATERMAZE = "hf_ad/PixelWatermaze-v0"  # first-person images of a MiniGrid room (the paper's Watermaze)
ENV_IDS = (DARK_ROOM, DARK_ROOM_HARD, DARK_KEY_TO_DOOR, BANDIT, PIXEL_WATERMAZE)

# Learning-history dataset columns: one row per transition.
HISTORY_ID = "history_id"
TASK = "task"
EPISODE = "episode"
STEP = "step"
OBSERVATION = "observation"
ACTION = "action"
REWARD = "reward"
TERMINATED = "terminated"
TRUNCATED = "truncated"
HISTORY_COLUMNS = (HISTORY_ID, TASK, EPISODE, STEP, OBSERVATION, ACTION, REWARD, TERMINATED, TRUNCATED)

# Files.
DATASET_CARD = "README.md"
MODEL_CARD = "README.md"
DATA_DIR = "data"
HISTORIES_METADATA = "hf_ad_histories.json"
HISTORIES_SAMPLE_OF = "sample_of"  # the metadata key of a sample (`hf_ad.data.sample`): the whole dataset
STAGING_DIR = ".hf_ad_staging"  # an unfinished generation; hidden, so `datasets` never reads it
LEARNING_CURVE_PNG = "learning_curve.png"
SAMPLE_VIEWS_PNG = "sample_views.png"  # a strip of stored image observations, shown in a dataset card
MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
# The remote code `ADModel.save_pretrained` copies next to the weights: the model's (with what it imports
# relatively) and the in-context RL pipeline's (config.json `custom_pipelines`), byte for byte hf_ad's files.
MODEL_CODE = ("configuration_ad.py", "modeling_ad.py", "attention.py", "constants.py")
PIPELINE_CODE = ("rollout.py", "agent.py", "spaces.py")
REMOTE_CODE = MODEL_CODE + PIPELINE_CODE
# The RL² baseline's remote code beside MODEL_CODE (`RL2Model.save_pretrained`; no pipeline: hf_ad plays it).
RL2_CODE = ("configuration_rl2.py", "modeling_rl2.py")
TRAIN_CONFIG = "train_config.json"
RESULTS_JSON = "results.json"
RESULTS_PNG = "returns.png"
REPLAY_MP4 = "replay.mp4"  # episode 1 next to the last one: `hf-ad evaluate`, `hf-ad video`, the card
REPLAY_GIF = "replay.gif"  # the same where PyAV or its H.264 encoder is missing
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
TRAINER_STATE = "trainer_state.json"  # step, wall time, loss: in each checkpoint and in final/
LOGS_DIR = "logs"

# Pipeline task name (transformers.pipeline), and the config.json entry that names the shipped pipeline.
PIPELINE_TASK = "in-context-rl"
CUSTOM_PIPELINES = {PIPELINE_TASK: {"impl": "rollout.InContextRLPipeline", "pt": ["AutoModel"]}}
