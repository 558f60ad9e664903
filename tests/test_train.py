"""The fine-tuning job end to end, with a tiny random BERT and real subprocesses.

Runs are real `python training/train.py` / `accelerate launch` processes (a process is the unit the
user runs, and Accelerate keeps process-wide state), killed with SIGKILL where the test says so.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from demo_splits import write_demo_splits
from safetensors.torch import load_file

from attnlens import BertConfig, BertForSequenceClassification

pytestmark = pytest.mark.slow  # real training subprocesses: ~75 s of CPU in all

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO_ROOT / "training" / "train.py"


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("HF_TOKEN", None)
    return env


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tokenizer) -> Path:
    """A tiny random encoder (dropout on, so RNG restoration matters) saved with the MiniLM tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    BertForSequenceClassification(config).save_pretrained(directory, tokenizer=tokenizer)
    return directory


@pytest.fixture(scope="module")
def review_files(tmp_path_factory) -> tuple[Path, Path]:
    """Train/validation CSVs cut from the demo set; 37 validation rows so the last batch is uneven."""
    return write_demo_splits(tmp_path_factory.mktemp("reviews"), slice(160), slice(160, 197))


def write_job_config(directory: Path, base: Path, train: Path, validation: Path, **training: object) -> Path:
    values = {
        "epochs": 2,
        "batch_size": 4,
        "eval_batch_size": 8,
        "learning_rate": 5e-4,
        "warmup_ratio": 0.1,
        "seed": 7,
        "eval_every_steps": 25,
        "checkpoint_every_steps": 20,
        "keep_checkpoints": 3,
        "log_every_steps": 5,
        "resume": "auto",
    }
    values.update(training)
    training_yaml = "\n".join(f"  {key}: {json.dumps(value)}" for key, value in values.items())
    path = directory / "job.yaml"
    path.write_text(
        "# python training/train.py job.yaml\n"
        f"model:\n  base_model: {base}\n  max_length: 32\n"
        f"data:\n  train: {train}\n  validation: {validation}\n  label_names: [negative, positive]\n"
        f"training:\n{training_yaml}\n"
        f"output:\n  dir: {directory / 'out'}\n",
        encoding="utf-8",
    )
    return path


