"""hf_ad.processes: a lone process creates no accelerate state; launched ones share work and fail together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_ad.processes import ProcessError, Processes, current_processes


def test_a_lone_process_creates_no_accelerate_state(monkeypatch):
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    processes = current_processes()
    assert processes == Processes(0, 1) and processes.is_main
    assert processes.gather("x") == ["x"] and processes.on_main(lambda: 7) == 7
    processes.barrier()
    assert PartialState._shared_state == {}


def test_the_shares_cover_every_item_once():
    items = list(range(7))
    shares = [Processes(index, 3).share(items) for index in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert Processes().share(items) == items


def test_a_lone_process_raises_its_own_error():
    with pytest.raises(KeyError, match="boom"):
        Processes().together(lambda: {}["boom"])


def _failing_on_one(record_dir: str) -> None:
    """Runs in each process `debug_launcher` forks: process 1 fails, both record what they raised."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    processes = current_processes()

    def work() -> int:
        if processes.index == 1:
            raise ValueError("bad value on 1")
        return 5

    try:
        processes.together(work)
        raised = None
    except ValueError as error:
        raised = [type(error).__name__, str(error)]
    main_result = processes.on_main(lambda: processes.index + 10)
    record = {"raised": raised, "main_result": main_result, "count": processes.count}
    (Path(record_dir) / f"rank{processes.index}.json").write_text(json.dumps(record))


def test_an_error_on_one_process_is_raised_on_every_process(tmp_path):
    from accelerate import debug_launcher

    debug_launcher(_failing_on_one, args=(str(tmp_path),), num_processes=2)
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert records[1]["raised"] == ["ValueError", "bad value on 1"]
    expected = "process 1 of 2 failed: ValueError: bad value on 1"
    assert records[0]["raised"] == [ProcessError.__name__, expected]
    assert [r["main_result"] for r in records] == [10, 10] and [r["count"] for r in records] == [2, 2]
