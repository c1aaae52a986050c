r"""Train an Algorithm Distillation model on a learning-histories dataset: what `accelerate launch` runs.

One process (CPU, or one GPU when there is one):

    accelerate launch scripts/train.py --dataset data/darkroom-histories --output-dir runs/ad-darkroom

Two CPU processes (distributed data parallel over gloo). Note: with accelerate 1.15,
`accelerate launch --cpu --num_processes 2` starts ONE process; this line starts two:

    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 scripts/train.py \
        --dataset data/darkroom-histories --output-dir runs/ad-darkroom

All GPUs of a machine, in bf16:

    accelerate launch --multi_gpu scripts/train.py --dataset data/darkroom-histories \
        --output-dir runs/ad-darkroom --mixed-precision bf16

Continue a run that stopped (same flags plus --resume; on the same machine it ends with the weights of
an uninterrupted run, or refuses naming the checkpoint file it cannot read):

    accelerate launch scripts/train.py --dataset data/darkroom-histories --output-dir runs/ad-darkroom \
        --resume

A folder that holds a run is refused without --resume; --overwrite starts that run over. After a NaN
loss, the error prints the command that continues from the last good checkpoint with a lower learning
rate (--resume accepts new --learning-rate, --warmup-ratio, --max-grad-norm and --mixed-precision).

Publish `final/` to the hub when the run ends (main process only, after the final save; the card is
rendered for the repo, as `hf-ad publish --model` does):

    accelerate launch scripts/train.py --dataset data/darkroom-histories --output-dir runs/ad-darkroom \
        --push-to-hub --hub-model-id org/ad-darkroom

`hf-ad train` takes the same flags and runs in one process. `--help` lists every flag (the model's
fields included, e.g. `--hidden-size 128 --num-hidden-layers 2`). Each process uses all the CPU
threads torch gives it: with several CPU processes on one machine, set OMP_NUM_THREADS to the cores
per process.
"""

from __future__ import annotations

import sys

from hf_ad.cli import train_and_push


def main(argv: list[str] | None = None) -> int:
    train_and_push(sys.argv[1:] if argv is None else argv, prog="scripts/train.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
