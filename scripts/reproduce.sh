#!/usr/bin/env bash
# Rebuild the shipped Dark Room release from scratch: histories -> AD and ED -> evaluation -> cards.
#
# Usage (from the repo root, after `make setup`):
#     bash scripts/reproduce.sh                 # writes everything under runs/reproduce/
#     OUT=runs/other bash scripts/reproduce.sh  # somewhere else
#     SHIP=1 bash scripts/reproduce.sh          # also replace pretrained/ with the new folders
#
# AD, then ED, train in two processes (distributed data parallel, one CPU thread each: the machine
# has 2 cores); then both are evaluated on every held-out goal for 1000 episodes x 20 seeds (the
# paper's 20 evaluation seeds), against Q-learning from scratch. The evaluation also writes replay.mp4
# (AD on the first held-out goal, episode 1 next to episode 1000): into its folder and, where it fills
# the cards (SHIP=1: pretrained/ad-darkroom), into the AD folder, whose card embeds it. The same video
# alone, without the 7-minute evaluation:
#     hf-ad video --model pretrained/ad-darkroom --out pretrained/evaluation --update-card
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/reproduce}
BIN=${BIN:-.venv/bin}
ENV_ID=hf_ad/DarkRoom-v0
# --resume: a reproduction that was stopped continues from its last checkpoints.
TRAIN_ARGS=(--max-steps 2400 --batch-size 32 --save-steps 300 --report-to none --resume)
export OMP_NUM_THREADS=1

mkdir -p "$OUT"
"$BIN/hf-ad" generate --env "$ENV_ID" --source q_learning --out "$OUT/darkroom-histories"
"$BIN/hf-ad" generate --env "$ENV_ID" --source expert --out "$OUT/darkroom-expert"

train() {  # train DATASET NAME: two processes, log in $OUT/NAME.log
    ACCELERATE_USE_CPU=1 "$BIN/accelerate" launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no -m hf_ad train \
        --dataset "$1" --output-dir "$OUT/$2" "${TRAIN_ARGS[@]}" > "$OUT/$2.log" 2>&1 \
        || { tail -n 20 "$OUT/$2.log"; exit 1; }
}
train "$OUT/darkroom-histories" ad-darkroom
train "$OUT/darkroom-expert" ed-darkroom

if [ "${SHIP:-0}" = 1 ]; then
    # Replace pretrained/ with this run's folders, then evaluate the shipped folders themselves so that
    # their cards carry the measured numbers and the command that measured them.
    rm -rf pretrained.new && mkdir pretrained.new
    cp -r "$OUT/darkroom-histories" pretrained.new/darkroom-histories
    cp -r "$OUT/ad-darkroom/final" pretrained.new/ad-darkroom
    cp -r "$OUT/ed-darkroom/final" pretrained.new/ed-darkroom
    rm -rf pretrained && mv pretrained.new pretrained
    "$BIN/python" - <<'PY'
import json
from pathlib import Path

from hf_ad.cards import write_dataset_card
from hf_ad.training import write_model_card

for name in ("ad-darkroom", "ed-darkroom"):
    write_model_card(f"pretrained/{name}", repo_id=f"pretrained/{name}")
folder = Path("pretrained/darkroom-histories")
write_dataset_card(folder, json.loads((folder / "hf_ad_histories.json").read_text()), repo_id=str(folder))
PY
    AD=pretrained/ad-darkroom ED=pretrained/ed-darkroom EVAL=pretrained/evaluation
else
    AD="$OUT/ad-darkroom/final" ED="$OUT/ed-darkroom/final" EVAL="$OUT/evaluation"
fi
"$BIN/hf-ad" evaluate --model "$AD" --ed-model "$ED" --episodes 1000 --seeds 20 --out "$EVAL" --update-card
