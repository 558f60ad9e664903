"""The processes that share one batch job: this one alone (a plain run), or all those that
`accelerate launch` started (one per GPU, or several over gloo on CPUs).

Process r of N predicts windows r+1, r+1+N, r+1+2N, ... Every process reads the whole input, so
all of them pass the same points in the same order; that is where they meet (`stop_if_any_failed`,
`gather`), and why a failure on one process stops every process there instead of leaving the
others waiting for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from attnlens.errors import AttnlensError


class JobStopped(AttnlensError):
    """Raised on the other processes when one process failed; the main process reports why."""


@dataclass
class Processes:
    index: int = 0  # this process's rank
    count: int = 1
    device: Any = None  # torch device for this process's model; None: where loading puts it
    _state: Any = field(default=None, repr=False)  # accelerate's PartialState when count > 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def owns(self, window_number: int) -> bool:
        """Whether this process predicts the window (1-based, as the parts are numbered)."""
        return (window_number - 1) % self.count == self.index

    def ends_round(self, window_number: int) -> bool:
        """Whether every process has had its window once the window has been read."""
        return window_number % self.count == 0

    def gather(self, values: list[Any]) -> list[Any]:
        """Every process's `values`, concatenated in rank order, on every process."""
        if self.count == 1:
            return list(values)
        from accelerate.utils import gather_object

        return gather_object(values)

    def keep(self, error: BaseException) -> BaseException:
        """A failure to report at the next meeting point; a single process raises it at once."""
        if self.count == 1:
            raise error
        return error

    def stop_if_any_failed(self, failure: BaseException | None) -> None:
        """Called by every process at the same point: if any process failed, every process stops.

        The main process raises the failure (its own, else the first process's message) and the
        command prints it once; the others raise JobStopped, which the command ends quietly on,
        so the launcher does not tear the main process down before it has said why. A failure
        that is not an AttnlensError (a bug) is re-raised where it happened, for its traceback.
        """
        if self.count == 1:
            if failure is not None:
                raise failure
            return
        reports = self.gather([None if failure is None else str(failure) or type(failure).__name__])
        failed = [(rank, message) for rank, message in enumerate(reports) if message is not None]
        if not failed:
            return
        if failure is not None and (self.is_main or not isinstance(failure, AttnlensError)):
            raise failure
        rank, message = failed[0]
        if self.is_main:
            raise AttnlensError(f"{message} (process {rank} of {self.count})")
        raise JobStopped(f"stopped: process {rank} of {self.count} failed, the main process reports why")

    def close(self) -> None:
        if self._state is not None:
            self._state.destroy_process_group()


def current_processes() -> Processes:
    """This process's place among those `accelerate launch` started (WORLD_SIZE > 1), else a lone
    process: only the former sets up torch.distributed, so a plain run never imports it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Processes()
    import torch
    from accelerate import PartialState

    # Without a GPU, Accelerate forms a process group (gloo) only when told it runs on CPUs;
    # otherwise every launched process would predict every window alone.
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6 knows CUDA, XPU, MPS, ...
    has_device = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    state = PartialState(cpu=not has_device)
    world_size = int(os.environ["WORLD_SIZE"])
    if state.num_processes != world_size:
        raise AttnlensError(f"WORLD_SIZE={world_size}, but Accelerate formed a group of {state.num_processes} "
                            "processes; start the job with `accelerate launch`")
    return Processes(index=state.process_index, count=state.num_processes, device=state.device, _state=state)
