#!/usr/bin/env bash
# Rebuild one env's shipped release from scratch: histories -> AD and ED -> evaluation -> cards.
#
# Usage (from the repo root, after `make setup`):
#     bash scripts/reproduce.sh                           # Dark Room, under runs/reproduce/
#     ENV_ID=hf_ad/Bandit-v0 bash scripts/reproduce.sh    # the adversarial bandit (make reproduce ENV=...)
#     ENV_ID=hf_ad/PixelWatermaze-v0 bash scripts/reproduce.sh    # from first-person images
#     OUT=runs/other bash scripts/reproduce.sh            # somewhere else
#     SHIP=1 bash scripts/reproduce.sh                    # also replace that env's folders in pretrained/
#     RL2=1 bash scripts/reproduce.sh                     # also train the RL² baseline and evaluate it beside AD
#                                                         # (without it: the shipped pretrained/rl2-NAME, if any)
#
# Every setting comes from the env's recipe (hf_ad/recipes.py): the dataset of `hf-ad generate --env`, the
# training of `hf-ad train --dataset` and the evaluation of `hf-ad evaluate --model`, so the commands below
# carry no recipe flags. Dark Room: AD, then ED, each in two processes (distributed data parallel, one CPU
# thread each: the machine has 2 cores); then both are evaluated on every held-out goal for 1000 episodes x
# 20 seeds (the paper's 20 evaluation seeds), against Q-learning from scratch. The bandit: AD and ED in one
# process each, side by side; then the paper's normalised scores on the odd / even / uniform tasks, 100 pulls
# x 20 seeds, against UCB1 from scratch. Pixel Watermaze: AD from first-person images, evaluated on every
# held-out goal against Q-learning from scratch on the privileged pose (its recipe's numbers in
# hf_ad/recipes.py). The evaluation also writes replay.mp4 (AD on the first held-out task, episode 1 next to
# the last; Pixel Watermaze's shows the agent's own view beside the map): into its folder and, where it fills
# the cards (SHIP=1), into the AD folder, whose card embeds it. The Dark Room video alone, without the 7-minute evaluation:
#     hf-ad video --model pretrained/ad-darkroom --out pretrained/evaluation --update-card
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/reproduce}
BIN=${BIN:-.venv/bin}
ENV_ID=${ENV_ID:-hf_ad/DarkRoom-v0}
case "$ENV_ID" in  # NAME: the release's folder names; EVAL: its evaluation folder under pretrained/
    hf_ad/DarkRoom-v0) NAME=darkroom EVAL_NAME=evaluation ;;
    hf_ad/DarkRoomHard-v0) NAME=darkroom-hard EVAL_NAME=evaluation-darkroom-hard ;;
    # Key-to-Door: its histories (11 MB) ship as their first shard (3 MB); its recipe's evaluation stops at
    # 200 episodes (20 seeds), a second one plays 1000 on LONG_SEEDS seeds (EVAL_NAME-1000).
    hf_ad/DarkKeyToDoor-v0) NAME=key-to-door EVAL_NAME=evaluation-key-to-door SAMPLE_SHARDS=1 LONG_SEEDS=1 ;;
    hf_ad/Bandit-v0) NAME=bandit EVAL_NAME=evaluation-bandit ;;
    hf_ad/PixelWatermaze-v0) NAME=pixel-watermaze EVAL_NAME=evaluation-pixel-watermaze ;;
    *) echo "ENV_ID must be one of hf_ad/DarkRoom-v0, hf_ad/DarkRoomHard-v0, hf_ad/DarkKeyToDoor-v0," \
        "hf_ad/Bandit-v0, hf_ad/PixelWatermaze-v0; got '$ENV_ID'" >&2; exit 2 ;;
esac
PROCESSES=$("$BIN/python" -c "from hf_ad.recipes import recipe_for; print(recipe_for('$ENV_ID').num_processes)")
# --resume: a reproduction that was stopped continues from its last checkpoints.
TRAIN_ARGS=(--save-steps 300 --report-to none --resume)
export OMP_NUM_THREADS=1

mkdir -p "$OUT"
"$BIN/hf-ad" generate --env "$ENV_ID" --out "$OUT/$NAME-histories"
"$BIN/hf-ad" generate --env "$ENV_ID" --source expert --out "$OUT/$NAME-expert"

launch() {  # launch COMMAND ARGS...: `hf-ad COMMAND` in the recipe's number of processes
    if [ "$PROCESSES" -gt 1 ]; then
        env ACCELERATE_USE_CPU=1 "$BIN/accelerate" launch --multi_gpu --num_processes "$PROCESSES" \
            --num_machines 1 --mixed_precision no --dynamo_backend no -m hf_ad "$@"
    else
        "$BIN/hf-ad" "$@"
    fi
}
train() {  # train DATASET RUN: log in $OUT/RUN.log
    launch train --dataset "$1" --output-dir "$OUT/$2" "${TRAIN_ARGS[@]}" > "$OUT/$2.log" 2>&1 \
        || { tail -n 20 "$OUT/$2.log"; return 1; }
}
if [ "$PROCESSES" -gt 1 ]; then  # each run takes every core: one after the other
    train "$OUT/$NAME-histories" "ad-$NAME"
    train "$OUT/$NAME-expert" "ed-$NAME"
