"""Shared fixtures: real tokenizer, tiny random checkpoints, and the `transformers` reference."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never read or write the user's BentoML store (~/bentoml may hold a real
# attnlens-sentiment from `make demo`): set before anything imports bentoml, which caches it.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="attnlens-test-bentoml-")
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from attnlens import DEFAULT_BASE_MODEL

    return Path(DEFAULT_BASE_MODEL)


@pytest.fixture(scope="session")
def tokenizer(minilm_dir):
    from attnlens import load_tokenizer

    return load_tokenizer(minilm_dir)


def tiny_hf_config(**overrides):
    """A tiny `transformers.BertConfig` (random weights, nothing to download)."""
    from transformers import BertConfig

    values = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=512, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    values.update(overrides)
    return BertConfig(**values)


def save_hf_classifier(directory: Path, tokenizer, hf_config=None, seed: int = 0) -> Path:
    """A random `transformers.BertForSequenceClassification` saved in the Hub layout."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification(hf_config or tiny_hf_config())
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def tiny_classifier_dir(tmp_path, tokenizer) -> Path:
    return save_hf_classifier(tmp_path / "tiny", tokenizer)


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    """A random two-layer attnlens classifier over the MiniLM vocabulary, in eval mode."""
    from attnlens import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        id2label={0: "negative", 1: "positive"})
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="session")
def planted_model(tokenizer):
    """The tiny BERT trained on the planted-word task (tests/planted_task.py), shared by the
    explanation and report tests; callers leave it in eval mode."""
    from planted_task import train_planted_model

    return train_planted_model(tokenizer, seed=1)

