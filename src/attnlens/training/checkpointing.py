"""Crash-safe checkpoints of the whole training state, and the job's resumable counters.

A checkpoint is `accelerator.save_state` (weights, optimizer, RNG states of every process, the
objects registered for checkpointing) written into `checkpoint-N.tmp` and renamed to `checkpoint-N`
only when every process has finished writing. A directory named `checkpoint-N` is therefore always
complete: a kill in the middle of a write leaves a `.tmp` folder that resume ignores, and the
previous checkpoint is untouched.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from attnlens.errors import CheckpointError

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class JobState:
    """Counters that, with the RNG states, make a resumed run replay an uninterrupted one exactly.

    Registered with `accelerator.register_for_checkpointing`, so it travels inside every checkpoint.
    """

    global_step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs completed
    batches_in_epoch: int = 0  # batches of the current epoch already consumed (skipped on resume)
    examples_seen: int = 0  # training examples over all processes
    last_eval_step: int = -1
    best_metric: float | None = None
    best_step: int | None = None
    best_results: dict[str, float] = field(default_factory=dict)
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


def checkpoints_root(output_dir: Path) -> Path:
    return output_dir / "checkpoints"


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (by step, not by name: checkpoint-100 after checkpoint-20)."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [path for _, path in sorted(found)]


def resolve_resume(resume: str, output_dir: Path) -> Path | None:
    """`none` -> start fresh; `auto` -> newest complete checkpoint if any; else that checkpoint folder."""
    if resume == "none":
        return None
    if resume == "auto":
        checkpoints = complete_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume)
    if not path.is_dir():
        raise CheckpointError(f"training.resume={resume}: no such checkpoint folder")
    if path.name.endswith(".tmp"):
        raise CheckpointError(f"training.resume={resume}: an unfinished checkpoint (.tmp) cannot be resumed")
    return path


def all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(parameter).all()) for parameter in model.parameters())


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, keep: int) -> Path:
    """Write the full state atomically, then drop all but the newest `keep` checkpoints."""
    root = checkpoints_root(output_dir)
    final = root / f"checkpoint-{step}"
    temporary = root / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _fsync_tree(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        for stale in complete_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def remove_checkpoints(accelerator: Accelerator, output_dir: Path) -> None:
    """A fresh start must not leave an older run's checkpoints for a later `resume: auto` to pick up."""
    root = checkpoints_root(output_dir)
    if accelerator.is_main_process and root.is_dir():
        accelerator.print(f"training.resume=none: removing old checkpoints in {root}")
        shutil.rmtree(root)
    accelerator.wait_for_everyone()


def remove_unfinished_checkpoints(accelerator: Accelerator, output_dir: Path) -> None:
    root = checkpoints_root(output_dir)
    if accelerator.is_main_process and root.is_dir():
        for leftover in root.glob("checkpoint-*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()


def _fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot leave a renamed but empty file."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
