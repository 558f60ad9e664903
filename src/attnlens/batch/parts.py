"""The parts folder next to an output (`OUTPUT.parts/`): one file per finished window and
`job.json`, the arguments that define the output, so that only the same job resumes from it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from attnlens.batch.reading import HubDataset, InputSource
from attnlens.errors import InputError

JOB_FILE = "job.json"


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def part_path(folder: Path, window_number: int, kind: str) -> Path:
    return folder / f"window-{window_number:06d}.{kind}"


def input_identity(source: InputSource) -> dict[str, Any]:
    """What tells a changed input apart without reading it: a file's path, size and modification
    time; a Hub dataset's id, config, split and `datasets` fingerprint (which changes with the data)."""
    if isinstance(source, HubDataset):
        return {"dataset": source.dataset_id, "config": source.config, "split": source.split,
                "fingerprint": source.dataset._fingerprint}
    stat = source.stat()
    return {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def open_parts(output: Path, job: dict[str, Any], *, start_over: bool) -> Path:
    """The parts folder for `job`, created if missing; an existing folder of another job stops
    with an error unless `start_over` (which deletes it, as does `--resume never`)."""
    folder = parts_folder(output)
    if folder.exists() and start_over:
        shutil.rmtree(folder)
    if folder.exists():
        recorded = _read_job(folder)
        if recorded is None:
            raise InputError(f"{folder}: no readable {JOB_FILE}, so these parts may belong to another job; "
                             "delete the folder or rerun with --resume never to start over")
        if recorded != job:
            differing = sorted(key for key in set(job) | set(recorded)
                               if recorded.get(key) != job.get(key))
            raise InputError(
                f"{folder}: parts of a different job (differs in: {', '.join(differing)}); "
                "delete the folder or rerun with --resume never to start over")
        return folder
    folder.mkdir(parents=True)
    temporary = folder / (JOB_FILE + ".tmp")
    temporary.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, folder / JOB_FILE)
    return folder


def _read_job(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a folder without a readable job.json cannot be proven to be this job's
