"""How well a checkpoint predicts its source's actions, phase by phase of its training histories.

`hf_ad.imitation.phase_losses` on the first `--histories` histories of `--dataset`; the window is the
model's own (`sliding_window` transitions, in whole episodes). Prints the uniform policy's loss beside it:

    python scripts/imitation_by_phase.py --model runs/reproduce/ad-key-to-door/final \
        --dataset runs/reproduce/key-to-door-histories --phases 0 20 96 --before-reward 2
"""

from __future__ import annotations

import argparse
import math


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="AD/ED checkpoint folder or hub repo id")
    parser.add_argument("--dataset", required=True, help="the histories folder it was trained on")
    parser.add_argument(
        "--phases", type=int, nargs="+", required=True, help="first stored episode of each window"
    )
    parser.add_argument("--histories", type=int, default=200, help="histories scored (the first N)")
    parser.add_argument(
        "--before-reward",
        type=int,
        default=None,
        help="score the steps up to this reward of each episode only",
    )
    args = parser.parse_args(argv)

    import numpy as np
    from transformers import AutoModel

    import hf_ad  # noqa: F401  (registers ADConfig with AutoModel)
    from hf_ad.data.histories import load_histories
    from hf_ad.imitation import COLUMNS, phase_losses

    model = AutoModel.from_pretrained(args.model).eval()
    histories, metadata = load_histories(args.dataset)
    rows_per_history = len(histories) // metadata["splits"]["train"]["num_histories"]
    part = histories.select(range(args.histories * rows_per_history)).with_format("numpy")[:]
    columns = {name: np.asarray(part[name]) for name in COLUMNS}
    window_episodes = model.config.sliding_window // metadata["episode_length"]
    losses = phase_losses(model, columns, args.phases, window_episodes, args.before_reward)
    print(
        f"{args.model} on {args.histories} histories of {args.dataset}, windows of {window_episodes} episodes"
    )
    for phase, loss in losses.items():
        print(f"stored episodes {phase}-{phase + window_episodes - 1}: cross-entropy {loss:.3f}")
    print(f"uniform policy: {math.log(model.config.num_actions):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
