r"""Train an Algorithm Distillation model: a thin alias of `hf-ad train` for a checkout.

`hf-ad train` (one process) and `accelerate launch ... -m hf_ad train` (several) are the commands to
use; they work from an installed package. In a checkout this script runs the same code with the same
flags, e.g.:

    python scripts/train.py --dataset data/darkroom-histories --output-dir runs/ad-darkroom

`hf-ad train --help` lists every flag (the model's fields included, e.g. `--hidden-size 128
--num-hidden-layers 2`); README.md ("Training on one or more processes") has the multi-process lines.
"""

from __future__ import annotations

import sys

from hf_ad.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
