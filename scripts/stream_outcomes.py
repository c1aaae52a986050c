"""Which streams of an evaluation improve? First vs last episodes of every (task, evaluation seed) stream.

`hf-ad evaluate` reports means over the tasks; this plays the same streams (same `--episodes`, `--seeds`
and `--seed`, so the same returns) and counts, per stream, whether it solves its task at the start and
at the end. That tells a policy that improves a little everywhere from one where a few streams jump
from failing to solving:

    python scripts/stream_outcomes.py --model pretrained/ed-darkroom --episodes 1000 --seeds 20
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="AD/ED checkpoint folder or hub repo id")
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per stream")
    parser.add_argument("--seeds", type=int, default=20, help="evaluation seeds (streams per task)")
    parser.add_argument("--seed", type=int, default=0, help="base seed, as in `hf-ad evaluate`")
    parser.add_argument("--window", type=int, default=10, help="episodes compared at each end")
    parser.add_argument("--solved", type=float, default=12.0, help="mean return that counts as solving")
    parser.add_argument(
        "--num-tasks", type=int, default=None, help="a fixed sample of held-out tasks, as `hf-ad evaluate`'s"
    )
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    import hf_ad  # noqa: F401  (registers ADConfig with AutoConfig)
    from hf_ad.evaluation import EvaluateConfig, held_out_tasks, stream_outcomes, stream_returns

    # `out` stays unused: nothing is written, the streams are only counted.
    config = EvaluateConfig(
        model=[args.model], out="", episodes=args.episodes, seeds=args.seeds, seed=args.seed
    )
    tasks = held_out_tasks(args.model, AutoConfig.from_pretrained(args.model), args.num_tasks)
    returns = stream_returns(args.model, tasks, config)
    outcome = stream_outcomes(returns, args.window, args.solved)
    streams, window, solved = outcome["streams"], args.window, args.solved
    print(f"{args.model}: {len(tasks)} held-out tasks x {args.seeds} seeds = {streams} streams")
    first, last = outcome["first_mean"], outcome["last_mean"]
    print(f"mean return: first {window} episodes {first:.2f}, last {window} {last:.2f}")
    print(f"streams solving (>= {solved:g}) in their first {window} episodes: {outcome['solved_first']}")
    print(f"streams solving in their last {window} episodes: {outcome['solved_last']}")
    print(f"streams failing at first, solving at the end: {outcome['failing_to_solved']}")
    print(f"streams under 1 in their last {window} episodes: {outcome['under_1_last']}")
    low, median, high = outcome["last_min"], outcome["last_median"], outcome["last_max"]
    print(f"last {window} episodes, streams' means: min {low:.2f}, median {median:.2f}, max {high:.2f}")
    if (episode_shares := outcome["last_episode_shares"]) is not None:
        shares = ", ".join(f"{value:g}: {share:.1%}" for value, share in episode_shares.items())
        print(f"episodes of the last {window} scoring each return: {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
