"""`hf-ad demo`: real env runs, returns next to the oracles, the room drawn with paths."""

import re

import pytest

from hf_ad.cli import main
from hf_ad.constants import DARK_ROOM, DARK_ROOM_HARD
from hf_ad.demo import DemoConfig, run_demo
from hf_ad.envs import optimal_return, random_return, task_split

ROW = re.compile(r"^\| \((\d+), (\d+)\) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \|$", re.M)


@pytest.mark.parametrize("env_id", [DARK_ROOM, DARK_ROOM_HARD])
def test_demo_returns_match_the_oracles_on_held_out_goals(env_id):
    text = run_demo(DemoConfig(env=env_id, num_goals=2, random_episodes=20_000))
    rows = ROW.findall(text)
    assert [(int(x), int(y)) for x, y, *_ in rows] == task_split(env_id)[1][:2]
    for x, y, best, oracle, mean_random, oracle_random in rows:
        goal = (int(x), int(y))
        assert float(best) == float(oracle) == optimal_return(env_id, goal)
        assert float(oracle_random) == pytest.approx(random_return(env_id, goal), abs=1e-3)
        assert abs(float(mean_random) - float(oracle_random)) < 0.05
    assert text.count("optimal path") == 2 and text.count("G") >= 4 and text.count("S") >= 4


def test_demo_cli_prints_the_table_and_rooms(capsys):
    assert main(["demo", "--num_goals", "1", "--random_episodes", "100"]) == 0
    out = capsys.readouterr().out
    assert "oracle optimum" in out and "#####" in out and len(ROW.findall(out)) == 1


def test_demo_rejects_bad_options():
    with pytest.raises(ValueError, match="the demo runs"):
        DemoConfig(env="hf_ad/Bandit-v0")
    with pytest.raises(ValueError, match="num_goals must be >= 1, got 0"):
        DemoConfig(num_goals=0)
