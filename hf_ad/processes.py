"""The processes of an `accelerate launch`: which one this is, its share of the work, barriers, gathering.

Generation and evaluation split their work by process (`accelerate launch --num_processes N
[--num_machines M ...] -m hf_ad generate|evaluate ...`). Outside a launch (a plain `hf-ad generate`) there
is one process and nothing of accelerate is created: no process group, no device state. A leaf module: it
imports accelerate only.

A process that fails must not leave the others waiting on a barrier forever: `on_main` and `together` run a
piece of work and raise its error on every process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
WORLD_SIZE = "WORLD_SIZE"  # set by `accelerate launch` (torchrun) and `accelerate.debug_launcher`


class ProcessError(ValueError):
    """Another process failed: raised on the processes whose own work went well, naming the failed one."""


def launched() -> bool:
    """Whether this process is one of several started by `accelerate launch` (or torchrun)."""
    return int(os.environ.get(WORLD_SIZE, "1")) > 1


@dataclass(frozen=True)
class Processes:
    """This process among `count` (index 0 is the main process); `Processes()` is a lone process."""

    index: int = 0
    count: int = 1
    device: str | None = (
        None  # this process's device under a launch (accelerate's); None: the caller's default
    )

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items: every `count`-th from its index (round-robin: equal work stays balanced)."""
        return list(items[self.index :: self.count])

    def gather_shares(self, mine: list[T]) -> list[T]:
        """Every process's results for its `share` of some items, on every process, in the items' order."""
        shares = self.gather(list(mine))
        return [shares[i % self.count][i // self.count] for i in range(sum(map(len, shares)))]

    def block(self, count: int) -> range:
        """This process's contiguous part of `count` items (sizes differ by at most one; may be empty)."""
        bounds = [count * index // self.count for index in range(self.count + 1)]
        return range(bounds[self.index], bounds[self.index + 1])

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.count > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value` (picklable), in process order, on every process."""
        if self.count == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def together(self, work: Callable[[], T]) -> T:
        """Run `work` on every process; if it raises on any, raise on every one (its own error where it
        failed, else a `ProcessError` naming the process and its error)."""
        try:
            result, error = work(), None
        except Exception as caught:  # re-raised below, on every process
            result, error = None, caught
        failures = self.gather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = next(((index, message) for index, message in enumerate(failures) if message), None)
        if failed is not None:
            raise ProcessError(f"process {failed[0]} of {self.count} failed: {failed[1]}")
        return result

    def on_main(self, work: Callable[[], T]) -> T:
        """Run `work` on the main process only and return its result (picklable) on every process, after
        it is done; an error is raised on every process."""
        if self.count == 1:
            return work()
        results = self.together(lambda: work() if self.is_main else None)
        return self.gather(results)[0]


def current_processes() -> Processes:
    """The processes of this launch; a lone `Processes()` outside one (creating no accelerate state).

    Raises:
        ValueError: launched with several processes that accelerate does not see as one group (on a
            machine without GPUs: the launch needs `ACCELERATE_USE_CPU=1`).
    """
    if not launched():
        return Processes()
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    expected = int(os.environ[WORLD_SIZE])
    if state.num_processes != expected:
        raise ValueError(
            f"launched as {expected} processes, but accelerate sees {state.num_processes}: on CPUs launch "
            "with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ..."
        )
    return Processes(state.process_index, state.num_processes, str(state.device))