else  # one core each: side by side
    train "$OUT/$NAME-histories" "ad-$NAME" & AD_PID=$!
    train "$OUT/$NAME-expert" "ed-$NAME" & ED_PID=$!
    wait "$AD_PID" && wait "$ED_PID"
fi

RL2_RUN="$OUT/rl2-$NAME"
if [ "${RL2:-0}" = 1 ]; then  # the paper's upper-bound baseline: hf-ad train-rl2's default budget, one core
    RESUME=()
    [ -f "$RL2_RUN/train_config.json" ] && RESUME=(--resume)
    "$BIN/hf-ad" train-rl2 --env "$ENV_ID" --output-dir "$RL2_RUN" --progress false "${RESUME[@]}" \
        > "$RL2_RUN.log" 2>&1 || { tail -n 20 "$RL2_RUN.log"; exit 1; }
fi

write_cards() {  # the shipped folders' cards, rendered for their folder names (what evaluate wrote is kept)
    NAME=$NAME "$BIN/python" - <<'PY'
import json
import os
from pathlib import Path

from hf_ad.cards import write_dataset_card
from hf_ad.files import atomic_write_text
from hf_ad.rl2_training import render_model_card as render_rl2_card
from hf_ad.training import write_model_card

name = os.environ["NAME"]
for folder in (f"pretrained/ad-{name}", f"pretrained/ed-{name}"):
    write_model_card(folder, repo_id=folder)
rl2 = Path(f"pretrained/rl2-{name}")
if os.environ.get("RL2") == "1":
    atomic_write_text(rl2 / "README.md", render_rl2_card(rl2, repo_id=str(rl2)))
folder = Path(f"pretrained/{name}-histories")
write_dataset_card(folder, json.loads((folder / "hf_ad_histories.json").read_text()), repo_id=str(folder))
PY
}
if [ "${SHIP:-0}" = 1 ]; then
    # Replace this env's folders in pretrained/ with this run's, then evaluate the shipped folders themselves
    # so that their cards carry the measured numbers and the command that measured them.
    ship() {  # ship SOURCE NAME: pretrained/NAME becomes a copy of SOURCE
        rm -rf "pretrained/$2.new" && cp -r "$1" "pretrained/$2.new"
        rm -rf "pretrained/$2" && mv "pretrained/$2.new" "pretrained/$2"
    }
    mkdir -p pretrained
    if [ -n "${SAMPLE_SHARDS:-}" ]; then  # too large to ship whole: its first shards (hf_ad.data.sample)
        rm -rf "pretrained/$NAME-histories"
        "$BIN/python" -c "from hf_ad.data.sample import write_histories_sample as sample; \
            sample('$OUT/$NAME-histories', 'pretrained/$NAME-histories', num_shards=$SAMPLE_SHARDS)"
    else
        ship "$OUT/$NAME-histories" "$NAME-histories"
    fi
    ship "$OUT/ad-$NAME/final" "ad-$NAME"
    ship "$OUT/ed-$NAME/final" "ed-$NAME"
    [ "${RL2:-0}" = 1 ] && ship "$RL2_RUN/final" "rl2-$NAME"
    rm -rf "pretrained/$EVAL_NAME" "pretrained/$EVAL_NAME-1000"
    write_cards
    AD=pretrained/ad-$NAME ED=pretrained/ed-$NAME RL2_MODEL=pretrained/rl2-$NAME EVAL=pretrained/$EVAL_NAME
else
    AD="$OUT/ad-$NAME/final" ED="$OUT/ed-$NAME/final" RL2_MODEL="$RL2_RUN/final" EVAL="$OUT/$EVAL_NAME"
fi
RL2_ARGS=()
if [ "${RL2:-0}" = 1 ]; then
    RL2_ARGS=(--rl2-model "$RL2_MODEL")
elif [ -f "pretrained/rl2-$NAME/config.json" ]; then  # the shipped RL² baseline, beside the new AD and ED
    RL2_ARGS=(--rl2-model "pretrained/rl2-$NAME")
fi
# The streams split across the same processes (the results are those of one process, tested).
launch evaluate --model "$AD" --ed-model "$ED" "${RL2_ARGS[@]}" --out "$EVAL" --update-card
if [ -n "${LONG_SEEDS:-}" ]; then
    launch evaluate --model "$AD" --ed-model "$ED" --episodes 1000 --seeds "$LONG_SEEDS" --out "$EVAL-1000" --no-video
fi
# Once more after the evaluation: a card that has an evaluation links it from its introduction.
if [ "${SHIP:-0}" = 1 ]; then write_cards; fi
