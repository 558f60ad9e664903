"""The baselines go through the same workflow as BERT: the shipped job configs train them with
`training/train.py` (a real subprocess), and the saved folder is loaded, evaluated, predicted with
and explained (`attnlens explain --method native`) by the same code paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from demo_splits import write_demo_splits

from attnlens import DEFAULT_BASE_MODEL
from attnlens.baselines import BiRNNAttentionForSequenceClassification, HierarchicalAttentionNetwork
from attnlens.baselines.io import base_word_embeddings
from attnlens.baselines.job_config import BaselineModelConfig, build_baseline_model
from attnlens.loading import load_model
from attnlens.predict import Predictor
from attnlens.training.evaluation import evaluate_saved_model

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHS = {"birnn_attention": BiRNNAttentionForSequenceClassification, "han": HierarchicalAttentionNetwork}


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def review_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_demo_splits(tmp_path_factory.mktemp("reviews"), slice(96), slice(96, 128))


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_config_trains_saves_and_the_folder_serves_every_path(tmp_path, review_files, arch, tokenizer):
    train, validation = review_files
    output = tmp_path / "out"
    config = REPO_ROOT / "configs" / ("sst2-birnn.yaml" if arch == "birnn_attention" else "sst2-han.yaml")
    overrides = [
        f"data.train={train}", f"data.validation={validation}", "data.text_column=text",
        "training.max_steps=6", "training.batch_size=16", "training.eval_every_steps=3",
        "training.warmup_ratio=0.0", "model.baseline.hidden_size=8", "model.baseline.attention_dim=8",
        "model.baseline.sentence_hidden_size=8", f"output.dir={output}", "output.log_with=null",
    ]
    run = subprocess.run([sys.executable, "training/train.py", str(config), *overrides], cwd=REPO_ROOT,
                         env=job_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["num_validation_examples"] == 32
    best = output / "best"
    saved = json.loads((best / "config.json").read_text())
    assert saved["model_type"] == f"attnlens_{arch}"
    assert saved["id2label"] == {"0": "negative", "1": "positive"}

    model = load_model(best)
    assert type(model) is ARCHS[arch]
    # Evaluating the saved folder reproduces the job's own evaluation of the best step.
    results = evaluate_saved_model(str(best), str(validation), max_length=64)
    assert results["accuracy"] == pytest.approx(metrics["best"]["accuracy"])

    predictor = Predictor.from_pretrained(str(best), batch_size=4)
    predictions = predictor.predict(["a wonderful film. loved it!", "dull and far too long"])
    assert [p.label in ("negative", "positive") for p in predictions] == [True, True]

    if arch != "han":  # the CLI path is the same for both; run it once, on the hierarchical model
        return
    explained = subprocess.run(
        [sys.executable, "-m", "attnlens", "explain", "a wonderful film. loved it!", "--model", str(best),
         "--method", "native", "--json", "-", "--no-color"],
        cwd=REPO_ROOT, env=job_env(), capture_output=True, text=True, timeout=120)
    assert explained.returncode == 0, explained.stderr[-2000:]
    payload = json.loads(explained.stdout[explained.stdout.index("{"):])
    assert payload["method"] == "native"
    assert [w["word"] for w in payload["words"]] == ["a", "wonderful", "film", ".", "loved", "it", "!"]
    assert sum(w["score"] for w in payload["words"]) == pytest.approx(1.0)


@pytest.mark.parametrize("init", ["base_model", "random"])
def test_embeddings_start_from_the_base_models_word_embeddings_or_random(tokenizer, init):
    model = build_baseline_model(
        "birnn_attention", BaselineModelConfig(embedding_init=init, hidden_size=8, attention_dim=8),
        tokenizer=tokenizer, base_model=DEFAULT_BASE_MODEL, id2label={0: "negative", 1: "positive"},
        max_length=512, dropout=None)
    minilm = base_word_embeddings(DEFAULT_BASE_MODEL)
    assert model.word_embeddings.weight.shape == minilm.shape == (tokenizer.vocab_size, 384)
    assert torch.equal(model.word_embeddings.weight.detach(), minilm) is (init == "base_model")
    assert model.config.embedding_init == init