def run_job(config: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), str(config), *overrides],
        cwd=REPO_ROOT,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_same_tensors(first: Path, second: Path, atol: float = 1e-6) -> None:
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=lambda m, key=key: f"{key}: {m}")


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, tiny_base, review_files) -> Path:
    """80 optimizer steps (2 epochs of 40 batches), checkpoints every 20, evaluations every 25."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    config = write_job_config(directory, tiny_base, *review_files)
    result = run_job(config)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory / "out"


def test_run_writes_hub_layout_model_card_and_metrics(uninterrupted_run, review_files):
    best = uninterrupted_run / "best"
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in best.iterdir()}
    config = json.loads((best / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = (best / "README.md").read_text()
    assert str(review_files[0]) in card and "python training/train.py" in card and "accuracy" in card
    metrics = json.loads((uninterrupted_run / "metrics.json").read_text())
    assert metrics["global_step"] == metrics["total_steps"] == 80
    assert metrics["num_processes"] == 1
    # Evaluated every 25 steps and at both epoch ends (40, 80): best is the maximum of that history.
    assert [entry["step"] for entry in metrics["history"]] == [25, 40, 50, 75, 80]
    best_entry = max(metrics["history"], key=lambda entry: entry["accuracy"])
    assert metrics["best_metric"] == best_entry["accuracy"]
    assert metrics["best"]["num_examples"] == 37
    assert sorted(p.name for p in (uninterrupted_run / "checkpoints").iterdir()) == [
        "checkpoint-40",
        "checkpoint-60",
        "checkpoint-80",
    ]
    assert any((uninterrupted_run / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    # The saved best model loads with the public API and gives the recorded validation accuracy.
    reloaded = BertForSequenceClassification.from_pretrained(best)
    assert reloaded.config.id2label == {0: "negative", 1: "positive"}


def test_run_calibrates_and_audits_the_best_model(uninterrupted_run):
    """The job's last stage: a temperature fitted on the validation split in config.json (which
    transformers still loads), the report of the best model on it, and its tables in the card."""
    import transformers

    best = uninterrupted_run / "best"
    record = json.loads((best / "config.json").read_text())["attnlens_calibration"]
    metrics = json.loads((uninterrupted_run / "metrics.json").read_text())
    assert record["examples"] == 37 and record["fit_on"].startswith("validation split")
    assert record["nll_after"] <= record["nll_before"] + 1e-9
    assert metrics["calibration"]["temperature"] == record["temperature"]
    report = json.loads((best / "report.json").read_text())
    assert report["num_examples"] == 37
    assert report["calibration"]["temperature"] == record["temperature"]
    assert report["calibration"]["temperature_source"].startswith("the model's config.json (fit on validation split")
    # The report's accuracy is the best evaluation's: the same model on the same texts.
    assert report["metrics"]["accuracy"] == pytest.approx(metrics["best"]["accuracy"], abs=1e-9)
    assert (best / "report.html").is_file() and metrics["report"] == str(best / "report.html")
    card = (best / "README.md").read_text()
    confusion = report["metrics"]["confusion"]
    assert f"| **negative** | {confusion[0][0]:,} | {confusion[0][1]:,} |" in card
    assert "### Per-class metrics" in card and "### Calibration" in card
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(best)
    assert reference.config.attnlens_calibration == record


def test_sigkill_then_resume_ends_with_the_same_weights(tmp_path, tiny_base, review_files, uninterrupted_run):
    config = write_job_config(tmp_path, tiny_base, *review_files)
    checkpoints = tmp_path / "out" / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), str(config)],
        cwd=REPO_ROOT,
        env=job_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not (checkpoints / "checkpoint-20").is_dir():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "metrics.json").exists(), "the run finished before it was killed"
    killed_at = max(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*") if p.suffix != ".tmp")
    assert killed_at < 80

    # A kill during a checkpoint write leaves a .tmp folder: resume must ignore it and use the last complete one.
    torn = checkpoints / "checkpoint-999.tmp"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00 torn write")

    resumed = run_job(config, "training.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {checkpoints / f'checkpoint-{killed_at}'}" in resumed.stdout
    assert not torn.exists()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["global_step"] == 80 and metrics["resumed_from"].endswith(f"checkpoint-{killed_at}")
    reference = json.loads((uninterrupted_run / "metrics.json").read_text())
    assert len(metrics["history"]) == len(reference["history"])
    for resumed_entry, reference_entry in zip(metrics["history"], reference["history"], strict=True):
        assert resumed_entry == pytest.approx(reference_entry, abs=1e-6)
    assert_same_tensors(checkpoints / "checkpoint-80" / "model.safetensors",
                        uninterrupted_run / "checkpoints" / "checkpoint-80" / "model.safetensors")
    assert_same_tensors(tmp_path / "out" / "best" / "model.safetensors",
                        uninterrupted_run / "best" / "model.safetensors")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_report_what_one_process_measures(tmp_path, tiny_base, review_files, capsys):
    """Also the end-to-end run of the class-imbalance options (sharded balanced draws, weighted loss
    on each process's device), which do not change what is measured here."""
    from attnlens.cli import main as attnlens_main

    config = write_job_config(tmp_path, tiny_base, *review_files, epochs=1, eval_every_steps=0,
                              checkpoint_every_steps=5, gradient_accumulation_steps=2,
                              class_weights="balanced", sampler="balanced")
    launch = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
        str(TRAIN_SCRIPT), str(config),
    ]
    result = subprocess.run(launch, cwd=REPO_ROOT, env=job_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    # 160 examples, 4 per process and batch, 2 processes -> 20 batches each; 2 per optimizer step -> 10.
    assert metrics["global_step"] == metrics["total_steps"] == 10
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {
        p.name for p in (out / "best").iterdir()
    }
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-5"]
    assert {p.name for p in (out / "checkpoints" / "checkpoint-10").glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    card = (out / "best" / "README.md").read_text()
    assert "accelerate launch --num_processes 2" in card
    # 160 training rows, 89 negative and 71 positive: n / (2 x count) each.
    with review_files[0].open(encoding="utf-8") as handle:
        counts = Counter(row["label"] for row in csv.DictReader(handle))
    hyper_parameters = json.loads(card.split("## Hyper-parameters\n\n```json\n")[1].split("```")[0])
    assert hyper_parameters["sampler"] == "balanced"
    assert hyper_parameters["class_weights"] == {
        "rule": "balanced",
        "weights": {name: round(160 / (2 * counts[name]), 4) for name in ("negative", "positive")},
    }

    capsys.readouterr()
    exit_code = attnlens_main(
        ["evaluate", "--model", str(out / "best"), "--data", str(review_files[1]), "--max-length", "32"]
    )
    assert exit_code == 0
    single = json.loads(capsys.readouterr().out)
    assert single["num_examples"] == metrics["best"]["num_examples"] == 37
    for name in ("accuracy", "f1", "precision", "recall"):
        assert single[name] == metrics["best"][name], name
    assert single["loss"] == pytest.approx(metrics["best"]["loss"], abs=1e-5)


def test_non_finite_loss_stops_with_the_step_and_no_bad_checkpoint(tmp_path, tiny_base, review_files):
    config = write_job_config(tmp_path, tiny_base, *review_files, learning_rate=1e30, max_grad_norm=None,
                              warmup_ratio=0.0, checkpoint_every_steps=1)
    result = run_job(config)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "non-finite" in message and "at step " in message, message
    for checkpoint in (tmp_path / "out" / "checkpoints").glob("checkpoint-*"):
        for tensor in load_file(checkpoint / "model.safetensors").values():
            assert torch.isfinite(tensor).all(), checkpoint


def test_push_without_token_is_refused_before_training(tmp_path, tiny_base, review_files):
    config = write_job_config(tmp_path, tiny_base, *review_files)
    result = run_job(config, "output.push_to_hub=true", "output.hub_repo_id=someone/tiny-sentiment", timeout=120)
    assert result.returncode == 2
    assert "output.push_to_hub=true (repo someone/tiny-sentiment)" in result.stderr
    assert not (tmp_path / "out").exists(), "training started before the push was refused"


def test_bad_row_stops_before_training_naming_file_row_and_value(tmp_path, tiny_base, review_files):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngreat film,positive\nawful film,maybe\n", encoding="utf-8")
    config = write_job_config(tmp_path, tiny_base, *review_files)
    result = run_job(config, f"data.train={bad}", timeout=120)
    assert result.returncode == 2
    assert f"{bad}: row 2: label 'maybe'" in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_resuming_with_other_optimizer_groups_names_the_setting(tmp_path, tiny_base, review_files, uninterrupted_run):
    """A checkpoint written with one learning rate for all layers cannot continue with per-layer
    rates: the error names the checkpoint and the setting, not only torch's internals."""
    config = write_job_config(tmp_path, tiny_base, *review_files)
    shutil.copytree(uninterrupted_run / "checkpoints", tmp_path / "out" / "checkpoints")
    result = run_job(config, "training.layerwise_lr_decay=0.5", "training.epochs=3", timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "checkpoint-80: its optimizer state has other parameter groups" in message, message
    assert "training.layerwise_lr_decay=0.5" in message and "training.resume=none" in message


def test_rdrop_and_label_smoothing_reach_the_loss_and_the_model_card(tmp_path, tiny_base, review_files):
    """`training.rdrop_alpha` and `training.label_smoothing` each change what is learnt from the same
    seed and batches (a doubled batch with the plain loss would fail on the label count instead), and
    the model card records them."""
    weights = {}
    for name, options in {"plain": {}, "rdrop": {"rdrop_alpha": 1.0}, "smooth": {"label_smoothing": 0.3}}.items():
        directory = tmp_path / name
        directory.mkdir()
        config = write_job_config(directory, tiny_base, *review_files, max_steps=3, checkpoint_every_steps=0,
                                  resume="none", **options)
        result = run_job(config, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        weights[name] = load_file(directory / "out" / "best" / "model.safetensors")
        card = (directory / "out" / "best" / "README.md").read_text()
        for key, value in {"rdrop_alpha": 0.0, "label_smoothing": 0.0, **options}.items():
            assert f'"{key}": {value}' in card
    for name in ("rdrop", "smooth"):
        assert weights[name].keys() == weights["plain"].keys()
        assert any(not torch.equal(weights["plain"][key], weights[name][key]) for key in weights[name])
        assert all(torch.isfinite(tensor).all() for tensor in weights[name].values())
