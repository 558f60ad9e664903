"""`attnlens predict --input ... --output ...` shared among processes (attnlens.batch.processes):
real `accelerate launch` runs of two CPU processes over gloo, compared with one process.

Each launch costs 10-20 s here, so there are three: a resumed two-process job (jsonl), `--processes
2` (parquet), and a strict bad row on the second process, whose parts one process then finishes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from service_harness import free_port, save_tiny_classifier

from attnlens.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
ROWS = 25
WINDOW_ROWS = "3"  # 9 windows: the main process predicts windows 1, 3, 5, 7, 9, the other 2, 4, 6, 8
LAUNCH_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("distributed") / "tiny", max_position_embeddings=32)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> Path:
    """25 rows with quoted newlines and commas; row 5 (window 2, the second process's) has an empty
    text, rows 14 and 21 have the wrong number of cells."""
    path = tmp_path_factory.mktemp("distributed") / "reviews.csv"
    rows = [{"ref": f"r{index}", "text": f"film {index} was fine" if index % 4 else f"long,\nslow film {index}"}
            for index in range(1, ROWS + 1)]
    rows[4]["text"] = ""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ref", "text"])
        writer.writeheader()
        writer.writerows(rows)
    text = path.read_text(encoding="utf-8")
    text = text.replace("r14,film 14 was fine\n", "r14,film 14,was,fine\n").replace("r21,film 21 was fine\n", "r21\n")
    assert "r14,film 14,was,fine\n" in text and "\nr21\n" in text
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def one_thread():
    """The launched processes run with OMP_NUM_THREADS=1; so do the one-process runs they are
    compared with byte for byte."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def predict_arguments(model_dir: Path, input_path: Path, output_path: Path, *extra: str) -> list[str]:
    return ["predict", "--model", str(model_dir), "--input", str(input_path), "--output", str(output_path),
            "--id-column", "ref", "--window-rows", WINDOW_ROWS, "--batch-size", "2", *extra]


def launch_two(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               "-m", "attnlens", *arguments]
    return subprocess.run(command, cwd=REPO_ROOT, env=job_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)


def test_two_processes_resume_a_one_process_job_and_write_its_bytes(tmp_path, model_dir, reviews, one_thread,
                                                                    capsys):
    reference, output = tmp_path / "reference.jsonl", tmp_path / "scored.jsonl"
    assert main(predict_arguments(model_dir, reviews, reference)) == 0
    # One process stops at row 5 (window 2) and leaves window 1's part for the two processes.
    assert main(predict_arguments(model_dir, reviews, output, "--strict")) == 2
    assert "row 5" in capsys.readouterr().err
    parts = tmp_path / "scored.jsonl.parts"
    assert sorted(path.name for path in parts.glob("window-*")) == ["window-000001.jsonl"]

    result = launch_two(predict_arguments(model_dir, reviews, output))
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.read_bytes() == reference.read_bytes()
    assert not parts.exists()
    # One summary line, from the main process, with every process's rows.
    summaries = [line for line in result.stderr.splitlines() if line.startswith(f"{output}: ")]
    assert len(summaries) == 1, result.stderr[-3000:]
    assert summaries[0].startswith(f"{output}: {ROWS - 3} rows (3 more resumed from parts) in ")
    assert " s by 2 processes (" in summaries[0] and summaries[0].endswith("0 truncated, 3 errors")


def test_the_processes_flag_launches_them_itself(tmp_path, model_dir, reviews, one_thread):
    reference, output = tmp_path / "reference.parquet", tmp_path / "scored.parquet"
    assert main(predict_arguments(model_dir, reviews, reference, "--keep-columns", "text")) == 0
    command = [sys.executable, "-m", "attnlens",
               *predict_arguments(model_dir, reviews, output, "--keep-columns", "text", "--processes", "2")]
    result = subprocess.run(command, cwd=REPO_ROOT, env=job_env(), capture_output=True, text=True,
                            timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "by 2 processes" in result.stderr
    written, expected = pq.read_table(output), pq.read_table(reference)
    assert written.schema == expected.schema
    assert written.to_pylist() == expected.to_pylist()
    assert [row["row"] for row in written.to_pylist()] == list(range(1, ROWS + 1))


def test_a_strict_bad_row_on_the_second_process_stops_both_and_one_process_resumes(tmp_path, model_dir, reviews,
                                                                                  one_thread, capsys):
    reference, output = tmp_path / "reference.jsonl", tmp_path / "scored.jsonl"
    parts = tmp_path / "scored.jsonl.parts"
    started = time.monotonic()
    result = launch_two(predict_arguments(model_dir, reviews, output, "--strict"))
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    # The first round (windows 1 and 2) ends with the failure: nobody predicts window 3.
    assert elapsed < 60, f"took {elapsed:.0f} s to stop"
    errors = [line for line in result.stderr.splitlines() if line.startswith("attnlens predict: error:")]
    assert errors == [f"attnlens predict: error: {reviews}: row 5: text column 'text' is empty (process 1 of 2)"]
    assert not output.exists()
    assert sorted(path.name for path in parts.glob("window-*")) == ["window-000001.jsonl"]

    # The number of processes is not part of the job: one process finishes it.
    assert main(predict_arguments(model_dir, reviews, output)) == 0
    assert "(3 more resumed from parts)" in capsys.readouterr().err
    assert main(predict_arguments(model_dir, reviews, reference)) == 0
    assert output.read_bytes() == reference.read_bytes()
